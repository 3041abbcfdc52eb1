"""The process supervisor: real, short-lived children (a few lines of Python each), so these run in seconds.

Each child is started in a session of its own with its output in ``LOG_DIR/NAME.log``; it is
ready when its readiness condition holds and not before; ``stop`` is SIGTERM to its process
group then SIGKILL after the timeout; ``kill`` is kill -9 at once; a child that exits without
being asked to is reported, with the end of its log. Children that must wait for the test
block on reading a FIFO the test opens, so nothing here depends on timing.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.devtools.processes import (
    QUEUES,
    ROOT,
    CeleryPing,
    HttpOk,
    LogLine,
    NotReady,
    ProcessDied,
    Supervisor,
    beat_command,
    broker_url,
    web_command,
    worker_command,
)

# Prints its pid and a grandchild's, waits until the FIFO in argv[1] is written and closed, says
# "ready", then waits for signals; on SIGTERM it says so and exits 0 (argv[2] == "stubborn": it
# ignores SIGTERM; "exit": it exits 3 once the FIFO is closed a second time).
CHILD = textwrap.dedent("""
    import signal, subprocess, sys
    mode = sys.argv[2] if len(sys.argv) > 2 else ""

    def graceful(signum, frame):
        print("stopping gracefully", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "stubborn" else graceful)
    grandchild = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    print(f"grandchild {grandchild.pid}", flush=True)
    with open(sys.argv[1]) as fifo:
        fifo.read()
    print("ready", flush=True)
    if mode == "exit":
        with open(sys.argv[1]) as fifo:
            fifo.read()
        print("bye", flush=True)
        sys.exit(3)
    while True:
        signal.pause()
""")
READY = LogLine(r"^ready$")


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    with Supervisor(dict(os.environ), tmp_path / "logs", stop_timeout=10) as sup:
        yield sup


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "go"
    os.mkfifo(path)
    return path


def release(fifo: Path) -> None:
    """Let the child past its next read of the FIFO (blocks until the child has it open)."""
    with fifo.open("w"):
        pass


def child(supervisor: Supervisor, fifo: Path, name: str = "child", mode: str = "") -> None:
    supervisor.start(name, [sys.executable, "-c", CHILD, str(fifo), mode], ready=READY)


def grandchild_pid(supervisor: Supervisor, name: str = "child") -> int:
    """The grandchild's pid, from the line the child printed before it became ready."""
    for line in supervisor[name].output().splitlines():
        if line.startswith("grandchild "):
            return int(line.split()[1])
    raise AssertionError(supervisor[name].output())


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie no longer counts)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid):
        assert time.monotonic() < deadline, f"process {pid} is still alive"
        time.sleep(0.01)


def test_a_process_is_ready_once_its_condition_holds_and_not_before(supervisor: Supervisor, fifo: Path) -> None:
    child(supervisor, fifo)
    with pytest.raises(NotReady, match="child process was not ready"):
        supervisor.wait_ready("child", timeout=0.5)
    assert not supervisor["child"].is_ready
    release(fifo)
    supervisor.wait_ready("child", timeout=30)
    assert supervisor["child"].is_ready and supervisor["child"].running
    assert (supervisor.log_dir / "child.log").read_text().splitlines()[-1] == "ready"


def test_stop_terminates_the_whole_group_gracefully(supervisor: Supervisor, fifo: Path) -> None:
    child(supervisor, fifo)
    release(fifo)
    supervisor.wait_ready("child", timeout=30)
    grandchild = grandchild_pid(supervisor)
    assert alive(grandchild)
    assert supervisor.stop("child") == {"child": 0}
    assert "stopping gracefully" in supervisor.tail("child")
    wait_gone(grandchild)  # it got the SIGTERM too
    assert supervisor.died() == [] and supervisor.running() == []


def test_stop_kills_what_ignores_sigterm_once_the_timeout_passes(supervisor: Supervisor, fifo: Path) -> None:
    child(supervisor, fifo, mode="stubborn")
    release(fifo)
    supervisor.wait_ready("child", timeout=30)
    grandchild = grandchild_pid(supervisor)
    began = time.monotonic()
    assert supervisor.stop(timeout=0.5) == {"child": -signal.SIGKILL}
    assert time.monotonic() - began >= 0.5
    assert "stopping gracefully" not in supervisor.tail("child")
    wait_gone(grandchild)
    assert supervisor.died() == []


def test_kill_is_kill_9_to_the_group_at_once_and_is_not_a_death(supervisor: Supervisor, fifo: Path) -> None:
    child(supervisor, fifo)
    release(fifo)
    supervisor.wait_ready("child", timeout=30)
    grandchild = grandchild_pid(supervisor)
    assert supervisor.kill("child") == -signal.SIGKILL
    assert "stopping gracefully" not in supervisor.tail("child")
    wait_gone(grandchild)
    assert supervisor.died() == []
    supervisor.check_alive()


def test_a_process_that_exits_unasked_is_reported_with_its_status_and_log(supervisor: Supervisor, fifo: Path,
                                                                         tmp_path: Path) -> None:
    other = tmp_path / "other"
    os.mkfifo(other)
    child(supervisor, fifo, mode="exit")
    child(supervisor, other, name="bystander")
    release(fifo)
    release(other)
    supervisor.wait_ready(timeout=30)
    assert supervisor.died() == []
    release(fifo)  # the child exits 3 now
    supervisor["child"].popen.wait(30)
    assert supervisor.died() == ["child"]
    with pytest.raises(ProcessDied, match="the child process exited with status 3") as raised:
        supervisor.check_alive()
    assert raised.value.names == ["child"]
    assert "bye" in str(raised.value)
    assert supervisor.running() == ["bystander"]


