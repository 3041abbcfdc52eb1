"""The events table: the append-only routing ledger.

Revision ID: 0001
Revises:
Create Date: 2026-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("crm", sa.String(), nullable=False),
        sa.Column("object", sa.String(), nullable=False),
        sa.Column("lead_id", sa.String(), nullable=False),
        sa.Column("epoch", sa.Integer()),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.current_timestamp()),
        sa.Column("config_version", sa.String()),
        sa.Column("owner", sa.String()),
        sa.Column("previous_owner", sa.String()),
        sa.Column("actor", sa.String()),
        sa.Column("rule", sa.String()),
        sa.Column("pool", sa.String()),
        sa.Column("tier", sa.String()),
        sa.Column("source", sa.String()),
        sa.Column("arm", sa.String()),
        sa.Column("status", sa.String()),
        sa.Column("wait_seconds", sa.Float()),
        sa.Column("wait_business_seconds", sa.Float()),
        sa.Column("amount", sa.Numeric(18, 4)),
        sa.Column("currency", sa.String()),
        sa.Column("lead_created_at", sa.DateTime(timezone=True)),
        sa.Column("data", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("uq_events_event_id", "events", ["event_id"], unique=True)
    op.create_index("ix_events_lead", "events", ["crm", "lead_id", "at"])
    op.create_index("ix_events_kind_at", "events", ["kind", "at"])
    op.create_index("ix_events_at", "events", ["at"])
    op.create_index("ix_events_owner_at", "events", ["owner", "at"])


def downgrade() -> None:
    op.drop_table("events")
