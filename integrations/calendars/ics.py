"""Map iCalendar (RFC 5545) events to :class:`~feedback_agendas.agendas.model.Meeting` and back.

Provider-neutral: the vdir provider (a folder of ``.ics`` files) and the CalDAV
provider (one calendar object resource per URL) both read and write through
here. One *calendar object* is one VCALENDAR that holds every VEVENT of one UID:
the master (series or single event) and its RECURRENCE-ID overrides.

Reading (:func:`parse_calendar`, :func:`meetings_from_calendar`):

- a series is reported once, with its RRULE/RDATE/EXDATE lines as
  ``Meeting.recurrence`` and the IANA zone of DTSTART as ``Meeting.timezone``;
- each RECURRENCE-ID override is its own Meeting whose ``ref.recurrence_id``
  is the original start (:func:`recurrence_id_text`);
- anything we cannot map with confidence raises :class:`IcsError`; callers
  report that object as :class:`~feedback_agendas.agendas.model.Unreadable` and never write it.

- a DATE with a TZID is a date (all-day), and a DATE-TIME with a TZID and a
  trailing ``Z`` is UTC, as other readers take them
  (:func:`~feedback_agendas.integrations.calendars.ics_lines.normalise_for_reading`);
- given the object's bytes, an event that cannot be written byte-exactly (see
  :class:`~feedback_agendas.integrations.calendars.ics_lines.Blocker`) is read as not editable,
  and the reason code is logged.

Writing (:func:`rewrite_descriptions`) parses to decide and edits the original
bytes: only the DESCRIPTION line and the ``X-FEEDBACK-AGENDAS-HASH`` line of
the targeted VEVENT change (:mod:`feedback_agendas.integrations.calendars.ics_lines`). The
result is read back: the descriptions and hashes must read as written, every
other event as before, and the bytes outside those lines must be identical.
:func:`apply_description` and :func:`serialise` (a re-serialisation by
``icalendar``) only build fixtures and sample calendars.

Error messages never quote property values: a DESCRIPTION must not reach a log.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import Calendar, Event, vText
from icalendar.timezone import tzid_from_dt

from feedback_agendas.agendas.errors import NotFound, ProviderError
from feedback_agendas.agendas.model import (
    Attendee,
    DescriptionWrite,
    EventRef,
    EventType,
    Meeting,
    Status,
    TextFormat,
    Visibility,
    WriteOutcome,
)
from feedback_agendas.integrations.calendars.ics_lines import (
    Blocker,
    EditBlocked,
    edit_blocker,
    edit_description,
    event_blocker,
    normalise_for_reading,
    outside_written_lines,
    split_lines,
)

log = logging.getLogger(__name__)

HASH_PROPERTY = "X-FEEDBACK-AGENDAS-HASH"
EVENT_TYPE_PROPERTY = "X-FEEDBACK-AGENDAS-EVENT-TYPE"
LOCKED_PROPERTY = "X-FEEDBACK-AGENDAS-LOCKED"
BUSY_STATUS_PROPERTY = "X-MICROSOFT-CDO-BUSYSTATUS"
RECURRENCE_PROPERTIES = ("RRULE", "RDATE", "EXDATE")
PRODID = "-//feedback-agendas//feedback-agendas//EN"

_STATUS = {
    "CONFIRMED": Status.CONFIRMED,
    "TENTATIVE": Status.TENTATIVE,
    "CANCELLED": Status.CANCELLED,
}
_VISIBILITY = {
    "PUBLIC": Visibility.PUBLIC,
    "PRIVATE": Visibility.PRIVATE,
    "CONFIDENTIAL": Visibility.CONFIDENTIAL,
}
_RESPONSE = {
    "NEEDS-ACTION": "needsAction",
    "ACCEPTED": "accepted",
    "DECLINED": "declined",
    "TENTATIVE": "tentative",
}


class IcsError(ProviderError):
    """A calendar object we cannot map to Meetings; it is skipped and never written."""


class UnsafeToWrite(ProviderError):
    """A write that could not change only DESCRIPTION and our hash; nothing was written.

    ``reason`` is a :class:`~feedback_agendas.integrations.calendars.ics_lines.Blocker` code.
    """

    def __init__(self, message: str, reason: Blocker) -> None:
        super().__init__(message)
        self.reason = reason


def etag_of(data: bytes) -> str:
    """The etag of one stored calendar object: the SHA-256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


