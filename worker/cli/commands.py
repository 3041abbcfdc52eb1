"""The ``leadroute`` command line."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from worker.cli.db import app as db_app
from worker.cli.export import export as export_command
from worker.cli.progress import progress
from worker.cli.rebuild import rebuild as rebuild_command
from worker.cli.replay import replay as replay_command
from worker.cli.report import report as report_command
from worker.cli.ui import app as ui_app

if TYPE_CHECKING:
    from worker.config import RoutingConfig

# The config schema (pydantic), the routing engine and its checks load inside the commands that use them,
# not here: `leadroute report`, `db`, `--help` and the rest start without them (docs/reports.md "Speed").
DEFAULT_OOO_DAYS = 7  # worker.routing.checks.DEFAULT_OOO_DAYS (tests/cli/test_startup.py holds them equal)

app = typer.Typer(
    help="leadroute: route CRM leads to the right rep in milliseconds, and enforce SLAs.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
)
app.add_typer(db_app, name="db")
app.add_typer(ui_app, name="ui")
app.command(name="report")(report_command)
app.command(name="replay")(replay_command)
app.command(name="rebuild")(rebuild_command)
app.command(name="export")(export_command)
# one message, one line: text never wraps when stdout is not a terminal (grep, CI annotations)
out = Console(highlight=False, soft_wrap=not sys.stdout.isatty())
err = Console(stderr=True, highlight=False, soft_wrap=True)


def package_version() -> str:
    """The installed leadroute's version (``unknown`` when run from a tree that was never installed)."""
    from importlib import metadata  # for --version only: every other command starts without it

    try:
        return metadata.version("leadroute")
    except metadata.PackageNotFoundError:
        return "unknown"


def _print_version(value: bool) -> None:
    if not value:
        return
    from worker.config import ConfigError, config_path, load_config  # the config loads for --version, not every command

    path = config_path()
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        config = f"config {path}: invalid ({len(exc.problems)} error(s); run `leadroute check {path}`)"
    else:
        config = f"config {path}: version {loaded.version_hash}"
    out.print(escape(f"leadroute {package_version()}"))
    out.print(escape(config))
    raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the package version and the version hash of the default config ($LEADROUTE_CONFIG or "
        "config/routing.yaml), and exit.")] = False,
) -> None:
    """leadroute: route CRM leads to the right rep in milliseconds, and enforce SLAs."""


def _one_line(text: object) -> str:
    """A message on one line, whatever it quotes (a YAML snippet, a multi-line value): grep and CI read lines."""
    return " ".join(str(text).splitlines())


def _load(path: Path, today: date | None = None) -> RoutingConfig:
    from worker.config import ConfigError, load_config  # pydantic and the schema load for the commands that read a config

    try:
        config = load_config(path, today=today)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(f"[red]error[/red] {escape(_one_line(problem))}")
        err.print(f"{len(exc.problems)} error(s); the configuration was not loaded.")
        raise typer.Exit(1) from None
    for warning in config.warnings:
        err.print(f"[yellow]warning[/yellow] {escape(_one_line(warning))}")
    return config


def _problem(problem: Any) -> dict[str, Any]:
    return {"file": problem.file, "line": problem.line or None, "path": problem.path or None,
            "message": _one_line(problem.message), "text": _one_line(problem)}


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")


