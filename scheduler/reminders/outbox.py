"""The reminder outbox: what is due, what was sent, and never twice.

A row is one message to one channel. Its idempotency key is the unique tuple
``(kind, occurrence, recipient, channel)``; enqueueing the same key again
changes nothing once the row left ``pending``. A sender:

1. claims due rows with a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, and
   a compare-and-set on the lease columns everywhere, so SQLite works too);
2. marks one row ``sending`` (and counts the attempt) right before it sends;
3. sends, then marks it ``sent``, or ``pending`` again with a backoff, or
   ``dead`` after ``max_attempts``.

A crash between 2 and 3 leaves a ``sending`` row whose lease expires. Another
sender claims it and sends again: that is the one duplicate the design allows
(the send-then-record window), and :attr:`OutboxItem.maybe_sent` lets the
caller count it.

Rows hold ids, counts and template parameters only, never description text,
feedback content or a channel URL (the channel is :func:`channel_id`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Connection, Engine

from feedback_agendas.integrations.retry import RetryPolicy, backoff_delay
from feedback_agendas.scheduler.storage.db import insert_ignoring, write_transaction
from feedback_agendas.scheduler.storage.tables import reminder_outbox as outbox_table

PENDING, SENDING, SENT, DEAD, EXPIRED, CANCELLED = (
    "pending",
    "sending",
    "sent",
    "dead",
    "expired",
    "cancelled",
)
OPEN_STATES = (PENDING, SENDING)


@dataclass(frozen=True, slots=True)
class NewReminder:
    """A message to enqueue. ``params`` are template parameters: ids, counts and settings only."""

    kind: str
    occurrence: str
    recipient: str
    channel: str
    due_at: datetime
    expires_at: datetime
    team: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.kind, self.occurrence, self.recipient, self.channel)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A claimed row."""

    id: int
    kind: str
    occurrence: str
    recipient: str
    channel: str
    team: str | None
    params: dict[str, Any]
    due_at: datetime
    expires_at: datetime
    attempts: int
    maybe_sent: bool  # it was being sent when its last sender died

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.kind, self.occurrence, self.recipient, self.channel)


# A failed send waits a step of 30 s, 1 min, 2 min, ... up to an hour, each
# wait drawn from the upper half of its step.
SEND_RETRY = RetryPolicy(base=30.0, cap=3600.0, floor=0.5)
_rng = random.Random()


def exponential_backoff(attempt: int, *, rng: random.Random = _rng) -> timedelta:
    """The wait after failed send ``attempt`` (1-based): :func:`backoff_delay` on SEND_RETRY."""
    return timedelta(seconds=backoff_delay(max(0, attempt - 1), SEND_RETRY, rng))


