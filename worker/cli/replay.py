"""``leadroute replay``: what a candidate routing config would have done to the leads already routed.

``leadroute replay --config candidate.yaml [--since 30d | --leads export.csv ...] [--against current|CONFIG]
[--format table|json|html]``. The leads come from the ledger (or ``leadroute export`` files); the
replay itself is :mod:`worker.replay`. SQLAlchemy loads only when the ledger is read, Plotly only
for HTML: the other commands start without them.
"""

from __future__ import annotations

import contextlib
import gc
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer
from rich.console import Console
from rich.markup import escape

from worker.cli.output import emit
from worker.cli.progress import progress
from worker.cli.when import parse_when

if TYPE_CHECKING:
    from worker.config import RoutingConfig
    from worker.ledger.events import LedgerEvent

out = Console(highlight=False, soft_wrap=not sys.stdout.isatty())
err = Console(stderr=True, highlight=False, soft_wrap=True)

FORMATS = ("table", "json", "html")
DEFAULT_HTML = Path("leadroute-replay.html")
TICK_EVERY = 2000


def _config(path: Path, option: str) -> RoutingConfig:
    from worker.config import ConfigError, load_config  # pydantic and the schema load when `replay` runs, not with the CLI

    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(f"[red]error[/red] {option}: {escape(' '.join(str(problem).splitlines()))}")
        raise typer.Exit(1) from None
    except OSError as exc:
        err.print(f"{option}: {exc}")
        raise typer.Exit(1) from None


