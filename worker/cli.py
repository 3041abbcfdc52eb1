"""The ``leadroute`` command line."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from worker.config import ConfigError, RoutingConfig, load_config

app = typer.Typer(
    help="leadroute: route CRM leads to the right rep in milliseconds, and enforce SLAs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _load(path: Path) -> RoutingConfig:
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(f"[red]error[/red] {escape(str(problem))}")
        err.print(f"{len(exc.problems)} error(s); the configuration was not loaded.")
        raise typer.Exit(1) from None
    for warning in config.warnings:
        err.print(f"[yellow]warning[/yellow] {escape(str(warning))}")
    return config


@app.command()
def check(config: Annotated[Path, typer.Argument(help="Routing config YAML.")]) -> None:
    """Validate a routing config: exit 0 when valid (warnings printed), 1 listing every error."""
    loaded = _load(config)
    model = loaded.model
    out.print(
        f"{config}: OK (version {loaded.version_hash}): {len(model.reps)} reps, {len(model.pools)} pools, "
        f"{len(model.territories)} territories, {len(model.rules)} rules, "
        f"fallback {'queue ' + model.fallback.queue if model.fallback.queue else 'rep ' + str(model.fallback.rep)}"
    )


def _parse_at(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        err.print(f"--at: '{value}' is not an ISO 8601 date-time, e.g. 2026-12-01T15:00:00Z")
        raise typer.Exit(1) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@app.command()
def simulate(
    config: Annotated[Path, typer.Option("--config", "-c", help="Routing config YAML.")],
    leads: Annotated[Path, typer.Option("--leads", "-l", help="Leads: CSV with a header row, or JSON Lines.")],
    format: Annotated[str, typer.Option("--format", "-f", help="table or jsonl.")] = "table",
    at: Annotated[str | None, typer.Option(help="Routing time (ISO 8601) for leads without created_at.")] = None,
    loads: Annotated[Path | None, typer.Option(help="JSON {rep_id: open_leads} starting loads.")] = None,
) -> None:
    """Route an export of leads offline and report where each would go, and why.

    Exit status: 0 all rows routed; 1 bad config or file; 2 some rows unreadable (the rest routed).
    """
    from worker.simulate import LeadFileError, read_leads, read_loads, simulate, summarise

    if format not in ("table", "jsonl"):
        err.print(f"--format: '{format}' is not one of table, jsonl")
        raise typer.Exit(1)
    loaded = _load(config)
    when = _parse_at(at)
    try:
        start = read_loads(loads) if loads else None
        result = simulate(loaded, read_leads(leads), at=when, loads=start)
    except LeadFileError as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None
    for row_error in result.errors:
        err.print(f"[red]skipped[/red] {escape(str(leads))}:{escape(str(row_error))}")
    if format == "jsonl":
        for decision in result.decisions:
            record = decision.to_dict()
            record = {"lead_id": record.pop("lead_id"), **record}
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        _print_table(loaded, result.decisions, summarise(loaded, result.decisions))
    if result.errors:
        err.print(f"{len(result.errors)} row(s) could not be read; {len(result.decisions)} routed.")
        raise typer.Exit(2)


def _print_table(config: RoutingConfig, decisions: list, summary: dict) -> None:
    table = Table(title=f"Routing simulation (config {config.version_hash})", show_lines=False)
    for name in ("lead", "owner", "rule", "reason"):
        table.add_column(name, overflow="fold")
    for d in decisions:
        table.add_row(*(escape(str(v)) for v in (d.lead_id, d.owner, d.rule, d.reason)))
    out.print(table)
    out.print(f"\n[bold]{summary['leads']} leads[/bold], {summary['fallback']} to the fallback")
    owners = Table(title="Leads per owner")
    owners.add_column("owner")
    owners.add_column("leads", justify="right")
    for owner, n in summary["per_owner"].items():
        owners.add_row(owner, str(n))
    rules = Table(title="Leads per rule")
    rules.add_column("rule")
    rules.add_column("leads", justify="right")
    for rule, n in summary["per_rule"].items():
        rules.add_row(rule, str(n))
    out.print(owners)
    out.print(rules)
    for name, pool in summary["pools"].items():
        counts = ", ".join(f"{rep} {n}" for rep, n in pool["counts"].items())
        out.print(f"pool {name} ({pool['strategy']}): {counts}; spread {pool['spread']}")


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 8443,
    seed: Annotated[Path | None, typer.Option(help="Seed JSON (default: the shipped realistic seed).")] = None,
    env_file: Annotated[Path | None, typer.Option(help="Write KEY=value lines pointing clients here.")] = None,
) -> None:
    """Run the sandbox CRM (Salesforce + HubSpot emulators over HTTPS) in the foreground."""
    from sandbox.run import serve

    serve(port=port, seed=seed, env_file=env_file)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
