"""A calendar whose events we never write gets its agendas in the reminders (issue 15).

Microsoft's ``write_mode: reminder`` makes its provider say ``writes_events =
False``: every write to a meeting would send each attendee an Outlook update.
The runtime is provider-neutral, so this drives it with a memory calendar that
says the same, then once through the Microsoft provider against the local
Graph. Real parts: SQLite through the migrations, apprise delivering to
aiosmtpd (the manager's private mail) and to a JSON webhook receiver (the
team's channel), and an injected clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from feedback_agendas.agendas.block import START_MARKER
from feedback_agendas.agendas.model import Meeting
from feedback_agendas.integrations.calendars.memory import MemoryProvider
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.daemon import Daemon
from tests.support.clock import Clock
from tests.support.graph import calendar_entry, start_graph
from tests.support.meetings import mona_meeting
from tests.support.receivers import SmtpReceiver, WebhookReceiver

MONDAY = datetime(2026, 3, 23, 7, 0, tzinfo=UTC)  # 08:00 in Stockholm
MONA, SARA, ERIK = "mona@example.com", "sara@example.com", "erik@example.com"
GOAL = "Ship the billing API by March"
NOTES = "Notes the organizer typed."


class NeverWritten(MemoryProvider):
    """A memory calendar configured never to change its events."""

    writes_events = False

    def write(self, writes: Any) -> Any:
        raise AssertionError("a calendar in reminder mode was written to")


def meeting(event_id: str, title: str, start: datetime, attendees: list[str]) -> Meeting:
    return mona_meeting(event_id, title, start, attendees, description=NOTES)


def start_daemon(
    tmp_path: Path, calendar: MemoryProvider, smtp: SmtpReceiver, hook: WebhookReceiver
) -> tuple[Daemon, Clock]:
    """A daemon over ``calendar`` with the team "platform" (goal, channel) and mail for Mona."""
    data = {
        "storage": {"url": f"sqlite:///{tmp_path / 'fa.db'}"},
        "calendars": [{"name": "mona", "provider": "memory", "owner": MONA}],
        "org": {
            "internal_domains": ["example.com"],
            "teams": [
                {
                    "name": "platform",
                    "manager": MONA,
                    "members": [SARA, ERIK],
                    "timezone": "Europe/Stockholm",
                    "goals": [GOAL],
                    "notify": [hook.url("/platform")],
                }
            ],
        },
        "policy": {"one_on_one_focus": "better"},
        "reminders": {"email": smtp.url("{address}")},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    clock = Clock(MONDAY)
    return Daemon(load_config(path), clock=clock, provider_factory=lambda _cfg: calendar), clock


@pytest.fixture
def world(tmp_path: Path) -> Iterator[SimpleNamespace]:
    with SmtpReceiver() as smtp, WebhookReceiver() as hook:
        calendar = NeverWritten(name="mona", owner=MONA)
        daemon, clock = start_daemon(tmp_path, calendar, smtp, hook)
        yield SimpleNamespace(smtp=smtp, hook=hook, calendar=calendar, clock=clock, daemon=daemon)
        daemon.shutdown()
        daemon.store.close()


def test_reminders_carry_the_agenda_and_no_event_is_written_over_a_week(
    world: SimpleNamespace,
) -> None:
    one = world.calendar.put(
        meeting("one", "Mona / Sara", MONDAY + timedelta(hours=3), [MONA, SARA])
    )
    standup = world.calendar.put(
        meeting("standup", "Team standup", MONDAY + timedelta(hours=4), [MONA, SARA, ERIK])
    )
    before = {m.ref: m.description for m in world.calendar.meetings()}
    for day in range(7):
        world.clock.now = MONDAY + timedelta(days=day)
        report = world.daemon.sync_calendar("mona")
        assert report is not None and report.ok
    assert {m.ref: m.description for m in world.calendar.meetings()} == before

    world.clock.now = MONDAY
    world.daemon.sync_calendar("mona")
    world.clock.now = one.start - timedelta(minutes=59)
    world.daemon.send_due()
    [private] = world.smtp.mails
    assert private.recipients == (MONA,)
    assert "not written into the meeting" in private.body
    assert "can do better" in private.body.lower()  # the 1:1's one corrective slot
    assert GOAL in private.body
    assert START_MARKER not in private.body
    assert world.hook.posts == []  # a 1:1's agenda never reaches the team channel

    world.clock.now = standup.start - timedelta(minutes=30)
    world.daemon.send_due()
    [team_post] = world.hook.bodies("/platform")
    text = str(team_post)
    assert GOAL in text and "praise" in text.lower()
    assert "can do better" not in text.lower() and "stop doing" not in text.lower()  # R4
    assert len(world.smtp.mails) == 1


def test_the_outbox_keeps_the_plan_not_the_text(world: SimpleNamespace) -> None:
    world.calendar.put(meeting("one", "Mona / Sara", MONDAY + timedelta(hours=3), [MONA, SARA]))
    world.daemon.sync_calendar("mona")
    with world.daemon.db.connect() as conn:
        rows = [str(r) for r in conn.exec_driver_sql("SELECT * FROM reminder_outbox").fetchall()]
    assert rows and all("better" in r for r in rows)  # the slot code is kept
    assert not any(NOTES in r or START_MARKER in r for r in rows)


def test_a_written_calendar_keeps_its_reminders_without_the_agenda(tmp_path: Path) -> None:
    with SmtpReceiver() as smtp, WebhookReceiver() as hook:
        calendar = MemoryProvider(name="mona", owner=MONA)
        daemon, clock = start_daemon(tmp_path, calendar, smtp, hook)
        try:
            one = calendar.put(
                meeting("one", "Mona / Sara", MONDAY + timedelta(hours=3), [MONA, SARA])
            )
            assert daemon.sync_calendar("mona").ok
            assert START_MARKER in calendar.get(one.ref).description
            clock.now = one.start - timedelta(minutes=59)
            daemon.send_due()
            [mail] = smtp.mails
            assert "not written into the meeting" not in mail.body
        finally:
            daemon.shutdown()
            daemon.store.close()


def test_a_microsoft_mailbox_in_reminder_mode_gets_its_agenda_by_mail_and_no_update(
    tmp_path: Path,
) -> None:
    """The same through the real provider, msal and the local Graph over HTTPS."""
    with start_graph() as graph, SmtpReceiver() as smtp:
        start = MONDAY + timedelta(hours=3)
        graph.store.add_event(
            MONA,
            subject="Mona / Sara",
            start=start,
            end=start + timedelta(minutes=30),
            body="<div>Teams join: https://teams.microsoft.com/l/meetup-join/x</div>",
            attendees=[(MONA, "required"), (SARA, "required")],
            weekly=True,
        )
        data = {
            "storage": {"url": f"sqlite:///{tmp_path / 'fa.db'}"},
            "calendars": [calendar_entry(graph, MONA, write_mode="reminder")],
            "org": {
                "internal_domains": ["example.com"],
                "teams": [
                    {"name": "platform", "manager": MONA, "members": [SARA, ERIK], "goals": [GOAL]}
                ],
            },
            "reminders": {"email": smtp.url("{address}")},
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        clock = Clock(MONDAY)
        daemon = Daemon(load_config(path), clock=clock)
        try:
            report = daemon.sync_calendar(MONA)
            assert report is not None and report.ok, report and report.error_message
            clock.now = start - timedelta(minutes=59)
            daemon.send_due()
            [mail] = smtp.mails
            assert mail.recipients == (MONA,)
            assert "not written into the meeting" in mail.body and GOAL in mail.body
            for day in range(1, 8):
                clock.now = MONDAY + timedelta(days=day)
                report = daemon.sync_calendar(MONA)
                assert report is not None and report.ok, report and report.error_message
            assert graph.requests["patch"] == 0 and graph.updates() == []
        finally:
            daemon.shutdown()
            daemon.store.close()
