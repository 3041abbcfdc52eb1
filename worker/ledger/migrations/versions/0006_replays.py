"""``replays``: the summary of every ``leadroute replay`` run over this ledger.

A replay is run from a terminal or a pull request's CI job; keeping its result beside the history
it read lets the dashboard's config page show what the latest candidates would have changed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "replays",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("baseline_version", sa.String()),
        sa.Column("candidate_version", sa.String()),
        sa.Column("candidate_file", sa.String()),
        sa.Column("leads", sa.Integer(), nullable=False),
        sa.Column("headline", sa.Text(), nullable=False),
        sa.Column("result", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_replays"),
    )
    op.create_index("ix_replays_at", "replays", ["at"])


def downgrade() -> None:
    op.drop_index("ix_replays_at", table_name="replays")
    op.drop_table("replays")
