"""The report's day cache: a report read from cached days equals the report read from ``events``.

Every history here is generated from a seed (a table of seeds: property-style, reproducible):
leads first routed over four days, some exactly at midnight, with SLA clocks whose start is
on another day than their acknowledgement, ladder steps, re-routes, reassignments, parks,
rejections and trigger hand-offs, overrides, skips, unreadable fields and outcomes read back days later. Each test compares
``build_report(cache=True)`` (whole days from ``report_pieces``, the edges from ``events``)
with ``build_report(cache=False)`` (everything from ``events``), as JSON, on SQLite and
PostgreSQL, cold and warm, and after the ledger changed under the cache.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from worker.ledger.events import KINDS, LedgerEvent
from worker.ledger.ledger import Ledger
from worker.ledger.schema import ledger_days, report_pieces
from worker.reports import Period, ReportSettings, TierWindow, build_report
from worker.reports.pieces import whole_days

DAY0 = datetime(2026, 5, 4, tzinfo=UTC)  # a Monday
NOW = DAY0 + timedelta(days=30)
SETTINGS = ReportSettings(pools={"emea": {"ann": 2, "bob": 1, "cy": 1}, "us": {"dee": 1, "eve": 1}},
                          tiers={"hot": TierWindow(900, "wall"), "warm": TierWindow(3600, "business_hours")})
PERIODS = {
    "whole days": Period(DAY0, DAY0 + timedelta(days=4)),
    "partial edges": Period(DAY0 + timedelta(hours=7, minutes=13), DAY0 + timedelta(days=3, hours=5)),
    "within a day": Period(DAY0 + timedelta(days=1, hours=2), DAY0 + timedelta(days=1, hours=20)),
    "one whole day": Period(DAY0 + timedelta(days=2), DAY0 + timedelta(days=3)),
}
SEEDS = (1, 7, 23)


def ev(kind: str, lead: str, at: datetime, epoch: int | None, *more: object, **fields: Any) -> LedgerEvent:
    suffix = "/".join(str(m) for m in more)
    return LedgerEvent(event_id=f"{kind}/salesforce/Lead/{lead}/{epoch}/{suffix}", kind=kind, crm="salesforce",
                       object="Lead", lead_id=lead, at=at, epoch=epoch, **fields)


def lead_events(rnd: random.Random, n: int, handbacks: bool = False) -> list[LedgerEvent]:
    """One lead's history, its first routing somewhere in the four days (every tenth exactly at a midnight);
    ``handbacks``: some pooled leads are also rejected by their owner or handed off by a trigger."""
    lead = f"L{n:04}"
    at = DAY0 + timedelta(days=rnd.randrange(4)) if n % 10 == 0 else DAY0 + timedelta(seconds=rnd.uniform(0, 4 * 86400))
    pool = rnd.choice(["emea", "us", None])
    members = SETTINGS.pools[pool] if pool else {}
    owner = rnd.choice(list(members)) if pool else "queue:triage"
    rule = {"emea": rnd.choice(["emea-ent", "emea-smb"]), "us": "us", None: "fallback"}[pool]
    tier = rnd.choice(["hot", "warm", None])
    wait = round(rnd.uniform(0, 600), 3)
    path = {"rule": rule, "pool": pool, "source": rnd.choice(["web", "event", None]), "arm": rnd.choice(["a", "b"]),
            "config_version": rnd.choice(["cv1", "cv2"])}
    skipped = {rnd.choice(list(members)): rnd.choice(["ooo", "at_capacity"])} if members and rnd.random() < 0.4 else {}
    out = [ev("decision", lead, at, 0, owner=owner, tier=tier, wait_seconds=wait,
              wait_business_seconds=round(wait * rnd.random(), 3), lead_created_at=at - timedelta(seconds=wait),
              data={"skipped": skipped, "unreadable": ["employees"] if rnd.random() < 0.2 else [], "facts": {}}, **path)]
    if "shadow" in KINDS:  # a shadow decision (issue 14) is never a live one
        out.append(ev("shadow", lead, at, 0, owner="zed", rule="shadow-rule", pool=pool, wait_seconds=1.0, data={}))
    if tier and pool:
        start = at + timedelta(seconds=rnd.choice([0, 1, 30]))
        clock = {"tier": tier, "owner": owner}
        out.append(ev("sla.start", lead, start, 0, data={}, **clock))
        ack_wait = round(rnd.expovariate(1 / 1500) + (rnd.uniform(1, 3) * 86400 if rnd.random() < 0.08 else 0), 3)
        if rnd.random() < 0.3:  # a step, then (sometimes) a reassignment with its re-decision
            out.append(ev("sla.remind", lead, start + timedelta(seconds=600), 0, "r", wait_seconds=600.0, data={}, **clock))
        if rnd.random() < 0.2:
            new = rnd.choice(list(members))
            moved = start + timedelta(seconds=1800)
            out += [ev("sla.reassign", lead, moved, 0, "x", wait_seconds=1800.0, previous_owner=owner, data={},
                       tier=tier, owner=new),
                    ev("decision", lead, moved, 1, owner=new, previous_owner=owner, rule=rule, pool=pool, data={})]
        elif rnd.random() < 0.1:
            out.append(ev("sla.park", lead, start + timedelta(seconds=3600), 0, "p", wait_seconds=3600.0,
                          previous_owner=owner, data={}, tier=tier, owner="queue:triage"))
        else:
            out.append(ev("ack", lead, start + timedelta(seconds=ack_wait), 0, owner=owner, actor=owner, tier=tier,
                          wait_seconds=ack_wait, wait_business_seconds=round(ack_wait * 0.5, 3), data={}))
    if pool and rnd.random() < 0.1:
        out.append(ev("reroute", lead, at + timedelta(hours=rnd.uniform(1, 30)), 2, owner=rnd.choice(list(members)),
                      previous_owner=owner, actor="alice (cli)", rule=rule, pool=pool, data={}))
    other = random.Random(n * 7919 + len(out))  # its own draws: the rest of the history is as it was without it
    roll = other.random()
    if handbacks and pool and roll < 0.15:  # handed back by its owner (a rejection), or handed off by a trigger: a later epoch
        rejected = roll < 0.1
        new = other.choice([m for m in members if m != owner])
        out.append(ev("decision", lead, at + timedelta(hours=other.uniform(0.5, 40)), 3, owner=new, previous_owner=owner,
                      rule=rule, pool=pool, data={"via": "rejection", "why": "status Rejected - Not my territory",
                                                  "excluded": [owner]} if rejected else
                      {"via": "trigger", "trigger": "mql", "why": "trigger mql"}))
    if rnd.random() < 0.05:
        out.append(ev("sla.manual_override", lead, at + timedelta(hours=2), 0, owner="dora", previous_owner=owner,
                      actor="dora@crm", data={}))
    roll = rnd.random()
    statuses = ["converted", "opportunity", "won"] if roll < 0.1 else ["converted", "lost"] if roll < 0.2 else \
        ["converted"] if roll < 0.4 else []
    for i, status in enumerate(statuses):
        out.append(ev("outcome", lead, at + timedelta(days=1 + i), None, status, status=status, data={}))
    return out


def history(seed: int, leads: int = 80, handbacks: bool = False) -> list[LedgerEvent]:
    rnd = random.Random(seed)
    return [e for n in range(leads) for e in lead_events(rnd, n, handbacks)]


def report_json(ledger: Ledger, period: Period, by: str = "rule", *, cache: bool) -> dict[str, Any]:
    out = build_report(ledger, period, by=by, settings=SETTINGS, now=NOW, cache=cache).to_dict()
    out.pop("generated_at")
    return out


def assert_cache_agrees(ledger: Ledger, period: Period, by: str = "rule") -> None:
    direct = report_json(ledger, period, by, cache=False)
    assert report_json(ledger, period, by, cache=True) == direct  # days read and kept
    assert report_json(ledger, period, by, cache=True) == direct  # days from the cache


def pieces(ledger: Ledger) -> list[tuple[Any, ...]]:
    with ledger.engine.connect() as connection:
        return [tuple(r) for r in connection.execute(select(report_pieces).order_by(*report_pieces.primary_key.columns))]


def counters(ledger: Ledger) -> dict[int, int]:
    with ledger.engine.connect() as connection:
        return dict(connection.execute(select(ledger_days.c.day, ledger_days.c.generation)).all())


@pytest.fixture
def ledger(database_url: str) -> Any:
    opened = Ledger.open(database_url)
    yield opened
    opened.close()


@pytest.mark.parametrize("seed", SEEDS)
def test_a_report_from_cached_days_equals_one_from_the_events(ledger: Ledger, seed: int) -> None:
    assert ledger.write(history(seed, handbacks=True)) > 0
    for name, period in PERIODS.items():
        for by in ("rule", "rep", "tier", "source"):
            direct = report_json(ledger, period, by, cache=False)
            assert report_json(ledger, period, by, cache=True) == direct, (name, by)
            assert report_json(ledger, period, by, cache=True) == direct, (name, by, "warm")
    whole = report_json(ledger, PERIODS["whole days"], cache=True)
    assert whole["leads"] > 0
    assert sum(r["rejected"] for r in whole["acceptance"]["reps"]) > 0  # the history's rejections are counted
    assert pieces(ledger), "whole days were kept"


def test_whole_days_and_edges() -> None:
    edges, days = whole_days(PERIODS["partial edges"])
    assert [(e.since.hour, e.until.hour) for e in edges] == [(7, 0), (0, 5)]
    assert len(days) == 2
    edges, days = whole_days(PERIODS["whole days"])
    assert edges == [] and len(days) == 4
    edges, days = whole_days(PERIODS["within a day"])
    assert edges == [PERIODS["within a day"]] and len(days) == 0


def test_a_redelivered_batch_changes_no_counter_and_no_piece(ledger: Ledger) -> None:
    batch = history(3)
    ledger.write(batch)
    report_json(ledger, PERIODS["whole days"], cache=True)
    before, kept = counters(ledger), pieces(ledger)
    assert ledger.write(batch) == 0  # replayed: nothing new
    assert ledger.write(batch[::-1][:50]) == 0
    assert counters(ledger) == before
    report_json(ledger, PERIODS["whole days"], cache=True)
    assert pieces(ledger) == kept  # nothing was read again


def test_writes_into_cached_days_are_seen_at_once(ledger: Ledger) -> None:
    events = history(5, handbacks=True)
    late_outcomes = [e for e in events if e.kind == "outcome"]
    acks = [e for e in events if e.kind == "ack"]
    first_routings_of_acked = {e.lead_id for e in acks}
    held_back = [e for e in events if e.kind == "decision" and e.epoch == 0 and e.lead_id in first_routings_of_acked][:5]
    ledger.write([e for e in events if e not in late_outcomes and e not in held_back])
    period = PERIODS["whole days"]
    assert_cache_agrees(ledger, period)
    ledger.write(late_outcomes)  # outcomes count on their lead's first routing's day, read back days later
    assert_cache_agrees(ledger, period)
    ledger.write(held_back)  # first routings written after their acks: the acks' path changes
    assert_cache_agrees(ledger, period, by="source")
    extra = history(11, leads=20, handbacks=True)
    ledger.write(extra)
    assert_cache_agrees(ledger, period, by="pool")


def test_prune_keeps_the_cache_true(ledger: Ledger) -> None:
    ledger.write(history(13, handbacks=True))
    period = PERIODS["whole days"]
    for by in ("rule", "source"):
        assert_cache_agrees(ledger, period, by)
    before = counters(ledger)
    assert ledger.prune(DAY0 + timedelta(days=1, hours=12), batch_size=37) > 0
    with ledger.engine.connect() as connection:
        oldest = connection.execute(select(func.min(report_pieces.c.day))).scalar()
    assert oldest == (DAY0 + timedelta(days=1)).timestamp() // 86400  # the pieces of wholly pruned days went
    after = counters(ledger)
    assert all(after[day] > before.get(day, 0) for day in (oldest, oldest + 1))  # the cut day and the next moved
    for by in ("rule", "source"):
        assert_cache_agrees(ledger, period, by)


def test_a_database_the_report_cannot_write_to_still_reports(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import Column, Integer, MetaData, String, Table  # a table that is not there: the write fails in SQL

    from worker.reports import pieces as module  # its upsert is pointed at that table

    missing = Table("report_pieces_gone", MetaData(), Column("day", Integer, primary_key=True),
                    Column("pass", String, primary_key=True), Column("params", String, primary_key=True),
                    Column("generation", Integer), Column("header", String), Column("arrays", String))
    ledger.write(history(17))
    direct = report_json(ledger, PERIODS["whole days"], cache=False)
    upsert = module._upsert
    monkeypatch.setattr(module, "_upsert", lambda dialect, _table: upsert(dialect, missing))
    assert report_json(ledger, PERIODS["whole days"], cache=True) == direct
    assert pieces(ledger) == []


def test_a_partial_day_is_read_on_indexes(ledger: Ledger) -> None:
    """The edges of a period are read from ``events`` every time, so each of their reads must be a range of an
    index, never a scan of the table: the acks and ladder steps by their clock's start (``ix_events_kind_clock``),
    the rest by kind and time (first routings also on the partial ``ix_events_first_routing_at``, which a big
    PostgreSQL table needs: it reads ``(kind, at)`` as out of time order)."""
    from sqlalchemy import event

    ledger.write(history(29, leads=300))
    with ledger.engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE events" if connection.dialect.name == "postgresql" else "ANALYZE")
    seen: list[tuple[str, Any]] = []

    def remember(_conn: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM events" in statement:
            seen.append((statement, parameters))

    event.listen(ledger.engine, "before_cursor_execute", remember)
    try:
        report_json(ledger, PERIODS["within a day"], cache=True)  # all edge: nothing is whole-day
    finally:
        event.remove(ledger.engine, "before_cursor_execute", remember)
    assert len(seen) >= 7
    postgres = ledger.engine.dialect.name == "postgresql"
    used: set[str] = set()
    with ledger.engine.connect() as connection:
        if postgres:  # a small table: make the planner show the index it would use on a big one
            connection.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in seen:
            explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
            plan = [" ".join(str(c) for c in row) for row in connection.exec_driver_sql(explain + statement, parameters)]
            text = "\n".join(plan)
            assert "Seq Scan on events" not in text, text
            assert not re.search(r"SCAN (events|routing|outcome)\b", text), text
            used |= set(re.findall(r"ix_events_\w+", text))
            if "EXTRACT(epoch FROM timezone" in statement or "julianday(events.at) - 2440587.5" in statement.split("FROM")[-1]:
                assert "ix_events_kind_clock" in text, (statement, text)
    assert "ix_events_kind_clock" in used and "ix_events_lead" in used
    # the first routings on either (kind, at) or the partial index: on a table this small their costs are
    # within a hair of each other, and either is a range of first routings' entries, not a scan
    assert used & {"ix_events_first_routing_at", "ix_events_kind_at"}


def test_a_piece_kept_in_the_layout_before_coded_keys_is_read_again_and_replaced(ledger: Ledger) -> None:
    from sqlalchemy import update

    ledger.write(history(37))
    period = PERIODS["whole days"]
    direct = report_json(ledger, period, cache=False)
    assert report_json(ledger, period, cache=True) == direct
    old = '{"tally":{},"finest":{"keys":[[0,"x"]],"extremes":[],"values":["wall"],"flags":[]},"stamps":{},"arrays":[]}'
    with ledger.engine.begin() as connection:
        connection.execute(update(report_pieces).where(report_pieces.c["pass"] == "first_routings").values(header=old))
    assert report_json(ledger, period, cache=True) == direct
    with ledger.engine.connect() as connection:
        headers = connection.execute(select(report_pieces.c.header).where(report_pieces.c["pass"] == "first_routings"))
        assert all('"levels"' in header for (header,) in headers)
