"""The ledger: write batches of events exactly once, read them back by lead or by period, prune.

The writer is fed in batches off the routing path (by the ledger task, from a Redis outbox),
so it is built for throughput and replays: one transaction per batch, and every row keyed by
``event_id`` with ``INSERT ... ON CONFLICT (event_id) DO NOTHING``, so a batch written twice,
or a batch that repeats an event, leaves each event once.

How the rows travel differs, because the client's CPU is what bounds a batch. On PostgreSQL
they are streamed with ``COPY`` into a temporary staging table and inserted from there in
one statement (about 1.5x the rows/s of a pipelined ``executemany``, which spends most of
its time building one statement per row); on SQLite, ``executemany`` of one prepared
statement is already the fast path.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, Select, column, delete, func, select, table, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from worker.ledger import days
from worker.ledger.database import create_ledger_engine, json_dumps
from worker.ledger.events import KINDS, InvalidEvent, LedgerEvent, coerce
from worker.ledger.schema import COLUMNS, configs, events, replays, report_pieces


class RoutedRow(NamedTuple):
    """One routing decision, with the context its outcome events carry."""

    object: str
    lead_id: str
    epoch: int | None
    owner: str | None
    rule: str | None
    pool: str | None
    source: str | None
    arm: str | None
    config_version: str | None


_WRITTEN = tuple(c for c in COLUMNS if c != "id")
_DERIVED = ("domain",)  # columns the writer derives from an event's data; the last ones in the table
assert _WRITTEN[-len(_DERIVED):] == _DERIVED
_FIELDS = operator.attrgetter(*_WRITTEN[:-len(_DERIVED)])
_STRING_POSITIONS = tuple(i for i, c in enumerate(_WRITTEN) if events.c[c].type.python_type is str)
_RECORDED_AT, _DATA = _WRITTEN.index("recorded_at"), _WRITTEN.index("data")
_ORDER = (events.c.at, events.c.id)
_TOUCH = (events.c.kind, events.c.epoch, events.c.crm, events.c.lead_id, events.c.at, events.c.wait_seconds)

# PostgreSQL's staging table: per session, emptied at every commit, named after the columns it
# holds so a session never reuses one made by code that wrote other columns.
_STAGING = "ledger_incoming_" + hashlib.sha1(",".join(_WRITTEN).encode()).hexdigest()[:8]
_STAGE = text(
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} ON COMMIT DELETE ROWS "
    f"AS SELECT {', '.join(_WRITTEN)} FROM events WITH NO DATA"
)
_COPY = f"COPY {_STAGING} ({', '.join(_WRITTEN)}) FROM STDIN"
_SQLITE_INSERT = sqlite.insert(events).on_conflict_do_nothing(index_elements=[events.c.event_id])
_FROM_STAGING = (
    postgresql.insert(events)
    .from_select(list(_WRITTEN), select(*table(_STAGING, *(column(c) for c in _WRITTEN)).c))
    .on_conflict_do_nothing(index_elements=[events.c.event_id])
)


class Ledger:
    """The routing ledger in one database (PostgreSQL or SQLite).

    ``Ledger.open()`` connects to ``DATABASE_URL`` (or the embedded SQLite file) and migrates
    it; ``Ledger(engine)`` wraps an engine you made, as is.
    """

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name not in ("postgresql", "sqlite"):
            raise ValueError(f"the ledger runs on PostgreSQL or SQLite, not {engine.dialect.name}")
        self.engine = engine

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True) -> Ledger:
        """The ledger at ``url`` (default ``DATABASE_URL``, else ``./var/ledger.sqlite3``), migrated unless told not to."""
        ledger = cls(create_ledger_engine(url))
        if migrate:
            ledger.upgrade()
        return ledger

    def upgrade(self) -> str:
        """Migrate the database to the newest schema; the revision it is now at."""
        from worker.ledger.migrate import upgrade  # Alembic (~0.13 s) loads where the ledger is migrated, not for a report

        return upgrade(self.engine)

    def close(self) -> None:
        """Close the engine's pooled connections."""
        self.engine.dispose()

    def write(self, batch: Iterable[LedgerEvent | Mapping[str, Any]]) -> int:
        """Store a batch in one transaction; how many events were new.

        Events already in the ledger (same ``event_id``), and repeats within the batch (the
        first one counts), are skipped, so writing a batch again is harmless. Dicts are
        checked as :meth:`LedgerEvent.from_dict` does, before anything is written: one
        invalid event fails the whole batch with :class:`InvalidEvent`, and nothing is stored.
        A batch that stored anything also bumps, in the same transaction, the counters of the days
        the report's cache must read again (:mod:`worker.ledger.days`); a replay bumps none.
        """
        recorded_at = datetime.now(UTC)
        unique: dict[str, LedgerEvent] = {}
        for item in batch:
            event = coerce(item)
            unique.setdefault(event.event_id, event)
        if not unique:
            return 0
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                written = _copy_in(connection, unique.values(), recorded_at)
            else:
                rows = [dict(zip(_WRITTEN, _values(e, recorded_at, json=False), strict=True)) for e in unique.values()]
                written = connection.execution_options(preserve_rowcount=True).execute(_SQLITE_INSERT, rows).rowcount
            if written:  # the report's day cache: the days these events change are read again (worker/ledger/days.py)
                latest: dict[int, datetime] = {}
                days.bump(connection, days.touched_days(connection, unique.values(), latest), latest)
            return written

    def for_lead(self, crm: str, lead_id: str, object: str | None = None) -> list[LedgerEvent]:
        """Everything that happened to one lead, oldest first (``leadroute explain``)."""
        query = select(events).where(events.c.crm == crm, events.c.lead_id == lead_id)
        if object is not None:
            query = query.where(events.c.object == object)
        with self.engine.connect() as connection:
            return [LedgerEvent.from_row(row) for row in connection.execute(query.order_by(*_ORDER)).mappings()]

    def between(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        kinds: Iterable[str] | None = None,
        *,
        batch_size: int = 2000,
    ) -> Iterator[LedgerEvent]:
        """Events with ``since <= at < until`` (either end open when None), oldest first, streamed.

        Rows are fetched ``batch_size`` at a time (a server-side cursor on PostgreSQL), so a
        year's export holds one batch in memory, not the year. The connection stays open
        until the iterator is exhausted or closed.
        """
        query = select(events).where(*_period(since, until, kinds)).order_by(*_ORDER)
        with self.engine.connect() as connection:
            result = connection.execution_options(yield_per=batch_size).execute(query)
            for row in result.mappings():
                yield LedgerEvent.from_row(row)

    def count(self, since: datetime | None = None, until: datetime | None = None,
              kinds: Iterable[str] | None = None) -> int:
        """How many events :meth:`between` would yield."""
        query: Select[Any] = select(func.count()).select_from(events).where(*_period(since, until, kinds))
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def save_config(self, version: str, text: str, loaded_at: datetime | None = None) -> bool:
        """Keep the text of config ``version`` (the first one saved stays); True if it was new.

        Every process that loads a config with this ledger saves it, so the dashboard can show
        the rules a decision was made under after the config has changed.
        """
        row = {"version": version, "first_loaded_at": _aware("loaded_at", loaded_at or datetime.now(UTC)), "text": text}
        insert = (postgresql.insert(configs) if self.engine.dialect.name == "postgresql" else sqlite.insert(configs))
        with self.engine.begin() as connection:
            done = connection.execution_options(preserve_rowcount=True).execute(
                insert.on_conflict_do_nothing(index_elements=[configs.c.version]), row)
            return bool(done.rowcount)

    def config(self, version: str) -> tuple[datetime, str] | None:
        """When config ``version`` was first loaded and its text; None if no process saved it here."""
        query = select(configs.c.first_loaded_at, configs.c.text).where(configs.c.version == version)
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return (row[0], row[1]) if row is not None else None

    def save_replay(self, result: Mapping[str, Any], headline: str, at: datetime | None = None) -> None:
        """Keep a replay's JSON result and headline, so the dashboard shows what a candidate would change."""
        replay = result.get("replay") or {}
        row = {"at": _aware("at", at or datetime.now(UTC)), "headline": headline, "result": dict(result),
               "baseline_version": (replay.get("baseline") or {}).get("version"),
               "candidate_version": (replay.get("candidate") or {}).get("version"),
               "candidate_file": (replay.get("candidate") or {}).get("file"), "leads": int(replay.get("leads") or 0)}
        with self.engine.begin() as connection:
            connection.execute(replays.insert(), row)

    def recent_replays(self, limit: int = 5) -> list[dict[str, Any]]:
        """The latest replays' summaries (newest first), without their full results."""
        query = (select(replays.c.at, replays.c.baseline_version, replays.c.candidate_version, replays.c.candidate_file,
                        replays.c.leads, replays.c.headline).order_by(replays.c.at.desc(), replays.c.id.desc()).limit(limit))
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def routed_awaiting_outcome(self, crm: str, since: datetime, *, batch_size: int = 2000) -> Iterator[RoutedRow]:
        """Leads routed in ``crm`` since ``since`` that have no final outcome (won or lost) yet,
        each decision with its routing context, by lead and epoch, streamed.

        The outcome read-back asks the CRM about exactly these; a lead listed for several epochs
        is read once, under its latest.
        """
        outcome = events.alias("outcome")
        finished = select(outcome.c.id).where(
            outcome.c.crm == events.c.crm, outcome.c.lead_id == events.c.lead_id, outcome.c.kind == "outcome",
            outcome.c.status.in_(("won", "lost")),
        ).exists()
        query = (
            select(events.c.object, events.c.lead_id, events.c.epoch, events.c.owner, events.c.rule, events.c.pool,
                   events.c.source, events.c.arm, events.c.config_version)
            .where(events.c.crm == crm, events.c.kind.in_(("decision", "reroute")), events.c.at >= _aware("since", since),
                   ~finished)
            .order_by(events.c.object, events.c.lead_id, events.c.epoch)
        )
        with self.engine.connect() as connection:
            result = connection.execution_options(yield_per=batch_size).execute(query)
            for row in result:
                yield RoutedRow(*row)

    def prune(self, before: datetime, *, batch_size: int = 10_000) -> int:
        """Delete events that happened before ``before``; how many went (retention).

        Deleted ``batch_size`` at a time, each in its own transaction, so pruning years of
        history never holds the write lock long enough to stall the ledger task (SQLite) or
        builds one huge transaction (PostgreSQL). Each chunk bumps the counters of the days its
        events counted in (:mod:`worker.ledger.days`), so no report serves a figure from a cached
        day that still counts what was deleted, and the cached pieces of days before the cutoff go.
        """
        cutoff = _aware("before", before)
        chunk = select(events.c.id, *_TOUCH).where(events.c.at < cutoff).limit(batch_size)
        total = 0
        while True:
            with self.engine.begin() as connection:
                rows = connection.execute(chunk).all()
                if rows:  # the report's day cache: what these events counted in is read again
                    days.bump(connection, days.touched_days(connection, rows))
                    connection.execute(delete(events).where(events.c.id.in_([row.id for row in rows])))
                    connection.execute(delete(report_pieces).where(report_pieces.c.day < days.day_of(cutoff)))
            total += len(rows)
            if len(rows) < batch_size:
                return total


