"""``ix_events_kind_clock`` and ``ix_events_first_routing_at``: a report's partial days read on indexes.

A report reads the acknowledgements and ladder steps whose clock started in a span (``at -
wait_seconds``); for the partial days at a period's edges that span is read from ``events``
every time. Found on ``(kind, at)`` it read every such event of the days after the span too
(an ack can come days after its clock started) and filtered them one by one: over 1,000,000
leads, half a day's edge cost seconds. This index is on the clock's start itself, the same
expression the reports write (``worker.ledger.schema.clock_start``), so the read is a range of the index.
Its constants are written into the SQL (not bound) on both sides: PostgreSQL and SQLite use an
expression index only for the very same expression. PostgreSQL's ``extract(epoch from
timestamptz)`` may not be indexed (it is only stable); at UTC it is the same number, and
immutable.

The first routings of a partial day (leads, skips, unreadable fields, outcomes) were read on
``(kind, at)`` by SQLite but on ``at`` alone by PostgreSQL, whose planner counts the heap of a
two-column index as unordered: it walked every kind's events of the span. A partial index on
``at`` of the first routings alone is in time order and holds nothing else.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

# what worker.ledger.schema.clock_start compiles to (a migration keeps its own copy: it must not change later)
_CLOCK_START = {
    "postgresql": "(CAST(EXTRACT(epoch FROM timezone('UTC', at)) AS FLOAT) - coalesce(wait_seconds, 0.0))",
    "sqlite": "((julianday(at) - 2440587.5) * 86400.0 - coalesce(wait_seconds, 0.0))",
}


_FIRST_ROUTING = "kind = 'decision' AND (epoch IS NULL OR epoch = 0)"  # as worker.ledger.schema.FIRST_ROUTING


def upgrade() -> None:
    expression = _CLOCK_START[op.get_bind().dialect.name]
    op.create_index("ix_events_kind_clock", "events", ["kind", sa.text(expression)])
    op.create_index("ix_events_first_routing_at", "events", ["at"], postgresql_where=sa.text(_FIRST_ROUTING),
                    sqlite_where=sa.text(_FIRST_ROUTING))


def downgrade() -> None:
    op.drop_index("ix_events_first_routing_at", table_name="events")
    op.drop_index("ix_events_kind_clock", table_name="events")
