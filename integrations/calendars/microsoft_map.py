"""Map Microsoft Graph event JSON to :class:`~feedback_agendas.agendas.model.Meeting` and back.

Identity: a single event or a series master is ``(id, None)`` with its
immutable id; an exception of a series is ``(seriesMasterId, originalStart)``
with the original start normalised to ``2026-12-01T09:00:00Z``.

The body: Exchange stores HTML as a whole document (``<html><head>...
<body>...``). The core sees only what stands inside ``<body>``; a write puts
the new inside back between the document's own head and tail, so nothing
outside the body's content (styles, the Teams join block) is touched.

Our block hash lives in a single-value extended property, a named string
property in our own GUID namespace. Its value is ``v1 <hash> <yyyy-mm-dd>``:
the hash of our block and the UTC day of our last body write (``-`` for no
hash), so the one-write-a-day cap holds across processes and replicas.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from feedback_agendas.agendas.model import (
    Attendee,
    EventRef,
    EventType,
    Meeting,
    Status,
    TextFormat,
    Unreadable,
    Visibility,
)

PROPERTY_ID = "String {4f1c2a67-3e0b-4d59-9a8e-6f2b1c7d0e51} Name feedbackAgendasBlock"
# The fields a read asks for; everything the mapping below looks at.
SELECT = (
    "id,type,seriesMasterId,originalStart,originalStartTimeZone,subject,body,start,end,"
    "isAllDay,isCancelled,isOrganizer,organizer,attendees,recurrence,sensitivity,showAs,"
    "responseRequested,location"
)
EXPAND = f"singleValueExtendedProperties($filter=id eq '{PROPERTY_ID}')"

# Windows zone names Outlook writes -> IANA (the common ones; IANA names pass through).
WINDOWS_ZONES = {
    "UTC": "UTC",
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "W. Europe Standard Time": "Europe/Berlin",
    "Central Europe Standard Time": "Europe/Budapest",
    "Central European Standard Time": "Europe/Warsaw",
    "Romance Standard Time": "Europe/Paris",
    "FLE Standard Time": "Europe/Helsinki",
    "GTB Standard Time": "Europe/Bucharest",
    "E. Europe Standard Time": "Europe/Chisinau",
    "Russian Standard Time": "Europe/Moscow",
    "Eastern Standard Time": "America/New_York",
    "Central Standard Time": "America/Chicago",
    "Mountain Standard Time": "America/Denver",
    "US Mountain Standard Time": "America/Phoenix",
    "Pacific Standard Time": "America/Los_Angeles",
    "Atlantic Standard Time": "America/Halifax",
    "India Standard Time": "Asia/Kolkata",
    "China Standard Time": "Asia/Shanghai",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Singapore Standard Time": "Asia/Singapore",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "New Zealand Standard Time": "Pacific/Auckland",
    "E. South America Standard Time": "America/Sao_Paulo",
    "South Africa Standard Time": "Africa/Johannesburg",
}

_DAYS = {
    "monday": "MO",
    "tuesday": "TU",
    "wednesday": "WE",
    "thursday": "TH",
    "friday": "FR",
    "saturday": "SA",
    "sunday": "SU",
}
_INDEX = {"first": "1", "second": "2", "third": "3", "fourth": "4", "last": "-1"}
_SENSITIVITY = {
    "normal": Visibility.DEFAULT,
    "personal": Visibility.PRIVATE,
    "private": Visibility.PRIVATE,
    "confidential": Visibility.CONFIDENTIAL,
}
_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)


class UnreadableEvent(ValueError):
    """An event we cannot map; the reason is safe to log."""


@dataclass(frozen=True, slots=True)
class Stamp:
    """Our extended property: the block hash and the UTC day of our last body write."""

    block_hash: str | None
    written_on: date | None

    @classmethod
    def parse(cls, value: str | None) -> Stamp:
        parts = (value or "").split()
        if len(parts) != 3 or parts[0] != "v1":
            return cls(None, None)
        try:
            day = date.fromisoformat(parts[2])
        except ValueError:
            day = None
        return cls(None if parts[1] == "-" else parts[1], day)

    def value(self) -> str:
        day = self.written_on.isoformat() if self.written_on else "-"
        return f"v1 {self.block_hash or '-'} {day}"


@dataclass(frozen=True, slots=True)
class Body:
    """An event body split so that only the inside of ``<body>`` is ours to change."""

    head: str
    inner: str
    tail: str
    html: bool

    @classmethod
    def split(cls, body: Any) -> Body:
        body = body if isinstance(body, dict) else {}
        content = str(body.get("content") or "")
        html = str(body.get("contentType", "html")).lower() != "text"
        if not html:
            return cls("", content, "", False)
        opening = _BODY_OPEN.search(content)
        closing = _BODY_CLOSE.search(content, opening.end()) if opening else None
        if not opening or not closing:
            return cls("", content, "", True)
        head, inner, tail = (
            content[: opening.end()],
            content[opening.end() : closing.start()],
            content[closing.start() :],
        )
        # Exchange puts the content on lines of its own: that break is part of the frame.
        for newline in ("\r\n", "\n"):
            if inner.startswith(newline):
                head, inner = head + newline, inner[len(newline) :]
                break
        for newline in ("\r\n", "\n"):
            if inner.endswith(newline):
                inner, tail = inner[: -len(newline)], newline + tail
                break
        return cls(head, inner, tail, True)

    def with_inner(self, inner: str) -> str:
        return f"{self.head}{inner}{self.tail}"


def iana_zone(name: str | None) -> str | None:
    """An IANA name for a Graph zone name (IANA or Windows), or None when unknown."""
    if not name:
        return None
    candidate = WINDOWS_ZONES.get(name, name)
    try:
        ZoneInfo(candidate)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
    return candidate


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_graph_time(when: Any, field: str) -> datetime:
    """A ``dateTimeTimeZone`` (``outlook.timezone="UTC"`` asked for) as an aware datetime."""
    if isinstance(when, str):
        value, zone = when, "UTC"
    elif isinstance(when, dict) and when.get("dateTime"):
        value, zone = str(when["dateTime"]), str(when.get("timeZone") or "UTC")
    else:
        raise UnreadableEvent(f"{field} missing")
    value = value.replace("Z", "+00:00")
    # Graph writes seven fractional digits; Python reads six.
    value = re.sub(r"(\.\d{6})\d+", r"\1", value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UnreadableEvent(f"unparseable {field}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(iana_zone(zone) or "UTC"))
    return parsed


def ref_for(calendar: str, item: dict[str, Any]) -> EventRef:
    """The ref of an event: exceptions and occurrences by series and original start."""
    kind = item.get("type")
    if kind in ("exception", "occurrence") and item.get("seriesMasterId"):
        original = item.get("originalStart") or item.get("start")
        return EventRef(
            calendar,
            str(item["seriesMasterId"]),
            utc_text(parse_graph_time(original, "originalStart")),
        )
    if not item.get("id"):
        raise UnreadableEvent("event without id")
    return EventRef(calendar, str(item["id"]))


def recurrence_lines(recurrence: Any, start: datetime) -> tuple[str, ...]:
    """Graph's ``patternedRecurrence`` as RFC 5545 lines (``RRULE:...``)."""
    if not isinstance(recurrence, dict):
        return ()
    pattern = recurrence.get("pattern") or {}
    span = recurrence.get("range") or {}
    kind = str(pattern.get("type", ""))
    parts: list[str] = []
    days = ",".join(_DAYS[d] for d in pattern.get("daysOfWeek") or () if d in _DAYS)
    index = _INDEX.get(str(pattern.get("index", "first")), "1")
    if kind == "daily":
        parts.append("FREQ=DAILY")
    elif kind == "weekly":
        parts += ["FREQ=WEEKLY", *([f"BYDAY={days}"] if days else [])]
    elif kind == "absoluteMonthly":
        parts += ["FREQ=MONTHLY", f"BYMONTHDAY={int(pattern.get('dayOfMonth') or start.day)}"]
    elif kind == "relativeMonthly":
        parts += ["FREQ=MONTHLY", f"BYDAY={days}", f"BYSETPOS={index}"]
    elif kind == "absoluteYearly":
        parts += [
            "FREQ=YEARLY",
            f"BYMONTH={int(pattern.get('month') or start.month)}",
            f"BYMONTHDAY={int(pattern.get('dayOfMonth') or start.day)}",
        ]
    elif kind == "relativeYearly":
        parts += [
            "FREQ=YEARLY",
            f"BYMONTH={int(pattern.get('month') or start.month)}",
            f"BYDAY={days}",
            f"BYSETPOS={index}",
        ]
    else:
        raise UnreadableEvent(f"unknown recurrence pattern {kind[:40]!r}")
    interval = int(pattern.get("interval") or 1)
    if interval > 1:
        parts.append(f"INTERVAL={interval}")
    if span.get("type") == "endDate" and span.get("endDate"):
        try:
            end = date.fromisoformat(str(span["endDate"]))
        except ValueError:
            raise UnreadableEvent("unparseable recurrence endDate") from None
        zone = start.tzinfo or UTC
        last = datetime.combine(end, time(23, 59, 59), tzinfo=zone).astimezone(UTC)
        parts.append(f"UNTIL={last.strftime('%Y%m%dT%H%M%SZ')}")
    elif span.get("type") == "numbered" and span.get("numberOfOccurrences"):
        parts.append(f"COUNT={int(span['numberOfOccurrences'])}")
    return (f"RRULE:{';'.join(parts)}",)


