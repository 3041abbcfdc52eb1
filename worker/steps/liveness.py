"""Whether the process that holds a batch, a lock or a decision lease is still alive, told from the same host.

A drain names its process when it claims a batch or takes a lock (:func:`token`); a worker restarted
after a crash finds its dead predecessor's batches and locks by that name (:func:`holder_gone`) and
frees them at once instead of waiting for their leases to run out.

A name is ``host/boot/pidns/pid/start``: the host name, the kernel's boot id, the PID namespace, the
process id and the process's start time in clock ticks since boot (``/proc/<pid>/stat``). Only a
process in the same PID namespace on the same host and boot can judge one: elsewhere (another host,
a reboot, another container, a container restarted into a new namespace) the answer is "unknown"
and the lease decides, so a live process is never judged dead because it is out of sight. The start
time tells a dead process from a new one that reuses its pid. Without ``/proc`` (macOS) nothing is
judged: the lease decides.
"""

from __future__ import annotations

import errno
import os
import socket
import uuid
from pathlib import Path

_PROC = Path("/proc")
_own: tuple[int, str] | None = None
_UNKNOWN = "-"


def _boot_id() -> str:
    try:
        return (_PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return _UNKNOWN


def _pid_namespace() -> str:
    """This process's PID namespace; "-" when /proc is not this namespace's (a namespace entered without
    mounting its own /proc: /proc/<pid> would then be another process than ours)."""
    try:
        if os.readlink(_PROC / "self") != str(os.getpid()):
            return _UNKNOWN
        return os.readlink(_PROC / "self" / "ns" / "pid").replace("/", "_")
    except OSError:
        return _UNKNOWN


def _start_ticks(pid: int) -> str | None:
    """The process's start time (clock ticks since boot); None if it has ended (no such process, or a zombie);
    "-" if this host cannot say (no /proc, or /proc hides the process: see :func:`_pid_missing`)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except FileNotFoundError:
        if not _PROC.is_dir():
            return _UNKNOWN
        return None if _pid_missing(pid) else _UNKNOWN  # hidepid: another user's process may be hidden
    except OSError:
        return _UNKNOWN
    fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) ": comm may hold spaces and parentheses
    if not fields or len(fields) <= 19:
        return _UNKNOWN
    if fields[0] in ("Z", "X", "x"):  # exited, not yet reaped by its parent
        return None
    return fields[19]  # field 22 of the whole line


def process_name(pid: int) -> str | None:
    """The name of the live process ``pid`` in this PID namespace, or None if there is none."""
    start = _start_ticks(pid)
    if start is None:
        return None
    return f"{socket.gethostname()}/{_boot_id()}/{_pid_namespace()}/{pid}/{start}"


def this_process() -> str:
    """This process's name (computed once per process: a forked child gets its own)."""
    global _own
    pid = os.getpid()
    if _own is None or _own[0] != pid:
        _own = (pid, process_name(pid) or f"{socket.gethostname()}/{_boot_id()}/{_pid_namespace()}/{pid}/{_UNKNOWN}")
    return _own[1]


def token() -> str:
    """A lock or lease token that names this process (``name#random``): unique per use, and a process
    on this host can tell from it whether its holder died (:func:`holder_gone`)."""
    return f"{this_process()}#{uuid.uuid4().hex[:12]}"


def holder_gone(held_by: str) -> bool | None:
    """:func:`is_gone` for the process named in a :func:`token` (None for a token that names none)."""
    name, sep, _ = held_by.partition("#")
    return is_gone(name) if sep else None


def is_gone(name: str) -> bool | None:
    """True if the named process has ended, False if it runs, None if this process cannot tell
    (another host, boot or PID namespace, or a name it cannot read)."""
    try:
        host, boot, pidns, pid_text, start = name.rsplit("/", 4)
        pid = int(pid_text)
    except ValueError:
        return None
    if not 0 < pid < 2**22:  # Linux's pid_max: anything else names no process (and would make kill() misbehave)
        return None
    if [host, boot, pidns] != this_process().rsplit("/", 4)[:3] or _UNKNOWN in (boot, pidns):
        return None  # read once per process (this_process), not on every look at a lease
    now = _start_ticks(pid)
    if now is None:
        return True
    if start == _UNKNOWN or now == _UNKNOWN:
        return None
    return now != start


def _pid_missing(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.ESRCH  # EPERM: someone else's process, alive
    return False
