"""Corrective words never stay unnoticed in a meeting that is no longer a 1:1 (issue 9 item 5).

Each path runs on vdir, on CalDAV against a real Radicale and on Google (the
real client against the local fake API), through the daemon, with SQLite,
apprise delivering to a real SMTP server (the manager's own channel) and a
real webhook receiver (the team's channel), and an injected clock:

- our unedited corrective block in a 1:1 that gains an outside guest is
  removed;
- a client copies the series' description (our unedited block) into one
  occurrence without the hash property and invites a third person: the copy
  is still recognised as ours and the corrective slot goes;
- a corrective block the manager filled in is never deleted; the event is a
  ``privacy_conflict`` in ``sync --json``'s summary, in ``status`` and in
  ``/metrics``, and the manager, and only the manager, gets one private
  message naming the meeting and the reason, never the words.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from icalendar import Calendar, Event, vCalAddress

from feedback_agendas.agendas.block import holds_corrective_slot, read_block
from feedback_agendas.agendas.model import EventRef
from feedback_agendas.integrations.calendars.base import CalendarProvider
from feedback_agendas.integrations.calendars.caldav import CaldavProvider
from feedback_agendas.integrations.calendars.google import GoogleProvider
from feedback_agendas.integrations.calendars.ics import parse_calendar, serialise
from feedback_agendas.integrations.calendars.vdir import VdirProvider
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.daemon import Daemon
from feedback_agendas.scheduler.sync.report import summarise
from tests.contract.calendars import (
    OWNER,
    TIMEZONE,
    ZONE,
    AttendeeSpec,
    CaldavCalendar,
    EventSpec,
    GoogleCalendar,
    VdirCalendar,
    fast_client,
    occurrence_ref,
    when,
)
from tests.fakes.google_api import instance_suffix
from tests.integration.radicale import RadicaleServer, radicale_server  # noqa: F401
from tests.support.clock import Clock
from tests.support.receivers import SmtpReceiver, WebhookReceiver

TUESDAY = datetime(2026, 12, 1, 10, 0, tzinfo=ZONE)
NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # the day before: inside the horizon
ALICE = "alice@example.com"
ERIK = "erik@example.com"  # in the team: with him the 1:1 becomes a team meeting
GUEST = "guest@customer.org"
CANARY = "KANARIE-rattelse-71c4"  # what the manager wrote: it must never travel


def one_on_one(*, weekly: bool = False) -> EventSpec:
    return EventSpec(
        uid=f"alice-{uuid.uuid4().hex[:8]}@example.com",
        title="Mona / Alice",
        start=TUESDAY,
        end=TUESDAY + timedelta(minutes=30),
        description="Dial-in: 555",
        attendees=(AttendeeSpec(OWNER), AttendeeSpec(ALICE)),
        weekly=weekly,
    )


# --- the user's calendar app, per backend -------------------------------------


def add_attendee(event: Any, email: str) -> None:
    event.add("ATTENDEE", vCalAddress(f"mailto:{email}"))


def copy_master_into_occurrence(cal: Calendar, uid: str, original: datetime, extra: str) -> None:
    """What some clients do: a new override with the master's description, no hash property."""
    master = next(
        e for e in cal.walk("VEVENT") if str(e.get("UID")) == uid and "RECURRENCE-ID" not in e
    )
    override = Event()
    for name in ("UID", "SUMMARY", "ORGANIZER", "DESCRIPTION", "DTSTAMP"):
        if name in master:
            override[name] = master[name]
    override.add("RECURRENCE-ID", original)
    override.add("DTSTART", original)
    override.add("DTEND", original + timedelta(minutes=30))
    attendees = master.get("ATTENDEE")
    attendees = attendees if isinstance(attendees, list) else [attendees]
    override["ATTENDEE"] = [*attendees, vCalAddress(f"mailto:{extra}")]
    cal.add_component(override)


class IcsBackend:
    """vdir and CalDAV: the user's app rewrites the iCalendar object."""

    def __init__(self, calendar: Any, load: Callable[[str], bytes], save: Any) -> None:
        self.calendar = calendar
        self._load, self._save = load, save

    def seed(self, spec: EventSpec) -> EventRef:
        ref: EventRef = self.calendar.seed(spec)
        return ref

    def edit(self, ref: EventRef, change: Callable[[Calendar], None]) -> None:
        cal = parse_calendar(self._load(ref.event_id))
        change(cal)
        self._save(ref.event_id, serialise(cal))

    def invite(self, ref: EventRef, email: str) -> None:
        def change(cal: Calendar) -> None:
            for event in cal.walk("VEVENT"):
                if str(event.get("UID")) == ref.event_id:
                    add_attendee(event, email)

        self.edit(ref, change)

    def copy_into_occurrence(self, series: EventRef, original: datetime, extra: str) -> None:
        self.edit(
            series, lambda cal: copy_master_into_occurrence(cal, series.event_id, original, extra)
        )

    def write_in_block(self, ref: EventRef, old: str, new: str) -> None:
        current = self.get(ref)
        assert old in current
        self.calendar.user_edit_description(ref, current.replace(old, new, 1))

    def get(self, ref: EventRef) -> str:
        provider = self.provider()
        try:
            meeting = provider.get(ref)
        finally:
            provider.close()
        assert meeting is not None
        return meeting.description


