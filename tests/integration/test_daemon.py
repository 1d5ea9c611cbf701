"""The daemon end to end, driven by an injected clock (no sleeps).

Real parts: a memory calendar, SQLite through the store's migrations, apprise
delivering to an aiosmtpd server and a JSON webhook receiver on loopback.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from feedback_agendas.agendas.model import EventRef, Meeting
from feedback_agendas.integrations.calendars.memory import MemoryProvider
from feedback_agendas.integrations.notify.apprise_notifier import AppriseNotifier
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.daemon import Daemon
from tests.support.clock import Clock
from tests.support.meetings import mona_meeting
from tests.support.receivers import SmtpReceiver, WebhookReceiver

# Monday 2026-03-23; Sweden moves to summer time on Sunday 2026-03-29.
MONDAY = datetime(2026, 3, 23, 7, 0, tzinfo=UTC)  # 08:00 in Stockholm
CANARY = "CANARY-7f3a9c-hemligt"


@pytest.fixture
def receivers() -> Iterator[tuple[SmtpReceiver, WebhookReceiver]]:
    with SmtpReceiver() as smtp, WebhookReceiver() as hook:
        yield smtp, hook


def write_config(tmp: Path, smtp: SmtpReceiver, hook: WebhookReceiver, **reminders: Any) -> Path:
    data = {
        "storage": {"url": f"sqlite:///{tmp / 'fa.db'}"},
        "calendars": [{"name": "mona", "provider": "memory", "owner": "mona@example.com"}],
        "org": {
            "internal_domains": ["example.com"],
            "teams": [
                {
                    "name": "analys",
                    "manager": "mona@example.com",
                    "members": ["sara@example.com", "erik@example.com"],
                    "locale": "sv",
                    "timezone": "Europe/Stockholm",
                    "positive_only_until": "2026-04-30",
                    "notify": [hook.url("/team-analys")],
                }
            ],
        },
        "people": [{"email": "mona@example.com", "notify": [smtp.url("mona@example.com")]}],
        "reminders": {"weekly_digest": {"weekday": "fri", "time": "15:00"}, **reminders},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def world(tmp_path: Path, receivers: tuple[SmtpReceiver, WebhookReceiver]) -> Any:
    smtp, hook = receivers
    cfg = load_config(write_config(tmp_path, smtp, hook))
    calendar = MemoryProvider(name="mona", owner="mona@example.com")
    clock = Clock(MONDAY)
    daemon = Daemon(cfg, clock=clock, provider_factory=lambda _cfg: calendar)

    from types import SimpleNamespace

    w = SimpleNamespace()
    w.smtp, w.hook, w.calendar, w.clock, w.daemon, w.tmp = (
        smtp,
        hook,
        calendar,
        clock,
        daemon,
        tmp_path,
    )
    yield w
    daemon.shutdown()
    daemon.store.close()


def fill_praise(calendar: MemoryProvider, ref: EventRef, entries: list[str]) -> None:
    current = calendar.get(ref)
    assert current is not None
    lines = current.description.split("\n")
    out, it = [], iter(entries)
    for line in lines:
        if re.match(r"^(- )?(Praise|Beröm)\s*:", line, re.IGNORECASE):
            entry = next(it, None)
            if entry is not None:
                line = re.sub(r":.*$", f": {entry}", line)
        out.append(line)
    calendar.put(
        Meeting(
            **{s: getattr(current, s) for s in Meeting.__slots__ if s != "description"},
            description="\n".join(out),
        )
    )


def test_before_meeting_reminders_go_to_the_right_channels_in_swedish(world: Any) -> None:
    standup = world.calendar.put(
        mona_meeting(
            "standup",
            "Veckomöte analys",
            MONDAY + timedelta(hours=2),
            ["mona@example.com", "sara@example.com", "erik@example.com"],
        )
    )
    one = world.calendar.put(
        mona_meeting(
            "one",
            "Mona / Sara",
            MONDAY + timedelta(hours=3),
            ["mona@example.com", "sara@example.com"],
            description=CANARY,
        )
    )
    report = world.daemon.sync_calendar("mona")
    assert report is not None and report.ok
    assert world.daemon.send_due().sent == 0  # not due yet
    world.clock.now = standup.start - timedelta(minutes=60)
    sent = world.daemon.send_due()
    assert sent.sent == 1
    [team_message] = world.hook.bodies("/team-analys")
    assert "konkret" in team_message and "beteendet" in team_message
    assert "ovant i början" in team_message  # R2: positive-only period encouragement
    assert world.smtp.mails == []  # the team reminder never goes to the manager's mail
    world.clock.now = one.start - timedelta(minutes=60)
    assert world.daemon.send_due().sent == 1
    [mail] = world.smtp.mails
    assert mail.recipients == ("mona@example.com",)
    assert mail.subject.startswith("Ditt 1:1 kl. 11:00")  # Stockholm time
    assert len(world.hook.bodies("/team-analys")) == 1  # nothing about the 1:1 in the team channel
    everything = [mail.body, mail.subject, *world.hook.bodies("/team-analys")]
    assert not any(CANARY in text for text in everything)


def test_one_celebration_per_team_per_day_with_a_vague_praise_hint(world: Any) -> None:
    people = ["mona@example.com", "sara@example.com", "erik@example.com"]
    first = world.calendar.put(
        mona_meeting("standup1", "Standup", MONDAY + timedelta(hours=1), people)
    )
    second = world.calendar.put(
        mona_meeting("standup2", "Retro", MONDAY + timedelta(hours=4), people)
    )
    world.daemon.sync_calendar("mona")
    fill_praise(world.calendar, first.ref, ["bra jobbat", f"Sara sammanfattade beslutet {CANARY}"])
    fill_praise(world.calendar, second.ref, ["Erik visade kunden demot innan mötet"])
    world.clock.now = first.end + timedelta(minutes=5)
    world.daemon.sync_calendar("mona")
    world.daemon.send_due()
    world.clock.now = second.end + timedelta(minutes=5)
    world.daemon.sync_calendar("mona")
    world.daemon.log_win("analys", "praise")
    world.daemon.send_due()
    celebrations = [b for b in world.hook.bodies("/team-analys") if "I dag har ni" in b]
    assert len(celebrations) == 1
    assert "bra jobbat" in celebrations[0]  # the vague praise is pointed out...
    assert CANARY not in celebrations[0]  # ...but no entry is quoted
    # the next day celebrates again
    world.clock.now = MONDAY + timedelta(days=1, hours=2)
    world.daemon.log_win("analys", "praise")
    world.daemon.send_due()
    assert len([b for b in world.hook.bodies("/team-analys") if "I dag har ni" in b]) == 2


def test_corrective_wins_only_in_the_managers_private_digest(world: Any) -> None:
    world.daemon.log_win("analys", "corrective")
    world.daemon.log_win("analys", "praise")
    friday = datetime(2026, 3, 27, 14, 0, tzinfo=UTC)  # 15:00 in Stockholm
    world.clock.now = friday
    world.daemon.plan_reminders()
    world.daemon.send_due()
    [private] = world.smtp.mails
    assert private.recipients == ("mona@example.com",)
    assert "korrigerande feedback på tu man hand: 1" in private.body
    digest = [b for b in world.hook.bodies("/team-analys") if "Den här veckan" in b]
    assert len(digest) == 1
    assert "korrigerande" not in digest[0]
    assert "1 beröm" in digest[0]


def test_restart_after_downtime_across_dst_sends_late_or_expires_never_a_burst(
    world: Any, tmp_path: Path
) -> None:
    people = ["mona@example.com", "sara@example.com", "erik@example.com"]
    # before the downtime: a stand-up each weekday at 09:00 Stockholm time
    for day in range(8):
        start = datetime(2026, 3, 26, 8, 0, tzinfo=UTC) + timedelta(days=day)
        start = start.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Stockholm")).replace(
            hour=9
        )
        world.calendar.put(mona_meeting(f"su{day}", "Standup", start.astimezone(UTC), people))
    world.clock.now = datetime(2026, 3, 26, 6, 0, tzinfo=UTC)
    world.daemon.sync_calendar("mona")
    world.daemon.shutdown()
    world.daemon.store.close()
    # down from Thursday to Monday 30 March 08:10 local (06:10 UTC, summer time now)
    back = datetime(2026, 3, 30, 6, 10, tzinfo=UTC)
    cfg = world.daemon.cfg
    restarted = Daemon(cfg, clock=Clock(back), provider_factory=lambda _c: world.calendar)
    try:
        restarted.sync_calendar("mona")
        report = restarted.send_due()
        # only Monday's stand-up reminder is still useful; the missed ones expired
        assert report.sent == 1
        counts = restarted.outbox.counts()
        # Thursday to Sunday: dropped by rule (expired, or cancelled as past), never sent
        assert counts.get("expired", 0) + counts.get("cancelled", 0) == 4
        assert counts["sent"] == 1
        bodies = [b for b in world.hook.bodies("/team-analys") if "teammöte" in b.lower()]
        assert len(bodies) == 1 and "09:00" in bodies[0]  # 09:00 summer time, not 10:00
    finally:
        restarted.shutdown()
        restarted.store.close()


def test_quiet_hours_hold_messages_until_they_end(tmp_path: Path, receivers: Any) -> None:
    smtp, hook = receivers
    cfg = load_config(
        write_config(tmp_path, smtp, hook, quiet_hours={"start": "18:00", "end": "08:00"})
    )
    clock = Clock(datetime(2026, 3, 23, 19, 0, tzinfo=UTC))  # 20:00 in Stockholm
    daemon = Daemon(
        cfg, clock=clock, provider_factory=lambda _c: MemoryProvider("mona", "x@example.com")
    )
    try:
        daemon.log_win("analys", "praise")
        assert daemon.send_due().sent == 0
        clock.now = datetime(2026, 3, 24, 6, 59, tzinfo=UTC)  # 07:59
        assert daemon.send_due().sent == 0
        clock.now = datetime(2026, 3, 24, 7, 0, tzinfo=UTC)  # 08:00
        assert daemon.send_due().sent == 1
    finally:
        daemon.shutdown()
        daemon.store.close()


def test_push_keeps_a_quiet_calendar_free_and_polling_stays_as_the_fallback(world: Any) -> None:
    daemon, calendar = world.daemon, world.calendar
    assert daemon.poll_calendar("mona") is not None  # no channel: the interval syncs
    calendar.requests.clear()
    daemon.push_live_until = lambda _name: world.clock.now + timedelta(days=7)

    world.clock.now += timedelta(minutes=5)
    assert daemon.poll_calendar("mona") is None
    assert sum(calendar.requests.values()) == 0, "a quiet push-notified calendar costs nothing"
    assert daemon.sync_calendar("mona") is not None  # a notification syncs at once

    world.clock.now += daemon.push_fallback
    assert daemon.poll_calendar("mona") is not None, "notifications can be lost: poll now and then"

    daemon.push_live_until = lambda _name: world.clock.now - timedelta(seconds=1)  # expired
    world.clock.now += timedelta(minutes=5)
    assert daemon.poll_calendar("mona") is not None


class SlowChannel(AppriseNotifier):
    """Takes 20 s a message on the injected clock; notes whether each send held a live lease."""

    def __init__(self, clock: Clock, db: Path) -> None:
        super().__init__()
        self.clock, self.db = clock, db
        self.lease_left: list[timedelta] = []

    def send(self, channel_url: str, message: Any) -> None:
        with sqlite3.connect(self.db) as conn:
            [(until,)] = conn.execute(
                "SELECT lease_until FROM reminder_outbox WHERE state = 'sending'"
            ).fetchall()
        self.lease_left.append(datetime.fromisoformat(until).replace(tzinfo=UTC) - self.clock.now)
        super().send(channel_url, message)
        self.clock.now += timedelta(seconds=20)


def test_a_long_send_run_claims_each_batch_with_a_lease_from_the_time_it_claims(
    tmp_path: Path, receivers: tuple[SmtpReceiver, WebhookReceiver]
) -> None:
    # A slow channel: 12 reminders at 20 s each, claimed 3 at a time with 60 s
    # leases. Every message must go out while its row's lease is still live;
    # a lease that ran out would let another replica claim and send it too.
    smtp, hook = receivers
    cfg = load_config(write_config(tmp_path, smtp, hook))
    calendar = MemoryProvider(name="mona", owner="mona@example.com")
    clock = Clock(MONDAY)
    channel = SlowChannel(clock, tmp_path / "fa.db")
    daemon = Daemon(
        cfg,
        clock=clock,
        notifier=channel,
        provider_factory=lambda _cfg: calendar,
        lease_ttl=timedelta(seconds=60),
    )
    try:
        team = ["mona@example.com", "sara@example.com", "erik@example.com"]
        for i in range(12):
            calendar.put(
                mona_meeting(f"m{i}", f"Veckomöte {i}", MONDAY + timedelta(minutes=30 + i), team)
            )
        daemon.sync_calendar("mona")
        report = daemon.send_due(limit=3)
    finally:
        daemon.shutdown()
        daemon.store.close()
    assert report.sent == 12 and len(hook.bodies("/team-analys")) == 12
    assert min(channel.lease_left) > timedelta(0), channel.lease_left
