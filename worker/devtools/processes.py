"""One supervisor for the product's processes: the Celery worker, beat and the ``web`` process.

``leadroute demo``, ``bench/e2e.py`` and the end-to-end tests start, watch and stop them
through :class:`Supervisor`, so they run exactly as the ``Procfile`` runs them:

* each one in a session (and process group) of its own, so one signal reaches the whole tree
  (a prefork worker's children included), and a Ctrl-C at the terminal reaches only the caller;
* its output, stdout and stderr, appended to ``LOG_DIR/NAME.log``; :meth:`Supervisor.tail` gives
  the end of it;
* ready when a condition holds, never after a fixed delay: the worker answers a Celery ping,
  beat has logged its start, the web process answers ``/healthz`` (:meth:`Supervisor.wait_ready`);
* stopped gracefully: SIGTERM to the group, SIGKILL to whatever is left of it after a timeout
  (:meth:`Supervisor.stop`); or killed at once (:meth:`Supervisor.kill`, for chaos tests);
* a process that exits without being asked to is reported (:meth:`Supervisor.died`,
  :meth:`Supervisor.check_alive`).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from celery import Celery
from celery.utils.nodenames import default_nodename, host_format

from worker.app.broker import QUEUES, configured_broker_url, sentinel_options
from worker.app.broker import broker_url as broker_url  # re-exported for callers of the supervisor
from worker.store.connection import free_port

ROOT = Path(__file__).resolve().parents[2]
CELERY_APP = "worker.app.celery_app"
POLL_SECONDS = 0.1


class ProcessDied(RuntimeError):
    """Processes exited without being asked to; the message has each one's status and log tail."""

    def __init__(self, procs: Sequence[Process]) -> None:
        self.names = [p.name for p in procs]
        super().__init__("\n".join(f"the {p.name} process exited with status {p.returncode}:\n{p.tail()}"
                                   for p in procs))


class NotReady(TimeoutError):
    """Processes were still not ready when the time allowed ran out."""

    def __init__(self, procs: Sequence[Process], timeout: float) -> None:
        self.names = [p.name for p in procs]
        super().__init__("\n".join(f"the {p.name} process was not ready ({p.ready}) after {timeout:g} s:\n{p.tail()}"
                                   for p in procs))


class Readiness(Protocol):
    """A condition that holds once a process is ready; ``str()`` says what it waits for."""

    def __call__(self, proc: Process) -> bool: ...

    def close(self) -> None: ...


@dataclass
class LogLine:
    """Ready once this run of the process has written a line matching ``pattern`` to its log."""

    pattern: str

    def __call__(self, proc: Process) -> bool:
        return re.search(self.pattern, proc.output(), re.MULTILINE) is not None

    def close(self) -> None:
        return

    def __str__(self) -> str:
        return f"a log line matching {self.pattern!r}"


@dataclass
class HttpOk:
    """Ready once ``url`` answers 200 (proxies from the environment are not used)."""

    url: str

    def __call__(self, proc: Process) -> bool:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(self.url, timeout=2) as response:
                return int(response.status) == 200
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def close(self) -> None:
        return

    def __str__(self) -> str:
        return f"{self.url} answering 200"


@dataclass
class CeleryPing:
    """Ready once the Celery worker named ``nodename`` answers a ping on ``broker``.

    Unlike its "ready." log line, a ping answers whatever the worker's log level."""

    broker: str
    nodename: str
    timeout: float = 0.5
    options: dict[str, Any] = field(default_factory=dict)  # broker transport options (a Sentinel's master_name)
    _app: Any = field(default=None, repr=False)

    def __call__(self, proc: Process) -> bool:
        if self._app is None:
            self._app = Celery("leadroute-supervisor", broker=self.broker, set_as_current=False)
            self._app.conf.broker_connection_retry = False
            self._app.conf.broker_transport_options = self.options
        try:
            replies = self._app.control.ping(destination=[self.nodename], timeout=self.timeout, limit=1)
        except Exception:  # the broker is not answering yet
            return False
        return any(self.nodename in reply for reply in replies)

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app = None

    def __str__(self) -> str:
        return f"{self.nodename} answering a Celery ping"


def node_name(name: str | None) -> str:
    """A worker's node name as Celery expands ``-n`` (``celery@HOST`` when not given)."""
    return str(host_format(default_nodename(name)))


