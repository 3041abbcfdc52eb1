"""``leadroute db``: the routing ledger's database: migrate it, see where it stands, prune old history.

SQLAlchemy and Alembic load inside the commands, not with the CLI: every other command
starts without them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console

from worker.cli.progress import progress
from worker.cli.when import parse_when

app = typer.Typer(
    help="The routing ledger's database: migrations, status, retention (DATABASE_URL; unset: ./var/ledger.sqlite3).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

UrlOption = Annotated[
    str | None,
    typer.Option("--database-url", envvar="DATABASE_URL", show_envvar=True,
                 help="The ledger's database; unset: the embedded SQLite file ./var/ledger.sqlite3."),
]


@app.command()
def upgrade(database_url: UrlOption = None) -> None:
    """Migrate the ledger's database to the newest schema (the worker also does this on start-up)."""
    # SQLAlchemy and Alembic load for the db commands only
    from worker.ledger import migrate
    from worker.ledger.database import create_ledger_engine, display_url

    engine = create_ledger_engine(database_url)
    try:
        before = migrate.current_revision(engine)
        with progress("db upgrade", migrate.pending(engine), "migrations") as tick:
            applied: list[str] = []
            now = migrate.upgrade(engine, on_step=lambda rev: (applied.append(rev), tick(len(applied), len(applied))))
    finally:
        engine.dispose()
    where = display_url(engine.url)
    if before == now:
        out.print(f"{where}: already at revision {now}")
    else:
        out.print(f"{where}: migrated from {before or 'an empty database'} to revision {now}")


@app.command()
def status(database_url: UrlOption = None) -> None:
    """Where the ledger is, its schema revision against this version's, and how many events it holds."""
    # SQLAlchemy and Alembic load for the db commands only
    from worker.ledger.database import create_ledger_engine, display_url
    from worker.ledger.ledger import Ledger
    from worker.ledger.migrate import current_revision, head_revision

    engine = create_ledger_engine(database_url)
    try:
        current, head = current_revision(engine), head_revision()
        out.print(f"database: {display_url(engine.url)}")
        out.print(f"revision: {current or 'none (never migrated)'}; this version's: {head}")
        if current is not None:
            out.print(f"events:   {Ledger(engine).count():,}")
    finally:
        engine.dispose()
    if current != head:
        err.print("the schema is behind: run `leadroute db upgrade`")
        raise typer.Exit(1)


@app.command()
def prune(
    before: Annotated[str, typer.Option(
        "--before", help="Delete events before this: a date, an ISO 8601 time or an age such as 365d.")],
    database_url: UrlOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be deleted.")] = False,
) -> None:
    """Delete ledger events older than a date (retention). Prints how many first, and asks unless --yes."""
    cutoff = parse_before(before)
    # SQLAlchemy and Alembic load for the db commands only
    from worker.ledger.database import create_ledger_engine, display_url
    from worker.ledger.ledger import Ledger
    from worker.ledger.migrate import current_revision

    engine = create_ledger_engine(database_url)
    try:
        if current_revision(engine) is None:
            err.print(f"{display_url(engine.url)}: no ledger here (run `leadroute db upgrade` first)")
            raise typer.Exit(1)
        ledger = Ledger(engine)
        count = ledger.count(until=cutoff)
        out.print(f"{count:,} event(s) before {cutoff.isoformat()} in {display_url(engine.url)}")
        if dry_run or count == 0:
            return
        if not yes and not typer.confirm(f"Delete {count:,} event(s)?", default=False):
            err.print("nothing deleted")
            raise typer.Exit(1)
        deleted = ledger.prune(cutoff)
        out.print(f"deleted {deleted:,} event(s)")
    finally:
        engine.dispose()


@app.command()
def warm(
    since: Annotated[str, typer.Option(help="From: an age (90d), a date or an ISO 8601 time; whole UTC days from then.")
                     ] = "90d",
    by: Annotated[list[str] | None, typer.Option(
        "--by", help="Groupings to keep pieces for (repeatable; default rule). Each --by a report uses has its own.")] = None,
    database_url: UrlOption = None,
) -> None:
    """Read the whole UTC days since --since into the report's day cache, so the next `leadroute report` reads only
    what changed (the first report over a day does the same on its own; see docs/reports.md). The pieces kept do
    not depend on the routing config: every report grouped the same way reads them, whatever its SLA windows."""
    start = parse_when(since, "--since")
    # SQLAlchemy, numpy and the report load for this command only
    from worker.ledger.database import create_ledger_engine, display_url
    from worker.ledger.days import day_of, day_start
    from worker.ledger.migrate import current_revision
    from worker.reports import DIMENSIONS, Period, ReportSettings, build_report

    groupings = by or ["rule"]
    unknown = [b for b in groupings if b not in DIMENSIONS]
    if unknown:
        err.print(f"--by: {', '.join(unknown)} not one of {', '.join(DIMENSIONS)}")
        raise typer.Exit(2)
    settings = ReportSettings()  # the windows are applied when a report is finished, never kept in a piece
    today = day_start(day_of(datetime.now(UTC)))
    first = day_start(day_of(start)) + (timedelta(days=1) if day_start(day_of(start)) < start else timedelta(0))
    engine = create_ledger_engine(database_url)
    try:
        if current_revision(engine) is None:
            err.print(f"{display_url(engine.url)}: no ledger here (run `leadroute db upgrade` first)")
            raise typer.Exit(1)
        if first >= today:
            out.print("no whole day to read before today")
            return
        period = Period(first, today)
        with progress("db warm", 7 * len(groupings), "passes") as tick:
            for i, grouping in enumerate(groupings):
                build_report(engine, period, grouping, settings, progress=lambda done, _all, _n, i=i: tick(7 * i + done))
        out.print(f"{display_url(engine.url)}: {int(period.days)} day(s) from {first.date()} kept for "
                  f"--by {', '.join(groupings)}")
    finally:
        engine.dispose()


def parse_before(value: str, now: datetime | None = None) -> datetime:
    """``2025-01-01`` (midnight UTC), ``2025-01-01T12:00:00+02:00`` (naive means UTC) or ``365d`` (that long ago)."""
    return parse_when(value, "--before", now)
