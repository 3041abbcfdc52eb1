"""Whether the process that holds a batch is still alive, told from the same host.

A drain names its process when it claims a batch (:func:`this_process`); a worker restarted
after a crash finds its dead predecessor's batches by that name (:func:`is_gone`) and routes
them at once instead of waiting for their leases to run out.

A name is ``host/boot/pid/start``: the host name, the kernel's boot id, the process id and the
process's start time in clock ticks since boot (``/proc/<pid>/stat``). Only a process on the
same host and boot can judge one: elsewhere the answer is "unknown" and the lease decides. The
start time tells a dead process from a new one that reuses its pid (a restarted container starts
its processes with the same small pids). Without ``/proc`` (macOS) the pid alone is checked.
Judging a live process dead costs time, never correctness: the batch is then decided by two
drains, and the decision store turns the second into a replay, as after a lease ran out.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

_PROC = Path("/proc")
_own: tuple[int, str] | None = None


def _boot_id() -> str:
    try:
        return (_PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return "-"


def _start_ticks(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), "-" where /proc is missing, None if no such process."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except FileNotFoundError:
        return None if _PROC.is_dir() else "-"
    except OSError:
        return "-"
    fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) ": comm may hold spaces and parentheses
    return fields[19] if len(fields) > 19 else "-"  # field 22 of the whole line


def process_name(pid: int) -> str | None:
    """The name of the live process ``pid`` on this host, or None if there is none."""
    start = _start_ticks(pid)
    if start is None:
        return None
    return f"{socket.gethostname()}/{_boot_id()}/{pid}/{start}"


def this_process() -> str:
    """This process's name (computed once per process: a forked child gets its own)."""
    global _own
    pid = os.getpid()
    if _own is None or _own[0] != pid:
        _own = (pid, process_name(pid) or f"{socket.gethostname()}/{_boot_id()}/{pid}/-")
    return _own[1]


def token() -> str:
    """A lock or lease token that names this process (``name#random``): unique per use, and a process
    restarted on this host can tell from it whether its holder died (:func:`holder_gone`)."""
    return f"{this_process()}#{uuid.uuid4().hex[:12]}"


def holder_gone(held_by: str) -> bool | None:
    """:func:`is_gone` for the process named in a :func:`token` (None for a token that names none)."""
    name, sep, _ = held_by.partition("#")
    return is_gone(name) if sep else None


def is_gone(name: str) -> bool | None:
    """True if the named process is dead, False if it is alive, None if this host cannot tell
    (another host or boot, or a name it cannot read)."""
    try:
        host, boot, pid_text, start = name.rsplit("/", 3)
        pid = int(pid_text)
    except ValueError:
        return None
    if host != socket.gethostname() or boot != _boot_id():
        return None
    now = _start_ticks(pid)
    if now is None:
        return True
    if start == "-" or now == "-":
        return _pid_missing(pid)
    return now != start


def _pid_missing(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # someone else's process: alive
    return False
