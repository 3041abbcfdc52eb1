"""``leadroute report``: the routing ledger's figures over a period, as terminal tables, JSON or one HTML file.

SQLAlchemy, numpy and Plotly load inside the command, not with the CLI: every other command
starts without them.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from worker.cli.output import emit
from worker.cli.when import parse_when

if TYPE_CHECKING:
    from worker.reports.model import ReportSettings

out = Console(highlight=False, width=100)
err = Console(stderr=True, highlight=False, soft_wrap=True)

FORMATS = ("table", "json", "html")
DEFAULT_HTML = Path("leadroute-report.html")


def _settings(config: Path | None) -> ReportSettings:
    """Pools, weights and SLA windows from the routing config; without one, the report still runs."""
    from worker.reports import ReportSettings, settings_from_config  # the report model loads for `report` only

    path = config or Path(os.environ.get("LEADROUTE_CONFIG", "config/routing.yaml"))
    if config is None and not path.is_file():
        err.print(f"no routing config at {path}: pool weights count as 1 and SLA windows are unknown (pass --config)")
        return ReportSettings()
    from worker.config import ConfigError, load_config  # the config schema (~0.3 s) loads only when there is a config

    try:
        return settings_from_config(load_config(path))
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(f"[red]error[/red] {escape(str(problem))}")
        raise typer.Exit(1) from None
    except OSError as exc:
        err.print(f"--config: {exc}")
        raise typer.Exit(1) from None


def report(
    since: Annotated[str, typer.Option(help="Start: an age (30d, 12h), a date or an ISO 8601 time.")] = "30d",
    until: Annotated[str | None, typer.Option(help="End (exclusive), same forms; default now.")] = None,
    by: Annotated[str, typer.Option(help="Group by rule, pool, rep, tier, source, config_version or arm.")] = "rule",
    format: Annotated[str, typer.Option("--format", "-f", help="table, json or html.")] = "table",
    as_json: Annotated[bool, typer.Option("--json", help="The same as --format json, as every read command takes.")] = False,
    out_file: Annotated[Path | None, typer.Option("--out", "-o", help=f"Write here (html default: {DEFAULT_HTML}).")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Routing config for pool weights and SLA windows (default: $LEADROUTE_CONFIG or "
        "config/routing.yaml).")] = None,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", envvar="DATABASE_URL", show_envvar=True,
        help="The ledger's database; unset: the embedded SQLite file ./var/ledger.sqlite3.")] = None,
    shadow: Annotated[bool, typer.Option(
        "--shadow", help="Compare live and shadow decisions on the same leads instead (docs/shadow.md).")] = False,
) -> None:
    """Speed to lead, SLA compliance, fairness, acceptance, outcomes and rule coverage from the routing ledger."""
    # the report's dependencies (SQLAlchemy, numpy) load for `report` only
    from worker.ledger.database import create_ledger_engine, display_url, stamped_revision
    from worker.reports import DIMENSIONS, Period, build_report

    format = "json" if as_json else format
    if format not in FORMATS:
        err.print(f"--format: {format!r} is not one of {', '.join(FORMATS)}")
        raise typer.Exit(2)
    if by not in DIMENSIONS:
        err.print(f"--by: {by!r} is not one of {', '.join(DIMENSIONS)}")
        raise typer.Exit(2)
    now = datetime.now(UTC)
    start, end = parse_when(since, "--since", now), parse_when(until, "--until", now) if until else now
    if end <= start:
        err.print(f"--until ({end.isoformat()}) must be after --since ({start.isoformat()})")
        raise typer.Exit(2)
    if shadow:
        _shadow_report(database_url, Period(start, end), format, out_file)
        return
    settings = _settings(config)
    engine = create_ledger_engine(database_url)
    try:
        if stamped_revision(engine) is None:
            err.print(f"{display_url(engine.url)}: no ledger here (run `leadroute db upgrade`, or point --database-url at one)")
            raise typer.Exit(1)
        with _Progress() as tick:
            result = build_report(engine, Period(start, end), by, settings, progress=tick, now=now)
        arms = _arms(engine, Period(start, end), config) if by == "arm" else None
    finally:
        engine.dispose()
    _write(result if arms is None else _WithArms(result, arms), format, out_file)


def _arms(engine: Any, period: Any, config: Path | None) -> Any:
    """``--by arm``: each split's arms compared, with intervals and a verdict (worker/reports/arms.py)."""
    from worker.reports.arms import compare_arms, orders_from_config  # loads for --by arm only

    orders = {}
    path = config or Path(os.environ.get("LEADROUTE_CONFIG", "config/routing.yaml"))
    if path.is_file():
        from worker.config import ConfigError, load_config  # the config's arm order picks each baseline

        try:
            orders = orders_from_config(load_config(path))
        except (ConfigError, OSError):
            orders = {}  # _settings has reported it already
    return compare_arms(engine, period, orders)


