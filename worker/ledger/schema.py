"""The ledger's one table, ``events``, in SQLAlchemy Core: append-only, one row per event.

What reports group and filter by is a typed column (kind, time, rule, pool, owner, tier,
source, arm, config version, waits, amount), so a report over a million decisions is a scan
of plain columns, never a parse of JSON; everything else an explanation needs rides in
``data``. The column names are a contract with the warehouse (``docs/ledger.md``): add
columns, never rename one. Every change ships as an Alembic migration in ``migrations/``;
``tests/ledger`` checks that the migrations build exactly this table.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

metadata = MetaData(naming_convention={"pk": "pk_%(table_name)s"})


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and read back timezone-aware, on both databases.

    PostgreSQL has ``timestamptz``; SQLite has no time type, and SQLAlchemy would store an
    aware datetime's local wall time there without its offset. So values are converted to
    UTC before they are stored, and a naive value read back is UTC by construction.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()}: the ledger stores UTC and will not guess")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json() -> Any:
    """JSON, as ``jsonb`` on PostgreSQL (queryable, indexable) and text on SQLite."""
    return JSON().with_variant(JSONB(), "postgresql")


events = Table(
    "events",
    metadata,
    # insertion order, for paging through a range; not an identity to keep (event_id is)
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("event_id", String(), nullable=False),
    Column("kind", String(), nullable=False),
    Column("crm", String(), nullable=False),
    Column("object", String(), nullable=False),
    Column("lead_id", String(), nullable=False),
    Column("epoch", Integer()),
    Column("at", UtcDateTime(), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False, server_default=func.current_timestamp()),
    Column("config_version", String()),
    Column("owner", String()),
    Column("previous_owner", String()),
    Column("actor", String()),
    Column("rule", String()),
    Column("pool", String()),
    Column("tier", String()),
    Column("source", String()),
    Column("arm", String()),
    Column("status", String()),
    Column("wait_seconds", Float()),
    Column("wait_business_seconds", Float()),
    Column("amount", Numeric(18, 4, asdecimal=False)),
    Column("currency", String()),
    Column("lead_created_at", UtcDateTime()),
    Column("data", _json(), nullable=False),
    Column("domain", String()),  # a routing's company domain (data.facts.domain), so a lead is found by its domain
    Index("uq_events_event_id", "event_id", unique=True),  # the idempotency key: a replayed event is a conflict, not a row
    Index("ix_events_lead", "crm", "lead_id", "at"),  # leadroute explain
    Index("ix_events_kind_at", "kind", "at"),  # reports and exports: one kind over a period
    Index("ix_events_at", "at"),  # retention (prune) and all kinds over a period
    Index("ix_events_owner_at", "owner", "at"),  # one rep's history
    Index("ix_events_domain_at", "domain", "at"),  # the dashboard's search by e-mail or domain
)

COLUMNS: tuple[str, ...] = tuple(c.name for c in events.columns)


class clock_start(FunctionElement[float]):  # lower case, as SQL functions are named
    """When an SLA event's clock started, in epoch seconds: ``at`` less the wait it carries (``ack``, ``sla.*``).

    Reports find the acks and ladder steps of a span by it, on ``ix_events_kind_clock``
    (migration 0007). A database uses an expression index only for the very same expression, so
    both the index and the queries are this one element, its constants written into the SQL.
    PostgreSQL may not index ``extract(epoch from timestamptz)`` (only stable); of its UTC time
    it is the same number, and immutable.
    """

    type = Float()
    name = "clock_start"
    inherit_cache = True


@compiles(clock_start, "postgresql")
def _clock_start_postgresql(element: clock_start, compiler: Any, **kw: Any) -> str:
    at, wait = (compiler.process(c, **kw) for c in element.clauses)
    return f"(CAST(EXTRACT(epoch FROM timezone('UTC', {at})) AS FLOAT) - coalesce({wait}, 0.0))"


@compiles(clock_start)
def _clock_start_sqlite(element: clock_start, compiler: Any, **kw: Any) -> str:
    at, wait = (compiler.process(c, **kw) for c in element.clauses)
    return f"((julianday({at}) - 2440587.5) * 86400.0 - coalesce({wait}, 0.0))"


# the acks and ladder steps whose clock started in a span: reports (migration 0007)
Index("ix_events_kind_clock", events.c.kind, clock_start(events.c.at, events.c.wait_seconds))

# A lead's first routing: its decision at epoch 0 (or without one), as the reports count leads. The
# condition is SQL text, written the same in the queries (``worker.reports.sql.first_routings``): a
# database uses a partial index only where the query's own condition implies the index's.
FIRST_ROUTING = "kind = 'decision' AND (epoch IS NULL OR epoch = 0)"

# the first routings of a span, alone and in time order: reports (migration 0007); on ``(kind, at)``
# PostgreSQL's planner would rather walk ``ix_events_at`` past every other kind's events
Index("ix_events_first_routing_at", events.c.at, postgresql_where=text(FIRST_ROUTING), sqlite_where=text(FIRST_ROUTING))

# -- the report's day cache (migration 0002) ------------------------------------------------------
#
# ``ledger_days``: one row per UTC day (days since 1970-01-01) whose figures a write or a prune
# has changed, with a counter the writer bumps in the same transaction as the events.
# ``report_pieces``: what one report pass read from one whole day, keyed by the pass and its
# parameters, stamped with the day's counter when it was read. A piece whose stamp is not the
# day's counter is stale and read again from ``events``. See ``docs/reports.md`` (Speed).

ledger_days = Table(
    "ledger_days",
    metadata,
    Column("day", Integer(), primary_key=True, autoincrement=False),
    Column("generation", BigInteger(), nullable=False),
    Column("latest_at", UtcDateTime()),  # the latest ``at`` of an event whose clock started this day (0003)
)

report_pieces = Table(
    "report_pieces",
    metadata,
    Column("day", Integer(), primary_key=True, autoincrement=False),
    Column("pass", String(), primary_key=True),
    Column("params", String(), primary_key=True),
    Column("generation", BigInteger(), nullable=False),
    Column("header", Text(), nullable=False),
    Column("arrays", LargeBinary(), nullable=False),
)

# -- the config versions' texts (migration 0005) -------------------------------------------------
#
# ``configs``: the YAML of every config version a process loaded with this ledger, first text kept,
# so the dashboard shows the rules a decision was made under after the config has changed.

configs = Table(
    "configs",
    metadata,
    Column("version", String(), primary_key=True),
    Column("first_loaded_at", UtcDateTime(), nullable=False),
    Column("text", Text(), nullable=False),
)

# -- replay summaries (migration 0006) -----------------------------------------------------------
#
# ``replays``: what each ``leadroute replay`` over this ledger found (its JSON result and headline),
# so the dashboard's config page shows what a candidate would have changed.

replays = Table(
    "replays",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("baseline_version", String()),
    Column("candidate_version", String()),
    Column("candidate_file", String()),
    Column("leads", Integer(), nullable=False),
    Column("headline", Text(), nullable=False),
    Column("result", _json(), nullable=False),
    Index("ix_replays_at", "at"),
)
