"""Self-service opt-outs: the people who chose, through their link, to get no agendas.

Revision ID: 0100
Revises: 0090
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0100"
down_revision = "0090"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "self_opt_outs",
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("opted_out_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("address", name="pk_self_opt_outs"),
    )


def downgrade() -> None:
    op.drop_table("self_opt_outs")
