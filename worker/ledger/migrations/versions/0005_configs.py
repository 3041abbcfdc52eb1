"""``configs``: the text of every config version loaded with this ledger.

Decisions carry their config version; the dashboard links it to the rules as they were. The
first text a version was loaded with is kept (a later file with the same rules and other
comments hashes the same and changes nothing).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "configs",
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("first_loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_configs"),
    )


def downgrade() -> None:
    op.drop_table("configs")
