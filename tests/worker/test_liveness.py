"""A process's name says, on its own host, whether it still runs: how a restarted worker knows its
predecessor died (and that a new process which reuses the pid is not the dead one)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from worker.steps import liveness


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_running_process_is_alive_and_one_that_exited_is_gone(child: subprocess.Popen[bytes]) -> None:
    name = liveness.process_name(child.pid)
    assert name is not None and liveness.is_gone(name) is False
    child.kill()
    child.wait()
    assert liveness.process_name(child.pid) is None
    assert liveness.is_gone(name) is True


def test_a_new_process_with_the_dead_ones_pid_is_not_taken_for_it() -> None:
    # a restarted container starts its processes with the same small pids: the start time tells them apart
    host, boot, pid, start = liveness.this_process().rsplit("/", 3)
    assert liveness.is_gone(liveness.this_process()) is False
    if start != "-":  # /proc gives start times (Linux)
        assert liveness.is_gone(f"{host}/{boot}/{pid}/{int(start) + 1}") is True


def test_only_the_same_host_and_boot_can_tell() -> None:
    host, boot, pid, start = liveness.this_process().rsplit("/", 3)
    assert liveness.is_gone(f"other-{host}/{boot}/{pid}/{start}") is None
    assert liveness.is_gone(f"{host}/another-boot/{pid}/{start}") is None
    assert liveness.is_gone("not a process name") is None
    assert host == socket.gethostname() and int(pid) == os.getpid()


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
    assert name != parent and name.rsplit("/", 3)[2] == str(pid)
    assert liveness.is_gone(name) is True