def parse_calendar(data: bytes) -> Calendar:
    """Parse one VCALENDAR; raise :class:`IcsError` (without quoting content) if it is not one."""
    try:
        parsed = Calendar.from_ical(normalise_for_reading(data))
    except Exception as exc:  # icalendar raises ValueError and friends, quoting the input
        raise IcsError(f"not valid iCalendar ({type(exc).__name__})") from None
    if not isinstance(parsed, Calendar) or parsed.name != "VCALENDAR":
        raise IcsError("not a VCALENDAR object")
    return parsed


def recurrence_id_text(value: date | datetime, default_timezone: str = "UTC") -> str:
    """The ``EventRef.recurrence_id`` of an occurrence that originally started at ``value``.

    ``2026-12-01T09:00:00Z`` for a time (floating times are read in
    ``default_timezone``), ``2026-12-01`` for a date.
    """
    if not isinstance(value, datetime):
        return value.isoformat()
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(default_timezone))
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def meetings_from_calendar(
    cal: Calendar,
    *,
    calendar_name: str,
    owner: str,
    etag: str,
    default_timezone: str = "UTC",
    raw: bytes | None = None,
) -> list[Meeting]:
    """Every VEVENT of ``cal`` as a Meeting (series once, each override on its own).

    All Meetings share ``etag`` (the etag of the stored object). With ``raw``
    (the bytes ``cal`` was parsed from), an event that cannot be written
    byte-exactly is not editable, and the reason code is logged. Raises
    :class:`IcsError` when there is no VEVENT, a property is broken, or two
    VEVENTs claim the same identity.
    """
    events = _events(cal)
    if not events:
        raise IcsError("no VEVENT")
    blockers = _write_blockers(raw, events) if raw is not None else {}
    meetings: list[Meeting] = []
    seen: set[EventRef] = set()
    for index, event in enumerate(events):
        meeting = _meeting_from_event(
            event,
            calendar_name=calendar_name,
            owner=owner.lower(),
            etag=etag,
            default_timezone=default_timezone,
        )
        if meeting.ref in seen:
            raise IcsError(
                f"two VEVENTs for UID {meeting.ref.event_id} with the same RECURRENCE-ID"
            )
        seen.add(meeting.ref)
        blocker = blockers.get(index)
        if blocker is not None and meeting.editable:
            log.warning(
                "calendar %s: event %s cannot be written byte-exactly (%s); it is skipped",
                calendar_name,
                meeting.ref.event_id,
                blocker.value,
            )
            meeting = replace(meeting, editable=False)
        meetings.append(meeting)
    return meetings


def _events(cal: Calendar) -> list[Event]:
    """The VEVENTs of ``cal`` in document order (the order of the raw text)."""
    return [c for c in cal.walk("VEVENT") if isinstance(c, Event)]


def _write_blockers(raw: bytes, events: Sequence[Event]) -> dict[int, Blocker]:
    """Index of each VEVENT that cannot be written byte-exactly -> why."""
    whole = edit_blocker(raw)
    if whole is not None:
        return dict.fromkeys(range(len(events)), whole)
    lines = split_lines(raw)
    if len(lines.events()) != len(events):
        return dict.fromkeys(range(len(events)), Blocker.AMBIGUOUS_COMPONENT)
    found = {}
    for index, event in enumerate(events):
        blocker = event_blocker(lines, index, _text(event, "UID"))
        if blocker is not None:
            found[index] = blocker
    return found


def find_events(cal: Calendar, ref: EventRef, default_timezone: str = "UTC") -> list[Event]:
    """The VEVENT(s) of ``cal`` that ``ref`` names (the master or one override)."""
    found = []
    for event in cal.walk("VEVENT"):
        if not isinstance(event, Event) or _text(event, "UID") != ref.event_id:
            continue
        rid = event.get("RECURRENCE-ID")
        text = None if rid is None else recurrence_id_text(rid.dt, default_timezone)
        if text == ref.recurrence_id:
            found.append(event)
    return found


