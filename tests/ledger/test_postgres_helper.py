"""The throwaway PostgreSQL the ledger's tests and benchmark start: found, started, and never left behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from worker.devtools.postgres import PostgresServer, PostgresUnavailable, postgres_bin_dir

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_without_server_binaries_the_message_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADROUTE_PG_BIN", str(tmp_path))
    with pytest.raises(PostgresUnavailable, match=f"LEADROUTE_PG_BIN={tmp_path}.*apt-get install postgresql"):
        postgres_bin_dir()


def test_stop_removes_the_cluster_and_its_directory() -> None:
    server = PostgresServer().start()
    root, pid = server.root, server.process.pid if server.process else 0
    assert root is not None and (root / "sock" / f".s.PGSQL.{server.port}").exists()
    assert server.url("x").startswith("postgresql+psycopg://leadroute@/x?host=")
    server.stop()
    assert not root.exists() and not _alive(pid)


def test_a_kept_cluster_is_shut_down_cleanly_and_reused() -> None:
    import tempfile  # not pytest's tmp_path: its folders are private to root, and the server may run as postgres

    parent = Path(tempfile.mkdtemp(prefix="leadroute-kept-"))
    parent.chmod(0o755)
    keep = parent / "pg"
    try:
        _kept_twice(keep)
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def _kept_twice(keep: Path) -> None:
    from sqlalchemy import create_engine, text

    with PostgresServer(keep=keep) as server:
        assert not server.has_database("bench")
        server.create_database("bench")
        engine = create_engine(server.url("bench"))
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (n int)"))
            connection.execute(text("INSERT INTO t VALUES (42)"))
        engine.dispose()
        pid = server.process.pid if server.process else 0
    assert keep.is_dir() and not _alive(pid)
    with PostgresServer(keep=keep) as again:
        assert again.has_database("bench")
        engine = create_engine(again.url("bench"))
        with engine.connect() as connection:
            assert connection.execute(text("SELECT n FROM t")).scalar() == 42
        engine.dispose()
    assert (keep / "data" / "PG_VERSION").is_file()


def test_a_killed_starter_takes_its_server_with_it() -> None:
    program = (
        "import json, sys\n"
        "from worker.devtools.postgres import PostgresServer\n"
        "pg = PostgresServer().start()\n"
        "print(json.dumps({'pid': pg.process.pid, 'root': str(pg.root)}), flush=True)\n"
        "sys.stdin.read()\n"
    )
    starter = subprocess.Popen([sys.executable, "-c", program], cwd=ROOT, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    started: dict[str, object] = {}
    try:
        assert starter.stdout is not None
        started = json.loads(starter.stdout.readline())
        pid = int(started["pid"])  # type: ignore[call-overload]
        assert _alive(pid)
        starter.kill()
        starter.wait(timeout=10)
        deadline = time.monotonic() + 15
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(pid), "the server outlived the process that started it"
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait()
        if "root" in started:
            shutil.rmtree(str(started["root"]), ignore_errors=True)
