"""Starting the sandbox: foreground (``leadroute sandbox``) or in the background (tests, demo).

The sandbox speaks HTTPS only, because simple-salesforce builds ``https://`` URLs; a throwaway
CA (trustme) signs a loopback certificate at every start and its bundle is written to a file that
clients are handed explicitly (``LEADROUTE_CA_BUNDLE``) — nothing relies on global CA settings.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
import uvicorn

from .client import AdminClient
from .server import TRANSPORTS, SandboxApp
from .state import SandboxState, load_seed

ENV_VARS = (
    "SALESFORCE_INSTANCE_URL", "SALESFORCE_LOGIN_URL", "SALESFORCE_CLIENT_ID", "SALESFORCE_CLIENT_SECRET",
    "SALESFORCE_USERNAME", "SALESFORCE_PASSWORD", "SALESFORCE_SECURITY_TOKEN", "SALESFORCE_API_VERSION",
    "HUBSPOT_ACCESS_TOKEN", "HUBSPOT_API_BASE", "LEADROUTE_CA_BUNDLE", "LEADROUTE_SANDBOX_ADMIN",
)


@dataclass(frozen=True)
class SandboxInfo:
    """How to reach a running sandbox; :meth:`env` gives the variables the connectors read."""

    host: str
    port: int
    ca_bundle: Path
    salesforce_api_version: str
    salesforce_org_id: str
    salesforce_client_id: str
    salesforce_client_secret: str
    salesforce_username: str
    salesforce_password: str
    salesforce_security_token: str
    hubspot_access_token: str
    hubspot_portal_id: int

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def salesforce_instance_url(self) -> str:
        return self.base_url

    @property
    def salesforce_login_url(self) -> str:
        """Token endpoint base: POST {this}/services/oauth2/token."""
        return self.base_url

    @property
    def salesforce_domain(self) -> str:
        """A ``domain=`` for simple-salesforce's own login: it builds https://{domain}.salesforce.com/..."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}/login"

    @property
    def hubspot_base_url(self) -> str:
        return self.base_url

    @property
    def admin_url(self) -> str:
        return self.base_url + "/__sandbox"

    @property
    def admin(self) -> AdminClient:
        return AdminClient(self.admin_url, self.ca_bundle)

    def env(self) -> dict[str, str]:
        """The environment variables that point the connectors (and any script) at this sandbox."""
        return {
            "SALESFORCE_INSTANCE_URL": self.salesforce_instance_url,
            "SALESFORCE_LOGIN_URL": self.salesforce_login_url,
            "SALESFORCE_CLIENT_ID": self.salesforce_client_id,
            "SALESFORCE_CLIENT_SECRET": self.salesforce_client_secret,
            "SALESFORCE_USERNAME": self.salesforce_username,
            "SALESFORCE_PASSWORD": self.salesforce_password,
            "SALESFORCE_SECURITY_TOKEN": self.salesforce_security_token,
            "SALESFORCE_API_VERSION": self.salesforce_api_version,
            "HUBSPOT_ACCESS_TOKEN": self.hubspot_access_token,
            "HUBSPOT_API_BASE": self.hubspot_base_url,
            "LEADROUTE_CA_BUNDLE": str(self.ca_bundle),
            "LEADROUTE_SANDBOX_ADMIN": self.admin_url,
        }

    def write_env(self, path: Path) -> None:
        """Write ``KEY=value`` lines (shell-quoted where needed) for ``set -a; . file``; whole or not at all (a
        temporary file renamed into place), so whoever waits for the file never reads it half written."""
        lines = [f"{k}={shlex.quote(v)}" for k, v in self.env().items()]
        target = Path(path)
        partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(partial, target)

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host, "port": self.port, "ca_bundle": str(self.ca_bundle),
            "salesforce_api_version": self.salesforce_api_version, "salesforce_org_id": self.salesforce_org_id,
            "salesforce_client_id": self.salesforce_client_id,
            "salesforce_client_secret": self.salesforce_client_secret,
            "salesforce_username": self.salesforce_username, "salesforce_password": self.salesforce_password,
            "salesforce_security_token": self.salesforce_security_token,
            "hubspot_access_token": self.hubspot_access_token, "hubspot_portal_id": self.hubspot_portal_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxInfo:
        data = dict(data)
        data["ca_bundle"] = Path(data["ca_bundle"])
        return cls(**data)