@app.command()
def check(
    config: Annotated[Path, typer.Argument(help="Routing config YAML.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (see the README) instead of text.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when there is any warning, not only errors (for CI).")] = False,
    ooo_days: Annotated[int, typer.Option(
        "--ooo-days", min=1, help="Warn about pools whose members are all away within this many days.")] = DEFAULT_OOO_DAYS,
    at: Annotated[str | None, typer.Option(help="Check as of this time (ISO 8601) instead of now.")] = None,
) -> None:
    """Validate a routing config and run the static checks (docs/rule-checks.md): shadowed rules, coverage
    gaps, overlapping territories, empty pools, reps no lead reaches. Exit 0 when valid (warnings printed),
    1 listing every error, one line each; with --strict, 1 as well when there is any warning."""
    # the config schema and the checks (which route test leads) load for `check` only
    from worker.config import ConfigError, load_config
    from worker.config.yamlpos import read_text
    from worker.routing.checks import CONFIG as CONFIG_CHECK
    from worker.routing.checks import kind_of, run_checks

    now = _parse_at(at) or datetime.now(UTC)
    if not as_json:
        loaded = _load(config, today=now.date())
        findings = run_checks(loaded, read_text(config), now, ooo_days)
        for finding in findings:
            err.print(f"[yellow]warning[/yellow] {escape(_one_line(finding))}")
        count = len(loaded.warnings) + len(findings)
        if strict and count:
            err.print(f"{count} warning(s); --strict makes them fatal.")
            raise typer.Exit(1)
        out.print(escape(f"{config}: OK (version {loaded.version_hash}): {_counts_line(loaded)}"))
        return
    try:
        loaded = load_config(config, today=now.date())
    except ConfigError as exc:
        _print_json({"config": str(config), "valid": False, "version": None, "counts": None, "fallback": None,
                     "errors": [_problem(p) | {"check": CONFIG_CHECK} for p in exc.problems], "warnings": []})
        raise typer.Exit(1) from None
    model = loaded.model
    findings = run_checks(loaded, read_text(config), now, ooo_days)
    warnings = [_problem(w) | {"check": kind_of(w)} for w in loaded.warnings]
    warnings += [_problem(f.problem) | {"check": f.kind} for f in findings]
    _print_json({
        "config": str(config), "valid": True, "version": loaded.version_hash,
        "counts": {"reps": len(model.reps), "pools": len(model.pools), "territories": len(model.territories),
                   "rules": len(model.rules)},
        "fallback": {"queue": model.fallback.queue} if model.fallback.queue else {"rep": model.fallback.rep},
        "errors": [], "warnings": warnings,
    })
    if strict and warnings:
        raise typer.Exit(1)


def _counts_line(loaded: RoutingConfig) -> str:
    model = loaded.model
    return (f"{len(model.reps)} reps, {len(model.pools)} pools, {len(model.territories)} territories, "
            f"{len(model.rules)} rules, "
            f"fallback {'queue ' + model.fallback.queue if model.fallback.queue else 'rep ' + str(model.fallback.rep)}")


def _parse_at(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        err.print(f"--at: '{value}' is not an ISO 8601 date-time, e.g. 2026-12-01T15:00:00Z")
        raise typer.Exit(1) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


SCREENFUL = 50  # decisions shown in full when stdout is not a terminal (a terminal: its height)
TICK_EVERY = 256  # rows between progress updates


@app.command()
def simulate(
    config: Annotated[Path, typer.Option("--config", "-c", help="Routing config YAML.")],
    leads: Annotated[Path, typer.Option("--leads", "-l", help="Leads: CSV with a header row, or JSON Lines.")],
    format: Annotated[str, typer.Option("--format", "-f", help="table or jsonl.")] = "table",
    at: Annotated[str | None, typer.Option(help="Routing time (ISO 8601) for leads without created_at.")] = None,
    loads: Annotated[Path | None, typer.Option(help="JSON {rep_id: open_leads} starting loads.")] = None,
    summary_only: Annotated[bool, typer.Option("--summary", help="Print the summary only, no decisions.")] = False,
    out_file: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Write every decision here (jsonl: JSON Lines; table: tab-separated lead, owner, rule, "
        "reason); the summary still goes to stdout.")] = None,
) -> None:
    """Route an export of leads offline and report where each would go, and why.

    Rows stream through one at a time, so any size of file runs in the same memory. ``table``
    prints the summary first, then the decisions when they fit on a screen; otherwise it says
    how to get every row (``--format jsonl`` or ``--out FILE``).

    Exit status: 0 all rows routed; 1 bad config or file; 2 some rows unreadable (the rest routed).
    """
    # the routing engine loads for `simulate` only
    from worker.cli.simulate import LeadFileError, RowError, Summary, read_leads, read_loads, route_rows

    if format not in ("table", "jsonl"):
        err.print(f"--format: '{format}' is not one of table, jsonl")
        raise typer.Exit(1)
    loaded = _load(config)
    when = _parse_at(at)
    summary = Summary(loaded)
    screen = max(out.size.height - 20, 10) if out.is_terminal else SCREENFUL
    shown: list[Any] | None = [] if format == "table" and not summary_only and out_file is None else None
    to_stdout = format == "jsonl" and not summary_only and out_file is None
    write = sys.stdout.write
    try:
        start = read_loads(loads) if loads else None
        rows = read_leads(leads)
        # decisions streaming onto a terminal are their own progress; a bar would tear through them
        drawn = progress("routing leads", rows.size, "leads", off=to_stdout and sys.stdout.isatty())
        with _writer(out_file, format) as emit, drawn as tick:
            for _line, item in route_rows(loaded, rows, at=when, loads=start):
                if isinstance(item, RowError):
                    summary.errors += 1
                    err.print(f"[red]skipped[/red] {escape(str(leads))}:{escape(str(item))}")
                    continue
                summary.add(item)
                if to_stdout:
                    write(_jsonl(item))
                elif emit is not None:
                    emit(item)
                elif shown is not None:
                    shown.append(item)
                    if len(shown) > screen:
                        shown = None
                if not summary.leads % TICK_EVERY:
                    tick(summary.leads, rows.position)
    except LeadFileError as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None
    if format == "table" or summary_only or out_file is not None:
        _print_summary(loaded, summary.to_dict())
        if shown:
            _print_decisions(shown)
        elif format == "table" and not summary_only and out_file is None and summary.leads:
            out.print(f"{summary.leads:,} decisions are more than a screenful, so only the summary is shown; for every "
                      f"row use --format jsonl, or --out FILE")
        if out_file is not None:
            err.print(f"wrote {summary.leads:,} decisions to {escape(str(out_file))}")
    if summary.errors:
        err.print(f"{summary.errors} row(s) could not be read; {summary.leads} routed.")
        raise typer.Exit(2)


