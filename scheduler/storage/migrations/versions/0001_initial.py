"""Initial schema: sync cursors, event records, run log, leases.

Only ids, hashes, codes, counts and times: never titles, descriptions,
attendee names or feedback content (invariant I7).

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "calendar_cursors",
        sa.Column("calendar", sa.String(200), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("calendar", name="pk_calendar_cursors"),
    )
    op.create_table(
        "event_records",
        sa.Column("calendar", sa.String(200), nullable=False),
        sa.Column("event_id", sa.String(1024), nullable=False),
        sa.Column("recurrence_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("block_hash", sa.String(128), nullable=True),
        sa.Column("revisit_at", UTC_TIME, nullable=True),
        sa.Column("pending_write", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("calendar", "event_id", "recurrence_id", name="pk_event_records"),
    )
    op.create_table(
        "run_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("calendar", sa.String(200), nullable=False),
        sa.Column("started_at", UTC_TIME, nullable=False),
        sa.Column("finished_at", UTC_TIME, nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error_kind", sa.String(64), nullable=True),
        sa.Column("writes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_run_log"),
    )
    op.create_index("ix_run_log_calendar_id", "run_log", ["calendar", "id"])
    op.create_table(
        "run_log_counts",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(128), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "code", name="pk_run_log_counts"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["run_log.id"], name="fk_run_log_counts_run_id_run_log", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "leases",
        sa.Column("resource", sa.String(255), nullable=False),
        sa.Column("holder", sa.String(255), nullable=True),
        sa.Column("expires_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("resource", name="pk_leases"),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_table("run_log_counts")
    op.drop_index("ix_run_log_calendar_id", table_name="run_log")
    op.drop_table("run_log")
    op.drop_table("event_records")
    op.drop_table("calendar_cursors")
