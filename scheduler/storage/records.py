"""What the store keeps, as values: event records, runs, health; checked to be ids and codes.

The store keeps what we need to stay idempotent and nothing more: ids, block
hashes, codes, counts and times. Never titles, descriptions, attendee names
or feedback content (I7). :func:`check_cycle` refuses anything else before it
reaches the database: a code is checked to be a code, so free text cannot
pass for one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from feedback_agendas.agendas.model import EventRef
from feedback_agendas.scheduler.storage.tables import MAX_EVENT_ID, MAX_RECURRENCE_ID

# A series (or single event) has no recurrence id; the key column cannot be NULL.
SERIES = ""

# A code is a short identifier ("one_on_one", "skipped.not_organizer",
# "error.RateLimited"): no spaces, so a sentence cannot pass for one.
_CODE = re.compile(r"^[A-Za-z0-9_.:/+-]+$")


def is_code(value: str, max_len: int) -> bool:
    """True when ``value`` is a code of 1 to ``max_len`` characters (no spaces, no text)."""
    return 0 < len(value) <= max_len and _CODE.match(value) is not None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """What we know about one event we saw or touched. Ids, codes, a hash and times only.

    ``kind``: ``one_on_one`` | ``team`` | ``skip``; ``reason``: the skip reason
    code; ``action``: what the last cycle did (``inserted``, ``updated``,
    ``removed``, ``unchanged``, ``left_edited``, ``skipped``, ``failed``);
    ``block_hash``: the hash of our block now in the event (``None``: none of
    ours); ``revisit_at``: when to read the event again without a change;
    ``pending_write``: a write failed or was given up, retry next cycle.
    """

    ref: EventRef
    kind: str
    reason: str | None
    action: str
    block_hash: str | None
    revisit_at: datetime | None
    pending_write: bool
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CalendarHealth:
    """How a calendar fares: its last successful cycle and the failures in a row since."""

    calendar: str
    last_success_at: datetime | None
    last_failure_at: datetime | None
    consecutive_failures: int
    last_error_kind: str | None


@dataclass(frozen=True, slots=True)
class CycleStart:
    """What a cycle reads before it asks the provider: the stored cursor, and whether any
    record of the calendar is due for a revisit or a retried write."""

    cursor: str | None
    due: bool


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One cycle of one calendar in the run log. ``counts`` maps codes to numbers."""

    calendar: str
    started_at: datetime
    finished_at: datetime
    ok: bool
    error_kind: str | None
    writes: int
    counts: dict[str, int]


def _check_code(field: str, value: str | None, max_len: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or len(value) > max_len or not _CODE.match(value):
        raise ValueError(f"{field} must be a code of at most {max_len} characters, without spaces")


def _check_ref(ref: EventRef, calendar: str) -> None:
    if ref.calendar != calendar:
        raise ValueError(f"an event of calendar {ref.calendar!r} in a cycle of {calendar!r}")
    if not ref.event_id or len(ref.event_id) > MAX_EVENT_ID or "\x00" in ref.event_id:
        raise ValueError(f"event ids must be 1 to {MAX_EVENT_ID} characters long, without NUL")
    if ref.recurrence_id is not None:
        _check_code("recurrence_id", ref.recurrence_id, MAX_RECURRENCE_ID)


def check_cycle(
    calendar: str,
    upserts: Iterable[EventRecord],
    deletes: Iterable[EventRef],
    run: RunSummary,
) -> None:
    if not calendar or len(calendar) > 200:
        raise ValueError("calendar names must be 1 to 200 characters long")
    for rec in upserts:
        _check_ref(rec.ref, calendar)
        _check_code("kind", rec.kind, 32)
        _check_code("reason", rec.reason, 64, optional=True)
        _check_code("action", rec.action, 32)
        _check_code("block_hash", rec.block_hash, 128, optional=True)
    for ref in deletes:
        _check_ref(ref, calendar)
    if run.calendar != calendar:
        raise ValueError(f"a run of calendar {run.calendar!r} in a cycle of {calendar!r}")
    _check_code("error_kind", run.error_kind, 64, optional=True)
    for code, count in run.counts.items():
        _check_code("count code", code, 128)
        if not isinstance(count, int):
            raise ValueError("counts must be integers")


def ref_of(calendar: str, event_id: str, recurrence_id: str) -> EventRef:
    return EventRef(calendar, event_id, recurrence_id or None)


def row_from_record(rec: EventRecord) -> dict[str, Any]:
    return {
        "calendar": rec.ref.calendar,
        "event_id": rec.ref.event_id,
        "recurrence_id": rec.ref.recurrence_id or SERIES,
        "kind": rec.kind,
        "reason": rec.reason,
        "action": rec.action,
        "block_hash": rec.block_hash,
        "revisit_at": rec.revisit_at,
        "pending_write": rec.pending_write,
        "updated_at": rec.updated_at,
    }


def record_from_row(row: Any) -> EventRecord:
    return EventRecord(
        ref=ref_of(row["calendar"], row["event_id"], row["recurrence_id"]),
        kind=row["kind"],
        reason=row["reason"],
        action=row["action"],
        block_hash=row["block_hash"],
        revisit_at=row["revisit_at"],
        pending_write=bool(row["pending_write"]),
        updated_at=row["updated_at"],
    )


def run_from_row(row: Any, counts: dict[str, int]) -> RunSummary:
    return RunSummary(
        calendar=row["calendar"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        ok=bool(row["ok"]),
        error_kind=row["error_kind"],
        writes=row["writes"],
        counts=dict(sorted(counts.items())),
    )