def _jsonl(decision: Any) -> str:
    record = decision.to_dict()
    record = {"lead_id": record.pop("lead_id"), **record}
    return json.dumps(record, ensure_ascii=False) + "\n"


@contextmanager
def _writer(path: Path | None, format: str) -> Iterator[Any]:
    """``emit(decision)`` writing every decision to ``--out``, or None without it."""
    if path is None:
        yield None
        return
    try:
        handle = path.open("w", encoding="utf-8")
    except OSError as exc:
        from worker.cli.simulate import LeadFileError  # loaded already by `simulate`, the only caller

        raise LeadFileError(f"--out: {exc}") from None
    with handle:
        if format == "jsonl":
            yield lambda d: handle.write(_jsonl(d))
            return
        handle.write("lead\towner\trule\treason\n")

        def emit(d: Any) -> None:
            handle.write("\t".join(str(v).replace("\t", " ").replace("\n", " ")
                                   for v in (d.lead_id, d.owner, d.rule, d.reason)) + "\n")

        yield emit


def _print_summary(config: RoutingConfig, summary: dict) -> None:
    out.print(f"[bold]Routing simulation[/bold] (config {config.version_hash}): [bold]{summary['leads']:,} leads[/bold], "
              f"{summary['fallback']:,} to the fallback")
    owners = Table(title="Leads per owner")
    owners.add_column("owner")
    owners.add_column("leads", justify="right")
    for owner, n in summary["per_owner"].items():
        owners.add_row(escape(owner), f"{n:,}")
    rules = Table(title="Leads per rule")
    rules.add_column("rule")
    rules.add_column("leads", justify="right")
    for rule, n in summary["per_rule"].items():
        rules.add_row(escape(rule), f"{n:,}")
    out.print(owners)
    out.print(rules)
    for name, pool in summary["pools"].items():
        out.print(_pool_line(name, pool))
        skips = "; ".join(f"{s['rep']} {s['reason']} {s['decisions']:,}" for s in pool["skipped"])
        if skips:
            out.print(f"  passed over (not counted against them): {escape(skips)}")


def _pool_line(name: str, pool: dict) -> str:
    """``pool smb (round_robin): 12 leads; tom 6 of 12 eligible (expected 6.0), ...; max/min 1.00, gini 0.000``."""
    members = ", ".join(
        f"{m['rep']} {m['assigned']:,} of {m['eligible']:,} eligible" + (
            f" (expected {m['expected']:,.1f})" if m["eligible"] else "") for m in pool["members"])
    balance = (f"max/min {pool['max_min']:.2f}" if pool["max_min"] is not None else "max/min -") + (
        f", gini {pool['gini']:.3f}" if pool["gini"] is not None else "")
    return f"pool {escape(name)} ({pool['strategy']}): {pool['decisions']:,} leads; {escape(members)}; {balance}"


