"""Which database the ledger uses, from the environment, and how an engine for it is set up."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_mock_engine, text

from worker.ledger.database import create_ledger_engine, database_url, display_url, normalise_url
from worker.ledger.ledger import Ledger
from worker.ledger.migrate import head_revision


def test_without_database_url_the_ledger_is_an_sqlite_file_under_var() -> None:
    assert database_url({}) == "sqlite:///var/ledger.sqlite3"
    assert database_url({"DATABASE_URL": "  "}) == "sqlite:///var/ledger.sqlite3"


def test_postgres_urls_as_hosting_platforms_spell_them_use_psycopg() -> None:
    assert database_url({"DATABASE_URL": "postgres://u:p@db:5432/lr"}) == "postgresql+psycopg://u:p@db:5432/lr"
    assert normalise_url("postgresql://u@db/lr") == "postgresql+psycopg://u@db/lr"
    assert normalise_url("postgresql+psycopg://u@db/lr") == "postgresql+psycopg://u@db/lr"
    assert normalise_url("sqlite:////data/ledger.sqlite3") == "sqlite:////data/ledger.sqlite3"


def test_a_password_never_reaches_a_message() -> None:
    assert display_url("postgresql+psycopg://leadroute:s3cret@db/lr") == "postgresql+psycopg://leadroute:***@db/lr"


def test_the_default_ledger_is_created_and_migrated_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    ledger = Ledger.open()
    try:
        assert Path(ledger.engine.url.database or "") == tmp_path / "var" / "ledger.sqlite3"
        assert ledger.upgrade() == head_revision()
        assert ledger.count() == 0
    finally:
        ledger.close()
    assert (tmp_path / "var" / "ledger.sqlite3").is_file()


def test_sqlite_runs_in_wal_mode_so_a_report_never_blocks_the_writer(tmp_path: Path) -> None:
    engine = create_ledger_engine(f"sqlite:///{tmp_path / 'deep' / 'dir' / 'l.sqlite3'}")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    finally:
        engine.dispose()


def test_a_database_other_than_postgresql_or_sqlite_is_refused() -> None:
    mysql = create_mock_engine("mysql://u@localhost/lr", executor=lambda *_: None)  # no driver needed
    with pytest.raises(ValueError, match="PostgreSQL or SQLite, not mysql"):
        Ledger(mysql)  # type: ignore[arg-type]
