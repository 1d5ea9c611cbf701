"""Teams found through ``org.directory`` get what configured teams get (issue 12 item 3).

Real parts: the Admin SDK Directory is the local Google fake over real HTTP
(read by the real client), a memory calendar, SQLite through the store's
migrations, apprise delivering to aiosmtpd and to a JSON webhook receiver on
loopback, and an injected clock (no sleeps). The manager has no ``people``
entry: the private messages go through ``reminders.email``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from feedback_agendas.integrations.calendars.memory import MemoryProvider
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.daemon import Daemon
from tests.fakes.google_api import FakeGoogleCalendarAPI
from tests.support.clock import Clock
from tests.support.meetings import mona_meeting
from tests.support.receivers import SmtpReceiver, WebhookReceiver

MONDAY = datetime(2026, 3, 23, 7, 0, tzinfo=UTC)  # 08:00 in Stockholm
FRIDAY_DIGEST = datetime(2026, 3, 27, 14, 0, tzinfo=UTC)  # Friday 15:00 in Stockholm
MONA, SARA, ERIK = "mona@example.com", "sara@example.com", "erik@example.com"


def write_config(tmp: Path, api: FakeGoogleCalendarAPI, smtp: SmtpReceiver, **org: Any) -> Path:
    data = {
        "storage": {"url": f"sqlite:///{tmp / 'fa.db'}"},
        "calendars": [{"name": "mona", "provider": "memory", "owner": MONA}],
        "org": {
            "internal_domains": ["example.com"],
            "directory": {
                "provider": "google",
                "credentials": "anonymous",
                "domain": "example.com",
                "api_endpoint": api.root,
            },
            "team_defaults": {"timezone": "Europe/Stockholm", "goals": ["Ask for feedback weekly"]},
            **org,
        },
        "reminders": {
            "email": smtp.url("{address}"),
            "weekly_digest": {"weekday": "fri", "time": "15:00"},
        },
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
def world(tmp_path: Path) -> Iterator[SimpleNamespace]:
    with FakeGoogleCalendarAPI() as api, SmtpReceiver() as smtp, WebhookReceiver() as hook:
        api.directory = {SARA: MONA, ERIK: MONA}
        calendar = MemoryProvider(name="mona", owner=MONA)
        daemons: list[Daemon] = []

        def start(**org: Any) -> Daemon:
            cfg = load_config(write_config(tmp_path, api, smtp, **org))
            daemon = Daemon(cfg, clock=clock, provider_factory=lambda _cfg: calendar)
            daemons.append(daemon)
            return daemon

        clock = Clock(MONDAY)
        yield SimpleNamespace(
            api=api, smtp=smtp, hook=hook, calendar=calendar, clock=clock, start=start
        )
        for daemon in daemons:
            daemon.shutdown()
            daemon.store.close()


def test_a_directory_manager_gets_one_on_one_reminders_and_the_private_digest_by_email(
    world: SimpleNamespace,
) -> None:
    daemon = world.start()
    [team] = [t for t in daemon.rules.org.teams if t.manager == MONA]
    assert team.name == f"directory:{MONA}" and team.members == {SARA, ERIK}
    assert team.timezone == "Europe/Stockholm"  # from org.team_defaults

    one = world.calendar.put(
        mona_meeting("one", "Mona / Sara", MONDAY + timedelta(hours=3), [MONA, SARA])
    )
    standup = world.calendar.put(
        mona_meeting("standup", "Team standup", MONDAY + timedelta(hours=4), [MONA, SARA, ERIK])
    )
    assert daemon.sync_calendar("mona").ok
    assert "Ask for feedback weekly" in world.calendar.get(standup.ref).description
    assert world.calendar.get(one.ref).description  # the 1:1 has its agenda

    world.clock.now = one.start - timedelta(minutes=59)
    daemon.send_due()
    [reminder] = world.smtp.mails
    assert reminder.recipients == (MONA,)
    assert "1:1" in reminder.subject or "1:1" in reminder.body

    # The team has no channel of its own: the stand-up's reminder goes nowhere.
    world.clock.now = standup.start - timedelta(minutes=30)
    daemon.send_due()
    assert world.hook.posts == []
    assert len(world.smtp.mails) == 1

    world.clock.now = FRIDAY_DIGEST
    daemon.plan_reminders()
    daemon.send_due()
    digests = [m for m in world.smtp.mails[1:] if "summary" in m.subject.lower()]
    assert [m.recipients for m in digests] == [(MONA,)]
    assert world.hook.posts == []


def test_the_team_channel_works_once_its_manager_entry_names_one(world: SimpleNamespace) -> None:
    # An org.teams entry that names only the manager sets that directory team's settings.
    daemon = world.start(teams=[{"manager": MONA, "notify": [world.hook.url("/mona-team")]}])
    [team] = [t for t in daemon.rules.org.teams if t.manager == MONA]
    assert team.name == f"directory:{MONA}"
    assert team.timezone == "Europe/Stockholm"  # the defaults still apply where it says nothing

    standup = world.calendar.put(
        mona_meeting("standup", "Team standup", MONDAY + timedelta(hours=4), [MONA, SARA, ERIK])
    )
    assert daemon.sync_calendar("mona").ok
    world.clock.now = standup.start - timedelta(minutes=30)
    daemon.send_due()
    assert len(world.hook.bodies("/mona-team")) == 1
    assert world.smtp.mails == []  # the team's reminder is not the manager's private one