def _print_decisions(decisions: list) -> None:
    table = Table(title="Decisions", show_lines=False)
    for name in ("lead", "owner", "rule", "reason"):
        table.add_column(name, overflow="fold")
    for d in decisions:
        table.add_row(*(escape(str(v)) for v in (d.lead_id, d.owner, d.rule, d.reason)))
    out.print(table)


@app.command()
def demo(
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C).")] = None,
    rate: Annotated[float, typer.Option(help="Synthetic leads per minute, across both CRMs.")] = 30.0,
    config: Annotated[Path, typer.Option("--config", "-c", help="Routing config for the demo.")] = Path(
        "config/routing.yaml"
    ),
) -> None:
    """Run everything locally: sandbox CRM, Redis, worker, beat, web, a stream of leads, and a live view."""
    from worker.devtools.demo import run_demo  # the demo's sandbox and supervisor load for `demo` only

    _load(config)  # a bad config is reported here, before anything starts
    if rate <= 0:
        err.print("--rate must be positive")
        raise typer.Exit(1)
    raise typer.Exit(run_demo(config, duration, rate))


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 8443,
    seed: Annotated[Path | None, typer.Option(help="Seed JSON (default: the shipped realistic seed).")] = None,
    env_file: Annotated[Path | None, typer.Option(help="Write KEY=value lines pointing clients here.")] = None,
) -> None:
    """Run the sandbox CRM (Salesforce + HubSpot emulators over HTTPS) in the foreground."""
    from sandbox.run import serve  # the sandbox CRM loads for `sandbox` only

    serve(port=port, seed=seed, env_file=env_file)


ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="Routing config (default: $LEADROUTE_CONFIG or config/routing.yaml).")
]
CrmOption = Annotated[str, typer.Option("--crm", help="Which CRM the lead lives in: salesforce or hubspot.")]


def _runtime(config: Path | None) -> Any:
    """Config + store for commands that touch shared state; one clear line on failure."""
    # Redis, Celery and the CRM clients load only for the commands that touch live state
    from worker.app.runtime import Runtime, config_path
    from worker.store.connection import RedisUnavailable

    loaded = _load(config or config_path())
    try:
        return Runtime.build(config=loaded)
    except RedisUnavailable as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None


def _check_crm(rt: Any, crm: str) -> None:
    if crm not in rt.crms:
        configured = ", ".join(rt.crms) or "none"
        err.print(f"--crm: '{crm}' is not configured in the connectors section (configured: {configured})")
        raise typer.Exit(1)


@app.command()
def reroute(
    lead_id: Annotated[str, typer.Argument(help="The CRM record id of the lead.")],
    crm: CrmOption,
    to: Annotated[str | None, typer.Option("--to", help="Give the lead to this rep.")] = None,
    pool: Annotated[str | None, typer.Option("--pool", help="Route the lead through this pool.")] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the decision log).")] = "",
    now: Annotated[bool, typer.Option("--now", help="Run inline instead of enqueueing the task.")] = False,
    config: ConfigOption = None,
) -> None:
    """Re-route one lead by hand: a new routing epoch, load moved, who asked and why recorded."""
    from worker.steps import manual  # the steps load for the commands that act on live state only

    if to and pool:
        err.print("give --to or --pool, not both")
        raise typer.Exit(1)
    rt = _runtime(config)
    _check_crm(rt, crm)
    if to and to not in rt.config.reps:
        err.print(f"--to: unknown rep '{to}'{_suggest(to, rt.config.reps)}")
        raise typer.Exit(1)
    if pool and pool not in rt.config.pools:
        err.print(f"--pool: unknown pool '{pool}'{_suggest(pool, rt.config.pools)}")
        raise typer.Exit(1)
    who = f"{_user()} (cli)"
    if now:
        from connectors.base import ConnectorError  # the CRM's errors matter only when a re-route runs here

        try:
            done = manual.reroute(rt, crm, lead_id, to=to, pool=pool, why=reason, actor=who, inline=True)
        except (LookupError, ConnectorError) as exc:
            err.print(str(exc))
            raise typer.Exit(1) from None
        result = done.result
        out.print(f"{lead_id}: {result.previous_owner or '-'} -> {result.owner} (epoch {result.epoch})")
        out.print(escape(result.reason))
        return
    queued = manual.reroute(rt, crm, lead_id, to=to, pool=pool, why=reason, actor=who)
    out.print(f"{lead_id}: re-route enqueued (epoch {queued.epoch})")


