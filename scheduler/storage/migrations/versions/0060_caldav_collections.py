"""Where each CalDAV calendar named by display name was found.

A new process (a ``sync`` from cron, a restarted daemon, another replica)
reuses the collection URL instead of discovering it again (three PROPFINDs);
discovery runs again on a 404, a 301/308 or a config change (the digest of
server URL, user name and calendar name). No credentials are stored.

Revision ID: 0060
Revises: 0050
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0060"
down_revision = "0050"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "caldav_collections",
        sa.Column("calendar", sa.String(200), nullable=False),
        sa.Column("config_digest", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("calendar", name="pk_caldav_collections"),
    )


def downgrade() -> None:
    op.drop_table("caldav_collections")
