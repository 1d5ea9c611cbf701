"""The people each calendar source found, and a refused refresh waiting to be accepted.

A new process (a ``sync`` from cron, a restarted daemon, another replica)
uses the stored list instead of listing the directory again within the day;
a refresh that would stop syncing too many at once is kept as ``pending``
until ``feedback-agendas discover --accept``. Addresses only; no credentials.

Revision ID: 0090
Revises: 0070
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0090"
down_revision = "0070"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calendar_discovery",
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("addresses", sa.Text(), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error_kind", sa.String(64), nullable=True),
        sa.Column("pending", sa.Text(), nullable=True),
        sa.Column("pending_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("source", name="pk_calendar_discovery"),
    )


def downgrade() -> None:
    op.drop_table("calendar_discovery")