def worker_command(*, queues: Sequence[str] = QUEUES, concurrency: int = 2, nodename: str | None = None,
                   pool: str | None = None, loglevel: str | None = None, heartbeat: bool = True) -> list[str]:
    """``celery worker`` for the app, without gossip and mingle (the workers need neither)."""
    cmd = [sys.executable, "-m", "celery", "-A", CELERY_APP, "worker"]
    if loglevel:
        cmd += ["--loglevel", loglevel]
    cmd += ["-Q", ",".join(queues), "-c", str(concurrency)]
    if pool:
        cmd += ["--pool", pool]
    if nodename:
        cmd += ["-n", nodename]
    cmd += ["--without-gossip", "--without-mingle"]
    if not heartbeat:
        cmd.append("--without-heartbeat")
    return cmd


def beat_command(schedule: Path, *, loglevel: str | None = None) -> list[str]:
    """``celery beat`` for the app, its schedule state in ``schedule``."""
    cmd = [sys.executable, "-m", "celery", "-A", CELERY_APP, "beat"]
    if loglevel:
        cmd += ["--loglevel", loglevel]
    return [*cmd, "--schedule", str(schedule)]


def web_command(port: int, *, host: str | None = None) -> list[str]:
    """The ``web`` process (``leadroute web``)."""
    return [sys.executable, "-m", "worker.cli", "web", *(["--host", host] if host else []), "--port", str(port)]


BEAT_STARTED = LogLine(r"beat: Starting\.\.\.|celery beat v\S+ .*is starting\.")
WORKER_READY_LINE = r"@\S+ ready\."


@dataclass(eq=False)
class Process:
    """One run of a named process."""

    name: str
    args: list[str]
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_offset: int
    ready: Readiness | None = None
    url: str | None = None
    asked_to_exit: bool = False
    is_ready: bool = False
    reaped: bool = False  # exited, waited for, and its group signalled one last time: its pid may be reused

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        """The exit status once it has exited (negative: the signal that ended it), else None."""
        return self.popen.poll()

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    @property
    def died(self) -> bool:
        """Exited without the supervisor asking it to."""
        return not self.asked_to_exit and self.popen.poll() is not None

    def output(self) -> str:
        """Everything this run has written to its log so far."""
        with self.log_path.open("rb") as fh:
            fh.seek(self.log_offset)
            return fh.read().decode(errors="replace")

    def tail(self, chars: int = 4000) -> str:
        """The last ``chars`` characters of its log (earlier runs of the same name included)."""
        return _tail(self.log_path, chars)

    def signal_group(self, sig: int) -> None:
        """``sig`` to its whole process group (nothing when the group is gone)."""
        if self.reaped:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)


def _tail(path: Path, chars: int) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4 * chars))  # utf-8: at most 4 bytes a character
            return fh.read().decode(errors="replace")[-chars:]
    except FileNotFoundError:
        return ""


