"""A throwaway PostgreSQL server, for the ledger's tests and ``bench/ledger.py``.

The ledger runs on PostgreSQL in production, so its contract is tested against a real one,
not a mock; but the suite must need nothing beside the clone and the machine's PostgreSQL
binaries (``/usr/lib/postgresql/*/bin`` on Debian; ``LEADROUTE_PG_BIN`` names another
directory). So a session makes its own cluster in a temporary directory (``initdb``), runs
``postgres`` on a free loopback port with its Unix socket in that directory, hands out
databases (``createdb``) and, on :meth:`PostgresServer.stop`, stops it and deletes
everything.

The server is started as a direct child rather than through ``pg_ctl start`` (which
detaches it): the kernel then stops it if the process that started it is killed outright,
so a crashed test run never leaves a server behind. PostgreSQL refuses to run as root, so
under root (CI here) the cluster belongs to the ``postgres`` user, or ``nobody``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SUPERUSER = "leadroute"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries here, or the server would not start."""


def postgres_bin_dir() -> Path:
    """The directory with ``initdb`` and ``postgres``: ``LEADROUTE_PG_BIN``, else the newest Debian install."""
    named = os.environ.get("LEADROUTE_PG_BIN")
    candidates = [named] if named else sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    on_path = shutil.which("initdb")
    if not named and on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").is_file() and (Path(candidate) / "postgres").is_file():
            return Path(candidate)
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb, postgres) found: looked in "
        + (f"LEADROUTE_PG_BIN={named}" if named else "/usr/lib/postgresql/*/bin and PATH")
        + "; install them (Debian: apt-get install postgresql) or set LEADROUTE_PG_BIN to their directory"
    )