def _copy_in(connection: Connection, batch: Collection[LedgerEvent], recorded_at: datetime) -> int:
    """PostgreSQL: COPY the batch into the session's staging table, then insert what is new from it."""
    connection.execute(_STAGE)
    driver = connection.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(_COPY) as copy:
        for event in batch:
            copy.write_row(_values(event, recorded_at, json=True))
    return connection.execution_options(preserve_rowcount=True).execute(_FROM_STAGING).rowcount


def _values(event: LedgerEvent, recorded_at: datetime, *, json: bool) -> list[Any]:
    """The row for ``event`` in ``_WRITTEN`` order; ``data`` as JSON text when ``json``."""
    row = [*_FIELDS(event), _domain(event)]
    row[_RECORDED_AT] = recorded_at
    if json:
        row[_DATA] = json_dumps(row[_DATA])
    for i in _STRING_POSITIONS:
        value = row[i]
        if value is not None and "\x00" in value:
            row[i] = value.replace("\x00", "")  # PostgreSQL refuses NUL in text: drop it, not the batch
    return row


def _domain(event: LedgerEvent) -> str | None:
    """The company domain a routing read (``data.facts.domain``), kept in its own indexed column for search."""
    facts = event.data.get("facts")
    domain = facts.get("domain") if isinstance(facts, Mapping) else None
    return domain if isinstance(domain, str) and domain else None


def _period(since: datetime | None, until: datetime | None, kinds: Iterable[str] | None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if since is not None:
        where.append(events.c.at >= _aware("since", since))
    if until is not None:
        where.append(events.c.at < _aware("until", until))
    if kinds is not None:
        wanted = sorted(set(kinds))
        unknown = [k for k in wanted if k not in KINDS]
        if unknown:
            raise InvalidEvent(f"kinds: {', '.join(unknown)} not among {', '.join(sorted(KINDS))}")
        where.append(events.c.kind.in_(wanted))
    return where


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}: {value.isoformat()} has no time zone; pass an aware datetime (UTC)")
    return value.astimezone(UTC)
