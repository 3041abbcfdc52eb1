"""The CLI starts with what the command needs: `--help`, `report --help` and `db --help` load neither the config
schema nor the routing engine nor the report's SQLAlchemy and numpy; a report loads no Alembic.
The config schema alone cost ~0.3 s on every command before (docs/reports.md "Speed")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from worker.cli import commands
from worker.ledger import Ledger
from worker.routing import checks

ROOT = Path(__file__).resolve().parents[2]
# not pydantic: typer 0.29 itself loads it to coerce a command's options
HEAVY = ("worker.config", "worker.routing", "worker.domain.normalize", "sqlalchemy", "numpy", "alembic")


def loaded_after(*args: str, env: dict[str, str] | None = None) -> list[str]:
    """The heavy modules loaded once ``leadroute ARGS`` has run, in a fresh interpreter."""
    code = ("import json, sys\nfrom typer.testing import CliRunner\nfrom worker.cli.commands import app\n"
            f"r = CliRunner().invoke(app, {list(args)!r})\n"
            "assert r.exit_code == 0, r.output\n"
            f"print(json.dumps(sorted({{m if m.startswith('worker') else m.split('.')[0] for m in sys.modules "
            f"if m.startswith({HEAVY!r})}})))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_help_loads_no_config_schema_engine_or_database() -> None:
    assert loaded_after("--help") == []
    assert loaded_after("report", "--help") == []
    assert loaded_after("db", "--help") == []


def test_the_check_default_is_the_checks_default() -> None:
    assert commands.DEFAULT_OOO_DAYS == checks.DEFAULT_OOO_DAYS


def test_a_report_without_a_config_loads_neither_the_config_schema_nor_alembic(tmp_path: Path) -> None:
    """The report checks the ledger's revision with one query (no Alembic) and reads no config it was not given."""
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    Ledger.open(url).close()
    env = {"DATABASE_URL": url, "LEADROUTE_CONFIG": str(tmp_path / "none.yaml")}
    assert loaded_after("report", "--since", "2026-01-01", "--until", "2026-01-31T12:00", "--format", "json",
                        env=env) == ["numpy", "sqlalchemy"]
