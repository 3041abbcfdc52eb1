"""Which database the ledger lives in, and an engine for it.

``DATABASE_URL`` names it: PostgreSQL in production (``postgresql+psycopg://user@host/db``;
the ``postgres://`` and ``postgresql://`` spellings hosting platforms hand out mean the
same). Unset, the ledger is an embedded SQLite file, ``./var/ledger.sqlite3`` beside the
embedded Redis, so the demo and a first try need nothing installed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url

DEFAULT_SQLITE = Path("var") / "ledger.sqlite3"


def database_url(environ: Mapping[str, str] | None = None) -> str:
    """``DATABASE_URL``, normalised; the embedded SQLite file when it is unset or empty."""
    raw = (os.environ if environ is None else environ).get("DATABASE_URL", "").strip()
    return normalise_url(raw) if raw else f"sqlite:///{DEFAULT_SQLITE}"


def normalise_url(url: str) -> str:
    """PostgreSQL URLs without a driver get psycopg (3), the one installed; others pass unchanged."""
    for bare in ("postgres://", "postgresql://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url[len(bare):]
    return url


def display_url(url: str | URL) -> str:
    """The URL with its password masked, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def create_ledger_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for the ledger at ``url`` (default: :func:`database_url`).

    SQLite: the file's directory is created, the database runs in WAL mode (readers, such as
    a report, never block the writer) with full fsync on commit (a batch the ledger reported
    written survives a power cut, so the outbox may forget it), and a writer waits up to 30 s
    for another's lock instead of failing. PostgreSQL: connections are checked before use,
    so a restarted server costs one reconnect, not a failed batch.
    """
    parsed = make_url(normalise_url(url) if url else database_url())
    options: dict[str, Any] = {"json_serializer": json_dumps}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database).expanduser().resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            parsed = parsed.set(database=str(path))
        options["connect_args"] = {"timeout": 30.0}
    else:
        options["pool_pre_ping"] = True
        options["use_insertmanyvalues"] = False
    engine = create_engine(parsed, **(options | kwargs))
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def stamped_revision(engine: Engine) -> str | None:
    """The migration the database is at (Alembic's ``alembic_version``); None for one never migrated.

    The same answer as :func:`worker.ledger.migrate.current_revision`, read with one query and
    without loading Alembic (about 0.13 s of CPU): what a command that only reads the ledger,
    such as ``leadroute report``, checks before reading."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


def json_dumps(value: Any) -> str:
    """JSON for the ``data`` column: compact; dates as ISO 8601, decimals as numbers, sets as lists.

    PostgreSQL refuses the NUL character in ``jsonb`` (and text): a CRM field carrying one
    must not make a whole batch fail forever, so NULs are dropped from strings.
    """
    text = json.dumps(value, default=_default, separators=(",", ":"), ensure_ascii=False)
    if "\\u0000" in text:
        text = json.dumps(_without_nul(value), default=_default, separators=(",", ":"), ensure_ascii=False)
    return text


def _default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset | tuple):
        return sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable: {value!r}"[:200])


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, Mapping):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_without_nul(v) for v in value]
    return value