class VdirBackend(IcsBackend):
    def __init__(self, folder: Path) -> None:
        calendar = VdirCalendar(folder)
        super().__init__(
            calendar,
            lambda uid: calendar._path(uid).read_bytes(),
            lambda uid, data: calendar._path(uid).write_bytes(data),
        )
        self.folder = folder

    def provider(self) -> CalendarProvider:
        return VdirProvider("contract", self.folder, OWNER, default_timezone=TIMEZONE)

    def close(self) -> None:
        self.calendar.close()


class CaldavBackend(IcsBackend):
    def __init__(self, server: RadicaleServer) -> None:
        calendar = CaldavCalendar(server)
        self.server = server

        def load(uid: str) -> bytes:
            resource: Any = calendar.calendar.get_event_by_uid(uid)
            resource.load(only_if_unloaded=False)
            return bytes(resource.raw_data)

        def save(uid: str, data: bytes) -> None:
            resource: Any = calendar.calendar.get_event_by_uid(uid)
            resource.load(only_if_unloaded=False)
            resource.save(raw_data=data, increase_seqno=False, precondition="etag")

        super().__init__(calendar, load, save)

    def provider(self) -> CalendarProvider:
        return CaldavProvider(
            name="contract",
            url=self.server.url + "/",
            username="mona",
            password="pw",
            calendar=str(self.calendar.calendar.url),
            owner=OWNER,
            default_timezone=TIMEZONE,
            client=fast_client(self.server),
        )

    def close(self) -> None:
        self.calendar.close()


class GoogleBackend:
    """The fake API's store, changed the way Google's web app would."""

    def __init__(self) -> None:
        self.calendar = GoogleCalendar()
        self.api = self.calendar.api

    def seed(self, spec: EventSpec) -> EventRef:
        return self.calendar.seed(spec)

    def _event(self, ref: EventRef) -> dict[str, Any]:
        return self.api.calendars[OWNER].events[ref.event_id]

    def invite(self, ref: EventRef, email: str) -> None:
        attendees = [*self._event(ref).get("attendees", []), {"email": email}]
        self.api.user_edit(OWNER, ref.event_id, {"attendees": attendees})

    def copy_into_occurrence(self, series: EventRef, original: datetime, extra: str) -> None:
        master = self._event(series)
        copied = {
            k: v for k, v in master.items() if k not in ("recurrence", "extendedProperties", "etag")
        }
        self.api.add_event(
            OWNER,
            {
                **copied,
                "id": f"{series.event_id}_{instance_suffix(original.astimezone(UTC))}",
                "recurringEventId": series.event_id,
                "originalStartTime": when(original),
                "start": when(original),
                "end": when(original + timedelta(minutes=30)),
                "attendees": [*master.get("attendees", []), {"email": extra}],
            },
        )

    def write_in_block(self, ref: EventRef, old: str, new: str) -> None:
        current = self.get(ref)
        assert old in current
        self.calendar.user_edit_description(ref, current.replace(old, new, 1))

    def provider(self) -> CalendarProvider:
        return GoogleProvider(
            name="contract",
            owner=OWNER,
            calendar_id=OWNER,
            credentials="anonymous",
            api_endpoint=self.api.endpoint,
            sleep=lambda _s: None,
        )

    def get(self, ref: EventRef) -> str:
        provider = self.provider()
        try:
            meeting = provider.get(ref)
        finally:
            provider.close()
        assert meeting is not None
        return meeting.description

    def close(self) -> None:
        self.calendar.close()


