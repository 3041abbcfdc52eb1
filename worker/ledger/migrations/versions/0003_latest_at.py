"""``ledger_days.latest_at``: the latest ``at`` of an event whose clock started that day.

An acknowledgement counts on the day its clock started (``at - wait_seconds``), and may come
any time later, so a report reading the acks of a few hours from ``events`` could bound its
scan of ``(kind, at)`` only from below: it read every ack since. With the latest ``at`` per
clock day the scan is bounded on both sides. Backfilled here from the events already stored.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_START = {  # an event's clock start in epoch seconds, as worker/reports/sql.py computes it
    "postgresql": "extract(epoch from at) - coalesce(wait_seconds, 0)",
    "sqlite": "(julianday(at) - 2440587.5) * 86400.0 - coalesce(wait_seconds, 0)",
}


def upgrade() -> None:
    op.add_column("ledger_days", sa.Column("latest_at", sa.DateTime(timezone=True)))
    bind = op.get_bind()
    start = _START[bind.dialect.name]
    for shift in (-1, 0, 1):  # the neighbouring days too, as the writer does near a midnight
        day = f"floor(({start} + {shift}) / 86400.0)"
        bind.execute(sa.text(  # SQLite keeps times as fixed-width text in UTC: max() is the latest
            f"INSERT INTO ledger_days (day, generation, latest_at) "
            f"SELECT CAST({day} AS INTEGER), 0, max(at) FROM events WHERE true GROUP BY CAST({day} AS INTEGER) "
            f"ON CONFLICT (day) DO UPDATE SET latest_at = CASE "
            f"WHEN ledger_days.latest_at IS NULL OR excluded.latest_at > ledger_days.latest_at "
            f"THEN excluded.latest_at ELSE ledger_days.latest_at END"))


def downgrade() -> None:
    with op.batch_alter_table("ledger_days") as batch:
        batch.drop_column("latest_at")