def _version(path: str) -> tuple[int, ...]:
    digits = Path(path).parent.name
    return tuple(int(p) for p in digits.split(".") if p.isdigit()) or (0,)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    """Whom to run PostgreSQL as: ourselves, unless we are root (which it refuses)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresUnavailable("running as root and there is no 'postgres' or 'nobody' user to run PostgreSQL as")


@dataclass
class PostgresServer:
    """One throwaway cluster: ``with PostgresServer() as pg: url = pg.create_database("t1")``.

    ``durable=False`` (tests) turns off fsync and full-page writes: fast, and nothing survives
    a crash, which a throwaway server does not need. ``durable=True`` (the benchmark) keeps
    PostgreSQL's defaults, so its figures are those of a real server.

    ``keep`` (benchmarks): the cluster lives in that directory, made on the first start and
    reused by later ones, and :meth:`stop` shuts it down cleanly and leaves it there.
    """

    durable: bool = False
    bin_dir: Path | None = None
    keep: Path | None = None
    root: Path | None = None
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    owner_pid: int = field(default_factory=os.getpid)

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None, "not started"
        return self.root / "sock"

    def url(self, database: str = "postgres", tcp: bool = False) -> str:
        """A SQLAlchemy URL for ``database``: over the Unix socket, or loopback TCP with ``tcp``."""
        if tcp:
            return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.socket_dir}&port={self.port}"

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> PostgresServer:
        """Make a cluster in a new temporary directory and start it; wait until it accepts connections."""
        bin_dir = self.bin_dir = self.bin_dir or postgres_bin_dir()
        user = _run_as()
        if self.keep is not None:
            self.keep.mkdir(parents=True, exist_ok=True)
            self.root = self.keep
        else:
            self.root = Path(tempfile.mkdtemp(prefix="leadroute-pg-"))  # short: a socket path has ~100 bytes
        atexit.register(self.stop)
        self.socket_dir.mkdir(exist_ok=True)
        if user is not None:
            for path in (self.root, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
        data = self.root / "data"
        if not (data / "PG_VERSION").is_file():
            self._run([str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                       "--locale=C", "--no-sync"], user, "initdb")
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.socket_dir),
            "max_connections": "40",
            "timezone": "UTC",
            "logging_collector": "off",
        }
        if not self.durable:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        last = ""
        for _ in range(3):  # a free port can be taken between choosing and binding it
            self.port = free_port()
            args = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(self.port)]
            for name, value in settings.items():
                args += ["-c", f"{name}={value}"]
            log = (self.root / "postgres.log").open("ab")
            try:
                self.process = subprocess.Popen(
                    args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,  # a Ctrl-C in the terminal reaches us, and we stop it
                    preexec_fn=_die_with_parent_hook(), **_as_user(user),
                )
            finally:
                log.close()
            if self._await_ready(data, timeout):
                return self
            last = self._log_tail()
        self.stop()
        raise PostgresUnavailable(f"postgres did not start: {last}")

    def _await_ready(self, data: Path, timeout: float) -> bool:
        """True once the postmaster reports ``ready`` (as ``pg_ctl -w`` waits), False if it exited."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        pid_file = data / "postmaster.pid"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(OSError):
                lines = pid_file.read_text().splitlines()
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    return True
            time.sleep(0.02)
        self.process.kill()
        self.process.wait()
        raise PostgresUnavailable(f"postgres was not ready within {timeout:.0f}s: {self._log_tail()}")

    def has_database(self, name: str) -> bool:
        """Whether the cluster already holds ``name`` (a kept cluster, started again)."""
        assert self.root is not None, "not started"
        return (self.root / "data" / "base").is_dir() and name in self._databases()

    def _databases(self) -> set[str]:
        assert self.bin_dir is not None
        done = subprocess.run([str(self.bin_dir / "psql"), "-h", str(self.socket_dir), "-p", str(self.port), "-U", SUPERUSER,
                               "-d", "postgres", "-Atc", "SELECT datname FROM pg_database"],
                              capture_output=True, text=True, timeout=60)
        return set(done.stdout.split()) if done.returncode == 0 else set()

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL (over the Unix socket)."""
        assert self.root is not None and self.bin_dir is not None, "not started"
        self._run([str(self.bin_dir / "createdb"), "-h", str(self.socket_dir), "-p", str(self.port),
                   "-U", SUPERUSER, name], None, "createdb")
        return self.url(name)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server at once (immediate shutdown: nothing here is kept) and delete its directory;
        a kept cluster is shut down cleanly instead (its data written out) and left in place."""
        if os.getpid() != self.owner_pid:
            return  # a forked child that inherited the atexit handler: not ours to stop
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            # immediate shutdown for a throwaway cluster; fast (a checkpoint) for one that is kept
            proc.send_signal(signal.SIGQUIT if self.keep is None else signal.SIGINT)
            if self.keep is not None:
                timeout = max(timeout, 300.0)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        root, self.root = self.root, None
        if root is not None and self.keep is None:
            shutil.rmtree(root, ignore_errors=True)

    def _run(self, args: list[str], user: pwd.struct_passwd | None, what: str) -> None:
        done = subprocess.run(args, capture_output=True, text=True, timeout=120, **_as_user(user))
        if done.returncode != 0:
            raise PostgresUnavailable(f"{what} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-500:]}")

    def _log_tail(self, lines: int = 5) -> str:
        if self.root is None:
            return ""
        try:
            return " | ".join((self.root / "postgres.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _as_user(user: pwd.struct_passwd | None) -> dict[str, object]:
    """``subprocess`` arguments that run the child as ``user`` (root only), with its home as HOME."""
    if user is None:
        return {}
    env = dict(os.environ, HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "env": env}


def _die_with_parent_hook() -> Callable[[], None] | None:
    """What the child runs before exec (after any change of user): have Linux stop it when we die.

    The C function is looked up here, in the parent: a child that is no longer root may not be
    allowed to read this interpreter's files, so it must not import anything. SIGQUIT is
    PostgreSQL's immediate shutdown: its backends exit too.
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None

    def hook() -> None:
        prctl(1, signal.SIGQUIT)  # PR_SET_PDEATHSIG

    return hook