@app.command()
def reject(
    lead_id: Annotated[str, typer.Argument(help="The CRM record id of the lead.")],
    crm: CrmOption,
    reason: Annotated[str, typer.Option("--reason", help="Why the rep handed it back (recorded).")] = "",
    config: ConfigOption = None,
) -> None:
    """Hand a lead back for its owner (a rejection made outside the CRM): routed again at once, never to them."""
    from connectors.base import ConnectorError  # the steps and the CRM load for the commands that act on live state only
    from worker.steps.reject import reject_by_hand  # (same reason)

    rt = _runtime(config)
    _check_crm(rt, crm)
    try:
        by, owner, why = reject_by_hand(rt, crm, lead_id, reason, requested_by=f"{_user()} (cli)")
    except (LookupError, ValueError, ConnectorError) as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None
    out.print(f"{lead_id}: rejected by {by} -> {owner}")
    out.print(escape(why))


def _lead(config: Path | None, crm: str, lead_id: str) -> tuple[Any, Any]:
    """The runtime and the lead's reference, after checking the CRM is configured."""
    rt = _runtime(config)
    _check_crm(rt, crm)
    from worker.domain.leads import LeadRef  # loaded by the runtime already; kept off the CLI's start-up

    return rt, LeadRef(crm, rt.object_name(crm), lead_id)


def _user() -> str:
    """Who runs the command, for the ledger's ``actor`` and ``requested_by``."""
    import getpass  # termios and pwd load for the commands that record who acted only

    return getpass.getuser()


def _suggest(name: str, options: Any) -> str:
    from worker.domain.names import suggest  # difflib loads only when a name is wrong

    return suggest(name, list(options))


@app.command()
def explain(
    lead_id: Annotated[str, typer.Argument(help="The CRM record id of the lead.")],
    crm: CrmOption,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (see the README) instead of text.")] = False,
) -> None:
    """Why a lead went where it went: every decision (newest first) and the events around it.

    Read from the ledger (``DATABASE_URL``), which keeps them for good, plus what the outbox in
    Redis holds that has not reached it yet; a lead the ledger has never seen is explained from
    what Redis still holds (decisions are kept there for 7 days).
    """
    from worker.steps import manual  # the steps load for the commands that act on live state only

    rt, ref = _lead(config, crm, lead_id)
    history = manual.ledger_history(rt, ref, warn=_ledger_unreadable)
    if history:
        if as_json:
            _print_json(manual.history_json(ref, history))
        else:
            _print_history(history)
        return
    decisions = rt.store.decisions_for_lead(ref)
    events = [e for e in rt.store.log_for_lead(ref) if e.kind != "decision"]
    if not decisions and not events:
        err.print(f"no decision recorded for {ref} (in the ledger, nor in Redis, which keeps decisions for 7 days)")
        raise typer.Exit(1)
    if as_json:
        _print_json(manual.redis_json(ref, decisions, events))
        return
    for decided in decisions:
        d = decided.decision
        when = decided.at.isoformat() if decided.at else d.get("routed_at", "")
        out.print(f"[bold]epoch {decided.key.epoch}[/bold]  {escape(when)}  config {d.get('config_version', '?')}")
        out.print(f"  owner:  {escape(str(d['owner']))}")
        out.print(f"  rule:   {escape(str(d['rule']))}")
        out.print(f"  reason: {escape(str(d['reason']))}")
        if d.get("considered"):
            skipped = d.get("skipped", {})
            parts = [f"{r} ({skipped[r]})" if r in skipped else r for r in d["considered"]]
            out.print(f"  considered: {escape(', '.join(parts))}")
        if d.get("unreadable"):
            out.print(f"  unreadable fields: {escape(', '.join(d['unreadable']))}")
    if events:
        out.print("[bold]events[/bold]")
        for event in reversed(events):
            out.print(f"  {event.at.isoformat()}  {escape(event.kind)}  {escape(json.dumps(event.data, default=str))}")


