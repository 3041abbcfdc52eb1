"""The routing ledger: the durable, append-only history of every decision, SLA step, acknowledgement,
notification and outcome, in a SQL database (PostgreSQL in production, an embedded SQLite file
otherwise), for ``leadroute explain``, exports and reports long after Redis has forgotten.

Infrastructure, like :mod:`worker.store`; the pure layers never import it.

* :mod:`.events`: :class:`LedgerEvent`, one row as plain data, and the kinds of event. Loads no
  SQLAlchemy, so code that only produces events stays light.
* :mod:`.schema`: the ``events`` table (SQLAlchemy Core); :mod:`.migrations`: its Alembic history.
* :mod:`.database`: ``DATABASE_URL`` (or ``./var/ledger.sqlite3``) to an engine.
* :mod:`.migrate`: :func:`upgrade`, for start-up and ``leadroute db upgrade``.
* :mod:`.ledger`: :class:`Ledger`: idempotent batch writes, reads by lead and by period, prune.
* :mod:`.days`: the per-day counters a write or prune bumps, which the report's day cache trusts.

See ``docs/ledger.md`` for the columns, configuration and retention.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from worker.ledger.events import KINDS, InvalidEvent, LedgerEvent

if TYPE_CHECKING:
    from worker.ledger.ledger import Ledger
    from worker.ledger.migrate import upgrade

__all__ = ["KINDS", "InvalidEvent", "Ledger", "LedgerEvent", "upgrade"]


def __getattr__(name: str) -> Any:
    """``Ledger`` and ``upgrade`` load SQLAlchemy and Alembic on first use, not with the event type."""
    if name == "Ledger":
        from worker.ledger.ledger import Ledger  # SQLAlchemy loads only where the database is used

        return Ledger
    if name == "upgrade":
        from worker.ledger.migrate import upgrade  # Alembic loads only where the database is migrated

        return upgrade
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
