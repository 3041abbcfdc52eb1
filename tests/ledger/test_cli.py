"""``leadroute db``: migrate, status and prune, as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.ledger.conftest import T0, EventFactory
from worker.cli.commands import app
from worker.cli.db import parse_before
from worker.ledger.ledger import Ledger
from worker.ledger.migrate import head_revision

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def leadroute(*args: str, url: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command line, in its own process, as an operator or a release step runs it."""
    env = os.environ | {"DATABASE_URL": url} | (env or {})
    return subprocess.run([sys.executable, "-m", "worker.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_db_upgrade_migrates_an_empty_sqlite_database_and_then_has_nothing_to_do(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    first = leadroute("db", "upgrade", url=url)
    assert first.returncode == 0, first.stderr
    assert f"{url}: migrated from an empty database to revision {head_revision()}" in first.stdout
    again = leadroute("db", "upgrade", url=url)
    assert again.returncode == 0, again.stderr
    assert f"already at revision {head_revision()}" in again.stdout
    status = leadroute("db", "status", url=url)
    assert status.returncode == 0, status.stderr
    assert f"revision: {head_revision()}; this version's: {head_revision()}" in status.stdout
    assert "events:   0" in status.stdout


def test_db_status_says_when_the_schema_is_behind(tmp_path: Path) -> None:
    result = runner.invoke(app, ["db", "status", "--database-url", f"sqlite:///{tmp_path / 'l.sqlite3'}"])
    assert result.exit_code == 1
    assert "revision: none (never migrated)" in result.output and "run `leadroute db upgrade`" in result.output


@pytest.fixture
def old_and_new(tmp_path: Path, event: EventFactory) -> Iterator[tuple[str, Ledger]]:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    ledger = Ledger.open(url)
    ledger.write([event(n) for n in range(8)])  # at T0 + n minutes
    yield url, ledger
    ledger.close()


def test_db_prune_prints_the_count_and_deletes_only_when_confirmed(old_and_new: tuple[str, Ledger]) -> None:
    url, ledger = old_and_new
    before = ["db", "prune", "--before", (T0 + timedelta(minutes=5)).isoformat(), "--database-url", url]
    declined = runner.invoke(app, before, input="n\n")
    assert declined.exit_code == 1
    assert "5 event(s) before 2026-03-02T09:05:00+00:00" in declined.output and "nothing deleted" in declined.output
    assert ledger.count() == 8
    confirmed = runner.invoke(app, before, input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert "Delete 5 event(s)?" in confirmed.output and "deleted 5 event(s)" in confirmed.output
    assert ledger.count() == 3


def test_db_prune_dry_run_and_yes(old_and_new: tuple[str, Ledger]) -> None:
    url, ledger = old_and_new
    dry = runner.invoke(app, ["db", "prune", "--before", "2026-03-02T09:02:00Z", "--dry-run", "--database-url", url])
    assert dry.exit_code == 0 and "2 event(s) before" in dry.output and "deleted" not in dry.output
    assert ledger.count() == 8
    done = runner.invoke(app, ["db", "prune", "--before", "2027-01-01", "--yes"], env={"DATABASE_URL": url})
    assert done.exit_code == 0, done.output
    assert "8 event(s) before 2027-01-01T00:00:00+00:00" in done.output and "deleted 8 event(s)" in done.output
    assert ledger.count() == 0


def test_db_prune_refuses_a_database_without_a_ledger_and_a_date_it_cannot_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    missing = runner.invoke(app, ["db", "prune", "--before", "2025-01-01", "--yes", "--database-url", url])
    assert missing.exit_code == 1 and "no ledger here (run `leadroute db upgrade` first)" in missing.output
    unreadable = runner.invoke(app, ["db", "prune", "--before", "last year", "--database-url", url])
    assert unreadable.exit_code == 2 and "--before: 'last year' is not an age (30d, 12h), a date" in unreadable.output


def test_before_is_a_date_a_time_or_an_age() -> None:
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert parse_before("2025-01-31", now) == datetime(2025, 1, 31, tzinfo=UTC)
    assert parse_before("2025-01-31T12:00:00+02:00", now) == datetime(2025, 1, 31, 10, tzinfo=UTC)
    assert parse_before("2025-01-31T12:00:00", now) == datetime(2025, 1, 31, 12, tzinfo=UTC)
    assert parse_before("365d", now) == now - timedelta(days=365)


def test_db_upgrade_reports_each_migration_as_progress_on_stderr(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    first = leadroute("db", "upgrade", url=url, env={"LEADROUTE_PROGRESS_EVERY": "0"})
    assert first.returncode == 0, first.stderr
    from alembic.script import ScriptDirectory

    from worker.ledger.migrate import alembic_config

    revisions = len(list(ScriptDirectory.from_config(alembic_config()).walk_revisions()))
    assert f"db upgrade: 100% {revisions} migrations" in first.stderr and "db upgrade" not in first.stdout


def test_db_warm_keeps_the_whole_days_so_the_next_report_reads_only_what_changed(tmp_path: Path) -> None:
    from sqlalchemy import func, select  # counts the pieces kept

    from tests.reports.test_pieces import DAY0, history
    from worker.ledger.schema import report_pieces

    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    ledger = Ledger.open(url)
    try:
        ledger.write(history(31))
        result = runner.invoke(app, ["db", "warm", "--since", DAY0.date().isoformat(), "--by", "rule", "--by", "pool",
                                     "--database-url", url], env={"LEADROUTE_CONFIG": str(tmp_path / "absent.yaml")})
        assert result.exit_code == 0, result.output
        assert "absent.yaml" not in result.output  # the pieces do not depend on the config: none is read
        assert f"from {DAY0.date()} kept for --by rule, pool" in result.output
        with ledger.engine.connect() as connection:
            kept = connection.execute(select(report_pieces.c.params, func.count()).group_by(report_pieces.c.params)).all()
        assert {params for params, _ in kept} >= {'{"by":"rule"}', '{"by":"pool"}'}
        bad = runner.invoke(app, ["db", "warm", "--by", "colour", "--database-url", url])
        assert bad.exit_code == 2 and "colour" in bad.output
    finally:
        ledger.close()
