"""Seeding calendars "as a user" for the contract suite: event specs and per-provider backends.

A :class:`ContractCalendar` owns one provider and a way to change its calendar
behind the provider's back, the way a person with a calendar app would: in
memory, a vdir folder, a collection on a real Radicale (:class:`CaldavCalendar`)
and a calendar in the local fake of the Google Calendar API
(:class:`GoogleCalendar`). Other suites (the privacy-conflict tests) use them too.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from caldav.davclient import DAVClient

from feedback_agendas.agendas.model import Attendee, EventRef, Meeting
from feedback_agendas.integrations.calendars.base import CalendarProvider
from feedback_agendas.integrations.calendars.caldav import CaldavProvider
from feedback_agendas.integrations.calendars.google import GoogleProvider
from feedback_agendas.integrations.calendars.ics import (
    calendar_from_meetings,
    find_events,
    parse_calendar,
    recurrence_id_text,
    serialise,
)
from feedback_agendas.integrations.calendars.memory import MemoryProvider
from feedback_agendas.integrations.calendars.vdir import VdirProvider
from tests.fakes.google_api import FakeGoogleCalendarAPI, instance_suffix
from tests.integration.radicale import RadicaleServer

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


USER = "mona"


def fast_client(server: RadicaleServer) -> DAVClient:
    """A client that sends Basic auth up front.

    Radicale answers the unauthenticated first request with a 401 after a
    deliberate delay (its brute-force guard); skipping that keeps the suite fast.
    """
    return DAVClient(url=server.url + "/", username=USER, password="pw", auth_type="basic")


class CaldavCalendar:
    """A fresh calendar collection on Radicale; a second client plays the user."""

    def __init__(self, server: RadicaleServer) -> None:
        self.user = fast_client(server)
        # caldav's stubs type every call as "sync or async"; this client is sync.
        principal: Any = self.user.get_principal()
        self.calendar: Any = principal.make_calendar(name="contract", cal_id=uuid.uuid4().hex)
        self.provider = CaldavProvider(
            name="contract",
            url=server.url + "/",
            username=USER,
            password="pw",
            calendar=str(self.calendar.url),
            owner=OWNER,
            default_timezone=TIMEZONE,
            client=fast_client(server),
        )

    def seed(self, spec: EventSpec) -> EventRef:
        meetings = meetings_from_spec(spec, self.provider.name)
        self.calendar.save_event(serialise(calendar_from_meetings(meetings)).decode())
        return meetings[0].ref

    def user_edit_description(self, ref: EventRef, text: str) -> None:
        resource: Any = self.calendar.get_event_by_uid(ref.event_id)
        resource.load(only_if_unloaded=False)
        cal = parse_calendar(bytes(resource.raw_data))
        (event,) = find_events(cal, ref, TIMEZONE)
        event.pop("DESCRIPTION", None)
        if text:
            event.add("DESCRIPTION", text)
        resource.save(raw_data=serialise(cal), increase_seqno=False, precondition="etag")

    def delete(self, ref: EventRef) -> None:
        self.calendar.get_event_by_uid(ref.event_id).delete()

    def close(self) -> None:
        self.provider.close()
        self.user.close()


def google_id(uid: str) -> str:
    """Google ids use base32hex characters only: derive one from the spec's UID."""
    return "c" + hashlib.sha1(uid.encode()).hexdigest()[:24]


def when(moment: datetime) -> dict[str, Any]:
    return {"dateTime": moment.isoformat(), "timeZone": TIMEZONE}


class GoogleCalendar:
    """A calendar in the fake API; the user acts on the fake's store directly."""

    def __init__(self) -> None:
        self.api = FakeGoogleCalendarAPI().start()
        self.api.add_calendar(OWNER)
        self.provider = GoogleProvider(
            name="contract",
            owner=OWNER,
            calendar_id=OWNER,
            credentials="anonymous",
            api_endpoint=self.api.endpoint,
            sleep=lambda _s: None,
        )

    def seed(self, spec: EventSpec) -> EventRef:
        series_id = google_id(spec.uid)
        resource: dict[str, Any] = {
            "id": series_id,
            "summary": spec.title,
            "description": spec.description,
            "start": when(spec.start),
            "end": when(spec.end),
            "attendees": [
                {"email": a.email, **({"resource": True} if a.resource else {})}
                for a in spec.attendees
            ],
        }
        if spec.organizer:
            resource["organizer"] = {"email": spec.organizer}
        if spec.weekly:
            resource["recurrence"] = ["RRULE:FREQ=WEEKLY"]
        self.api.add_event(OWNER, resource)
        for override in spec.overrides:
            original = override.original_start.astimezone(UTC)
            self.api.add_event(
                OWNER,
                {
                    **{k: v for k, v in resource.items() if k != "recurrence"},
                    "id": f"{series_id}_{instance_suffix(original)}",
                    "recurringEventId": series_id,
                    "originalStartTime": when(override.original_start),
                    "start": when(override.start),
                    "end": when(override.end),
                    "description": override.description,
                },
            )
        return EventRef("contract", series_id)

    def user_edit_description(self, ref: EventRef, text: str) -> None:
        event_id = ref.event_id
        if ref.recurrence_id:
            event_id += "_" + ref.recurrence_id.replace("-", "").replace(":", "")
        self.api.user_edit(OWNER, event_id, {"description": text})

    def delete(self, ref: EventRef) -> None:
        for event_id in list(self.api.calendars[OWNER].events):
            if event_id == ref.event_id or event_id.startswith(ref.event_id + "_"):
                self.api.cancel(OWNER, event_id)

    def close(self) -> None:
        self.provider.close()
        self.api.stop()
        assert self.api.violations == []


class MicrosoftCalendar:
    """A mailbox in the fake Graph over HTTPS; the user acts on the fake's store directly."""

    def __init__(self) -> None:
        from tests.support.graph import graph_provider, start_graph

        self.graph = start_graph()
        self.provider = graph_provider(self.graph, OWNER, name="contract")

    def seed(self, spec: EventSpec) -> EventRef:
        store = self.graph.store
        attendees = [(a.email, "resource" if a.resource else "required") for a in spec.attendees]
        master = store.add_event(
            OWNER,
            subject=spec.title,
            start=spec.start,
            end=spec.end,
            body=spec.description,
            attendees=attendees,
            organizer=spec.organizer,
            weekly=spec.weekly,
            timezone=TIMEZONE,
        )
        for override in spec.overrides:
            store.add_exception(
                OWNER,
                master,
                override.original_start,
                override.start,
                override.end,
                override.description,
            )
        return EventRef("contract", master)

    def _graph_id(self, ref: EventRef) -> str:
        from tests.fakes.graph_store import occurrence_id

        if ref.recurrence_id is None:
            return ref.event_id
        original = datetime.fromisoformat(ref.recurrence_id.replace("Z", "+00:00"))
        return occurrence_id(ref.event_id, original)

    def user_edit_description(self, ref: EventRef, text: str) -> None:
        self.graph.store.user_edit(
            OWNER, self._graph_id(ref), {"body": {"contentType": "html", "content": text}}
        )

    def delete(self, ref: EventRef) -> None:
        self.graph.store.delete(OWNER, ref.event_id)

    def close(self) -> None:
        self.provider.close()
        self.graph.stop()
        assert self.graph.violations == []
