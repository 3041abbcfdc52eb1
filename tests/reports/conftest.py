"""The reports' fixtures: one hand-built history with known answers, on SQLite and on PostgreSQL.

``history`` (function, parametrised ``sqlite`` / ``postgresql``)
    A migrated ledger holding :func:`events`: five leads first routed on 2 March 2026 (three
    by rule ``emea`` through pool ``emea``, one by ``us``, one to the fallback), their SLA
    clocks, acknowledgements, ladder steps, a manual re-route, an SLA reassignment, a park,
    outcomes, and a few events outside the period that must not count. ``PERIOD`` is that day;
    ``SETTINGS`` the pools' weights and the tiers' windows. Every expected figure in the tests
    is worked out by hand from this list.

PostgreSQL is the throwaway cluster of ``tests/ledger`` (its ``postgres`` fixture).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from tests.ledger.conftest import postgres  # noqa: F401  (the session's throwaway PostgreSQL)
from worker.devtools.postgres import PostgresServer
from worker.ledger.events import LedgerEvent
from worker.ledger.ledger import Ledger
from worker.reports import Period, ReportSettings, TierWindow

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
PERIOD = Period(T0, T0 + timedelta(days=1))
NOW = T0 + timedelta(days=40)  # the report is read later: outcomes came in meanwhile
SETTINGS = ReportSettings(pools={"emea": {"ann": 2, "bob": 1}, "us": {"cat": 1}},
                          tiers={"hot": TierWindow(900, "wall"), "warm": TierWindow(3600, "business_hours")})


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def ev(kind: str, lead: str, at: datetime, epoch: int | None = 0, *more: object, **fields: Any) -> LedgerEvent:
    suffix = "/".join(str(m) for m in more)
    return LedgerEvent(event_id=f"{kind}/salesforce/Lead/{lead}/{epoch}/{suffix}", kind=kind, crm="salesforce",
                       object="Lead", lead_id=lead, at=at, epoch=epoch, **fields)


def routed(lead: str, at: datetime, owner: str, rule: str, pool: str | None, wait: float, business: float,
           unreadable: list[str] | None = None, skipped: dict[str, str] | None = None, **fields: Any) -> LedgerEvent:
    return ev("decision", lead, at, 0, owner=owner, rule=rule, pool=pool, wait_seconds=wait,
              wait_business_seconds=business, lead_created_at=at - timedelta(seconds=wait), config_version="cv1",
              data={"reason": f"{rule} -> {owner}", "considered": ["ann", "bob"] if pool == "emea" else [owner],
                    "skipped": skipped or {}, "unreadable": unreadable or [], "facts": {}}, **fields)


def clock(lead: str, at: datetime, owner: str, tier: str, epoch: int = 0) -> LedgerEvent:
    return ev("sla.start", lead, at, epoch, owner=owner, tier=tier, data={"deadline": "later"})


def ack(lead: str, started: datetime, owner: str, tier: str, wait: float, business: float, epoch: int = 0) -> LedgerEvent:
    # as the SLA sweep writes it: no rule or pool, the wait counted from the clock's start
    return ev("ack", lead, started + timedelta(seconds=wait), epoch, owner=owner, actor=owner, tier=tier,
              wait_seconds=wait, wait_business_seconds=business, data={"observed": "field"})


def step(kind: str, lead: str, started: datetime, wait: float, tier: str, **fields: Any) -> LedgerEvent:
    return ev(kind, lead, started + timedelta(seconds=wait), 0, kind, tier=tier, wait_seconds=wait, data={}, **fields)


def outcome(lead: str, at: datetime, status: str) -> LedgerEvent:
    return ev("outcome", lead, at, None, status, status=status, data={})


def events() -> list[LedgerEvent]:
    """The history. Leads L1..L5 are first routed in the period; L0 and L9 are outside it."""
    return [
        routed("L0", h(-5), "ann", "emea", "emea", 999, 999),  # the day before: not in the period
        routed("L1", h(1), "ann", "emea", "emea", 10, 5, skipped={"bob": "at_capacity"}, source="web", arm="a"),
        routed("L2", h(2), "bob", "emea", "emea", 20, 10, source="web", arm="b"),
        routed("L3", h(3), "ann", "emea", "emea", 30, 15, unreadable=["employees"], skipped={"bob": "ooo"},
               source="event", arm="a"),
        routed("L4", h(4), "cat", "us", "us", 40, 20, source="web", arm="b"),
        routed("L5", h(5), "queue:triage", "fallback", None, 100, 50, unreadable=["country", "employees"],
               source="import", arm="a"),
        routed("L9", h(30), "ann", "emea", "emea", 5, 5),  # the day after: not in the period
        clock("L1", h(1), "ann", "hot"), ack("L1", h(1), "ann", "hot", 600, 300),  # within 15m
        clock("L2", h(2), "bob", "hot"), ack("L2", h(2), "bob", "hot", 1200, 600),  # late: 20m on a 15m window
        step("sla.breach", "L2", h(2), 900, "hot", owner="bob"),
        step("sla.reassign", "L2", h(2), 1800, "hot", owner="ann", previous_owner="bob"),
        ev("decision", "L2", h(2.5), 1, owner="ann", previous_owner="bob", rule="emea", pool="emea",
           data={"via": "sla", "reason": "reassigned", "skipped": {}, "unreadable": []}),
        clock("L3", h(3), "ann", "warm"), ack("L3", h(3), "ann", "warm", 7200, 1800),  # 2h wall, 30m working: within 1h
        clock("L4", h(4), "cat", "hot"),  # never acknowledged: breached, escalated, parked
        step("sla.remind", "L4", h(4), 600, "hot", owner="cat"),
        step("sla.breach", "L4", h(4), 900, "hot", owner="cat"),
        step("sla.escalate", "L4", h(4), 1200, "hot", owner="cat"),
        step("sla.park", "L4", h(4), 3600, "hot", owner="queue:triage", previous_owner="cat"),
        ev("reroute", "L1", h(6), 2, owner="bob", previous_owner="ann", actor="alice (cli)", rule="emea", pool="emea",
           data={"via": "manual", "why": "speaks German", "skipped": {}, "unreadable": []}),
        ev("sla.manual_override", "L5", h(7), 0, owner="dora", previous_owner="queue:triage", actor="dora@crm", data={}),
        outcome("L1", h(30), "converted"), outcome("L1", h(31), "opportunity"), outcome("L1", h(24 * 20), "won"),
        outcome("L2", h(40), "converted"),
        outcome("L3", h(24 * 30), "converted"),  # long after the period: still the period's lead
        outcome("L4", h(30), "converted"), outcome("L4", h(31), "opportunity"), outcome("L4", h(24 * 10), "lost"),
        outcome("L0", h(20), "converted"),  # a lead from before the period
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database(f"r_{uuid4().hex[:12]}")


@pytest.fixture
def history(database_url: str) -> Iterator[Ledger]:
    ledger = Ledger.open(database_url)
    assert ledger.write(events()) == len(events())
    yield ledger
    ledger.close()
