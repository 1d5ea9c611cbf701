"""Every table of the database, on one ``MetaData``: the schema in one place.

The tables hold ids, hashes, codes, counts and times only, never description
text, feedback content or credentials (I7); ``tests/integration/test_store.py``
checks the column types and that the migrated schema equals these tables.

To add a table:

1. declare it here, on :data:`metadata`, in the section of its concern;
2. let Alembic draft the migration (see :mod:`feedback_agendas.scheduler.storage.migrations`)
   and review it;
3. give it a repository (a class that takes the engine) next to the code that uses it.

Constraint names follow :data:`metadata`'s naming convention, so that
migrations can refer to them on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from feedback_agendas.scheduler.storage.db import UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# The longest ids the event_records key holds (the engine skips events with longer ones).
MAX_EVENT_ID = 1024
MAX_RECURRENCE_ID = 64
# reminder_outbox.occurrence, feedback_wins.occurrence, praise_readbacks.occurrence
MAX_OCCURRENCE_KEY = 512

# -- sync state: cursors, records, run log, health (storage/store.py) ----------

calendar_cursors = Table(
    "calendar_cursors",
    metadata,
    Column("calendar", String(200), nullable=False),
    Column("cursor", Text(), nullable=True),  # the provider's opaque sync token
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("calendar"),
)

event_records = Table(
    "event_records",
    metadata,
    Column("calendar", String(200), nullable=False),
    Column("event_id", String(MAX_EVENT_ID), nullable=False),
    Column("recurrence_id", String(MAX_RECURRENCE_ID), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("reason", String(64), nullable=True),
    Column("action", String(32), nullable=False),
    Column("block_hash", String(128), nullable=True),
    Column("revisit_at", UTCDateTime(), nullable=True),
    Column("pending_write", Boolean(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("calendar", "event_id", "recurrence_id"),
)

run_log = Table(
    "run_log",
    metadata,
    Column("id", Integer(), autoincrement=True, nullable=False),
    Column("calendar", String(200), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=False),
    Column("ok", Boolean(), nullable=False),
    Column("error_kind", String(64), nullable=True),
    Column("writes", Integer(), nullable=False),
    PrimaryKeyConstraint("id"),
    Index("ix_run_log_calendar_id", "calendar", "id"),
)

run_log_counts = Table(
    "run_log_counts",
    metadata,
    Column("run_id", Integer(), nullable=False),
    Column("code", String(128), nullable=False),
    Column("count", Integer(), nullable=False),
    PrimaryKeyConstraint("run_id", "code"),
    ForeignKeyConstraint(["run_id"], ["run_log.id"], ondelete="CASCADE"),
)

# Each calendar's health, for /readyz and the metrics of every replica (revision 0050).
calendar_health = Table(
    "calendar_health",
    metadata,
    Column("calendar", String(200), nullable=False),
    Column("last_success_at", UTCDateTime(), nullable=True),
    Column("last_failure_at", UTCDateTime(), nullable=True),
    Column("consecutive_failures", Integer(), nullable=False),
    Column("last_error_kind", String(64), nullable=True),
    PrimaryKeyConstraint("calendar"),
)

# Where each CalDAV calendar named by display name was found, so that a new
# process (a cron sync, a restarted daemon, another replica) does not discover
# it again. ``config_digest`` is a digest of the server URL (without any
# userinfo), the user name and the calendar's name: a config change means a
# new discovery. No credentials. (revision 0060)
caldav_collections = Table(
    "caldav_collections",
    metadata,
    Column("calendar", String(200), nullable=False),
    Column("config_digest", String(64), nullable=False),
    Column("url", Text(), nullable=False),
    PrimaryKeyConstraint("calendar"),
)

# The people each calendar source (``discover:`` in the config) found, so that a
# new process (a cron sync, a restart, another replica) uses the list without
# asking the directory again within the day (sync/discovery.py). ``source`` is
# a digest of the source's scope, never its credentials. ``addresses`` is a JSON
# object {address: their manager or ""}, sorted; ``pending`` one like it: a
# refused refresh that would have stopped syncing too many at once, waiting for
# ``discover --accept``. (revision 0090)
calendar_discovery = Table(
    "calendar_discovery",
    metadata,
    Column("source", String(100), nullable=False),
    Column("addresses", Text(), nullable=False),
    Column("refreshed_at", UTCDateTime(), nullable=True),
    Column("attempted_at", UTCDateTime(), nullable=True),
    Column("error_kind", String(64), nullable=True),
    Column("pending", Text(), nullable=True),
    Column("pending_at", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("source"),
)

# -- leases: which replica works on what (storage/leases.py) -------------------

leases = Table(
    "leases",
    metadata,
    Column("resource", String(255), nullable=False),
    Column("holder", String(255), nullable=True),  # None: free
    Column("expires_at", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("resource"),
)

# -- push channels, shared by every replica (sync/push.py) ---------------------

push_channels = Table(
    "push_channels",
    metadata,
    Column("channel_id", String(64), primary_key=True),
    Column("calendar", String(200), nullable=False),
    Column("resource_id", String(255), nullable=False),
    Column("verifier", String(64), nullable=False),  # sha256 hex of the channel token
    Column("expires_at", UTCDateTime(), nullable=True),
    Column("registered_by", String(255), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # The last RECENT_MESSAGES message numbers accepted, space-separated:
    # a number among them is a replay.
    Column("recent_numbers", String(1000), nullable=True),
    # When a notification last started a sync of this channel's calendar.
    Column("synced_at", UTCDateTime(), nullable=True),
    Index("ix_push_channels_calendar", "calendar"),
)

# -- reminders: the outbox, wins, read-backs (reminders/) ----------------------

reminder_outbox = Table(
    "reminder_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("occurrence", String(MAX_OCCURRENCE_KEY), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("team", String(100), nullable=True),
    Column("params", Text, nullable=False, default="{}"),
    Column("due_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("state", String(12), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(255), nullable=True),  # a replica id (revision 0050)
    Column("lease_until", UTCDateTime, nullable=True),
    Column("last_error", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    UniqueConstraint("kind", "occurrence", "recipient", "channel", name="uq_reminder_outbox_key"),
    Index("ix_reminder_outbox_due", "state", "next_attempt_at"),
)

feedback_wins = Table(
    "feedback_wins",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("team", String(100), nullable=False),
    Column("day", Date, nullable=False),  # in the team's time zone
    Column("kind", String(16), nullable=False),
    Column("source", String(16), nullable=False),  # meeting | cli | one_on_one (private)
    Column("occurrence", String(MAX_OCCURRENCE_KEY), nullable=False),
    Column("count", Integer, nullable=False),
    Column("vague", Integer, nullable=False, default=0),
    Column("recorded_at", UTCDateTime, nullable=False),
    UniqueConstraint("source", "occurrence", "kind", name="uq_feedback_wins_occurrence"),
    Index("ix_feedback_wins_team_day", "team", "day"),
)

# Meetings to read back once they have ended: a team meeting's praise slot
# (slot "praise", or NULL in rows from before 1:1s were read back) and a 1:1's
# focus slot ("well", "better", "stop"). The table keeps its first name.
praise_readbacks = Table(
    "praise_readbacks",
    metadata,
    Column("occurrence", String(MAX_OCCURRENCE_KEY), primary_key=True),
    Column("calendar", String(200), nullable=False),
    Column("event_id", String(MAX_EVENT_ID), nullable=False),
    Column("recurrence_id", String(MAX_RECURRENCE_ID), nullable=True),
    Column("team", String(100), nullable=False),
    Column("ends_at", UTCDateTime, nullable=False),
    Column("read_at", UTCDateTime, nullable=True),
    Column("filled", Integer, nullable=True),
    Column("slot", String(16), nullable=True),
    # A digest of the etag of what was read (revision 0040), never of its text.
    Column("version", String(32), nullable=True),
)

# -- people ------------------------------------------------------------------------

# People who opted out of agendas themselves (their link, the admin's CLI or the
# dashboard; revision 0100): one row per address, lower case; opting back in
# deletes it. ``via`` is a code (link, cli, dashboard).
self_opt_outs = Table(
    "self_opt_outs",
    metadata,
    Column("address", String(320), nullable=False),
    Column("via", String(16), nullable=False),
    Column("opted_out_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("address"),
)