def _ledger_unreadable(error: str) -> None:
    """``explain``'s one-line warning when the ledger cannot be read."""
    err.print(f"[yellow]the ledger could not be read[/yellow] ({escape(error)}); showing what Redis holds")


def _print_history(history: list[Any]) -> None:
    from worker.steps import manual  # the steps load for the commands that act on live state only

    routings = manual.routings(history)
    for event in sorted(routings, key=lambda e: (e.epoch or 0, e.at), reverse=True):
        d = event.data or {}
        how = ""
        if event.kind == "reroute":
            how = f"  reroute by {event.actor or '?'}" + (f": {d['why']}" if d.get("why") else "")
        elif d.get("via") == "sla":
            how = "  SLA reassignment"
        out.print(f"[bold]epoch {event.epoch}[/bold]  {event.at.isoformat()}  config {event.config_version or '?'}"
                  f"{escape(how)}")
        was = f" (was {event.previous_owner})" if event.previous_owner and event.previous_owner != event.owner else ""
        out.print(f"  owner:  {escape(str(event.owner))}{escape(was)}")
        out.print(f"  rule:   {escape(str(event.rule))}")
        out.print(f"  reason: {escape(str(d.get('reason', '')))}")
        if d.get("considered"):
            skipped = d.get("skipped") or {}
            parts = [f"{r} ({skipped[r]})" if r in skipped else r for r in d["considered"]]
            out.print(f"  considered: {escape(', '.join(parts))}")
        if d.get("unreadable"):
            out.print(f"  unreadable fields: {escape(', '.join(d['unreadable']))}")
        if event.wait_seconds is not None:
            business = f" ({event.wait_business_seconds:,.0f} s working time)" if event.wait_business_seconds is not None else ""
            out.print(f"  waited: {event.wait_seconds:,.1f} s from creation to this decision{business}")
    others = [e for e in history if e not in routings]
    if others:
        out.print("[bold]events[/bold]")
        for event in others:
            detail = {k: v for k, v in (("owner", event.owner), ("from", event.previous_owner), ("by", event.actor),
                                        ("tier", event.tier), ("status", event.status)) if v}
            if event.wait_seconds is not None:
                detail["waited_s"] = round(event.wait_seconds, 1)
            note = (event.data or {}).get("note") or (event.data or {}).get("why") or (event.data or {}).get("error")
            if note:
                detail["note"] = note
            text = ", ".join(f"{k}={v}" for k, v in detail.items())
            out.print(f"  {event.at.isoformat()}  {escape(event.kind)}  {escape(text)}")


@app.command()
def reps(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (see the README) instead of text.")] = False,
) -> None:
    """Each rep's open load against capacity, availability right now, and out-of-office windows."""
    from worker.steps import manual  # the steps load for the commands that act on live state only

    rt = _runtime(config)
    now = datetime.now(UTC)
    rows = manual.rep_rows(rt, now)
    if as_json:
        _print_json({"at": now.isoformat(), "config_version": rt.config.version_hash, "reps": rows})
        return
    table = Table(title="Reps")
    for col in ("rep", "load", "available now", "out of office"):
        table.add_column(col)
    for row in rows:
        status = row["status"]
        forced = row["override"]
        if forced is not None:
            until = f" until {datetime.fromisoformat(forced['until']):%Y-%m-%d %H:%M}" if forced["until"] else ""
            status += f" (override: {'available' if forced['available'] else forced['reason'] or 'away'}{until})"
        cap = f"/{row['capacity']}" if row["capacity"] is not None else ""
        windows = ", ".join(f"{w['start']}..{w['end']}" for w in row["out_of_office"])
        table.add_row(row["rep"], f"{row['load']}{cap}", escape(status), windows)
    out.print(table)


def _sla(rt: Any) -> Any:
    if rt.sla is None:
        err.print("the config has no 'sla:' section, so there are no SLA clocks")
        raise typer.Exit(1)
    return rt.sla


