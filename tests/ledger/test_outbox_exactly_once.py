"""Moving the outbox to the ledger loses nothing and writes nothing twice: through a mover killed with
SIGKILL between its claim and its acknowledgement, and through a SQL outage in the middle of a batch.

Each test runs on SQLite and on PostgreSQL (``database_url``), except the outage, which cuts a real
PostgreSQL connection in the middle of a ``COPY``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis
from sqlalchemy.exc import OperationalError

from worker.devtools.postgres import SUPERUSER, PostgresServer
from worker.ledger.ledger import Ledger
from worker.steps.ledger import Moved, entry_event, flush, ledger_health, move_outbox
from worker.store.redis_store import RedisStore

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEASE = 1.0  # seconds a dead mover's batch stays claimed; short, so the takeover comes quickly

MOVER = """
import sys, time
from worker.ledger.ledger import Ledger
from worker.steps.ledger import move_outbox
from worker.store.connection import client_from_url
from worker.store.redis_store import RedisStore

redis_url, prefix, database_url, when, limit, lease = sys.argv[1:]
store = RedisStore(client_from_url(redis_url), prefix=prefix)
ledger = Ledger.open(database_url, migrate=False)

class Stalls:
    '''Says where the move has got to, then waits there to be killed.'''
    def write(self, batch):
        batch = list(batch)
        if when == "after_commit":
            ledger.write(batch)
        print(when, len(batch), flush=True)
        time.sleep(600)