def apply_description(
    cal: Calendar,
    ref: EventRef,
    description: str,
    block_hash: str | None,
    default_timezone: str = "UTC",
) -> None:
    """Set DESCRIPTION and our hash of the VEVENT ``ref`` names, in place.

    An empty description removes DESCRIPTION; ``block_hash=None`` removes
    ``X-FEEDBACK-AGENDAS-HASH``. Nothing else is touched. Raises
    :class:`~feedback_agendas.agendas.errors.NotFound` when ``cal`` holds no such VEVENT (for
    example an occurrence of a series that has no override).
    """
    targets = find_events(cal, ref, default_timezone)
    if not targets:
        raise NotFound(f"no VEVENT for {ref.event_id} / {ref.recurrence_id or 'master'}")
    for event in targets:
        _set_or_remove(event, "DESCRIPTION", description or None)
        _set_or_remove(event, HASH_PROPERTY, block_hash)


def serialise(cal: Calendar) -> bytes:
    """Serialise keeping the properties in the order they were read."""
    data: bytes = cal.to_ical(sorted=False)
    return data


def rewrite_descriptions(
    data: bytes,
    writes: Sequence[tuple[int, DescriptionWrite]],
    *,
    source: str,
    calendar_name: str,
    owner: str,
    default_timezone: str = "UTC",
) -> tuple[bytes | None, list[tuple[int, DescriptionWrite]], dict[int, WriteOutcome]]:
    """Apply description writes to one stored object (a .ics file, a CalDAV resource).

    Edits the original bytes: only the DESCRIPTION and hash lines of each
    targeted VEVENT change. Returns the new bytes (``None`` when no write
    applied), the writes that applied (with their index), and outcomes for
    those that did not: NotFound for an occurrence with no override to write
    into, :class:`UnsafeToWrite` for an event that cannot be edited with
    certainty. Raises ProviderError when the object cannot be parsed, or when
    the result does not read back exactly (descriptions and hashes as written,
    every other event as before, every byte outside those lines the same): we
    never write what we cannot read back.
    """
    try:
        cal = parse_calendar(data)
        before = meetings_from_calendar(
            cal,
            calendar_name=calendar_name,
            owner=owner,
            etag="",
            default_timezone=default_timezone,
        )
    except IcsError as exc:
        raise ProviderError(f"{source} is unreadable, not written: {exc}") from None
    events = _events(cal)
    blockers = _write_blockers(data, events)
    failed: dict[int, WriteOutcome] = {}
    applied: list[tuple[int, DescriptionWrite]] = []
    touched: set[int] = set()
    new_data = data
    for index, w in writes:
        position = _position(events, w.ref, default_timezone)
        if position is None:
            missing = NotFound(
                f"no VEVENT for {w.ref.event_id} / {w.ref.recurrence_id or 'master'}"
            )
            failed[index] = WriteOutcome(w.ref, error=missing)
            continue
        blocker = blockers.get(position)
        try:
            if blocker is not None:
                raise EditBlocked(blocker)
            new_data = edit_description(
                new_data, position, w.ref.event_id, w.description, w.block_hash
            )
        except EditBlocked as exc:
            message = f"{source}: {w.ref.event_id} cannot be written byte-exactly ({exc.reason})"
            failed[index] = WriteOutcome(w.ref, error=UnsafeToWrite(message, exc.reason))
            continue
        applied.append((index, w))
        touched.add(position)
    if not applied:
        return None, applied, failed
    _check_read_back(
        data, new_data, before, applied, touched, source, calendar_name, owner, default_timezone
    )
    return new_data, applied, failed


def _position(events: Sequence[Event], ref: EventRef, default_timezone: str) -> int | None:
    for index, event in enumerate(events):
        if _text(event, "UID") != ref.event_id:
            continue
        rid = event.get("RECURRENCE-ID")
        text = None if rid is None else recurrence_id_text(rid.dt, default_timezone)
        if text == ref.recurrence_id:
            return index
    return None