@app.command()
def sweep(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would happen; change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (see the README) instead of text.")] = False,
    config: ConfigOption = None,
) -> None:
    """Run one SLA sweep now: remind, escalate, reassign or park every lead whose step is due."""
    rt = _runtime(config)
    report = _sla(rt).sweep(dry_run=dry_run)
    if as_json:
        _print_json(report.to_dict())
        return
    lines = report.lines()
    for line in lines:
        out.print(escape(line))
    if not lines:
        out.print("nothing due" + (" (dry run)" if dry_run else ""))


@app.command()
def ack(
    lead_id: Annotated[str, typer.Argument(help="The CRM record id of the lead.")],
    crm: CrmOption,
    config: ConfigOption = None,
) -> None:
    """Record that the owner acknowledged a lead: its SLA clock stops and their load drops."""
    from worker.steps.route import close_open  # the routing steps load for `ack` only

    rt, ref = _lead(config, crm, lead_id)
    result = _sla(rt).acknowledge(ref, by=f"{_user()} (cli)")
    if result is None:
        err.print(f"{ref}: no open SLA clock (already acknowledged, parked, or in no tier)")
        raise typer.Exit(1)
    close_open(rt, crm, lead_id)
    verdict = "within SLA" if result.within_sla else "SLA missed"
    out.print(f"{lead_id}: acknowledged by {result.owner} after {result.since_assigned} ({verdict}, tier {result.tier})")


@app.command()
def ooo(
    rep: Annotated[str, typer.Argument(help="The rep's id in the config.")],
    until: Annotated[str | None, typer.Option(help="Back on this date (YYYY-MM-DD) or time (ISO 8601).")] = None,
    reason: Annotated[str, typer.Option(help="Shown in decisions and `leadroute reps`.")] = "ooo",
    back: Annotated[bool, typer.Option("--back", help="Clear the override: the rep is available again.")] = False,
    config: ConfigOption = None,
) -> None:
    """Mark a rep out of office now: routing skips them and their open leads follow the SLA ladder."""
    from worker.steps import manual  # the steps load for the commands that act on live state only

    rt = _runtime(config)
    if rep not in rt.config.reps:
        err.print(f"unknown rep '{rep}'{_suggest(rep, rt.config.reps)}")
        raise typer.Exit(1)
    if back:
        manual.mark_back(rt, rep, _user())
        out.print(f"{rep}: back, routing to them resumes")
        return
    end = None
    if until:
        end = _parse_at(until)
        if len(until) == 10 and end is not None:  # a date: back at the start of that day in their zone
            end = datetime.fromisoformat(until).replace(tzinfo=rt.config.zones[rep])
    swept = manual.mark_away(rt, rep, until=end, reason=reason, actor=_user())
    out.print(f"{rep}: out of office" + (f" until {end.isoformat()}" if end else ""))
    if swept is not None:
        for line in swept.lines():
            out.print(escape(line))


@app.command()
def web(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    config: ConfigOption = None,
) -> None:
    """Run the web process: webhook receivers (HubSpot, Salesforce), /healthz and /metrics."""
    import uvicorn  # the web server loads for `web` only

    if config is not None:
        os.environ["LEADROUTE_CONFIG"] = str(config)
    _runtime(config)  # fail fast, with one line, on a bad config or an unreachable Redis
    from worker.web.ui.auth import UiConfigError, UiSettings  # the dashboard's settings, checked before serving

    try:
        UiSettings.from_env()
    except UiConfigError as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None
    from worker.observability.logs import configure_from_env  # structlog loads for `web` only

    configure_from_env()
    uvicorn.run("worker.web.server:build_app", factory=True, host=host, port=port, log_config=None)


def main() -> None:
    """Console-script entry point. Log lines go to stderr, warnings and worse unless
    ``LEADROUTE_LOG_LEVEL`` asks for more, so a command's stdout holds only its output (``--json`` stays
    one JSON document whatever a step it runs logs)."""
    from worker.observability.logs import ENV_FORMAT, ENV_LEVEL, configure_logging  # structlog: only once a command runs

    configure_logging(os.environ.get(ENV_LEVEL, "WARNING"), os.environ.get(ENV_FORMAT) or None)
    app()