class MicrosoftBackend:
    """The fake Graph's mailboxes, changed the way Outlook would."""

    def __init__(self) -> None:
        from tests.contract.calendars import MicrosoftCalendar

        self.calendar = MicrosoftCalendar()
        self.graph = self.calendar.graph

    def seed(self, spec: EventSpec) -> EventRef:
        return self.calendar.seed(spec)

    def _attendee(self, email: str) -> dict[str, Any]:
        return {"type": "required", "emailAddress": {"address": email, "name": email}}

    def invite(self, ref: EventRef, email: str) -> None:
        event = self.graph.store.mailboxes[OWNER].events[ref.event_id]
        attendees = [*event["attendees"], self._attendee(email)]
        self.graph.store.user_edit(OWNER, ref.event_id, {"attendees": attendees})

    def copy_into_occurrence(self, series: EventRef, original: datetime, extra: str) -> None:
        from feedback_agendas.integrations.calendars.microsoft_map import Body

        master = self.graph.store.mailboxes[OWNER].events[series.event_id]
        inner = Body.split(master["body"]).inner
        ident = self.graph.store.add_exception(
            OWNER, series.event_id, original, original, original + timedelta(minutes=30), inner
        )
        attendees = [*master["attendees"], self._attendee(extra)]
        self.graph.store.user_edit(OWNER, ident, {"attendees": attendees})

    def write_in_block(self, ref: EventRef, old: str, new: str) -> None:
        current = self.get(ref)
        assert old in current
        self.calendar.user_edit_description(ref, current.replace(old, new, 1))

    def provider(self) -> CalendarProvider:
        from tests.support.graph import graph_provider

        return graph_provider(self.graph, OWNER, name="contract", now=lambda: NOW)

    def get(self, ref: EventRef) -> str:
        provider = self.provider()
        try:
            meeting = provider.get(ref)
        finally:
            provider.close()
        assert meeting is not None
        return meeting.description

    def close(self) -> None:
        self.calendar.close()


