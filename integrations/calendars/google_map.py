"""Map Google Calendar event resources to :class:`~feedback_agendas.agendas.model.Meeting` and back.

Identity: a single event or a series is ``(id, None)``; one occurrence of a
series (a modified or cancelled instance) is ``(recurringEventId,
originalStartTime)`` with the start normalised to ``2026-12-01T09:00:00Z`` or
``2026-12-01``. Google's instance ids are ``<seriesId>_<YYYYMMDDTHHMMSSZ>``
(``<seriesId>_<YYYYMMDD>`` for all-day series), so a ref maps back to an id.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
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

# Our block hash lives in the event itself, in a private extended property
# (key at most 44 characters, value at most 1024).
HASH_PROPERTY = "feedbackAgendasBlockHash"

_EVENT_TYPES = {t.value: t for t in EventType}
_VISIBILITIES = {v.value: v for v in Visibility}
_STATUSES = {s.value: s for s in Status}


class UnreadableEvent(ValueError):
    """An event resource we cannot map; the reason is safe to log."""


def normalise_original_start(original: dict[str, Any]) -> str:
    """``originalStartTime`` -> ``2026-12-01T09:00:00Z`` (UTC) or ``2026-12-01``."""
    if original.get("date"):
        return date.fromisoformat(original["date"]).isoformat()
    value = original.get("dateTime")
    if not value:
        raise UnreadableEvent("originalStartTime without date or dateTime")
    parsed = _parse_datetime(value, original.get("timeZone"))
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ref_for(calendar: str, resource: dict[str, Any]) -> EventRef:
    """The :class:`EventRef` of an event resource (also of a cancelled stub)."""
    series = resource.get("recurringEventId")
    if series and resource.get("originalStartTime"):
        rid = normalise_original_start(resource["originalStartTime"])
        return EventRef(calendar, str(series), rid)
    event_id = resource.get("id")
    if not event_id:
        raise UnreadableEvent("event without id")
    return EventRef(calendar, str(event_id), None)


def google_event_id(ref: EventRef) -> str:
    """The Google event id to get or patch for ``ref`` (an instance id for an occurrence)."""
    if ref.recurrence_id is None:
        return ref.event_id
    compact = ref.recurrence_id.replace("-", "").replace(":", "")
    return f"{ref.event_id}_{compact}"


def is_cancelled(resource: dict[str, Any]) -> bool:
    return resource.get("status") == "cancelled"


def _parse_datetime(value: str, zone: str | None) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UnreadableEvent("unparseable dateTime") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_zone(zone) or UTC)
    return parsed


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _parse_when(when: Any, field: str) -> tuple[datetime, bool, str | None]:
    """(start, all_day, timezone) of a ``start``/``end`` object."""
    if not isinstance(when, dict):
        raise UnreadableEvent(f"{field} missing")
    zone = when.get("timeZone")
    if when.get("dateTime"):
        return _parse_datetime(when["dateTime"], zone), False, zone
    if when.get("date"):
        try:
            day = date.fromisoformat(when["date"])
        except ValueError:
            raise UnreadableEvent(f"unparseable {field}.date") from None
        return datetime.combine(day, time(0), tzinfo=_zone(zone) or UTC), True, zone
    raise UnreadableEvent(f"{field} without date or dateTime")


def _attendee(raw: dict[str, Any]) -> Attendee:
    return Attendee(
        email=str(raw.get("email", "")).lower(),
        display_name=str(raw.get("displayName", "")),
        resource=bool(raw.get("resource", False)),
        optional=bool(raw.get("optional", False)),
        response=str(raw.get("responseStatus", "needsAction")),
    )


def to_meeting(calendar: str, owner: str, resource: dict[str, Any]) -> Meeting:
    """Map a (non-cancelled) event resource to a :class:`Meeting`.

    Raises :class:`UnreadableEvent` when required fields are missing or malformed.
    An event we do not organize (an attendee's copy, or ``organizer.self`` false
    with another address) is ``editable=False``.
    """
    ref = ref_for(calendar, resource)
    start, all_day, zone = _parse_when(resource.get("start"), "start")
    end, _, _ = _parse_when(resource.get("end"), "end")
    organizer_raw = resource.get("organizer") or {}
    organizer = str(organizer_raw.get("email", "")).lower() or None
    we_organize = bool(organizer_raw.get("self")) or (
        organizer is not None and organizer == owner.lower()
    )
    private = (resource.get("extendedProperties") or {}).get("private") or {}
    stored_hash = private.get(HASH_PROPERTY) or None
    attendees = tuple(_attendee(a) for a in resource.get("attendees") or () if a.get("email"))
    return Meeting(
        ref=ref,
        title=str(resource.get("summary", "")),
        description=str(resource.get("description", "")),
        start=start,
        end=end,
        owner=owner.lower(),
        etag=str(resource.get("etag", "")),
        description_format=TextFormat.HTML,
        all_day=all_day,
        timezone=zone,
        recurrence=tuple(resource.get("recurrence") or ()),
        organizer=organizer,
        attendees=attendees,
        attendees_omitted=bool(resource.get("attendeesOmitted", False)),
        status=_STATUSES.get(str(resource.get("status", "confirmed")), Status.CONFIRMED),
        visibility=_VISIBILITIES.get(
            str(resource.get("visibility", "default")), Visibility.DEFAULT
        ),
        event_type=_EVENT_TYPES.get(str(resource.get("eventType", "default")), EventType.OTHER),
        locked=bool(resource.get("locked", False)),
        # privateCopy: changes would stay on our copy only; treat as not ours.
        editable=we_organize and not resource.get("privateCopy", False),
        stored_hash=str(stored_hash) if stored_hash else None,
    )


def to_meeting_or_unreadable(
    calendar: str, owner: str, resource: dict[str, Any]
) -> Meeting | Unreadable:
    """Like :func:`to_meeting`, but an unmappable event becomes :class:`Unreadable`."""
    try:
        return to_meeting(calendar, owner, resource)
    except UnreadableEvent as exc:
        try:
            ref = ref_for(calendar, resource)
        except UnreadableEvent:
            ref = EventRef(calendar, str(resource.get("id", "?")), None)
        return Unreadable(ref=ref, reason=str(exc))


def may_write(resource_or_meeting: Meeting) -> bool:
    """Whether the provider lets a write through at all (I6's provider-side guard).

    The core decides what to write; this is a second, independent fence so a
    bug upstream can never touch an event we do not organize, a locked event,
    a non-default event type or a private event.
    """
    m = resource_or_meeting
    return (
        m.editable
        and not m.locked
        and m.event_type is EventType.DEFAULT
        and m.visibility is not Visibility.PRIVATE
        and m.status is not Status.CANCELLED
    )


def patch_body(description: str, block_hash: str | None) -> dict[str, Any]:
    """The only fields we ever send: ``description`` and our private property.

    A removed block stores an empty value: patch merges maps, and an empty
    value reads back as "no hash".
    """
    return {
        "description": description,
        "extendedProperties": {"private": {HASH_PROPERTY: block_hash or ""}},
    }
