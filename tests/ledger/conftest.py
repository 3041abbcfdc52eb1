"""The ledger's fixtures: every contract test runs once on SQLite and once on PostgreSQL.

``postgres`` (session)
    A throwaway PostgreSQL cluster this session starts itself (``initdb`` and ``postgres`` in a
    temporary directory, a free loopback port, its Unix socket beside its data), stopped and
    deleted at the end. Without PostgreSQL's server binaries the tests fail and say so: the
    ledger's production database is not optional to test.
``database_url`` (function, parametrised ``sqlite`` / ``postgresql``)
    An empty database: a SQLite file in the test's tmp dir, or a new database on the cluster.
``ledger`` (function)
    A :class:`Ledger` on ``database_url``, migrated.
``event`` (function)
    A factory for valid events: ``event(3, kind="ack", owner="mike")``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from worker.devtools.postgres import PostgresServer, PostgresUnavailable
from worker.ledger.events import LedgerEvent
from worker.ledger.ledger import Ledger

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer().start()
    except PostgresUnavailable as exc:
        pytest.fail(f"the ledger's tests run against a real PostgreSQL and could not start one: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database(f"t_{uuid4().hex[:12]}")


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    opened = Ledger.open(database_url)
    yield opened
    opened.close()


EventFactory = Callable[..., LedgerEvent]


@pytest.fixture
def event() -> EventFactory:
    def make(n: int, **fields: Any) -> LedgerEvent:
        values: dict[str, Any] = {
            "event_id": f"decision/salesforce/Lead/00Q{n:012}/0",
            "kind": "decision",
            "crm": "salesforce",
            "object": "Lead",
            "lead_id": f"00Q{n:012}",
            "epoch": 0,
            "at": T0 + timedelta(minutes=n),
            "config_version": "3f9a1c2b7d4e",
            "owner": "mike",
            "rule": "emea-enterprise",
            "pool": "emea",
            "data": {"reason": f"lead {n}"},
        }
        return LedgerEvent(**(values | fields))

    return make
