"""R6 "a 1:1 marked as done": the daemon reads a 1:1 back once it has ended.

A 1:1 whose focus slot was filled in is one private win: counted, as a number,
only in the manager's own digest; never in a team celebration, digest or
streak, and nothing of what was written is kept or sent anywhere.

Real parts, as in ``test_daemon.py``: a memory calendar, SQLite through the
store's migrations, apprise delivering to aiosmtpd and a JSON webhook receiver
on loopback, and an injected clock (no sleeps).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from feedback_agendas.agendas.model import EventRef, Meeting
from feedback_agendas.integrations.calendars.memory import MemoryProvider
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.daemon import Daemon
from tests.support.clock import Clock
from tests.support.meetings import mona_meeting
from tests.support.receivers import SmtpReceiver, WebhookReceiver

MONDAY = datetime(2026, 3, 23, 7, 0, tzinfo=UTC)  # 08:00 in Stockholm
FRIDAY_DIGEST = datetime(2026, 3, 27, 14, 0, tzinfo=UTC)  # Friday 15:00 in Stockholm
CANARY = "CANARY-1on1-5d2e8b-hemligt"
PEOPLE = ["mona@example.com", "sara@example.com"]
TEAM = ["mona@example.com", "sara@example.com", "erik@example.com"]


def write_config(
    tmp: Path,
    smtp: SmtpReceiver,
    hook: WebhookReceiver,
    *,
    locale: str,
    positive_only: bool,
    policy: dict[str, Any] | None = None,
) -> Path:
    team: dict[str, Any] = {
        "name": "analys",
        "manager": "mona@example.com",
        "members": ["sara@example.com", "erik@example.com"],
        "locale": locale,
        "timezone": "Europe/Stockholm",
        "notify": [hook.url("/team-analys")],
    }
    if positive_only:  # R2: the 1:1s carry the "do well" focus
        team["positive_only_until"] = "2026-04-30"
    data = {
        "storage": {"url": f"sqlite:///{tmp / 'fa.db'}"},
        "calendars": [{"name": "mona", "provider": "memory", "owner": "mona@example.com"}],
        "org": {"internal_domains": ["example.com"], "teams": [team]},
        "people": [{"email": "mona@example.com", "notify": [smtp.url("mona@example.com")]}],
        "reminders": {"weekly_digest": {"weekday": "fri", "time": "15:00"}},
    }
    if policy:
        data["policy"] = policy
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


meeting = partial(mona_meeting, description="Mona och Sara")


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Any]:
    opened: list[tuple[Daemon, SmtpReceiver, WebhookReceiver]] = []

    def make(
        *, locale: str = "sv", positive_only: bool = False, policy: dict[str, Any] | None = None
    ) -> SimpleNamespace:
        smtp, hook = SmtpReceiver().__enter__(), WebhookReceiver().__enter__()
        cfg = load_config(
            write_config(
                tmp_path, smtp, hook, locale=locale, positive_only=positive_only, policy=policy
            )
        )
        calendar = MemoryProvider(name="mona", owner="mona@example.com")
        clock = Clock(MONDAY)
        daemon = Daemon(cfg, clock=clock, provider_factory=lambda _cfg: calendar)
        opened.append((daemon, smtp, hook))
        return SimpleNamespace(
            smtp=smtp, hook=hook, calendar=calendar, clock=clock, daemon=daemon, db=tmp_path
        )

    yield make
    for daemon, smtp, hook in opened:
        daemon.shutdown()
        daemon.store.close()
        hook.__exit__(None, None, None)
        smtp.__exit__(None, None, None)


def fill_entries(calendar: MemoryProvider, ref: EventRef, entries: dict[str, str]) -> None:
    """Write into the 1:1's entries as its manager would: ``{label: text}``."""
    current = calendar.get(ref)
    assert current is not None
    description = current.description
    for label, text in entries.items():
        description, n = re.subn(rf"(- {re.escape(label)}:) ___", rf"\g<1> {text}", description)
        assert n == 1, f"the agenda has no {label!r} entry"
    slots = {s: getattr(current, s) for s in Meeting.__slots__ if s != "description"}
    calendar.put(Meeting(**slots, description=description))


def wins(world: SimpleNamespace) -> list[tuple[Any, ...]]:
    with sqlite3.connect(world.db / "fa.db") as conn:
        return conn.execute(
            "SELECT team, day, kind, source, count, vague FROM feedback_wins ORDER BY id"
        ).fetchall()


