"""A process's name says, on its own host and in its own PID namespace, whether it still runs: how a
restarted worker knows its predecessor died, and that a new process reusing the pid is not the dead one."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from worker.steps import liveness


@pytest.fixture
def child(other_process: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    return other_process


def parts(name: str) -> list[str]:
    return name.rsplit("/", 4)  # host, boot, pidns, pid, start


def test_a_running_process_is_alive_and_one_that_exited_is_gone(child: subprocess.Popen[bytes]) -> None:
    name = liveness.process_name(child.pid)
    assert name is not None and liveness.is_gone(name) is False
    child.kill()
    child.wait()
    assert liveness.process_name(child.pid) is None
    assert liveness.is_gone(name) is True


def test_a_process_that_exited_but_was_not_reaped_yet_is_gone(child: subprocess.Popen[bytes]) -> None:
    name = liveness.process_name(child.pid)
    assert name is not None
    child.kill()
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited; left a zombie until reaped
    assert liveness.is_gone(name) is True


def test_a_new_process_with_the_dead_ones_pid_is_not_taken_for_it() -> None:
    # a restarted worker may get a dead one's pid back: the start time tells them apart
    host, boot, pidns, pid, start = parts(liveness.this_process())
    assert liveness.is_gone(liveness.this_process()) is False
    assert start != "-"  # Linux: /proc gives start times
    assert liveness.is_gone(f"{host}/{boot}/{pidns}/{pid}/{int(start) + 1}") is True


def test_only_the_same_host_boot_and_pid_namespace_can_tell() -> None:
    # another container on this machine sees other processes: it must not take ours for dead
    host, boot, pidns, pid, start = parts(liveness.this_process())
    assert liveness.is_gone(f"other-{host}/{boot}/{pidns}/{pid}/{start}") is None
    assert liveness.is_gone(f"{host}/another-boot/{pidns}/{pid}/{start}") is None
    assert liveness.is_gone(f"{host}/{boot}/pid:[1]/{pid}/{start}") is None
    assert liveness.is_gone("not a process name") is None
    assert host == socket.gethostname() and int(pid) == os.getpid() and pidns.startswith("pid:")


def test_a_command_name_with_spaces_and_parentheses_is_read_past(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fields = ["S", *(str(n) for n in range(1, 19)), "424242", "0"]  # state, then fields 4-21, start time (22), ...
    (tmp_path / "77").mkdir()
    (tmp_path / "77" / "stat").write_text("77 (drain) (x) S 1) " + " ".join(fields) + "\n")
    monkeypatch.setattr(liveness, "_PROC", tmp_path)
    assert liveness._start_ticks(77) == "424242"


def test_a_token_names_its_process_and_is_unique_per_use() -> None:
    first, second = liveness.token(), liveness.token()
    assert first != second and first.partition("#")[0] == second.partition("#")[0] == liveness.this_process()
    assert liveness.holder_gone(first) is False
    assert liveness.holder_gone("4f1c0d2e9b7a") is None  # a plain random token (an older worker's): no process named


def test_a_forked_child_gets_its_own_name() -> None:
    parent = liveness.this_process()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its name, then out at once
        os.write(write, liveness.this_process().encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        name = pipe.read()
    os.waitpid(pid, 0)
    assert name != parent and parts(name)[3] == str(pid)
    assert liveness.is_gone(name) is True


def test_a_process_hidden_by_proc_is_alive_and_one_that_exited_is_still_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, child: subprocess.Popen[bytes]
) -> None:
    # /proc mounted with hidepid: other users' processes have no entry, yet run; kill(pid, 0) tells them apart
    monkeypatch.setattr(liveness, "_PROC", tmp_path)  # an empty /proc: every process hidden
    assert liveness._start_ticks(os.getpid()) == "-"  # runs, start time unknown: nobody judges it
    child.kill()
    child.wait()
    assert liveness._start_ticks(child.pid) is None  # no such process at all: gone


def test_a_proc_that_is_not_this_namespaces_judges_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a PID namespace entered without mounting its own /proc: /proc/<pid> would be someone else's process
    (tmp_path / "self").symlink_to(str(os.getpid() + 1))
    monkeypatch.setattr(liveness, "_PROC", tmp_path)
    assert liveness._pid_namespace() == "-"
    assert liveness.is_gone(f"{socket.gethostname()}/-/-/{os.getpid()}/1") is None


def test_a_name_with_an_impossible_pid_judges_nothing() -> None:
    host, boot, pidns, _, start = parts(liveness.this_process())
    for pid in ("0", "-1", str(2**40)):
        assert liveness.is_gone(f"{host}/{boot}/{pidns}/{pid}/{start}") is None
