"""Alembic's entry point for the ledger: migrate the connection it is handed, or ``DATABASE_URL``'s.

:func:`worker.ledger.migrate.upgrade` passes an open connection (``config.attributes``), so
the worker's start-up and ``leadroute db upgrade`` run migrations in their own transaction
and under their own lock. The ``alembic`` command (``-c worker/ledger/alembic.ini``), used to
write a new revision, gets an engine from :func:`worker.ledger.database.create_ledger_engine`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from worker.ledger.database import create_ledger_engine
from worker.ledger.schema import metadata


def _run(connection: Connection) -> None:
    on_step = context.config.attributes.get("on_step")  # progress: told after each revision applied
    context.configure(connection=connection, target_metadata=metadata, compare_type=True,
                      on_version_apply=(lambda **kw: on_step(kw["step"].up_revision_id)) if on_step else None)
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if given is not None:
    _run(given)
else:
    engine = create_ledger_engine()
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()
