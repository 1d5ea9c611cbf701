"""1:1s are read back too (R6: a 1:1 marked as done): the slot each watched meeting has.

``praise_readbacks.slot`` is ``praise`` for a team meeting and ``well``,
``better`` or ``stop`` for a 1:1; rows from before this revision are team
meetings (NULL reads as ``praise``). Only the slot's code is kept, never what
was written in it.

Revision ID: 0030
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("praise_readbacks") as batch:
        batch.add_column(sa.Column("slot", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("praise_readbacks") as batch:
        batch.drop_column("slot")