def _ledger_events(database_url: str | None, start: datetime | None, end: datetime | None) -> list[LedgerEvent]:
    """The decisions and releases between ``start`` and ``end``, read from the ledger with progress."""
    from sqlalchemy.exc import SQLAlchemyError  # SQLAlchemy loads for the commands that read the ledger only

    from worker.cli.export import open_for_reading  # the same
    from worker.replay.history import READ_KINDS  # the same reason: the replay package loads when used

    ledger = open_for_reading(database_url)
    if ledger is None:
        err.print("no ledger here yet (the SQLite file does not exist): set DATABASE_URL or --ledger, or pass --leads")
        raise typer.Exit(1)
    events: list[LedgerEvent] = []
    try:
        total = ledger.count(start, end, READ_KINDS)
        with progress("reading the ledger", total, "events") as tick:
            for event in ledger.between(start, end, READ_KINDS, batch_size=10_000):
                events.append(event)
                if not len(events) % TICK_EVERY:
                    tick(len(events), len(events))
            tick(len(events), len(events))
    except SQLAlchemyError as exc:
        err.print(f"the ledger could not be read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                  "is DATABASE_URL right, and has `leadroute db upgrade` run?")
        raise typer.Exit(1) from None
    finally:
        ledger.close()
    return events


def _open_changes(path: Path | None) -> TextIO | None:
    if path is None:
        return None
    try:
        return path.open("w", encoding="utf-8")
    except OSError as exc:
        err.print(f"--changes: {exc}")
        raise typer.Exit(1) from None


def replay(
    config: Annotated[Path, typer.Option("--config", "-c", help="The candidate routing config YAML.")],
    since: Annotated[str | None, typer.Option(
        help="Replay the leads first routed from this time on: an age (30d, 12h), a date or an ISO 8601 time. "
        "Default 30d from the ledger; every lead of a --leads file.")] = None,
    until: Annotated[str | None, typer.Option(help="... and before this time (exclusive); same forms; default now.")] = None,
    leads: Annotated[list[Path] | None, typer.Option(
        "--leads", "-l", help="`leadroute export decisions` CSV instead of the ledger; repeat it with an `export sla` "
        "file for the acknowledgements that free loads.")] = None,
    against: Annotated[str, typer.Option(
        help="The baseline: `current` (the config in force: $LEADROUTE_CONFIG or config/routing.yaml) or a config file."
    )] = "current",
    format: Annotated[str, typer.Option("--format", "-f", help="table, json or html.")] = "table",
    as_json: Annotated[bool, typer.Option("--json", help="The same as --format json.")] = False,
    out_file: Annotated[Path | None, typer.Option("--out", "-o", help=f"Write here (html default: {DEFAULT_HTML}).")] = None,
    warmup: Annotated[str, typer.Option(
        help="How much history before --since to read for the starting loads and rotations (an age, e.g. 30d).")] = "30d",
    samples: Annotated[int, typer.Option(help="Sample leads shown per kind of change.", min=0, max=1000)] = 5,
    changes_file: Annotated[Path | None, typer.Option(
        "--changes", help="Also write every lead that changes to this file, one JSON object a line (as the samples).")] = None,
    database_url: Annotated[str | None, typer.Option(
        "--ledger", "--database-url", envvar="DATABASE_URL", show_envvar=True,
        help="The ledger's database; unset: the embedded SQLite file ./var/ledger.sqlite3.")] = None,
    record: Annotated[bool, typer.Option(
        "--record/--no-record", help="Keep the summary in the ledger read (the dashboard's config page shows it); "
        "a ledger that cannot be written only warns.")] = True,
) -> None:
    """Replay history under a candidate config and under the config in force, and show what would change.

    Exit status: 0 replayed; 1 a config, the ledger or a file could not be read; 2 a bad option,
    or some rows of a --leads file unreadable (the rest replayed).
    """
    from worker.config import config_path  # the config loads with the command only
    from worker.config.diff import diff_configs  # the replay's modules load with the command only
    from worker.replay import Comparison, read_history, replay, start_state  # the same
    from worker.replay.sources import BadRow, ExportFileError, read_export  # the same

    format = "json" if as_json else format
    if format not in FORMATS:
        err.print(f"--format: {format!r} is not one of {', '.join(FORMATS)}")
        raise typer.Exit(2)
    now = datetime.now(UTC)
    start = parse_when(since, "--since", now) if since else (None if leads else parse_when("30d", "--since", now))
    end = parse_when(until, "--until", now) if until else None
    if start is not None and end is not None and end <= start:
        err.print(f"--until ({end.isoformat()}) must be after --since ({start.isoformat()})")
        raise typer.Exit(2)
    lookback = now - parse_when(warmup, "--warmup", now)
    baseline_path = config_path() if against == "current" else Path(against)
    candidate = _config(config, "--config")
    baseline = _config(baseline_path, "--against")
    changes = _open_changes(changes_file)  # before the long read: a path that cannot be written fails at once
    began = time.perf_counter()
    bad: list[BadRow] = []
    if leads:
        try:
            events: list[Any] = [e for path in leads for e in read_export(path, bad)]
        except ExportFileError as exc:
            err.print(str(exc))
            raise typer.Exit(1) from None
        source = ", ".join(str(p) for p in leads)
    else:
        first = None if start is None else start - lookback
        events = _ledger_events(database_url, first, end)
        source = "the ledger"
    for row in bad:
        err.print(f"[red]skipped[/red] {escape(str(row))}")
    read_s = time.perf_counter() - began
    gc.freeze()  # the history lives to the end: the collector need not walk its million objects on every pass
    collecting = gc.isenabled()
    gc.disable()  # nor look for cycles among the new ones: grouping and routing make none (tests/replay checks)
    try:
        history = read_history(events, start, end)
        del events
        state = start_state(history.earlier, start, baseline)
        comparison = Comparison(baseline, candidate, samples, None if changes is None else
                                lambda change: changes.write(json.dumps(change, ensure_ascii=False) + "\n"))
        with progress("replaying", len(history.leads), "leads") as tick, changes or contextlib.nullcontext():
            def visit(*decided: Any) -> None:
                comparison.add(*decided)
                if not comparison.leads % TICK_EVERY:
                    tick(comparison.leads, comparison.leads)

            replay(history.leads, baseline, candidate, state, visit)
            tick(comparison.leads, comparison.leads)
    finally:
        if collecting:
            gc.enable()
        gc.unfreeze()
    meta = {
        "source": source, "since": start.isoformat() if start else None, "until": end.isoformat() if end else None,
        "baseline": {"file": str(baseline_path), "version": baseline.version_hash},
        "candidate": {"file": str(config), "version": candidate.version_hash},
        "events_read": history.events, "decisions_skipped": history.skipped + len(bad),
        "start_state": state.to_dict(),
    }
    result = comparison.to_dict(diff_configs(baseline, candidate), meta)
    err.print(f"replayed {comparison.leads:,} leads in {time.perf_counter() - began - read_s:.2f} s "
              f"(reading {read_s:.2f} s)")
    _write(result, format, out_file)
    if record and not leads:
        _record(database_url, result)
    if bad:
        raise typer.Exit(2)


def _record(database_url: str | None, result: dict[str, Any]) -> None:
    """Keep the summary in the ledger; never fails the replay (a CI job may read through a read-only role)."""
    from sqlalchemy.exc import SQLAlchemyError  # SQLAlchemy loads for the commands that read the ledger only

    from worker.cli.export import open_for_reading  # the same
    from worker.replay.render import headline  # the renderers load with the command only

    ledger = open_for_reading(database_url)
    if ledger is None:
        return
    try:
        ledger.save_replay(result, headline(result))
    except SQLAlchemyError as exc:
        err.print(f"the summary was not kept in the ledger ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                  "`leadroute db upgrade` adds its table, --no-record skips it")
    finally:
        ledger.close()


def _write(result: dict[str, Any], format: str, out_file: Path | None) -> None:
    from worker.replay.render import print_table, render_html  # the renderers load with the command only

    if format == "json":
        emit(json.dumps(result, ensure_ascii=False, indent=2) + "\n", out_file, err)
        return
    if format == "html":
        path = out_file or DEFAULT_HTML
        path.write_text(render_html(result), encoding="utf-8")
        out.print(f"wrote {path} ({path.stat().st_size / 1024:,.0f} KiB)")
        return
    if out_file is not None:
        with out_file.open("w", encoding="utf-8") as handle:
            print_table(result, Console(file=handle, highlight=False, width=140))
        err.print(f"wrote {out_file}")
        return
    print_table(result, out)