def _tls_files(directory: Path, host: str) -> tuple[Path, Path, Path]:
    """A fresh CA and a loopback server certificate; returns (ca bundle, cert chain, key)."""
    ca = trustme.CA(organization_name="leadroute sandbox CA")
    names = ["127.0.0.1", "localhost", "::1"]
    if host not in names and host not in ("0.0.0.0", "::", ""):
        names.append(host)
    cert = ca.issue_cert(*names)
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca.cert_pem.write_to_path(str(ca_path))
    cert.private_key_pem.write_to_path(str(key_path))
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    return ca_path, cert_path, key_path


class _CoalescingTransport:
    """Merges the header and body writes of one response into a single TLS record and syscall.

    uvicorn writes the status line and headers, then the body, as two ``transport.write`` calls;
    over TLS each becomes its own record and TCP segment, which costs both ends a round of
    encryption and a system call per response.  Writes made in one event-loop turn are joined.
    """

    def __init__(self, transport: Any, loop: Any) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _protocol_class() -> type:
    """uvicorn's HTTP protocol, remembering each connection's transport for the drop fault."""
    try:
        # httptools is the fast protocol; h11 is uvicorn's pure-Python fallback
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # pragma: no cover - httptools is a dependency
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]

    class TrackingProtocol(Base):  # type: ignore[misc,valid-type]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.transport = _CoalescingTransport(transport, self.loop)
            peer = transport.get_extra_info("peername")
            self._sandbox_peer = (peer[0], peer[1]) if peer else None
            if self._sandbox_peer:
                TRANSPORTS[self._sandbox_peer] = transport

        def connection_lost(self, exc: Exception | None) -> None:
            if getattr(self, "_sandbox_peer", None):
                TRANSPORTS.pop(self._sandbox_peer, None)
            super().connection_lost(exc)

    return TrackingProtocol


