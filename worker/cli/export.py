"""``leadroute export``: the ledger's events for a warehouse, one row per event, as CSV or Parquet.

``leadroute export decisions|sla|outcomes|notifications --format csv|parquet --out FILE
[--since WHEN] [--until WHEN]``. The columns are a contract (``docs/ledger.md``): the ledger's
typed columns under their own names, a few of each dataset's context fields lifted out of
``data``, and ``data`` itself as JSON text, in a fixed order whatever the period holds. Rows are
streamed from the database a batch at a time and written as they come (a Parquet row group per
batch), so memory stays bounded however long the period; the file appears under its name only
once complete.

SQLAlchemy loads inside the command, pyarrow only for Parquet: every other command starts without them.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from worker.cli import when
from worker.cli.progress import Tick, progress
from worker.ledger.events import DECISION_KINDS, NOTIFICATION_KINDS, OUTCOME_KINDS, SLA_KINDS, LedgerEvent

if TYPE_CHECKING:
    from worker.ledger.ledger import Ledger

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

DATASETS: dict[str, tuple[str, ...]] = {
    "decisions": DECISION_KINDS,
    "sla": SLA_KINDS,
    "outcomes": OUTCOME_KINDS,
    "notifications": NOTIFICATION_KINDS,
}
FORMATS = ("csv", "parquet")
ROWS_PER_GROUP = 10_000  # rows held in memory at once (a Parquet row group)


@dataclass(frozen=True, slots=True)
class Column:
    """One output column: its name, its type (string, int, float, bool, time, json) and where it comes from."""

    name: str
    type: str
    from_data: bool = False  # a field of the event's ``data``, rather than a typed column

    def value(self, event: LedgerEvent) -> Any:
        raw = (event.data or {}).get(self.name) if self.from_data else getattr(event, self.name)
        if raw is None:
            return None
        if self.type == "json":
            return json.dumps(raw, separators=(",", ":"), ensure_ascii=False, default=str)
        if self.type == "time":
            return raw.astimezone(UTC) if isinstance(raw, datetime) else _time(raw)
        if self.type == "string":
            return str(raw)
        if self.type == "int":
            return _number(raw, int)
        if self.type == "float":
            return _number(raw, float)
        if self.type == "bool":
            return bool(raw)
        raise AssertionError(self.type)


def _number(raw: Any, kind: type) -> Any:
    try:
        return kind(raw)
    except (TypeError, ValueError):
        return None


def _time(raw: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(raw))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


COMMON: tuple[Column, ...] = (
    Column("event_id", "string"), Column("kind", "string"), Column("crm", "string"), Column("object", "string"),
    Column("lead_id", "string"), Column("epoch", "int"), Column("at", "time"), Column("recorded_at", "time"),
    Column("config_version", "string"), Column("owner", "string"), Column("previous_owner", "string"),
    Column("actor", "string"), Column("rule", "string"), Column("pool", "string"), Column("tier", "string"),
    Column("source", "string"), Column("arm", "string"), Column("status", "string"), Column("wait_seconds", "float"),
    Column("wait_business_seconds", "float"), Column("amount", "float"), Column("currency", "string"),
    Column("lead_created_at", "time"),
)  # fmt: skip
EXTRA: dict[str, tuple[Column, ...]] = {
    "decisions": (
        Column("via", "string", True), Column("reason", "string", True), Column("target", "string", True),
        Column("owner_kind", "string", True), Column("strategy_state", "string", True),
        Column("considered", "json", True), Column("skipped", "json", True), Column("unreadable", "json", True),
        Column("why", "string", True),
    ),
    "sla": (
        Column("ladder_step", "int", True), Column("due_at", "time", True), Column("deadline", "time", True),
        Column("late_s", "float", True), Column("within_sla", "bool", True), Column("observed", "string", True),
        Column("note", "string", True), Column("error", "string", True),
    ),
    "outcomes": (),
    "notifications": (
        Column("channel", "string", True), Column("message", "string", True), Column("recipient", "string", True),
        Column("error", "string", True),
    ),
}  # fmt: skip
DATA = Column("data", "json")


def columns(dataset: str) -> tuple[Column, ...]:
    """The columns of a dataset's export, in order: the typed ones, the dataset's own, then ``data``."""
    return (*COMMON, *EXTRA[dataset], DATA)


def rows(events: Iterable[LedgerEvent], cols: Sequence[Column]) -> Iterator[list[Any]]:
    """Each event as one row of ``cols``' values."""
    for event in events:
        yield [col.value(event) for col in cols]


def write_csv(path: Path, cols: Sequence[Column], values: Iterable[list[Any]]) -> int:
    """A header row, then one row per event: times in ISO 8601 UTC, empty for missing, true/false, JSON text."""
    count = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([c.name for c in cols])
        for row in values:
            writer.writerow([csv_cell(v) for v in row])
            count += 1
    return count


