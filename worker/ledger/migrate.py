"""Bring the ledger's database to the newest schema: on the worker's start-up and ``leadroute db upgrade``.

Any number of worker processes may start at once against one database, so migrations run
under a lock: a PostgreSQL advisory lock held by the migrating transaction, or for SQLite a
lock file beside the database. The second to arrive finds the schema current and does nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable, Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_LOCK_KEY = 0x6C656467  # "ledg": one advisory lock id for the ledger's migrations


def alembic_config() -> Config:
    """Alembic's configuration for the migrations shipped in this package (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest revision this code ships."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, f"no migrations in {MIGRATIONS}"
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for a database never migrated."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head", on_step: Callable[[str], None] | None = None) -> str:
    """Migrate to ``revision`` (default the newest) and return the revision the database is now at;
    ``on_step`` hears each revision as it is applied (a progress display)."""
    with _sqlite_file_lock(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        _alembic(connection, revision, on_step)
        now = MigrationContext.configure(connection).get_current_revision()
    assert now is not None
    return now


def pending(engine: Engine, revision: str = "head") -> int:
    """How many revisions :func:`upgrade` would apply."""
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    script = ScriptDirectory.from_config(alembic_config())
    return sum(1 for _ in script.iterate_revisions(revision, current or "base"))


def _alembic(connection: Connection, revision: str, on_step: Callable[[str], None] | None = None) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    config.attributes["on_step"] = on_step
    command.upgrade(config, revision)


@contextlib.contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """Serialise migrations of one SQLite file across processes (its DDL is not transactional here)."""
    database = engine.url.database or ""
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    with open(f"{database}.migrate.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