def test_waiting_for_readiness_fails_at_once_when_the_process_exits_first(supervisor: Supervisor) -> None:
    supervisor.start("doomed", [sys.executable, "-c", "print('cannot start: no config'); raise SystemExit(2)"],
                     ready=READY)
    began = time.monotonic()
    with pytest.raises(ProcessDied, match=r"(?s)exited with status 2.*cannot start: no config"):
        supervisor.wait_ready("doomed", timeout=120)
    assert time.monotonic() - began < 60
    assert supervisor.died() == ["doomed"]


def test_a_restarted_process_appends_to_its_log_and_is_judged_on_its_new_output(supervisor: Supervisor,
                                                                                fifo: Path) -> None:
    child(supervisor, fifo)
    release(fifo)
    supervisor.wait_ready("child", timeout=30)
    with pytest.raises(ValueError, match="already running"):
        child(supervisor, fifo)
    supervisor.kill("child")
    child(supervisor, fifo)  # the old "ready" line is still in child.log
    with pytest.raises(NotReady):
        supervisor.wait_ready("child", timeout=0.5)
    release(fifo)
    supervisor.wait_ready("child", timeout=30)
    assert supervisor.tail("child").count("ready") == 2
    assert supervisor.logs().startswith(f"--- child ({supervisor.log_dir / 'child.log'}) ---\n")


def test_a_web_process_is_ready_when_its_url_answers(supervisor: Supervisor) -> None:
    from worker.store.connection import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    supervisor.start("web", [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], ready=HttpOk(url),
                     url=url)
    assert not HttpOk(f"http://127.0.0.1:{free_port()}/")(supervisor["web"])  # nothing listens there
    supervisor.wait_ready(timeout=30)
    assert supervisor["web"].url == url
    assert supervisor.stop() == {"web": -signal.SIGTERM}  # http.server does not handle SIGTERM


def test_the_environment_is_read_at_each_start(supervisor: Supervisor) -> None:
    supervisor.env["LEADROUTE_SUPERVISOR_TEST"] = "first"
    script = "import os; print('value', os.environ['LEADROUTE_SUPERVISOR_TEST'], flush=True)"
    supervisor.start("printer", [sys.executable, "-c", script + "; import signal; signal.pause()"],
                     ready=LogLine("^value "))
    supervisor.wait_ready(timeout=30)
    supervisor.stop()
    supervisor.env["LEADROUTE_SUPERVISOR_TEST"] = "second"
    supervisor.start("printer", [sys.executable, "-c", script + "; import signal; signal.pause()"],
                     ready=LogLine("^value "))
    supervisor.wait_ready(timeout=30)
    assert supervisor["printer"].output() == "value second\n"


def test_the_product_commands_are_the_procfile_ones() -> None:
    celery = [sys.executable, "-m", "celery", "-A", "worker.app.celery_app"]
    assert worker_command() == [*celery, "worker", "-Q", "ingest,route,notify,sla", "-c", "2", "--without-gossip",
                                "--without-mingle"]
    assert worker_command(queues=QUEUES[:2], concurrency=4, nodename="bench-1@%h", pool="prefork", loglevel="INFO",
                          heartbeat=False) == [
        *celery, "worker", "--loglevel", "INFO", "-Q", "ingest,route", "-c", "4", "--pool", "prefork", "-n",
        "bench-1@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    assert beat_command(Path("/tmp/s"), loglevel="INFO") == [*celery, "beat", "--loglevel", "INFO", "--schedule", "/tmp/s"]
    assert web_command(8000) == [sys.executable, "-m", "worker.cli", "web", "--port", "8000"]
    assert web_command(8000, host="0.0.0.0") == [sys.executable, "-m", "worker.cli", "web", "--host", "0.0.0.0",
                                                 "--port", "8000"]
    assert broker_url("redis://127.0.0.1:6379/2") == "redis://127.0.0.1:6379/2"
    assert broker_url("unix:///tmp/redis.sock?db=3") == "redis+socket:///tmp/redis.sock?virtual_host=3"


def test_a_celery_worker_is_ready_when_it_answers_a_ping_whatever_its_log_level(tmp_path: Path, redis_url: str,
                                                                               redis_prefix: str) -> None:
    env = dict(os.environ, REDIS_URL=redis_url, LEADROUTE_CONFIG=str(ROOT / "config" / "routing.yaml"),
               LEADROUTE_PREFIX=redis_prefix, LEADROUTE_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    with Supervisor(env, tmp_path, cwd=ROOT) as supervisor:
        worker = supervisor.worker(queues=("sla",), concurrency=1, nodename=f"{redis_prefix}@%h", heartbeat=False)
        assert isinstance(worker.ready, CeleryPing)
        assert worker.ready.nodename.startswith(f"{redis_prefix}@") and "%h" not in worker.ready.nodename
        supervisor.wait_ready(timeout=120)
        assert " ready." not in worker.output()  # at WARNING the log never says so: the ping does
        assert supervisor.stop() == {"worker": 0}  # a warm shutdown on SIGTERM