class Outbox:
    """The outbox on one database. Every method takes ``now``; none reads a clock."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_attempts: int = 5,
        backoff: Callable[[int], timedelta] = exponential_backoff,
    ) -> None:
        self.engine = engine
        self.max_attempts = max_attempts
        self.backoff = backoff
        self._skip_locked = engine.dialect.name == "postgresql"

    # -- writing ---------------------------------------------------------

    def enqueue(self, reminders: Iterable[NewReminder], now: datetime) -> int:
        """Insert new rows; an existing key is updated only while still ``pending``.

        A pending row follows its meeting (moved start, new parameters); a row
        that is being sent or was sent is never touched. Returns how many rows
        were inserted or moved.
        """
        batch = list({r.key: r for r in reminders}.values())
        if not batch:
            return 0
        t = outbox_table
        changed = 0
        with write_transaction(self.engine) as conn:
            existing = self._existing(conn, batch)
            inserts = []
            for r in batch:
                row = existing.get(r.key)
                if row is None:
                    inserts.append(self._values(r, now))
                    continue
                if row.state != PENDING:
                    continue
                params = json.dumps(r.params, sort_keys=True)
                same_time = row.due_at == r.due_at and row.expires_at == r.expires_at
                if same_time and row.params == params:
                    continue
                conn.execute(
                    update(t)
                    .where(t.c.id == row.id, t.c.state == PENDING)
                    .values(
                        due_at=r.due_at,
                        expires_at=r.expires_at,
                        next_attempt_at=r.due_at,
                        params=params,
                    )
                )
                changed += 1
            if inserts:
                stmt = insert_ignoring(
                    conn, t, ["kind", "occurrence", "recipient", "channel"]
                ).returning(t.c.id)
                # rowcount of an executemany is not reliable across drivers
                changed += len(conn.execute(stmt, inserts).all())
        return changed

    def cancel(self, occurrence: str, kinds: Sequence[str], now: datetime) -> int:
        """Cancel the pending rows of a meeting occurrence that no longer happens."""
        t = outbox_table
        with write_transaction(self.engine) as conn:
            result = conn.execute(
                update(t)
                .where(t.c.occurrence == occurrence, t.c.kind.in_(kinds), t.c.state == PENDING)
                .values(state=CANCELLED, lease_owner=None, lease_until=None)
            )
        return result.rowcount

    def _existing(self, conn: Connection, batch: list[NewReminder]) -> dict[tuple[str, ...], Any]:
        t = outbox_table
        found: dict[tuple[str, ...], Any] = {}
        for start in range(0, len(batch), 200):
            chunk = batch[start : start + 200]
            occurrences = {r.occurrence for r in chunk}
            rows = conn.execute(
                select(
                    t.c.id,
                    t.c.kind,
                    t.c.occurrence,
                    t.c.recipient,
                    t.c.channel,
                    t.c.state,
                    t.c.due_at,
                    t.c.expires_at,
                    t.c.params,
                ).where(t.c.occurrence.in_(occurrences))
            ).all()
            for row in rows:
                found[(row.kind, row.occurrence, row.recipient, row.channel)] = row
        return found

    @staticmethod
    def _values(r: NewReminder, now: datetime) -> dict[str, Any]:
        return {
            "kind": r.kind,
            "occurrence": r.occurrence,
            "recipient": r.recipient,
            "channel": r.channel,
            "team": r.team,
            "params": json.dumps(r.params, sort_keys=True),
            "due_at": r.due_at,
            "expires_at": r.expires_at,
            "state": PENDING,
            "attempts": 0,
            "next_attempt_at": r.due_at,
            "created_at": now,
        }

    # -- sending ---------------------------------------------------------

    def expire_overdue(self, now: datetime) -> int:
        """Mark open rows past their expiry ``expired`` (the misfire rule)."""
        t = outbox_table
        with write_transaction(self.engine) as conn:
            result = conn.execute(
                update(t)
                .where(
                    t.c.state.in_(OPEN_STATES),
                    t.c.expires_at <= now,
                    or_(t.c.lease_until.is_(None), t.c.lease_until < now),
                )
                .values(state=EXPIRED, lease_owner=None, lease_until=None)
            )
        return result.rowcount

    def claim(
        self,
        owner: str,
        now: datetime,
        *,
        limit: int = 50,
        lease: timedelta = timedelta(seconds=60),
    ) -> list[OutboxItem]:
        """Lease up to ``limit`` due rows to ``owner`` until ``now + lease``."""
        t = outbox_table
        free = and_(
            t.c.state.in_(OPEN_STATES),
            t.c.next_attempt_at <= now,
            t.c.expires_at > now,
            or_(t.c.lease_until.is_(None), t.c.lease_until < now),
        )
        with write_transaction(self.engine) as conn:
            query = select(t.c.id).where(free).order_by(t.c.next_attempt_at, t.c.id).limit(limit)
            if self._skip_locked:
                query = query.with_for_update(skip_locked=True)
            ids = list(conn.scalars(query))
            if not ids:
                return []
            # The free condition again: on SQLite another process may have won the race.
            conn.execute(
                update(t)
                .where(t.c.id.in_(ids), free)
                .values(lease_owner=owner, lease_until=now + lease)
            )
            rows = conn.execute(
                select(t)
                .where(t.c.id.in_(ids), t.c.lease_owner == owner, t.c.lease_until == now + lease)
                .order_by(t.c.next_attempt_at, t.c.id)
            ).all()
        return [
            OutboxItem(
                id=row.id,
                kind=row.kind,
                occurrence=row.occurrence,
                recipient=row.recipient,
                channel=row.channel,
                team=row.team,
                params=json.loads(row.params),
                due_at=row.due_at,
                expires_at=row.expires_at,
                attempts=row.attempts,
                maybe_sent=row.state == SENDING,
            )
            for row in rows
        ]

    def begin_send(self, item: OutboxItem, owner: str, now: datetime) -> bool:
        """Mark the row ``sending`` and count the attempt; False if the lease was lost."""
        t = outbox_table
        with write_transaction(self.engine) as conn:
            result = conn.execute(
                update(t)
                .where(t.c.id == item.id, t.c.lease_owner == owner, t.c.lease_until > now)
                .values(state=SENDING, attempts=t.c.attempts + 1)
            )
        return result.rowcount == 1

    def mark_sent(self, item: OutboxItem, owner: str, now: datetime) -> bool:
        """Record a delivery. False when another sender took the row over meanwhile."""
        t = outbox_table
        with write_transaction(self.engine) as conn:
            result = conn.execute(
                update(t)
                .where(t.c.id == item.id, t.c.lease_owner == owner, t.c.state == SENDING)
                .values(
                    state=SENT, sent_at=now, lease_owner=None, lease_until=None, last_error=None
                )
            )
        return result.rowcount == 1

    def mark_failed(self, item: OutboxItem, owner: str, now: datetime, error_kind: str) -> str:
        """Schedule a retry with backoff, or dead-letter after ``max_attempts``.

        Returns the new state (``pending`` or ``dead``).
        """
        t = outbox_table
        attempts = item.attempts + 1
        if attempts >= self.max_attempts:
            values: dict[str, Any] = {"state": DEAD}
        else:
            values = {"state": PENDING, "next_attempt_at": now + self.backoff(attempts)}
        with write_transaction(self.engine) as conn:
            conn.execute(
                update(t)
                .where(t.c.id == item.id, t.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None, last_error=error_kind[:64], **values)
            )
        return str(values["state"])

    def defer(self, item: OutboxItem, owner: str, until: datetime) -> None:
        """Give the row back untouched, not to be tried before ``until`` (quiet hours)."""
        t = outbox_table
        with write_transaction(self.engine) as conn:
            conn.execute(
                update(t)
                .where(t.c.id == item.id, t.c.lease_owner == owner)
                .values(next_attempt_at=until, lease_owner=None, lease_until=None)
            )

    def expire(self, item: OutboxItem, owner: str) -> None:
        """Drop a row that can no longer be sent in time."""
        t = outbox_table
        with write_transaction(self.engine) as conn:
            conn.execute(
                update(t)
                .where(t.c.id == item.id, t.c.lease_owner == owner)
                .values(state=EXPIRED, lease_owner=None, lease_until=None)
            )

    def extend_leases(self, owner: str, now: datetime, lease: timedelta) -> int:
        """Heartbeat: push out the leases ``owner`` still holds."""
        t = outbox_table
        with write_transaction(self.engine) as conn:
            result = conn.execute(
                update(t)
                .where(t.c.lease_owner == owner, t.c.lease_until > now)
                .values(lease_until=now + lease)
            )
        return result.rowcount

    def lease_owners(self) -> set[str]:
        """Everyone who holds (or held, expired) a lease on some row."""
        t = outbox_table
        with self.engine.connect() as conn:
            return set(
                conn.scalars(select(t.c.lease_owner).where(t.c.lease_owner.is_not(None)).distinct())
            )

    def release(self, owner: str) -> int:
        """Give back every lease ``owner`` holds (graceful shutdown)."""
        t = outbox_table
        with write_transaction(self.engine) as conn:
            result = conn.execute(
                update(t).where(t.c.lease_owner == owner).values(lease_owner=None, lease_until=None)
            )
        return result.rowcount

    # -- reading ---------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Rows per state."""
        t = outbox_table
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.state, func.count()).group_by(t.c.state)).all()
        return {state: count for state, count in rows}

    def held_by(self, owner: str, now: datetime) -> int:
        t = outbox_table
        with self.engine.connect() as conn:
            return int(
                conn.scalar(
                    select(func.count()).where(t.c.lease_owner == owner, t.c.lease_until > now)
                )
                or 0
            )