class Supervisor:
    """Starts, watches and stops named child processes; the product's through :meth:`worker`,
    :meth:`beat` and :meth:`web`.

    ``env`` is the environment of every child, read at each start (so a change to the mapping
    applies to the processes started after it); ``log_dir`` gets one ``NAME.log`` per name,
    appended to on every start; ``cwd`` is their working directory (default: this process's).
    ``stop_timeout`` is how long :meth:`stop` waits after SIGTERM before SIGKILL.
    """

    def __init__(self, env: MutableMapping[str, str], log_dir: Path, *, cwd: Path | None = None,
                 stop_timeout: float = 15.0) -> None:
        self.env = env
        self.log_dir = Path(log_dir)
        self.cwd = cwd
        self.stop_timeout = stop_timeout
        self.procs: dict[str, Process] = {}

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __getitem__(self, name: str) -> Process:
        return self.procs[name]

    def __contains__(self, name: object) -> bool:
        return name in self.procs

    # -- starting

    def start(self, name: str, args: Sequence[str], *, ready: Readiness | None = None, url: str | None = None) -> Process:
        """Start ``args`` as ``name`` (not waiting for it: see :meth:`wait_ready`)."""
        current = self.procs.get(name)
        if current is not None and current.running:
            raise ValueError(f"the {name} process is already running (pid {current.pid})")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            offset = log.tell()
            popen = subprocess.Popen(list(args), cwd=self.cwd, env=dict(self.env), stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        proc = Process(name, list(args), popen, log_path, offset, ready, url)
        self.procs[name] = proc
        return proc

    def worker(self, *, name: str = "worker", queues: Sequence[str] = QUEUES, concurrency: int = 2,
               nodename: str | None = None, pool: str | None = None, loglevel: str | None = None,
               heartbeat: bool = True) -> Process:
        """A Celery worker on ``queues``; ready when it answers a ping on the broker the environment
        names (``LEADROUTE_BROKER_URL`` or ``REDIS_URL``), or, with neither to ping through (the
        embedded Redis), when it logs that it is ready."""
        args = worker_command(queues=queues, concurrency=concurrency, nodename=nodename, pool=pool,
                              loglevel=loglevel, heartbeat=heartbeat)
        broker = configured_broker_url(self.env)
        ready: Readiness = (CeleryPing(broker, node_name(nodename), options=sentinel_options(self.env)) if broker
                            else LogLine(WORKER_READY_LINE))
        return self.start(name, args, ready=ready)

    def beat(self, schedule: Path, *, name: str = "beat", loglevel: str | None = None) -> Process:
        """Celery beat with its schedule state in ``schedule``; ready when it has logged its start."""
        return self.start(name, beat_command(schedule, loglevel=loglevel), ready=BEAT_STARTED)

    def web(self, port: int | None = None, *, name: str = "web", host: str | None = None) -> Process:
        """The web process on ``port`` (a free one when not given; its base URL is ``.url``);
        ready when ``/healthz`` answers."""
        if port is None:
            port = free_port()
        local = "127.0.0.1" if host in (None, "0.0.0.0", "") else host
        url = f"http://{local}:{port}"
        return self.start(name, web_command(port, host=host), ready=HttpOk(url + "/healthz"), url=url)

    # -- watching

    def wait_ready(self, *names: str, timeout: float = 60.0) -> None:
        """Until each named process (default: all running) is ready.

        Raises :class:`ProcessDied` as soon as one of them exits, :class:`NotReady` when ``timeout``
        seconds pass first."""
        waiting = [self.procs[n] for n in names] if names else [p for p in self.procs.values() if p.running]
        conditions = [p.ready for p in waiting if p.ready is not None]
        deadline = time.monotonic() + timeout
        try:
            while True:
                if ended := [p for p in waiting if not p.running]:
                    raise ProcessDied(ended)
                for proc in list(waiting):
                    if proc.ready is None or proc.ready(proc):
                        proc.is_ready = True
                        waiting.remove(proc)
                if not waiting:
                    return
                if time.monotonic() > deadline:
                    raise NotReady(waiting, timeout)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    waiting[0].popen.wait(POLL_SECONDS)  # returns at once if it exits meanwhile
        finally:
            for condition in conditions:
                condition.close()

    def running(self) -> list[str]:
        return [name for name, proc in self.procs.items() if proc.running]

    def died(self) -> list[str]:
        """The processes that exited without being asked to (by :meth:`stop` or :meth:`kill`)."""
        return [name for name, proc in self.procs.items() if proc.died]

    def check_alive(self) -> None:
        """Raise :class:`ProcessDied` if any process exited without being asked to."""
        if dead := [proc for proc in self.procs.values() if proc.died]:
            raise ProcessDied(dead)

    def tail(self, name: str, chars: int = 4000) -> str:
        """The end of ``name``'s log, whether or not it runs now."""
        return _tail(self.log_dir / f"{name}.log", chars)

    def logs(self, chars: int = 4000) -> str:
        """The end of every process's log, each under a header line."""
        return "\n".join(f"--- {name} ({proc.log_path}) ---\n{proc.tail(chars)}" for name, proc in self.procs.items())

    # -- stopping

    def stop(self, *names: str, timeout: float | None = None) -> dict[str, int | None]:
        """Stop the named processes (default: all) gracefully: SIGTERM to each group at once, then,
        ``timeout`` seconds later (default ``stop_timeout``), SIGKILL to what is left of any group.
        Returns each one's exit status."""
        procs = [self.procs[n] for n in names] if names else list(self.procs.values())
        wait = self.stop_timeout if timeout is None else timeout
        for proc in procs:
            proc.asked_to_exit = True
            if proc.running:
                proc.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + wait
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(max(0.0, deadline - time.monotonic()))
            proc.signal_group(signal.SIGKILL)  # the leader if it is still there, and any child it left behind
            proc.popen.wait()
            proc.reaped = True
        return {proc.name: proc.returncode for proc in procs}

    def kill(self, name: str, sig: int = signal.SIGKILL, timeout: float = 30.0) -> int | None:
        """``sig`` (default SIGKILL, as a crash would) to ``name``'s whole group at once; waits up to
        ``timeout`` seconds for it to exit and returns its exit status."""
        proc = self.procs[name]
        proc.asked_to_exit = True
        proc.signal_group(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout)
        if proc.returncode is not None:
            proc.signal_group(signal.SIGKILL)  # any child it left behind
            proc.reaped = True
        return proc.returncode
