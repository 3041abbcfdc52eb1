"""``leadroute rebuild``: put the shared state back after Redis lost it, from the CRM and the ledger.

The worker rebuilds on its own when its first drain finds the state marker gone (see
``docs/operations.md``); this command does it by hand, shows what it would do (``--dry-run``),
or, with ``--force``, rebuilds over a state marked for another prefix or ledger.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from worker.cli.when import parse_when

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def rebuild(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be restored; write nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Rebuild over a state marked for another prefix or ledger.")] = False,
    since: Annotated[str | None, typer.Option(help="Read the ledger from this age (30d), date or time only.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Routing config (default: $LEADROUTE_CONFIG).")] = None,
) -> None:
    """Rebuild loads, SLA clocks and round-robin positions from the CRM and the ledger (after Redis lost its data)."""
    # Redis, SQLAlchemy, the CRM clients and the SLA code load for this command only
    from worker.app.runtime import Runtime
    from worker.config import ConfigError, config_path, load_config
    from worker.steps import rebuild as step
    from worker.store.connection import RedisUnavailable

    start = parse_when(since, "--since") if since else None
    try:
        rt = Runtime.build(config=load_config(config or config_path()))
    except (ConfigError, RedisUnavailable) as exc:
        err.print(escape(str(exc)))
        raise typer.Exit(1) from None
    try:
        status, marker = rt.store.state_status(step.ledger_fingerprint())
        if status == "foreign" and not force and not dry_run:
            assert marker is not None
            err.print(f"the state under prefix {rt.store.prefix!r} is marked for another deployment "
                      f"(prefix {marker.prefix!r}, ledger {marker.ledger}); check REDIS_URL, LEADROUTE_PREFIX and "
                      "DATABASE_URL, then run again with --force to rebuild over it")
            raise typer.Exit(1)
        try:
            report = step.rebuild(rt, rt.ledger, dry_run=dry_run, since=start)
        except step.RebuildBusy as exc:
            err.print(str(exc))
            raise typer.Exit(1) from None
    finally:
        rt.close()
    if as_json:
        sys.stdout.write(json.dumps({"state": status, **report.to_dict()}, default=str) + "\n")
        return
    out.print(f"state marker: {status}" + (" (dry run: nothing written)" if dry_run else ""))
    for line in report.lines():
        out.print(escape(line))