def send_the_weekly_digests(world: SimpleNamespace) -> tuple[str, str]:
    """The manager's private digest and the team's digest of this week."""
    world.clock.now = FRIDAY_DIGEST
    world.daemon.plan_reminders()
    world.daemon.send_due()
    [private] = [m for m in world.smtp.mails if "sammanfattning" in m.subject.lower()] or [
        m for m in world.smtp.mails if "summary" in m.subject.lower()
    ]
    assert private.recipients == ("mona@example.com",)
    digests = [b for b in world.hook.bodies("/team-analys") if re.match(r"Hej|Hi", b)]
    [team] = [b for b in digests if re.search(r"Den här veckan|This week", b)]
    return private.body, team


def everything_sent(world: SimpleNamespace) -> list[str]:
    """Every mail (subject, body) and every whole post to the team channel."""
    sent = [text for mail in world.smtp.mails for text in (mail.subject, mail.body)]
    return sent + [json.dumps(post, ensure_ascii=False) for _path, post in world.hook.posts]


def test_a_filled_one_on_one_counts_once_in_the_private_digest_after_it_ends(
    make_world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world = make_world()
    one = world.calendar.put(meeting("one", "Mona / Sara", MONDAY + timedelta(hours=3), PEOPLE))
    assert world.daemon.sync_calendar("mona").ok
    agenda = world.calendar.get(one.ref).description
    assert "Det här kan du göra bättre" in agenda  # the default focus: corrective
    fill_entries(
        world.calendar,
        one.ref,
        {"Situation": f"kundmötet i tisdags {CANARY}", "Beteende": f"avbröt kunden {CANARY}"},
    )

    world.clock.now = one.start + timedelta(minutes=10)  # still going on
    world.daemon.sync_calendar("mona")
    assert wins(world) == [], "a 1:1 is read back only once it has ended"

    world.clock.now = one.end + timedelta(minutes=5)
    world.daemon.sync_calendar("mona")
    world.clock.now += timedelta(minutes=5)
    world.daemon.sync_calendar("mona")  # a second cycle reads nothing again
    assert wins(world) == [("analys", "2026-03-23", "corrective", "one_on_one", 1, 0)]
    # one win per 1:1, however many entries were filled
    assert 'feedback_agendas_wins_total{kind="corrective"} 1.0' in (
        world.daemon.metrics_text()[0].decode()
    )

    world.daemon.send_due()
    assert world.hook.bodies("/team-analys") == [], "a 1:1 never triggers a team celebration"
    private, team = send_the_weekly_digests(world)
    assert "korrigerande feedback på tu man hand: 1" in private
    assert "beröm på tu man hand: 0" in private
    assert "beröm på teammöten och loggat: 0" in private
    assert "korrigerande" not in team and "tu man hand" not in team
    assert "Inget beröm registrerades" in team

    # Nothing of what was written leaves the calendar: no message, log line,
    # metric or table holds it.
    messages = everything_sent(world)
    assert messages and not any(CANARY in text for text in messages)
    assert CANARY not in caplog.text
    assert CANARY not in world.daemon.metrics_text()[0].decode()
    with sqlite3.connect(world.db / "fa.db") as conn:
        dump = "\n".join(conn.iterdump())
    assert "feedback_wins" in dump and "praise_readbacks" in dump
    assert CANARY not in dump
    assert "kundmötet" not in dump and "avbröt" not in dump


def test_a_one_on_one_left_empty_is_not_counted(make_world: Any) -> None:
    world = make_world()
    one = world.calendar.put(meeting("one", "Mona / Sara", MONDAY + timedelta(hours=3), PEOPLE))
    world.daemon.sync_calendar("mona")
    assert "- Situation: ___" in world.calendar.get(one.ref).description
    world.clock.now = one.end + timedelta(minutes=5)
    world.daemon.sync_calendar("mona")
    assert wins(world) == []
    with sqlite3.connect(world.db / "fa.db") as conn:
        [(read_at,)] = conn.execute(
            "SELECT read_at FROM praise_readbacks WHERE slot = 'better'"
        ).fetchall()
    assert read_at is not None  # it was read back, and found empty
    private, _team = send_the_weekly_digests(world)
    assert "korrigerande feedback på tu man hand: 0" in private


def test_a_do_well_one_on_one_is_private_praise_never_the_teams(make_world: Any) -> None:
    world = make_world(locale="en", positive_only=True)
    one = world.calendar.put(meeting("one", "Mona / Sara", MONDAY + timedelta(hours=3), PEOPLE))
    world.daemon.sync_calendar("mona")
    assert "This you do well" in world.calendar.get(one.ref).description
    fill_entries(world.calendar, one.ref, {"Impact": f"the customer signed {CANARY}"})
    world.clock.now = one.end + timedelta(minutes=5)
    world.daemon.sync_calendar("mona")
    assert wins(world) == [("analys", "2026-03-23", "praise", "one_on_one", 1, 0)]
    world.daemon.send_due()
    assert world.hook.bodies("/team-analys") == [], "private praise is no team celebration"

    # The same day the team logs one praise of its own: the celebration counts
    # that one only.
    world.daemon.log_win("analys", "praise")
    world.daemon.send_due()
    [celebration] = world.hook.bodies("/team-analys")
    assert "1 piece of praise" in celebration

    private, team = send_the_weekly_digests(world)
    assert "praise given one to one: 1" in private
    assert "praise in team meetings and logged: 1" in private
    assert "corrective feedback given one to one: 0" in private
    assert "1 piece of praise" in team and "one to one" not in team
    assert not any(CANARY in text for text in everything_sent(world))


def test_private_praise_makes_no_team_streak(make_world: Any) -> None:
    world = make_world(locale="en", positive_only=True)
    one = world.calendar.put(meeting("one", "Mona / Sara", MONDAY + timedelta(hours=3), PEOPLE))
    world.daemon.sync_calendar("mona")
    fill_entries(world.calendar, one.ref, {"Situation": "the Monday demo"})
    world.clock.now = one.end + timedelta(minutes=5)
    world.daemon.sync_calendar("mona")
    assert len(wins(world)) == 1
    private, team = send_the_weekly_digests(world)
    assert "weeks in a row with praise: 0" in private
    assert "No praise was recorded this week" in team


def test_a_team_meeting_is_still_read_back_as_public_praise(make_world: Any) -> None:
    # The team path shares the read-back table with 1:1s; it must not read a
    # team meeting as a 1:1 or the other way round.
    world = make_world()
    standup = world.calendar.put(meeting("standup", "Veckomöte", MONDAY + timedelta(hours=1), TEAM))
    one = world.calendar.put(meeting("one", "Mona / Sara", MONDAY + timedelta(hours=3), PEOPLE))
    world.daemon.sync_calendar("mona")
    current = world.calendar.get(standup.ref)
    filled = current.description.replace("Beröm: ___", "Beröm: Erik visade demot för kunden", 1)
    slots = {s: getattr(current, s) for s in Meeting.__slots__ if s != "description"}
    world.calendar.put(Meeting(**slots, description=filled))
    fill_entries(world.calendar, one.ref, {"Effekt": "kunden förstod"})
    world.clock.now = one.end + timedelta(minutes=5)
    world.daemon.sync_calendar("mona")
    assert sorted(wins(world)) == [
        ("analys", "2026-03-23", "corrective", "one_on_one", 1, 0),
        ("analys", "2026-03-23", "praise", "meeting", 1, 0),
    ]
    world.daemon.send_due()
    [celebration] = [b for b in world.hook.bodies("/team-analys") if "I dag har ni" in b]
    assert "1 beröm" in celebration


@pytest.mark.parametrize("configured", [False, True])
def test_an_admin_label_from_the_config_is_read_back_as_praise(
    make_world: Any, configured: bool
) -> None:
    # An admin's own team template names its entries "Shout-out: ..."; the
    # config lists that label, and the read-back counts it with ours.
    policy = {"entry_labels": {"praise": ["Shout-out"]}} if configured else None
    world = make_world(policy=policy)
    standup = world.calendar.put(meeting("standup", "Veckomöte", MONDAY + timedelta(hours=1), TEAM))
    world.daemon.sync_calendar("mona")
    current = world.calendar.get(standup.ref)
    own_template = current.description.replace("Beröm: ___", "Shout-out: ___")
    filled = own_template.replace("Shout-out: ___", "Shout-out: Erik visade demot för kunden", 1)
    filled = filled.replace("Shout-out: ___", "Shout-out: bra jobbat!", 1)
    slots = {s: getattr(current, s) for s in Meeting.__slots__ if s != "description"}
    world.calendar.put(Meeting(**slots, description=filled))
    world.clock.now = standup.end + timedelta(minutes=5)
    world.daemon.sync_calendar("mona")
    expected = [("analys", "2026-03-23", "praise", "meeting", 2, 1)] if configured else []
    assert wins(world) == expected


# -- recurring meetings: one shared description for every occurrence ----------


def weekly(m: Meeting, weeks: int = 8) -> Meeting:
    return dataclasses.replace(m, recurrence=(f"RRULE:FREQ=WEEKLY;COUNT={weeks}",))


def replace_in(calendar: MemoryProvider, ref: EventRef, old: str, new: str) -> None:
    """A user edit of the series' description (the "all events" choice)."""
    current = calendar.get(ref)
    assert current is not None and old in current.description
    calendar.put(dataclasses.replace(current, description=current.description.replace(old, new, 1)))


def weekly_stand_up_with_praise(world: SimpleNamespace, praise: str) -> Meeting:
    """A weekly team meeting with one praise entry filled into the series."""
    standup = world.calendar.put(
        weekly(meeting("standup", "Team meeting", MONDAY + timedelta(hours=1), TEAM))
    )
    world.daemon.sync_calendar("mona")
    replace_in(world.calendar, standup.ref, "Praise: ___", f"Praise: {praise}")
    return standup


def after_the_occurrence(world: SimpleNamespace, series: Meeting, week: int) -> None:
    """Two cycles after the ``week``-th occurrence ended, the second reading nothing new."""
    world.clock.now = series.end + timedelta(weeks=week, minutes=5)
    world.daemon.sync_calendar("mona")
    world.daemon.send_due()
    world.clock.now += timedelta(minutes=5)
    world.daemon.sync_calendar("mona")
    world.daemon.send_due()


def test_praise_left_in_a_recurring_stand_up_counts_once_not_every_week(
    make_world: Any,
) -> None:
    world = make_world(locale="en")
    standup = weekly_stand_up_with_praise(world, "Erik walked the customer through it")
    for week in range(3):
        after_the_occurrence(world, standup, week)
    # The praise written for week 1 is still in the shared description in weeks
    # 2 and 3: counted and celebrated once, not every week.
    assert wins(world) == [("analys", "2026-03-23", "praise", "meeting", 1, 0)]
    celebrations = [b for b in world.hook.bodies("/team-analys") if "piece of praise" in b]
    assert len(celebrations) == 1

    # Week 4: the team edits the series and adds praise: that week counts again.
    # With no text kept, an edited series counts all its filled entries.
    replace_in(world.calendar, standup.ref, "Praise: ___", "Praise: Sara paired on the outage")
    after_the_occurrence(world, standup, 3)
    assert wins(world)[1:] == [("analys", "2026-04-13", "praise", "meeting", 2, 0)]


def test_a_recurring_one_on_one_filled_once_is_one_win(make_world: Any) -> None:
    world = make_world()
    series = world.calendar.put(
        weekly(meeting("one", "Mona / Sara", MONDAY + timedelta(hours=3), PEOPLE))
    )
    world.daemon.sync_calendar("mona")
    fill_entries(world.calendar, series.ref, {"Beteende": "avbröt kunden"})
    for week in range(3):
        after_the_occurrence(world, series, week)
    assert wins(world) == [("analys", "2026-03-23", "corrective", "one_on_one", 1, 0)]

    # The manager writes next week's entry into the series: that 1:1 counts.
    fill_entries(world.calendar, series.ref, {"Effekt": "kunden tappade tråden"})
    after_the_occurrence(world, series, 3)
    assert [w[1] for w in wins(world)] == ["2026-03-23", "2026-04-13"]


def test_a_series_read_back_after_downtime_does_not_count_old_entries_again(
    make_world: Any,
) -> None:
    # Week 2 ends while the daemon is down for two days: too late to read it
    # back. Week 3 still compares with the last version it did read (week 1).
    world = make_world(locale="en")
    standup = weekly_stand_up_with_praise(world, "Erik fixed the build")
    after_the_occurrence(world, standup, 0)
    world.clock.now = standup.end + timedelta(weeks=1, days=2)
    world.daemon.sync_calendar("mona")
    after_the_occurrence(world, standup, 2)
    assert [w[1] for w in wins(world)] == ["2026-03-23"]