move_outbox(store, Stalls(), int(limit), lease=float(lease))
"""


def events(start: int, count: int) -> list[dict[str, Any]]:
    return [{"event_id": f"decision/salesforce/Lead/00Q{n:012}/0", "kind": "decision", "crm": "salesforce",
             "object": "Lead", "lead_id": f"00Q{n:012}", "epoch": 0, "at": T0 + timedelta(seconds=n), "owner": "mike",
             "rule": "emea", "data": {"reason": f"lead {n}", "considered": ["mike", "ann"], "skipped": {"ann": "ooo"}}}
            for n in range(start, start + count)]


def move_all(store: RedisStore, ledger: Any, timeout: float = 30.0) -> Moved:
    """Move until the outbox is empty (a dead mover's batch comes free when its lease runs out)."""
    total = Moved()
    deadline = time.monotonic() + timeout
    while store.outbox_stats().depth:
        assert time.monotonic() < deadline, f"the outbox never emptied: {store.outbox_stats()}"
        total += move_outbox(store, ledger, 1000, lease=LEASE)
    return total


def stored_ids(ledger: Ledger) -> list[str]:
    return [e.event_id for e in ledger.between()]


@pytest.fixture
def store(redis_client: redis.Redis, redis_prefix: str) -> RedisStore:
    return RedisStore(redis_client, prefix=redis_prefix)


@pytest.mark.parametrize("when", ["after_commit", "after_claim"])
def test_a_mover_killed_between_claim_and_acknowledgement_leaves_its_batch_to_the_next_written_once(
    when: str, store: RedisStore, ledger: Ledger, database_url: str, redis_url: str, redis_prefix: str
) -> None:
    store.outbox_append(events(0, 300))
    mover = subprocess.Popen(
        [sys.executable, "-c", MOVER, redis_url, redis_prefix, database_url, when, "200", str(LEASE)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    try:
        said = mover.stdout.readline() if mover.stdout else ""  # blocks until the mover reached the point
        assert said.split() == [when, "200"], said + (mover.stderr.read() if mover.stderr else "")
        os.kill(mover.pid, signal.SIGKILL)
        assert mover.wait(timeout=30) == -signal.SIGKILL
    finally:
        with contextlib.suppress(ProcessLookupError):
            mover.kill()
    committed = 200 if when == "after_commit" else 0
    assert ledger.count() == committed
    stats = store.outbox_stats()
    assert (stats.depth, stats.claimed) == (300, 200)  # nothing was acknowledged: the outbox still has all of it

    moved = move_all(store, ledger)

    assert moved.claimed == 300 and moved.written == 300 - committed and moved.duplicates == committed
    ids = stored_ids(ledger)
    assert len(ids) == len(set(ids)) == 300
    assert set(ids) == {e["event_id"] for e in events(0, 300)}
    assert store.outbox_stats().depth == 0


def test_a_batch_replayed_after_a_lost_acknowledgement_is_stored_once(store: RedisStore, ledger: Ledger) -> None:
    store.outbox_append(events(0, 50))
    claimed = store.outbox_claim(50, LEASE)
    assert ledger.write(entry_event(e) for e in claimed) == 50  # committed; the mover then died before acknowledging
    store.outbox_append(events(40, 20))  # and the steps replayed ten of them meanwhile (same ids)
    moved = move_all(store, ledger)
    assert (moved.written, moved.duplicates) == (10, 60)
    assert sorted(stored_ids(ledger)) == sorted(e["event_id"] for e in events(0, 60))


def test_an_event_the_ledger_refuses_goes_aside_and_the_rest_are_written(
    store: RedisStore, ledger: Ledger, redis_client: redis.Redis
) -> None:
    store.outbox_append(events(0, 3))
    pipe = redis_client.pipeline(transaction=True)  # what a newer worker might append: a field this one does not know
    store._outbox_add(pipe, ['{"event_id":"x/1","kind":"decision","crm":"salesforce","object":"Lead","lead_id":"1",'
                             '"at":"2026-03-02T09:00:00+00:00","mood":"sunny"}'])
    pipe.execute()
    moved = move_all(store, ledger)
    assert (moved.written, moved.refused) == (3, 1)
    stats = store.outbox_stats()
    assert (stats.depth, stats.dead) == (0, 1)


class Proxy:
    """A loopback TCP proxy in front of PostgreSQL that the test cuts, as a network outage would:
    ``cut_after(n)`` passes ``n`` more bytes towards the server, then drops every connection and
    refuses new ones until :meth:`restore`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.budget: int | None = None
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, to_server: bool) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                if to_server and self.budget is not None:
                    with self.lock:
                        self.budget -= len(chunk)
                        over = self.budget <= 0
                    if over:
                        self.down()
                        return
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_RDWR)

    def cut_after(self, nbytes: int) -> None:
        self.budget = nbytes

    def down(self) -> None:
        self.up = False
        with self.lock:
            doomed, self.sockets = self.sockets, []
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        self.budget = None
        self.up = True

    def close(self) -> None:
        self.down()
        self.listener.close()


@pytest.fixture
def behind_a_proxy(postgres: PostgresServer) -> Iterator[tuple[Proxy, str]]:
    name = f"t_{uuid4().hex[:12]}"
    postgres.create_database(name)
    proxy = Proxy(postgres.port)
    yield proxy, f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{proxy.port}/{name}"
    proxy.close()


def test_a_sql_outage_in_the_middle_of_a_batch_loses_nothing_writes_nothing_twice_and_the_outbox_says_so(
    store: RedisStore, behind_a_proxy: tuple[Proxy, str]
) -> None:
    proxy, url = behind_a_proxy
    ledger = Ledger.open(url)
    try:
        store.outbox_append(events(0, 3000))
        assert move_outbox(store, ledger, 1000, lease=LEASE).written == 1000

        proxy.cut_after(64 * 1024)  # the next batch's COPY gets a fifth of the way, then the network goes
        with pytest.raises(OperationalError):
            move_outbox(store, ledger, 1000, lease=LEASE)
        assert not proxy.up
        assert store.outbox_stats().depth == 2000  # the failed batch is still in the outbox, given back for the next try

        store.outbox_append(events(3000, 500))  # routing goes on: the outbox grows while SQL is down
        with pytest.raises(OperationalError):
            flush(store, ledger, lease=LEASE)
        health = ledger_health(store, max_age=0.0)
        assert health["status"] == "degraded" and health["outbox_depth"] == 2500

        proxy.restore()
        assert ledger.count() == 1000  # the cut batch's transaction left nothing behind
        moved = flush(store, ledger, lease=60.0)  # the given-back batch is taken at once, without its lease running out
        assert moved.written == 2500 and moved.duplicates == 0
        ids = stored_ids(ledger)
        assert len(ids) == len(set(ids)) == 3500
        assert set(ids) == {e["event_id"] for e in events(0, 3500)}
        assert ledger_health(store, max_age=60.0) | {"oldest_age_s": 0} == {
            "status": "ok", "outbox_depth": 0, "oldest_age_s": 0, "max_age_s": 60.0, "claimed": 0, "refused": 0}
    finally:
        ledger.close()
