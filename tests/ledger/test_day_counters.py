"""The day counters the report's cache trusts (``ledger_days``), and migration 0002 on a ledger that has events.

A write bumps, in its own transaction, the counter of every day its events can change: the
day of ``at``, the day a clock started (``at - wait_seconds``) and, for a first routing or an
outcome, every day an event of that lead touches. A replayed batch writes nothing and bumps
nothing. The report-level equivalence (cached days equal the events) is ``tests/reports/test_pieces.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, inspect, select

from tests.ledger.conftest import EventFactory
from worker.ledger import days
from worker.ledger.database import create_ledger_engine
from worker.ledger.ledger import _WRITTEN, Ledger, _values
from worker.ledger.migrate import current_revision, head_revision, upgrade
from worker.ledger.schema import events, ledger_days

MIDNIGHT = datetime(2026, 3, 3, tzinfo=UTC)
D = days.day_of(MIDNIGHT)


def counters(ledger: Ledger) -> dict[int, int]:
    with ledger.engine.connect() as connection:
        return dict(connection.execute(select(ledger_days.c.day, ledger_days.c.generation)
                                       .where(ledger_days.c.generation > 0)).all())


def test_a_write_bumps_the_days_its_events_change_and_a_replay_bumps_none(ledger: Ledger, event: EventFactory) -> None:
    routed = event(1, at=MIDNIGHT + timedelta(hours=20))
    assert ledger.write([routed]) == 1
    assert counters(ledger) == {D: 1}
    # an ack the next day of a clock started the day before: both days
    ack = event(2, event_id="ack/1", kind="ack", at=MIDNIGHT + timedelta(days=1, hours=1), wait_seconds=6 * 3600.0)
    ledger.write([ack])
    assert counters(ledger) == {D: 2, D + 1: 1}
    # an outcome read back a week later counts on its lead's first routing's day
    outcome = event(1, event_id="outcome/1", kind="outcome", epoch=None, status="converted",
                    at=MIDNIGHT + timedelta(days=7))
    ledger.write([outcome])
    assert counters(ledger) == {D: 3, D + 1: 1, D + 7: 1}
    before = counters(ledger)
    assert ledger.write([routed, ack, outcome]) == 0
    assert counters(ledger) == before


def test_a_first_routing_written_after_its_ack_bumps_the_acks_day(ledger: Ledger, event: EventFactory) -> None:
    ack = event(5, event_id="ack/5", kind="ack", at=MIDNIGHT + timedelta(days=3, hours=2), wait_seconds=60.0)
    ledger.write([ack])
    assert counters(ledger) == {D + 3: 1}
    ledger.write([event(5, at=MIDNIGHT + timedelta(days=2, hours=23))])  # the ack's path is this routing's
    assert counters(ledger) == {D + 2: 1, D + 3: 2}


def test_a_clock_starting_near_midnight_bumps_both_days(ledger: Ledger, event: EventFactory) -> None:
    ledger.write([event(6, event_id="ack/6", kind="ack", at=MIDNIGHT + timedelta(seconds=100), wait_seconds=100.0)])
    assert counters(ledger) == {D - 1: 1, D: 1}


def test_the_latest_at_of_a_clock_day_bounds_its_acks(ledger: Ledger, event: EventFactory) -> None:
    # a clock started at 23:00 and acknowledged two days later: the bound for that evening is the ack's time
    late = event(7, event_id="ack/7", kind="ack", at=MIDNIGHT + timedelta(days=2, hours=23), wait_seconds=48 * 3600.0)
    ledger.write([late, event(8, at=MIDNIGHT + timedelta(hours=5))])
    with ledger.engine.connect() as connection:
        evening = days.latest_at(connection, MIDNIGHT + timedelta(hours=22), MIDNIGHT + timedelta(days=1))
        assert evening == late.at
        assert days.latest_at(connection, MIDNIGHT + timedelta(days=9), MIDNIGHT + timedelta(days=10)) is None


def test_migrations_0002_0003_on_a_ledger_that_already_has_events(database_url: str, event: EventFactory) -> None:
    from tests.reports.test_pieces import PERIODS, history, report_json  # the report's history and comparison

    engine = create_ledger_engine(database_url)
    try:
        assert upgrade(engine, "0001") == "0001"
        recorded = datetime.now(UTC)
        at_0001 = {c["name"] for c in inspect(engine).get_columns("events")}  # later revisions add columns
        rows: list[dict[str, Any]] = [
            {k: v for k, v in zip(_WRITTEN, _values(e, recorded, json=False), strict=True) if k in at_0001}
            for e in history(29, handbacks=True)]
        with engine.begin() as connection:
            connection.execute(insert(events), rows)
        assert "ledger_days" not in inspect(engine).get_table_names()
        assert upgrade(engine) == head_revision() == current_revision(engine)
        assert {"ledger_days", "report_pieces"} <= set(inspect(engine).get_table_names())
        ledger = Ledger(engine)
        assert counters(ledger) == {}  # every day at generation 0, nothing kept: the first report reads events
        with engine.connect() as connection:  # 0003 backfilled the latest time of each clock day
            assert connection.execute(select(ledger_days.c.latest_at).where(ledger_days.c.latest_at.is_not(None))).first()
        for period in PERIODS.values():
            direct = report_json(ledger, period, cache=False)
            assert direct["leads"] > 0 or period.days < 1
            assert report_json(ledger, period, cache=True) == direct
            assert report_json(ledger, period, cache=True) == direct
    finally:
        engine.dispose()