def _check_read_back(
    data: bytes,
    new_data: bytes,
    before: Sequence[Meeting],
    applied: Sequence[tuple[int, DescriptionWrite]],
    touched: set[int],
    source: str,
    calendar_name: str,
    owner: str,
    default_timezone: str,
) -> None:
    """Raise ProviderError unless ``new_data`` differs from ``data`` only as ``applied`` says."""
    if outside_written_lines(new_data, sorted(touched)) != outside_written_lines(
        data, sorted(touched)
    ):
        raise ProviderError(f"{source}: a write would change more than DESCRIPTION and the hash")
    try:
        after = meetings_from_calendar(
            parse_calendar(new_data),
            calendar_name=calendar_name,
            owner=owner,
            etag="",
            default_timezone=default_timezone,
        )
    except IcsError:
        raise ProviderError(f"{source}: the written object would not parse") from None
    expected = {m.ref: m for m in before}
    for _, w in applied:
        text = w.description.replace("\r\n", "\n").replace("\r", "\n")
        expected[w.ref] = replace(
            expected[w.ref], description=text, stored_hash=w.block_hash or None
        )
    if {m.ref: m for m in after} != expected or len(after) != len(before):
        raise ProviderError(f"{source}: the written object does not read back as intended")


def calendar_from_meetings(
    meetings: Sequence[Meeting], extra: Iterable[str] = (), *, add_timezones: bool = True
) -> Calendar:
    """Build one VCALENDAR from a master Meeting and/or its overrides.

    The reverse of :func:`meetings_from_calendar` for the properties it maps
    (title, description, times, recurrence, organizer, attendees, status,
    class, event type, locked, hash). Used to seed calendars in tests, the
    sample week and CalDAV fixtures. ``extra`` holds raw content lines added
    to every VEVENT (e.g. ``X-MICROSOFT-CDO-BUSYSTATUS:OOF``). With
    ``add_timezones`` a VTIMEZONE is generated for each TZID used (RFC 5545
    requires one; icalendar's is long, so callers may add their own instead).
    """
    cal = Calendar()
    cal.add("PRODID", PRODID)
    cal.add("VERSION", "2.0")
    extra_lines = tuple(extra)
    for meeting in meetings:
        cal.add_component(vevent_from_meeting(meeting, extra_lines))
    if add_timezones:
        cal.add_missing_timezones()
    return cal


def vevent_from_meeting(meeting: Meeting, extra: Iterable[str] = ()) -> Event:
    """One VEVENT for ``meeting`` (see :func:`calendar_from_meetings`)."""
    zone = ZoneInfo(meeting.timezone) if meeting.timezone else None
    lines = ["BEGIN:VEVENT", *meeting.recurrence, *extra, "END:VEVENT"]
    # Recurrence lines are RFC 5545 text already: let icalendar parse them.
    event = Event.from_ical("\r\n".join(lines) + "\r\n")
    if not isinstance(event, Event):
        raise IcsError("recurrence lines did not parse as one VEVENT")
    event.add("UID", meeting.ref.event_id)
    event.add("DTSTAMP", datetime(2026, 1, 1, tzinfo=UTC))
    if meeting.ref.recurrence_id is not None:
        event.add("RECURRENCE-ID", _parse_recurrence_id(meeting.ref.recurrence_id, zone))
    if meeting.all_day:
        event.add("DTSTART", meeting.start.date())
        event.add("DTEND", meeting.end.date())
    else:
        event.add("DTSTART", meeting.start.astimezone(zone) if zone else meeting.start)
        event.add("DTEND", meeting.end.astimezone(zone) if zone else meeting.end)
    event.add("SUMMARY", meeting.title)
    if meeting.description:
        event.add("DESCRIPTION", meeting.description)
    if meeting.organizer:
        event.add("ORGANIZER", f"mailto:{meeting.organizer}")
    for attendee in meeting.attendees:
        event.add("ATTENDEE", f"mailto:{attendee.email}", parameters=_attendee_params(attendee))
    if meeting.status is not Status.CONFIRMED:
        event.add("STATUS", meeting.status.value.upper())
    if meeting.visibility is not Visibility.DEFAULT:
        event.add("CLASS", meeting.visibility.value.upper())
    if meeting.event_type is not EventType.DEFAULT:
        event.add(EVENT_TYPE_PROPERTY, meeting.event_type.value)
    if meeting.locked:
        event.add(LOCKED_PROPERTY, "TRUE")
    if meeting.stored_hash:
        event.add(HASH_PROPERTY, meeting.stored_hash)
    return event