def _quiet_shutdown(record: logging.LogRecord) -> bool:
    """Idle keep-alive TLS connections outlive the graceful-shutdown timeout; that is not an error."""
    return "timeout graceful shutdown exceeded" not in record.getMessage()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _seed_data(seed: Path | dict[str, Any] | None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    data = dict(seed) if isinstance(seed, dict) else load_seed(seed)
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
    return data


class _Built:
    """A configured (not yet running) server with its socket, TLS files and connection info."""

    def __init__(self, seed: dict[str, Any], host: str, port: int) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="leadroute-sandbox-"))
        ca_path, cert_path, key_path = _tls_files(self.tmp, host)
        self.state = SandboxState(seed)
        self.app = SandboxApp(self.state)
        self.sock = _bind(host, port)
        bound_port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, ssl_keyfile=str(key_path), ssl_certfile=str(cert_path), http=_protocol_class(),
            loop="asyncio", lifespan="off", log_level="warning", access_log=False, timeout_keep_alive=75,
            backlog=2048, proxy_headers=False, server_header=False, timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        logging.getLogger("uvicorn.error").addFilter(_quiet_shutdown)
        s = self.state
        connect_host = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
        self.info = SandboxInfo(
            host=connect_host, port=bound_port, ca_bundle=ca_path,
            salesforce_api_version=s.sf_api_version, salesforce_org_id=s.sf.org_id,
            salesforce_client_id=s.sf_credentials["client_id"],
            salesforce_client_secret=s.sf_credentials["client_secret"],
            salesforce_username=s.sf_credentials["username"], salesforce_password=s.sf_credentials["password"],
            salesforce_security_token=s.sf_credentials["security_token"],
            hubspot_access_token=s.hs_access_token, hubspot_portal_id=s.hs.portal_id,
        )

    def cleanup(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        for child in self.tmp.iterdir():
            with contextlib.suppress(OSError):
                child.unlink()
        with contextlib.suppress(OSError):
            self.tmp.rmdir()


def serve(port: int = 0, seed: Path | None = None, env_file: Path | None = None, host: str = "127.0.0.1", *,
          info_file: Path | None = None) -> None:
    """Run the sandbox in the foreground until Ctrl-C/SIGTERM; write ``env_file`` once listening."""
    built = _Built(_seed_data(seed), host, port)
    info = built.info

    def announce() -> None:
        while not built.server.started:
            if built.server.should_exit:
                return
            time.sleep(0.02)
        if env_file:
            info.write_env(Path(env_file))
        if info_file:
            tmp = Path(str(info_file) + ".tmp")
            tmp.write_text(json.dumps(info.to_json()), encoding="utf-8")
            tmp.replace(info_file)
        if not info_file:
            print(f"leadroute sandbox CRM listening on {info.base_url}", file=sys.stderr)
            print(f"  Salesforce instance: {info.salesforce_instance_url} (API v{info.salesforce_api_version})",
                  file=sys.stderr)
            print(f"  HubSpot API base:    {info.hubspot_base_url}", file=sys.stderr)
            print(f"  admin API:           {info.admin_url}", file=sys.stderr)
            print(f"  CA bundle:           {info.ca_bundle}", file=sys.stderr)
            if env_file:
                print(f"  environment written to {env_file} (load it with: set -a; . {env_file}; set +a)",
                      file=sys.stderr)
            print("Press Ctrl-C to stop.", file=sys.stderr)

    threading.Thread(target=announce, daemon=True).start()
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal; with these
    # handlers that ends in an exception here (so the temporary CA files are removed), not a kill.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        built.server.run(sockets=[built.sock])
    except KeyboardInterrupt:
        pass
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        built.cleanup()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(0)


@contextlib.contextmanager
def running(seed: Path | dict[str, Any] | None = None, *, host: str = "127.0.0.1", port: int = 0,
            mode: str = "thread", limits: dict[str, Any] | None = None,
            faults: dict[str, Any] | None = None) -> Iterator[SandboxInfo]:
    """Start a sandbox in the background and yield how to reach it; stops it on exit.

    ``mode="thread"`` runs it in this process (cheap, fine for tests); ``mode="process"`` runs it in
    a child process so that it has its own core and GIL (use it when measuring throughput).
    """
    data = _seed_data(seed, {"limits": limits, "faults": faults})
    if mode == "thread":
        built = _Built(data, host, port)
        thread = threading.Thread(target=built.server.run, kwargs={"sockets": [built.sock]}, daemon=True,
                                  name="leadroute-sandbox")
        thread.start()
        deadline = time.monotonic() + 15
        while not built.server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                built.cleanup()
                raise RuntimeError("sandbox failed to start")
            time.sleep(0.01)
        try:
            yield built.info
        finally:
            built.server.should_exit = True
            thread.join(10)
            built.cleanup()
        return
    if mode != "process":
        raise ValueError("mode must be 'thread' or 'process'")
    workdir = Path(tempfile.mkdtemp(prefix="leadroute-sandbox-run-"))
    seed_path, info_path = workdir / "seed.json", workdir / "info.json"
    seed_path.write_text(json.dumps(data), encoding="utf-8")
    cmd = [sys.executable, "-m", "sandbox", "--port", str(port), "--host", host, "--seed", str(seed_path),
           "--info-file", str(info_path)]
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen(cmd, env=env)
    try:
        deadline = time.monotonic() + 30
        while not info_path.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox process failed to start (exit code {proc.poll()})")
            time.sleep(0.02)
        yield SandboxInfo.from_json(json.loads(info_path.read_text(encoding="utf-8")))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for child in workdir.iterdir():
            with contextlib.suppress(OSError):
                child.unlink()
        with contextlib.suppress(OSError):
            workdir.rmdir()
