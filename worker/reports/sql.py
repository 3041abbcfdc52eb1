"""The SQL the figures share: which rows a report reads, and the few expressions PostgreSQL and
SQLite spell differently (epoch seconds, JSON), in SQLAlchemy Core.

What a report counts (see ``docs/reports.md``):

* a lead's **first routing** is its ``decision`` event at epoch 0 (or without an epoch); a
  lead is in the period when that decision's ``at`` is. Later moves are ``reroute``
  (by hand), ``sla.reassign`` and ``sla.park`` events.
* an **SLA clock** is in the period when it started in it: its ``sla.start`` event's ``at``;
  for ``ack`` and the ladder's events, ``at - wait_seconds`` (their wait counts from the
  clock's start), so a late acknowledgement of a clock started in the period still counts.
* **outcomes** belong to the leads first routed in the period, whenever they were read back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Float, Integer, String, and_, case, cast, func, literal, text
from sqlalchemy.sql.elements import KeyedColumnElement

from worker.ledger.schema import FIRST_ROUTING, events
from worker.ledger.schema import clock_start as schema_clock_start
from worker.reports.model import DIMENSIONS, NONE, Period

STEP_KINDS = ("sla.remind", "sla.breach", "sla.escalate", "sla.reassign", "sla.park")
MOVE_KINDS = ("reroute", "sla.reassign", "sla.park")
OUTCOME_STATUSES = ("converted", "opportunity", "won", "lost")

_COLUMN = {"rep": "owner"}


def dimension(by: str) -> KeyedColumnElement[Any]:
    """The column a grouping reads: ``rep`` is the ``owner`` column, the others their namesakes."""
    if by not in DIMENSIONS:
        raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(DIMENSIONS)}")
    return events.c[_COLUMN.get(by, by)]


def label(value: Any) -> str:
    """A group's key as shown: NULL is ``(none)``."""
    return NONE if value is None else str(value)


def epoch_seconds(column: ColumnElement[Any], dialect: str) -> ColumnElement[float]:
    """A timestamp column as seconds since 1970 (a float), on either database."""
    if dialect == "postgresql":
        return cast(func.extract("epoch", column), Float)
    # SQLite stores the ledger's times as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC; julianday reads them
    return (func.julianday(column) - 2440587.5) * 86400.0


def day_of(column: ColumnElement[Any], dialect: str) -> ColumnElement[int]:
    """A timestamp column's UTC day, in days since 1970-01-01, exactly (no float at a midnight)."""
    if dialect == "postgresql":
        return cast(func.floor(func.extract("epoch", column) / 86400), Integer)
    # the stored text 'YYYY-MM-DD HH:MM:SS...' cut to its date: julianday of a midnight is exact
    return cast(func.julianday(func.date(column)) - 2440587.5, Integer)


def day_of_seconds(seconds: ColumnElement[float], dialect: str) -> ColumnElement[int]:
    """The UTC day of an instant in epoch seconds (a clock's start), in days since 1970-01-01."""
    if dialect == "postgresql":
        return cast(func.floor(seconds / 86400.0), Integer)
    return cast(seconds / 86400.0, Integer)  # SQLite truncates: the same as floor after 1970


def clock_start() -> ColumnElement[float]:
    """When an SLA event's clock started, in epoch seconds: ``at`` less the wait it carries; the expression of
    the index ``ix_events_kind_clock`` (:class:`worker.ledger.schema.clock_start`), so a span's SLA events are
    a range of it. The element spells itself per database."""
    return schema_clock_start(events.c.at, events.c.wait_seconds)


def first_routings(period: Period) -> list[ColumnElement[bool]]:
    """The ``decision`` events that first routed a lead in the period: a range of the partial index
    ``ix_events_first_routing_at``, whose condition is written here as it is there (SQL text, no bound values)."""
    return [text(FIRST_ROUTING), events.c.at >= period.since, events.c.at < period.until]


def clocks_started_in(period: Period, kinds: Sequence[str]) -> list[ColumnElement[bool]]:
    """SLA events (ack, ladder steps) whose clock started in the period (and happened in it or after): a range
    of ``ix_events_kind_clock`` per kind, however long after its clock's start an event came."""
    start = clock_start()
    return [events.c.kind.in_(list(kinds)), start >= period.since.timestamp(), start < period.until.timestamp(),
            events.c.at >= period.since]


def happened_in(period: Period, kinds: Sequence[str]) -> list[ColumnElement[bool]]:
    return [events.c.kind.in_(list(kinds)), events.c.at >= period.since, events.c.at < period.until]


def json_list_nonempty(key: str, dialect: str) -> ColumnElement[bool]:
    """True when ``data[key]`` is a non-empty JSON list."""
    if dialect == "postgresql":
        value = events.c.data[key]
        return case((func.jsonb_typeof(value) == "array", func.jsonb_array_length(value)), else_=0) > 0
    # the ledger writes compact JSON, so an empty list is exactly this text: those rows need no parse
    return and_(func.instr(events.c.data, f'"{key}":[]') == 0,
                func.coalesce(func.json_array_length(events.c.data, f"$.{key}"), 0) > 0)


def json_object_nonempty(key: str, dialect: str) -> ColumnElement[bool]:
    """True when ``data[key]`` is a JSON object with at least one key."""
    if dialect == "postgresql":
        value = events.c.data[key]
        return and_(func.jsonb_typeof(value) == "object", value != literal("{}").cast(events.c.data.type))
    # compact JSON again: a non-empty object starts with its first key's quote
    return func.instr(events.c.data, f'"{key}":{{"') > 0


def json_text(key: str, dialect: str) -> ColumnElement[str]:
    """``data[key]`` as text; NULL when the event's data has no such key."""
    if dialect == "postgresql":
        return events.c.data[key].as_string()
    return cast(func.json_extract(events.c.data, f"$.{key}"), String)


def flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """1 when ``condition`` holds, else 0: for sums and maxima of conditions."""
    return case((condition, 1), else_=0)
