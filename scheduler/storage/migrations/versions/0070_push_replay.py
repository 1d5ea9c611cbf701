"""Push channels remember their recent message numbers and the last push-started sync.

So a replayed notification (same channel, a message number seen recently) is
dropped, and a channel starts at most one sync per short window, on every
replica alike.

Revision ID: 0070
Revises: 0060
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0070"
down_revision = "0060"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("push_channels") as batch:
        batch.add_column(sa.Column("recent_numbers", sa.String(1000), nullable=True))
        batch.add_column(sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("push_channels") as batch:
        batch.drop_column("synced_at")
        batch.drop_column("recent_numbers")