class _WithArms:
    """The report with the arm comparison: its JSON gains ``arms``, the table and HTML a section."""

    def __init__(self, report: Any, arms: Any) -> None:
        self.report, self.arms = report, arms

    def to_dict(self) -> dict[str, Any]:
        return {**self.report.to_dict(), "arms": self.arms.to_dict()}


def _shadow_report(database_url: str | None, period: Any, format: str, out_file: Path | None) -> None:
    """``--shadow``: live and shadow decisions compared on the same leads (worker/reports/shadow.py)."""
    # the ledger and the comparison load for --shadow only
    from worker.ledger.database import create_ledger_engine, display_url, stamped_revision
    from worker.reports.shadow import render_html, render_lines, shadow_report

    engine = create_ledger_engine(database_url)
    try:
        if stamped_revision(engine) is None:
            err.print(f"{display_url(engine.url)}: no ledger here (run `leadroute db upgrade`, or point --database-url at one)")
            raise typer.Exit(1)
        result = shadow_report(engine, period)
    finally:
        engine.dispose()
    if format == "json":
        import json  # only the json format needs it

        text = json.dumps(result.to_dict(), ensure_ascii=False, indent=1) + "\n"
    elif format == "html":
        text = render_html(result)
        out_file = out_file or DEFAULT_HTML.with_name("leadroute-shadow.html")
    else:
        text = "\n".join(render_lines(result)) + "\n"
    emit(text, out_file, err)


class _Progress:
    """A progress bar on stderr while the passes run, only when stderr is a terminal (never in pipes or logs)."""

    def __enter__(self) -> Any:
        self.bar: Any = None
        if not sys.stderr.isatty():
            return None
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # drawn only on a terminal

        self.bar = Progress(TextColumn("reading the ledger"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TextColumn("{task.description}"), TimeElapsedColumn(), console=err, transient=True)
        self.bar.start()
        self.task = self.bar.add_task("", total=None)

        def tick(done: int, total: int, name: str) -> None:
            self.bar.update(self.task, completed=done, total=total, description=name)

        return tick

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _write(result: Any, format: str, out_file: Path | None) -> None:
    arms = result.arms if isinstance(result, _WithArms) else None
    if arms is not None and format != "json":
        result = result.report
    if format == "json":
        import json  # only the json format needs it

        emit(json.dumps(result.to_dict(), ensure_ascii=False, indent=1) + "\n", out_file, err)
        return
    if format == "html":
        from worker.reports.html import render as render_html  # Plotly loads for the html format only

        target = out_file or DEFAULT_HTML
        page = render_html(result)
        if arms is not None:
            from worker.reports.arms import render_html as arms_html  # --by arm only

            page = page.replace("</body>", arms_html(arms) + "</body>", 1)
        target.write_text(page, encoding="utf-8")
        err.print(f"wrote {target} ({target.stat().st_size // 1024:,} KiB, opens offline)")
        return
    from worker.reports.arms import render_lines as arms_lines  # plain lines, beside the tables
    from worker.reports.table import render as render_table  # rich tables for the table format only

    lines = [] if arms is None else ["", *arms_lines(arms)]
    if out_file is None:
        for part in render_table(result):
            out.print(part)
        for line in lines:
            out.print(escape(line))
        return
    with out_file.open("w", encoding="utf-8") as handle:
        console = Console(file=handle, width=100, highlight=False, color_system=None)
        for part in render_table(result):
            console.print(part)
        for line in lines:
            console.print(escape(line))
    err.print(f"wrote {out_file}")