def _attendee(raw: dict[str, Any]) -> Attendee | None:
    address = str((raw.get("emailAddress") or {}).get("address") or "").lower()
    if not address:
        return None
    kind = str(raw.get("type", "required"))
    return Attendee(
        email=address,
        display_name=str((raw.get("emailAddress") or {}).get("name") or ""),
        resource=kind == "resource",
        optional=kind == "optional",
        response=str((raw.get("status") or {}).get("response") or "none"),
    )


def stamp_of(item: dict[str, Any]) -> Stamp:
    for prop in item.get("singleValueExtendedProperties") or ():
        if str(prop.get("id", "")).lower() == PROPERTY_ID.lower():
            return Stamp.parse(str(prop.get("value") or ""))
    return Stamp(None, None)


def to_meeting(calendar: str, owner: str, item: dict[str, Any]) -> Meeting:
    """Map a full (not skeleton) Graph event. Raises :class:`UnreadableEvent`."""
    ref = ref_for(calendar, item)
    all_day = bool(item.get("isAllDay"))
    start = parse_graph_time(item.get("start"), "start")
    end = parse_graph_time(item.get("end"), "end")
    rec = item.get("recurrence")
    zone = iana_zone(((rec or {}).get("range") or {}).get("recurrenceTimeZone")) or iana_zone(
        item.get("originalStartTimeZone")
    )
    if all_day:
        start = datetime.combine(start.date(), time(0), tzinfo=ZoneInfo(zone or "UTC"))
        end = datetime.combine(end.date(), time(0), tzinfo=ZoneInfo(zone or "UTC"))
    address = str(((item.get("organizer") or {}).get("emailAddress") or {}).get("address") or "")
    organizer = address.lower() or None
    is_series = item.get("type") == "seriesMaster"
    body = Body.split(item.get("body"))
    show_as = str(item.get("showAs") or "busy")
    attendees = tuple(a for a in map(_attendee, item.get("attendees") or ()) if a is not None)
    return Meeting(
        ref=ref,
        title=str(item.get("subject") or ""),
        description=body.inner,
        start=start,
        end=end if end > start else start + timedelta(minutes=1),
        owner=owner.lower(),
        etag=str(item.get("@odata.etag") or item.get("changeKey") or ""),
        description_format=TextFormat.HTML if body.html else TextFormat.TEXT,
        all_day=all_day,
        timezone=zone,
        recurrence=recurrence_lines(rec, start) if is_series else (),
        organizer=organizer,
        attendees=attendees,
        status=Status.CANCELLED if item.get("isCancelled") else Status.CONFIRMED,
        visibility=_SENSITIVITY.get(str(item.get("sensitivity") or "normal"), Visibility.DEFAULT),
        event_type=EventType.OUT_OF_OFFICE if show_as == "oof" else EventType.DEFAULT,
        # Only the organizer's copy is ours: an attendee's copy would change for them alone.
        editable=bool(item.get("isOrganizer")) and (organizer in (None, owner.lower())),
        stored_hash=stamp_of(item).block_hash,
    )


def to_meeting_or_unreadable(
    calendar: str, owner: str, item: dict[str, Any]
) -> Meeting | Unreadable:
    try:
        return to_meeting(calendar, owner, item)
    except (UnreadableEvent, ValueError, TypeError) as exc:
        try:
            ref = ref_for(calendar, item)
        except (UnreadableEvent, ValueError, TypeError):
            ref = EventRef(calendar, str(item.get("id", "?")))
        reason = str(exc) if isinstance(exc, UnreadableEvent) else type(exc).__name__
        return Unreadable(ref=ref, reason=reason)


def may_write(meeting: Meeting) -> bool:
    """The provider's own fence: only the organizer's copy, never private or cancelled ones."""
    return (
        meeting.editable
        and not meeting.locked
        and meeting.event_type is EventType.DEFAULT
        and meeting.visibility is not Visibility.PRIVATE
        and meeting.status is not Status.CANCELLED
    )
