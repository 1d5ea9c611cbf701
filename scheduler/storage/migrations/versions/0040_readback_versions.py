"""The version of the event each read-back read: a series is counted once per edit.

A recurring meeting's agenda lives in the series' one shared description, so
the entries filled in for one occurrence are still there at the next. Each
read-back now keeps a digest of the provider's version token (etag) of what it
read; an occurrence whose series was not edited since the last read-back is
not counted again. The digest is of the etag, never of the description.

Revision ID: 0040
Revises: 0030
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0040"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("praise_readbacks") as batch:
        batch.add_column(sa.Column("version", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("praise_readbacks") as batch:
        batch.drop_column("version")