@pytest.fixture(params=["vdir", "caldav", "google", "microsoft"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "vdir":
        folder = tmp_path / "vdir"
        folder.mkdir()
        made: Any = VdirBackend(folder)
    elif request.param == "caldav":
        made = CaldavBackend(request.getfixturevalue("radicale_server"))
    elif request.param == "google":
        made = GoogleBackend()
    else:
        made = MicrosoftBackend()
    yield made
    made.close()


@dataclasses.dataclass
class World:
    backend: Any
    daemon: Daemon
    clock: Clock
    smtp: SmtpReceiver
    hook: WebhookReceiver

    def sync(self) -> dict[str, Any]:
        report = self.daemon.sync_calendar("contract")
        assert report is not None and report.ok, report and report.error
        return summarise([report])

    def action(self, summary: dict[str, Any], ref: EventRef) -> str:
        [entry] = [
            e
            for e in summary["events"]
            if (e["event_id"], e["recurrence_id"]) == (ref.event_id, ref.recurrence_id)
        ]
        return str(entry["action"])


@pytest.fixture
def world(backend: Any, tmp_path: Path) -> Iterator[World]:
    with SmtpReceiver() as smtp, WebhookReceiver() as hook:
        data = {
            "storage": {"url": f"sqlite:///{tmp_path / 'fa.db'}"},
            "calendars": [{"name": "contract", "provider": "memory", "owner": OWNER}],
            "org": {
                "internal_domains": ["example.com"],
                "teams": [
                    {
                        "name": "platform",
                        "manager": OWNER,
                        "members": [ALICE, ERIK, "bob@example.com"],
                        "timezone": TIMEZONE,
                        "notify": [hook.url("/team-platform")],
                    }
                ],
            },
            "people": [{"email": OWNER, "notify": [smtp.url(OWNER)]}],
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        clock = Clock(NOW)
        daemon = Daemon(
            load_config(path), clock=clock, provider_factory=lambda _cfg: backend.provider()
        )
        try:
            yield World(backend, daemon, clock, smtp, hook)
        finally:
            daemon.shutdown()
            daemon.store.close()


def visible_text(description: str) -> str:
    return " ".join(re.sub(r"<[^>]*>", " ", description).split())


def corrective(description: str) -> bool:
    return holds_corrective_slot(description)


def test_our_unedited_corrective_block_leaves_when_an_outside_guest_joins(world: World) -> None:
    ref = world.backend.seed(one_on_one())
    assert world.action(world.sync(), ref) == "inserted"
    assert corrective(world.backend.get(ref))
    world.backend.invite(ref, GUEST)
    summary = world.sync()
    assert world.action(summary, ref) == "removed"
    assert summary["privacy_conflicts"] == []
    after = world.backend.get(ref)
    # What the user sees (Exchange keeps the text as HTML lines of its own).
    assert read_block(after) is None and visible_text(after) == "Dial-in: 555"
    world.daemon.send_due()
    assert world.smtp.mails == []  # nothing to tell: the words are gone


def test_a_copy_in_one_occurrence_without_the_hash_property_is_still_ours(world: World) -> None:
    series = world.backend.seed(one_on_one(weekly=True))
    assert world.action(world.sync(), series) == "inserted"
    original = TUESDAY + timedelta(days=7)
    world.backend.copy_into_occurrence(series, original, ERIK)
    occurrence = occurrence_ref(series, original)
    copied = world.backend.get(occurrence)
    assert corrective(copied)  # the corrective slot, copied without its hash, and Erik invited
    summary = world.sync()
    assert world.action(summary, occurrence) == "updated"  # now a team meeting: praise only
    after = world.backend.get(occurrence)
    assert read_block(after) is not None and not corrective(after)
    assert summary["privacy_conflicts"] == []
    # The series itself is still a 1:1 and keeps its agenda.
    assert corrective(world.backend.get(series))


def test_a_filled_in_corrective_block_is_kept_and_the_manager_told_privately(
    world: World,
) -> None:
    ref = world.backend.seed(one_on_one())
    world.sync()
    world.backend.write_in_block(ref, "What to do instead: ___", f"What to do instead: {CANARY}")
    assert world.action(world.sync(), ref) == "left_edited"  # still a 1:1: just her words
    world.backend.invite(ref, GUEST)

    summary = world.sync()
    assert world.action(summary, ref) == "privacy_conflict"
    assert summary["actions"]["privacy_conflict"] == 1
    assert summary["privacy_conflicts"] == [
        {
            "calendar": "contract",
            "event_id": ref.event_id,
            "recurrence_id": None,
            "reason": "external_guest",
        }
    ]
    assert CANARY in world.backend.get(ref)  # never deleted: the words are the manager's
    status = world.daemon.store.status()["contract"]
    assert status["by_action"]["privacy_conflict"] == 1
    metrics = world.daemon.metrics.render().decode()
    assert 'feedback_agendas_privacy_conflicts_total{reason="external_guest"} 1.0' in metrics

    report = world.daemon.send_due()
    assert report.sent == 1
    [mail] = world.smtp.mails
    assert mail.recipients == (OWNER,)
    text = f"{mail.subject}\n{mail.body}"
    assert "no longer a 1:1" in text
    assert "2026-12-01 at 10:00" in text  # the meeting, in the team's zone
    assert "outside the company" in text  # the reason
    for secret in (CANARY, "What to do instead", "This you can do better", "Mona / Alice"):
        assert secret not in text
    assert world.hook.posts == []  # never the team channel

    # Told once: the next cycles report it again but send nothing more.
    world.sync()
    world.sync()
    world.daemon.send_due()
    assert len(world.smtp.mails) == 1
    assert CANARY not in metrics and CANARY not in str(status)


def test_a_cron_sync_reports_the_conflict_and_queues_the_managers_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sync`` as a new process per run: the JSON, ``status`` and the queued private message."""
    from click.testing import CliRunner

    import feedback_agendas.scheduler.sync.cycle
    from feedback_agendas.scheduler.service.cli import main

    folder = tmp_path / "vdir"
    folder.mkdir()
    backend = VdirBackend(folder)
    ref = backend.seed(one_on_one())
    with SmtpReceiver() as smtp, WebhookReceiver() as hook:
        data = {
            "storage": {"url": f"sqlite:///{tmp_path / 'fa.db'}"},
            "calendars": [
                {"name": "contract", "provider": "vdir", "path": str(folder), "owner": OWNER}
            ],
            "org": {
                "internal_domains": ["example.com"],
                "teams": [
                    {
                        "name": "platform",
                        "manager": OWNER,
                        "members": [ALICE, ERIK],
                        "timezone": TIMEZONE,
                        "locale": "sv",
                        "notify": [hook.url("/team-platform")],
                    }
                ],
            },
            "people": [{"email": OWNER, "notify": [smtp.url(OWNER)]}],
        }
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(data), encoding="utf-8")
        monkeypatch.setattr(feedback_agendas.scheduler.sync.cycle, "utc_now", lambda: NOW)
        monkeypatch.setattr("feedback_agendas.scheduler.service.cli.utc_now", lambda: NOW)

        def sync() -> dict[str, Any]:
            result = CliRunner().invoke(main, ["sync", "--config", str(config), "--json"])
            assert result.exit_code == 0, result.output
            parsed: dict[str, Any] = yaml.safe_load(result.stdout)
            return parsed

        sync()
        backend.write_in_block(
            ref, "Vad du kan göra i stället: ___", f"Vad du kan göra i stället: {CANARY}"
        )
        backend.invite(ref, "kim@example.com")  # a third colleague, in no team
        summary = sync()
        assert summary["actions"].get("privacy_conflict") == 1
        assert [c["reason"] for c in summary["privacy_conflicts"]] == ["third_person"]
        status = CliRunner().invoke(main, ["status", "--config", str(config), "--json"])
        assert '"privacy_conflict": 1' in status.stdout

        # The daemon's sender (another process, later) delivers it, once, in Swedish.
        daemon = Daemon(load_config(config), clock=Clock(NOW + timedelta(minutes=1)))
        try:
            daemon.send_due()
            sync()
            daemon.send_due()
        finally:
            daemon.shutdown()
            daemon.store.close()
        [mail] = smtp.mails
        assert "inte längre är ett 1:1" in mail.subject
        assert "en tredje person" in mail.body and CANARY not in mail.body
        assert hook.posts == []
    backend.close()
