"""The report's day cache: ``ledger_days`` (a counter per day the writer bumps) and ``report_pieces``.

Nothing to backfill: a day without a counter is at generation 0 and has no pieces, so the
first report over it reads ``events`` and stores its pieces (``leadroute db warm`` does that
ahead of time).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_days",
        sa.Column("day", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", name="pk_ledger_days"),
    )
    op.create_table(
        "report_pieces",
        sa.Column("day", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("pass", sa.String(), nullable=False),
        sa.Column("params", sa.String(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("header", sa.Text(), nullable=False),
        sa.Column("arrays", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("day", "pass", "params", name="pk_report_pieces"),
    )


def downgrade() -> None:
    op.drop_table("report_pieces")
    op.drop_table("ledger_days")
