"""Reminders: the outbox, feedback wins and praise read-backs.

Only ids, codes, counts and times: no description text, no feedback content,
no channel URLs (a channel is a hash of its URL).

Revision ID: 0010
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0001"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reminder_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("occurrence", sa.String(512), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("team", sa.String(100), nullable=True),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("due_at", UTC_TIME, nullable=False),
        sa.Column("expires_at", UTC_TIME, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC_TIME, nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", UTC_TIME, nullable=True),
        sa.Column("last_error", sa.String(64), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("sent_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_reminder_outbox"),
        sa.UniqueConstraint(
            "kind", "occurrence", "recipient", "channel", name="uq_reminder_outbox_key"
        ),
    )
    op.create_index("ix_reminder_outbox_due", "reminder_outbox", ["state", "next_attempt_at"])
    op.create_table(
        "feedback_wins",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("team", sa.String(100), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("occurrence", sa.String(512), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("vague", sa.Integer(), nullable=False),
        sa.Column("recorded_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feedback_wins"),
        sa.UniqueConstraint("source", "occurrence", "kind", name="uq_feedback_wins_occurrence"),
    )
    op.create_index("ix_feedback_wins_team_day", "feedback_wins", ["team", "day"])
    op.create_table(
        "praise_readbacks",
        sa.Column("occurrence", sa.String(512), nullable=False),
        sa.Column("calendar", sa.String(200), nullable=False),
        sa.Column("event_id", sa.String(1024), nullable=False),
        sa.Column("recurrence_id", sa.String(64), nullable=True),
        sa.Column("team", sa.String(100), nullable=False),
        sa.Column("ends_at", UTC_TIME, nullable=False),
        sa.Column("read_at", UTC_TIME, nullable=True),
        sa.Column("filled", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("occurrence", name="pk_praise_readbacks"),
    )


def downgrade() -> None:
    op.drop_table("praise_readbacks")
    op.drop_index("ix_feedback_wins_team_day", table_name="feedback_wins")
    op.drop_table("feedback_wins")
    op.drop_index("ix_reminder_outbox_due", table_name="reminder_outbox")
    op.drop_table("reminder_outbox")
