"""Frozen model objects that every provider normalises into.

A provider turns whatever it reads (a Google event resource, a VEVENT) into a
:class:`Meeting`. The core only ever sees these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class TextFormat(StrEnum):
    """How a description is written: plain text (ICS) or HTML (Google)."""

    TEXT = "text"
    HTML = "html"


class Status(StrEnum):
    CONFIRMED = "confirmed"
    TENTATIVE = "tentative"
    CANCELLED = "cancelled"


class Visibility(StrEnum):
    DEFAULT = "default"
    PUBLIC = "public"
    PRIVATE = "private"
    CONFIDENTIAL = "confidential"


class EventType(StrEnum):
    """Google's ``eventType``; ICS events are ``default`` unless marked otherwise."""

    DEFAULT = "default"
    OUT_OF_OFFICE = "outOfOffice"
    FOCUS_TIME = "focusTime"
    WORKING_LOCATION = "workingLocation"
    BIRTHDAY = "birthday"
    FROM_GMAIL = "fromGmail"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class EventRef:
    """Identity of one writable event.

    ``event_id`` is the iCalendar UID or the provider's id of a single event or
    of a recurring series. ``recurrence_id`` is ``None`` for the series (or a
    single event) and, for one occurrence of a series, its original start in
    ISO 8601: ``2026-12-01T09:00:00Z`` (UTC) or ``2026-12-01`` for a date.
    """

    calendar: str
    event_id: str
    recurrence_id: str | None = None

    def sort_key(self) -> tuple[str, str, str]:
        """Series first, then its occurrences in time order."""
        return (self.calendar, self.event_id, self.recurrence_id or "")

    def __lt__(self, other: EventRef) -> bool:
        return self.sort_key() < other.sort_key()


@dataclass(frozen=True, slots=True)
class Attendee:
    """One invitee. ``email`` is always lower case."""

    email: str
    display_name: str = ""
    resource: bool = False  # a room or a piece of equipment
    group: bool = False  # a known group or list address (CUTYPE=GROUP)
    optional: bool = False
    response: str = "needsAction"


@dataclass(frozen=True, slots=True)
class Meeting:
    """One event as the core sees it: a single event, a series, or one occurrence.

    ``start``/``end`` are timezone-aware. For a series they are the first
    occurrence; ``recurrence`` holds the RFC 5545 lines (``RRULE:...``,
    ``EXDATE...``, ``RDATE...``) and ``timezone`` the IANA zone that the
    recurrence is expanded in (so a 09:00 stand-up stays at 09:00 across DST).
    ``owner`` is the calendar owner's address; ``editable`` is False when the
    provider knows we may not write (an attendee's copy, a read-only feed).
    ``stored_hash`` is the block hash we saved in the event itself (Google
    private extended property, ICS ``X-FEEDBACK-AGENDAS-HASH``), if any.
    """

    ref: EventRef
    title: str
    description: str
    start: datetime
    end: datetime
    owner: str
    etag: str
    description_format: TextFormat = TextFormat.TEXT
    all_day: bool = False
    timezone: str | None = None
    recurrence: tuple[str, ...] = ()
    organizer: str | None = None
    attendees: tuple[Attendee, ...] = ()
    attendees_omitted: bool = False
    status: Status = Status.CONFIRMED
    visibility: Visibility = Visibility.DEFAULT
    event_type: EventType = EventType.DEFAULT
    locked: bool = False
    editable: bool = True
    stored_hash: str | None = None

    @property
    def is_series(self) -> bool:
        return bool(self.recurrence) and self.ref.recurrence_id is None


@dataclass(frozen=True, slots=True)
class Unreadable:
    """An event a provider could not parse; skipped with a logged reason, never rewritten."""

    ref: EventRef
    reason: str


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """What a provider reports since a cursor.

    ``full`` is True when this is a full listing (no cursor, or a resync):
    then events we know of and that are absent here are gone.
    ``cursor`` is stored only after the whole change set was processed.
    """

    meetings: tuple[Meeting, ...]
    deleted: tuple[EventRef, ...]
    cursor: str
    full: bool
    unreadable: tuple[Unreadable, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class DescriptionWrite:
    """A conditional write of one event's description and our block hash.

    ``block_hash`` is None when the block was removed.
    """

    ref: EventRef
    etag: str
    description: str
    block_hash: str | None


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """Result of one write: ``etag`` on success, else ``error`` (an exception instance)."""

    ref: EventRef
    etag: str | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