# -- reading one VEVENT -------------------------------------------------------


def _meeting_from_event(
    event: Event, *, calendar_name: str, owner: str, etag: str, default_timezone: str
) -> Meeting:
    uid = _text(event, "UID")
    if not uid:
        raise IcsError("VEVENT without UID")
    if event.errors:
        broken = ", ".join(sorted({str(name or "unnamed") for name, _ in event.errors}))
        raise IcsError(f"VEVENT {uid}: broken properties {broken}")
    if event.get("DTSTART") is None:
        raise IcsError(f"VEVENT {uid}: no DTSTART")
    try:
        start, end = event.start, event.end
    except Exception as exc:  # InvalidCalendar etc.; its message may quote values
        raise IcsError(f"VEVENT {uid}: bad DTSTART/DTEND/DURATION ({type(exc).__name__})") from None

    rid = event.get("RECURRENCE-ID")
    recurrence_id = None
    if rid is not None:
        # Given twice, icalendar returns a list: which instance it overrides is unknown.
        if isinstance(rid, list) or not isinstance(rid.dt, date):
            raise IcsError(f"VEVENT {uid}: RECURRENCE-ID is not one date or time")
        recurrence_id = recurrence_id_text(rid.dt, default_timezone)

    zone_name: str | None
    if isinstance(start, datetime) and isinstance(end, datetime):
        all_day = False
        zone_name = _zone_name(start, default_timezone)
        start_dt = _aware(start, default_timezone)
        end_dt = _aware(end, default_timezone)
    elif not isinstance(start, datetime) and not isinstance(end, datetime):
        all_day = True
        zone_name = default_timezone
        start_dt = _midnight(start, ZoneInfo(default_timezone))
        end_dt = _midnight(end, ZoneInfo(default_timezone))
    else:
        raise IcsError(f"VEVENT {uid}: DTSTART and DTEND differ in type")

    descriptions = event.get("DESCRIPTION")
    # Several DESCRIPTIONs are invalid; we could not write one back without losing
    # text, so such an event is read but marked not editable.
    editable = not isinstance(descriptions, list)
    description = (
        ""
        if descriptions is None
        else str(descriptions[0] if isinstance(descriptions, list) else descriptions)
    )
    attendees = _with_delegates(tuple(_attendee(a) for a in _as_list(event.get("ATTENDEE"))), event)
    organizer_prop = event.get("ORGANIZER")
    if organizer_prop is not None and not isinstance(organizer_prop, list):
        organizer: str | None = _address(organizer_prop)
    elif organizer_prop is None and not attendees:
        organizer = owner  # a private entry in the owner's own calendar
    else:
        organizer = None  # someone else's (or unclear): fail closed
    recurrence = tuple(_recurrence_lines(event)) if recurrence_id is None else ()
    return Meeting(
        ref=EventRef(calendar_name, uid, recurrence_id),
        title=_text(event, "SUMMARY"),
        description=description,
        start=start_dt,
        end=end_dt,
        owner=owner,
        etag=etag,
        description_format=TextFormat.TEXT,
        all_day=all_day,
        timezone=zone_name,
        recurrence=recurrence,
        organizer=organizer,
        attendees=attendees,
        status=_STATUS.get(_text(event, "STATUS").upper(), Status.CONFIRMED),
        visibility=_visibility(_text(event, "CLASS")),
        event_type=_event_type(event),
        locked=_text(event, LOCKED_PROPERTY).strip().upper() == "TRUE",
        editable=editable,
        stored_hash=_text(event, HASH_PROPERTY) or None,
    )


def _recurrence_lines(event: Event) -> Iterable[str]:
    for name in RECURRENCE_PROPERTIES:
        for value in _as_list(event.get(name)):
            yield str(event.content_line(name, value))


