"""Push channels (of providers that push): ids, expiry and the SHA-256 of each token.

Never the token itself (it is a credential).

Revision ID: 0020
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0010"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "push_channels",
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("calendar", sa.String(200), nullable=False),
        sa.Column("resource_id", sa.String(255), nullable=False),
        sa.Column("verifier", sa.String(64), nullable=False),
        sa.Column("expires_at", UTC_TIME, nullable=True),
        sa.Column("registered_by", sa.String(255), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("channel_id", name="pk_push_channels"),
    )
    op.create_index("ix_push_channels_calendar", "push_channels", ["calendar"])


def downgrade() -> None:
    op.drop_index("ix_push_channels_calendar", table_name="push_channels")
    op.drop_table("push_channels")
