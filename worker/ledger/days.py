"""Which UTC days a write or a prune changes, and the per-day counter that tells the report's day cache so.

A report keeps what it read from each whole day (``report_pieces``) and trusts a piece only
while the day's counter (``ledger_days.generation``) is what it was when the piece was read.
So every transaction that adds or deletes events bumps the counter of every day whose figures
those events can change, in that same transaction:

* the day of each event's ``at``, and of its clock's start (``at - wait_seconds``: acks and the
  SLA ladder count on the day their clock started), with the neighbouring day when that start
  is within a second of midnight (the report computes it in SQL floats, this in Python's);
* for a lead's first routing or an outcome, every day any event of that lead touches: an
  outcome counts on the day its lead was first routed, and an acknowledgement's path is its
  lead's first routing, which may be written after it.

Bumping too much costs a piece read again; bumping too little would serve a stale figure, so
every doubt bumps. The counter rows are few (one per day) and bumped in day order, so
concurrent writers wait on each other only for their commit and never deadlock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, func, select, text
from sqlalchemy.dialects import postgresql, sqlite

from worker.ledger.schema import events, ledger_days

DAY = 86400
_LOOKUP_CHUNK = 500


def day_of(moment: datetime) -> int:
    """The UTC day of an aware datetime, in days since 1970-01-01."""
    return math.floor(moment.timestamp() / DAY)


def day_start(day: int) -> datetime:
    return datetime.fromtimestamp(day * DAY, UTC)


def _days_of(at: datetime, wait: float | None) -> Iterator[int]:
    stamp = at.timestamp()
    yield math.floor(stamp / DAY)
    if wait:
        start = stamp - wait
        yield math.floor((start - 1.0) / DAY)
        yield math.floor((start + 1.0) / DAY)


def touched_days(connection: Connection, rows: Iterable[Any], latest: dict[int, datetime] | None = None) -> set[int]:
    """The days whose figures ``rows`` (events, or rows with their columns) change: see the module's rules.

    ``latest``, when given, gathers per day (of each row's clock start, and the neighbouring day
    near a midnight) the latest ``at``: what bounds a scan for the acks of a clock started then.
    Called on every batch the ledger writes, so it stays a plain loop.
    """
    days: set[int] = set()
    newest: dict[int, float] = {}
    leads: set[tuple[str, str]] = set()
    for row in rows:
        stamp = _aware(row.at).timestamp()
        start = stamp - (row.wait_seconds or 0.0)
        before, after = math.floor((start - 1.0) / DAY), math.floor((start + 1.0) / DAY)
        days.add(math.floor(stamp / DAY))
        if row.wait_seconds:
            days.add(before)
            days.add(after)
        if newest.get(before, -math.inf) < stamp:
            newest[before] = stamp
        if after != before and newest.get(after, -math.inf) < stamp:
            newest[after] = stamp
        if row.kind == "outcome" or (row.kind == "decision" and row.epoch in (None, 0)):
            leads.add((row.crm, row.lead_id))
    if latest is not None:
        for day, stamp in newest.items():
            moment = datetime.fromtimestamp(stamp, UTC)
            if day not in latest or latest[day] < moment:
                latest[day] = moment
    pairs = sorted(leads)
    for i in range(0, len(pairs), _LOOKUP_CHUNK):
        chunk = pairs[i:i + _LOOKUP_CHUNK]
        if connection.dialect.name == "postgresql":
            # one probe of ix_events_lead per (crm, lead): with ``crm IN ... AND lead_id IN ...`` a table
            # that grew since its last ANALYZE got a plan that read every row of the CRM, once per batch
            found = connection.execute(_PG_LOOKUP, {"crms": [c for c, _ in chunk], "ids": [lead for _, lead in chunk]})
        else:
            found = connection.execute(select(events.c.at, events.c.wait_seconds).where(
                events.c.crm.in_(sorted({c for c, _ in chunk})), events.c.lead_id.in_([lead for _, lead in chunk])))
        for at, wait in found:
            days.update(_days_of(_aware(at), wait))
    return days


_PG_LOOKUP = text(
    "SELECT e.at, e.wait_seconds FROM unnest(CAST(:crms AS text[]), CAST(:ids AS text[])) AS k(crm, lead_id) "
    "JOIN events e ON e.crm = k.crm AND e.lead_id = k.lead_id"
)


def bump(connection: Connection, days: Iterable[int], latest: Mapping[int, datetime] | None = None) -> None:
    """Add one to each day's counter (a day without one starts at 1), in day order; raise each day's
    ``latest_at`` to ``latest``'s (a day only in ``latest`` keeps its counter)."""
    bumped = set(days)
    latest = latest or {}
    ordered = sorted(bumped | set(latest))
    if not ordered:
        return
    connection.execute(_bump(connection.dialect.name),
                       [{"day": d, "generation": int(d in bumped), "latest_at": latest.get(d)} for d in ordered])


def _bump(dialect_name: str) -> Any:
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    statement = dialect.insert(ledger_days)
    have, new = ledger_days.c.latest_at, statement.excluded.latest_at
    return statement.on_conflict_do_update(index_elements=[ledger_days.c.day], set_={
        "generation": ledger_days.c.generation + statement.excluded.generation,
        "latest_at": case((have.is_(None), new), (new.is_(None), have), (new > have, new), else_=have),
    })


def latest_at(connection: Connection, since: datetime, until: datetime) -> datetime | None:
    """The latest ``at`` of any event whose clock started in ``[since, until)``; None when no day there has one.

    An upper bound: the writer records each event under the days of its clock's start less and
    plus a second, so the days from the one before ``since`` to that of a second before ``until``
    hold every such event at least once.
    """
    query = select(func.max(ledger_days.c.latest_at)).where(
        ledger_days.c.day >= day_of(since) - 1, ledger_days.c.day <= day_of(until - timedelta(milliseconds=1)))
    return connection.execute(query).scalar()


def generations(connection: Connection, first: int, last: int) -> dict[int, int]:
    """Each day's counter for ``first <= day < last``; a day missing from the answer is at 0."""
    query = select(ledger_days.c.day, ledger_days.c.generation).where(ledger_days.c.day >= first, ledger_days.c.day < last)
    return {int(day): int(generation) for day, generation in connection.execute(query)}


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