def csv_cell(value: Any) -> Any:
    """One value as a CSV cell, the same in the CLI's file and the dashboard's download."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def write_parquet(path: Path, cols: Sequence[Column], values: Iterable[list[Any]]) -> int:
    """Typed columns (times as UTC timestamps in microseconds), one row group per :data:`ROWS_PER_GROUP` rows."""
    import pyarrow as pa  # pyarrow loads for Parquet exports only
    import pyarrow.parquet as pq  # the same

    types = {"string": pa.string(), "json": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
             "time": pa.timestamp("us", tz="UTC")}
    schema = pa.schema([pa.field(c.name, types[c.type]) for c in cols])
    count = 0
    with pq.ParquetWriter(str(path), schema, compression="zstd") as writer:
        chunk: list[list[Any]] = []
        for row in values:
            chunk.append(row)
            if len(chunk) >= ROWS_PER_GROUP:
                count += _write_group(writer, schema, chunk)
                chunk = []
        if chunk or count == 0:
            count += _write_group(writer, schema, chunk)
    return count


def _write_group(writer: Any, schema: Any, chunk: list[list[Any]]) -> int:
    import pyarrow as pa  # pyarrow loads for Parquet exports only

    arrays = {field.name: [row[i] for row in chunk] for i, field in enumerate(schema)}
    writer.write_table(pa.Table.from_pydict(arrays, schema=schema))
    return len(chunk)


def parse_when(value: str | None, option: str, now: datetime | None = None) -> datetime | None:
    """As :func:`worker.cli.when.parse_when`; None stays None (an open end)."""
    return None if value is None else when.parse_when(value, option, now)


def open_for_reading(database_url: str | None = None) -> Ledger | None:
    """The ledger at ``database_url`` (default ``DATABASE_URL``, else ``./var/ledger.sqlite3``), as it is, not migrated;
    None when it is a SQLite file that does not exist (reading must not create one)."""
    from sqlalchemy.engine import make_url  # SQLAlchemy loads for the commands that read the ledger only

    from worker.ledger.database import create_ledger_engine, normalise_url  # the same
    from worker.ledger.database import database_url as default_url  # the same
    from worker.ledger.ledger import Ledger  # the same

    url = normalise_url(database_url) if database_url else default_url()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        name = parsed.database or ""
        if name and name != ":memory:" and not name.startswith("file:") and not Path(name).expanduser().exists():
            return None
    return Ledger(create_ledger_engine(url))


T = TypeVar("T")


def _ticking(events: Iterable[T], tick: Tick) -> Iterator[T]:
    """Pass ``events`` through, telling the progress display every 1,000."""
    n = 0
    for n, event in enumerate(events, 1):
        if n % 1000 == 0:
            tick(n, n)
        yield event
    tick(n, n)


def export(
    dataset: Annotated[str, typer.Argument(help="decisions, sla, outcomes or notifications.")],
    out_file: Annotated[Path, typer.Option("--out", "-o", help="The file to write.")],
    format: Annotated[str, typer.Option("--format", "-f", help="csv or parquet.")] = "csv",
    since: Annotated[str | None, typer.Option(help="From this time on: a date, an ISO 8601 time or an age (30d).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (exclusive); same forms.")] = None,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", envvar="DATABASE_URL", show_envvar=True,
        help="The ledger's database; unset: the embedded SQLite file ./var/ledger.sqlite3.")] = None,
) -> None:
    """Export one kind of ledger event for a warehouse: one row per event, stable columns (docs/ledger.md)."""
    if dataset not in DATASETS:
        err.print(f"dataset: '{dataset}' is not one of {', '.join(DATASETS)}")
        raise typer.Exit(2)
    if format not in FORMATS:
        err.print(f"--format: '{format}' is not one of {', '.join(FORMATS)}")
        raise typer.Exit(2)
    start, end = parse_when(since, "--since"), parse_when(until, "--until")
    if start is not None and end is not None and end <= start:
        err.print("--until must be later than --since")
        raise typer.Exit(2)
    ledger = open_for_reading(database_url)
    if ledger is None:
        err.print("no ledger here yet (the SQLite file does not exist): set DATABASE_URL or --database-url")
        raise typer.Exit(1)
    from sqlalchemy.exc import SQLAlchemyError  # SQLAlchemy loads for the commands that read the ledger only

    cols = columns(dataset)
    partial = out_file.with_name(out_file.name + ".partial")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        total = ledger.count(start, end, DATASETS[dataset])
        writer = write_csv if format == "csv" else write_parquet
        with progress(f"export {dataset}", total, "events") as tick:
            events = _ticking(ledger.between(start, end, DATASETS[dataset], batch_size=ROWS_PER_GROUP), tick)
            count = writer(partial, cols, rows(events, cols))
        os.replace(partial, out_file)
    except SQLAlchemyError as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        err.print(f"the ledger could not be read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                  "is DATABASE_URL right, and has `leadroute db upgrade` run?")
        raise typer.Exit(1) from None
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    finally:
        ledger.close()
    period = f" from {start.isoformat()}" if start else ""
    period += f" until {end.isoformat()}" if end else ""
    out.print(f"{count:,} {dataset} event(s){period} written to {out_file} ({format}, {len(cols)} columns)")
