"""Each calendar's health, shared by every replica; outbox lease owners as long as replica ids.

``calendar_health`` holds, per calendar, when its last cycle succeeded, how
many cycles in a row failed since, and the kind of the last failure (a code
such as ``auth`` or ``storage``). It is updated in the same transaction as the
run log, so ``/readyz`` and the metrics of every replica read the same truth.
Rows are filled from the run log's successful runs.

``reminder_outbox.lease_owner`` grows from 64 to 255 characters, like
``leases.holder``: a replica id is ``HOST-PID-RANDOM`` and a host name may
have 64 characters on its own; a longer id made every claim fail on
PostgreSQL, so no reminder was ever sent.

Revision ID: 0050
Revises: 0040
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0050"
down_revision = "0040"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calendar_health",
        sa.Column("calendar", sa.String(200), nullable=False),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("last_error_kind", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("calendar", name="pk_calendar_health"),
    )
    op.execute(
        "INSERT INTO calendar_health (calendar, last_success_at, consecutive_failures)"
        " SELECT calendar, MAX(finished_at), 0 FROM run_log WHERE ok GROUP BY calendar"
    )
    with op.batch_alter_table("reminder_outbox") as batch:
        batch.alter_column(
            "lease_owner", existing_type=sa.String(64), type_=sa.String(255), nullable=True
        )


def downgrade() -> None:
    with op.batch_alter_table("reminder_outbox") as batch:
        batch.alter_column(
            "lease_owner", existing_type=sa.String(255), type_=sa.String(64), nullable=True
        )
    op.drop_table("calendar_health")
