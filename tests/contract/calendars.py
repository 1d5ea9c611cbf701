"""Seeding calendars "as a user" for the contract suite: event specs and per-provider backends.

A :class:`ContractCalendar` owns one provider and a way to change its calendar
behind the provider's back, the way a person with a calendar app would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from feedback_agendas.agendas.model import Attendee, EventRef, Meeting
from feedback_agendas.integrations.calendars.base import CalendarProvider
from feedback_agendas.integrations.calendars.ics import (
    calendar_from_meetings,
    find_events,
    parse_calendar,
    recurrence_id_text,
    serialise,
)
from feedback_agendas.integrations.calendars.memory import MemoryProvider
from feedback_agendas.integrations.calendars.vdir import VdirProvider

OWNER = "mona@example.com"
TIMEZONE = "Europe/Stockholm"
ZONE = ZoneInfo(TIMEZONE)


@dataclass(frozen=True)
class AttendeeSpec:
    email: str  # as the user typed it; providers must lower-case it
    resource: bool = False


@dataclass(frozen=True)
class OverrideSpec:
    """One moved occurrence of a weekly series."""

    original_start: datetime
    start: datetime
    end: datetime
    description: str = ""


@dataclass(frozen=True)
class EventSpec:
    """An event as a user creates it. Times are aware, in Europe/Stockholm."""

    uid: str
    title: str
    start: datetime
    end: datetime
    description: str = ""
    organizer: str | None = OWNER
    attendees: tuple[AttendeeSpec, ...] = ()
    weekly: bool = False
    overrides: tuple[OverrideSpec, ...] = field(default=())


class ContractCalendar(Protocol):
    """What the contract suite needs from a provider under test.

    ``provider`` is the provider under test, created with the calendar name
    ``contract`` and owner :data:`OWNER`. The other methods change the
    calendar *as a user* (not through ``provider.write``).
    """

    provider: CalendarProvider

    def seed(self, spec: EventSpec) -> EventRef:
        """Create the event (a series with its overrides); return the master's ref."""
        ...

    def user_edit_description(self, ref: EventRef, text: str) -> None:
        """Replace the description of the event or override ``ref`` names."""
        ...

    def delete(self, ref: EventRef) -> None:
        """Delete the whole event (series with overrides) ``ref`` names."""
        ...

    def close(self) -> None:
        """Release the provider and any server started for it."""
        ...


def occurrence_ref(ref: EventRef, original_start: datetime) -> EventRef:
    """The ref of the occurrence of series ``ref`` that originally started at ``original_start``."""
    return EventRef(ref.calendar, ref.event_id, recurrence_id_text(original_start))


def meetings_from_spec(spec: EventSpec, calendar: str, owner: str = OWNER) -> list[Meeting]:
    """The spec as model objects: the master, then one Meeting per override.

    Providers whose backend speaks iCalendar can serialise these with
    :func:`feedback_agendas.integrations.calendars.ics.calendar_from_meetings`.
    """
    attendees = tuple(Attendee(a.email, resource=a.resource) for a in spec.attendees)
    master = Meeting(
        ref=EventRef(calendar, spec.uid),
        title=spec.title,
        description=spec.description,
        start=spec.start,
        end=spec.end,
        owner=owner,
        etag="",
        timezone=TIMEZONE,
        recurrence=("RRULE:FREQ=WEEKLY",) if spec.weekly else (),
        organizer=spec.organizer,
        attendees=attendees,
    )
    overrides = [
        Meeting(
            ref=occurrence_ref(master.ref, o.original_start),
            title=spec.title,
            description=o.description,
            start=o.start,
            end=o.end,
            owner=owner,
            etag="",
            timezone=TIMEZONE,
            organizer=spec.organizer,
            attendees=attendees,
        )
        for o in spec.overrides
    ]
    return [master, *overrides]


class MemoryCalendar:
    """The in-memory provider; it normalises (lower-cases) when a user stores an event."""

    def __init__(self) -> None:
        self.provider = MemoryProvider("contract", OWNER)

    def seed(self, spec: EventSpec) -> EventRef:
        meetings = meetings_from_spec(spec, self.provider.name)
        for meeting in meetings:
            self.provider.put(_lower_cased(meeting))
        return meetings[0].ref

    def user_edit_description(self, ref: EventRef, text: str) -> None:
        current = self.provider.get(ref)
        assert current is not None
        self.provider.put(_replace_description(current, text))

    def delete(self, ref: EventRef) -> None:
        for meeting in self.provider.meetings():
            if meeting.ref.event_id == ref.event_id:
                self.provider.delete(meeting.ref)

    def close(self) -> None:
        self.provider.close()


class VdirCalendar:
    """A temp folder of .ics files; the user edits files in place like an editor would."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.provider = VdirProvider("contract", folder, OWNER, default_timezone=TIMEZONE)

    def seed(self, spec: EventSpec) -> EventRef:
        meetings = meetings_from_spec(spec, self.provider.name)
        self._path(spec.uid).write_bytes(serialise(calendar_from_meetings(meetings)))
        return meetings[0].ref

    def user_edit_description(self, ref: EventRef, text: str) -> None:
        path = self._path(ref.event_id)
        cal = parse_calendar(path.read_bytes())
        (event,) = find_events(cal, ref, TIMEZONE)
        event.pop("DESCRIPTION", None)
        if text:
            event.add("DESCRIPTION", text)
        path.write_bytes(serialise(cal))

    def delete(self, ref: EventRef) -> None:
        self._path(ref.event_id).unlink()

    def close(self) -> None:
        self.provider.close()

    def _path(self, uid: str) -> Path:
        return self.folder / (re.sub(r"[^A-Za-z0-9._-]", "_", uid) + ".ics")


def _lower_cased(meeting: Meeting) -> Meeting:
    from dataclasses import replace

    return replace(
        meeting,
        organizer=meeting.organizer.lower() if meeting.organizer else None,
        attendees=tuple(replace(a, email=a.email.lower()) for a in meeting.attendees),
    )


def _replace_description(meeting: Meeting, text: str) -> Meeting:
    from dataclasses import replace

    return replace(meeting, description=text)