def _visibility(value: str) -> Visibility:
    if not value:
        return Visibility.DEFAULT
    # RFC 5545 3.8.1.3: an unrecognised CLASS must be treated as PRIVATE.
    return _VISIBILITY.get(value.strip().upper(), Visibility.PRIVATE)


def _event_type(event: Event) -> EventType:
    if _text(event, BUSY_STATUS_PROPERTY).strip().upper() == "OOF":
        return EventType.OUT_OF_OFFICE
    marked = _text(event, EVENT_TYPE_PROPERTY).strip()
    if not marked:
        return EventType.DEFAULT
    try:
        return EventType(marked)
    except ValueError:
        return EventType.OTHER  # an unknown type is still not a default event


def _attendee(value: Any) -> Attendee:
    params = getattr(value, "params", {})
    cutype = str(params.get("CUTYPE", "INDIVIDUAL")).upper()
    partstat = str(params.get("PARTSTAT", "NEEDS-ACTION")).upper()
    return Attendee(
        email=_address(value),
        display_name=str(params.get("CN", "")),
        resource=cutype in ("ROOM", "RESOURCE"),
        # UNKNOWN may well be a list address: fail closed and treat it as a group.
        group=cutype in ("GROUP", "UNKNOWN"),
        optional=str(params.get("ROLE", "")).upper() == "OPT-PARTICIPANT",
        response=_RESPONSE.get(partstat, partstat.lower()),
    )


def _with_delegates(attendees: tuple[Attendee, ...], event: Event) -> tuple[Attendee, ...]:
    """``attendees`` plus everyone an attendee delegated to (RFC 5545 DELEGATED-TO).

    A delegate may come in the attendee's place, or beside them, even when a
    client did not list them: they count as participants, so a 1:1 delegated to
    a third person (inside or outside) is no longer a 1:1 (I4, fail closed).
    """
    listed = {a.email for a in attendees}
    delegates: list[Attendee] = []
    for value in _as_list(event.get("ATTENDEE")):
        params = getattr(value, "params", {})
        for target in _as_list(params.get("DELEGATED-TO")):
            email = _address(target)
            if email and email not in listed:
                listed.add(email)
                delegates.append(Attendee(email=email))
    return attendees + tuple(delegates)


def _address(value: Any) -> str:
    text = str(value).strip()
    if text.lower().startswith("mailto:"):
        text = text[len("mailto:") :]
    return text.strip().lower()


def _zone_name(value: datetime, default_timezone: str) -> str | None:
    """The IANA name of ``value``'s zone, or None when it has no IANA equivalent."""
    if value.tzinfo is None:
        return default_timezone
    if isinstance(value.tzinfo, ZoneInfo):
        return value.tzinfo.key
    if value.tzinfo is UTC:
        return "UTC"
    candidate = tzid_from_dt(value)
    if candidate and _is_iana(candidate):
        return candidate
    return None


def _is_iana(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _aware(value: datetime, default_timezone: str) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=ZoneInfo(default_timezone))


def _midnight(value: date, zone: tzinfo) -> datetime:
    return datetime.combine(value, time(), tzinfo=zone)


def _parse_recurrence_id(text: str, zone: tzinfo | None) -> date | datetime:
    if "T" not in text:
        return date.fromisoformat(text)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.astimezone(zone) if zone else moment


def _attendee_params(attendee: Attendee) -> dict[str, str]:
    params = {"PARTSTAT": _partstat(attendee.response)}
    if attendee.display_name:
        params["CN"] = attendee.display_name
    if attendee.resource:
        params["CUTYPE"] = "ROOM"
    elif attendee.group:
        params["CUTYPE"] = "GROUP"
    params["ROLE"] = "OPT-PARTICIPANT" if attendee.optional else "REQ-PARTICIPANT"
    return params


def _partstat(response: str) -> str:
    reverse = {v: k for k, v in _RESPONSE.items()}
    return reverse.get(response, response.upper())


def _set_or_remove(event: Event, name: str, value: str | None) -> None:
    if value is None:
        event.pop(name, None)
    elif name in event:
        event[name] = vText(value)  # replace in place: keeps the property's position
    else:
        event.add(name, value)


def _text(event: Event, name: str) -> str:
    value = event.get(name)
    if value is None:
        return ""
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
