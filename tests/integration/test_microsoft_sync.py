"""End to end: the sync cycle over the Microsoft provider, msal and requests, against the
local Graph over HTTPS, counting the meeting updates Outlook would send.

Body mode spends updates deliberately: at most one per meeting (or series) and
attendee when the agenda is added, none in a quiet cycle (one delta call),
one more when the agenda's visible text changes (at most once a day). A 412
is re-read and merged, the Teams join text outside the block survives, and
no attendee's copy is ever written. Reminder mode makes no PATCH at all.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from feedback_agendas.agendas.block import START_MARKER, read_block
from feedback_agendas.agendas.errors import WriteHeld
from feedback_agendas.agendas.model import DescriptionWrite
from feedback_agendas.agendas.policy import Org, Rules, Team
from feedback_agendas.agendas.render import AgendaRenderer
from feedback_agendas.integrations.calendars.microsoft import MicrosoftProvider
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.sync.cycle import run_cycle
from feedback_agendas.scheduler.sync.report import CycleReport
from tests.fakes.graph_api import FakeGraph, Request
from tests.fakes.graph_store import parse_time
from tests.support.graph import SECRET, graph_provider, start_graph
from tests.support.logs import everything_logged_at_debug

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)  # a Tuesday morning
ZONE = "Europe/Stockholm"
MONA = "mona@example.com"
ALICE, BOB, CAROL, DAVE = (f"{n}@example.com" for n in ("alice", "bob", "carol", "dave"))
ROOM = "room-4@example.com"
TEAMS = (
    '<div style="width:100%"><span style="white-space:nowrap;color:#5F5F5F">'
    "________________________________________________________________________________</span></div>"
    '<div style="margin-bottom:24px"><span style="font-size:24px;font-weight:700">'
    "Microsoft Teams meeting</span></div>"
    '<div><span>Join: </span><a href="https://teams.microsoft.com/l/meetup-join/19%3ameeting_N2Q">'
    "https://teams.microsoft.com/l/meetup-join/19%3ameeting_N2Q</a></div>"
    "<div><span>Meeting ID: 312 555 019 8</span></div>"
)


def rules(goals: tuple[str, ...] = ("Ship the v2 importer",)) -> Rules:
    team = Team(
        name="platform",
        manager=MONA,
        members=frozenset({ALICE, BOB, CAROL, DAVE}),
        timezone=ZONE,
        goals=goals,
    )
    return Rules(org=Org(internal_domains=frozenset({"example.com"}), teams=(team,)))


@dataclass
class World:
    graph: FakeGraph
    store: Store
    renderer: AgendaRenderer
    now: datetime = NOW
    rules: Rules = field(default_factory=rules)
    events: dict[str, str] = field(default_factory=dict)
    providers: list[MicrosoftProvider] = field(default_factory=list)

    def provider(self, **kw: Any) -> MicrosoftProvider:
        made = graph_provider(self.graph, MONA, now=lambda: self.now, **kw)
        self.providers.append(made)
        return made

    def cycle(self, provider: MicrosoftProvider) -> CycleReport:
        report = run_cycle(provider, self.store, self.rules, self.renderer, self.now)
        assert report.error is None, report.error_message
        return report

    def body(self, key: str, mailbox: str = MONA) -> str:
        return str(self.graph.store.mailboxes[mailbox].events[self.events[key]]["body"]["content"])

    def seed(self) -> None:
        store = self.graph.store
        start = (NOW + timedelta(days=1)).replace(hour=8)
        self.events["series"] = store.add_event(
            MONA,
            subject="Alice / Mona",
            start=start,
            end=start + timedelta(minutes=30),
            body=TEAMS,
            attendees=[(MONA, "required"), (ALICE, "required")],
            weekly=True,
        )
        one_off = start + timedelta(days=1, hours=2)
        self.events["one_off"] = store.add_event(
            MONA,
            subject="Bob / Mona",
            start=one_off,
            end=one_off + timedelta(minutes=30),
            body="Notes: room <b>4</b>",
            attendees=[(MONA, "required"), (BOB, "required"), (ROOM, "resource")],
        )
        standup = start + timedelta(hours=1)
        self.events["standup"] = store.add_event(
            MONA,
            subject="Team standup",
            start=standup,
            end=standup + timedelta(minutes=15),
            attendees=[(MONA, "required")] + [(p, "required") for p in (ALICE, BOB, CAROL, DAVE)],
            weekly=True,
        )
        # Carol organizes a 1:1 with Mona: Mona's mailbox holds only an attendee's copy.
        theirs = start + timedelta(days=2)
        self.events["carols"] = store.add_event(
            MONA,
            subject="Carol / Mona",
            start=theirs,
            end=theirs + timedelta(minutes=30),
            organizer=CAROL,
            attendees=[(CAROL, "required"), (MONA, "required")],
        )
        for key in ("series", "one_off", "standup"):
            store.add_attendee_copies(MONA, self.events[key])


@pytest.fixture
def world() -> Iterator[World]:
    graph = start_graph()
    store = Store.open("sqlite:///:memory:")
    made = World(graph, store, AgendaRenderer())
    made.seed()
    yield made
    for provider in made.providers:
        provider.close()
    store.close()
    graph.stop()
    assert graph.violations == []


def updates(world: World) -> Counter[tuple[str, str]]:
    return Counter((event, attendee) for _box, event, attendee in world.graph.updates())


def test_body_mode_one_update_per_attendee_then_a_quiet_cycle_is_one_delta_call(
    world: World,
) -> None:
    provider = world.provider()
    first = world.cycle(provider)
    assert first.writes == 3  # the series, the one-off 1:1 and the standup series
    sent = updates(world)
    assert set(sent.values()) == {1}  # nobody got two updates
    ours = {world.events[k] for k in ("series", "one_off", "standup")}
    assert {event for event, _ in sent} == ours
    assert len(sent) == 1 + 2 + 4  # Alice; Bob and the room; the four reports
    # Every attendee's copy got the agenda through Outlook's update, never from us.
    assert world.graph.store.attendee_copy_writes == []
    assert all(p[1] != world.events["carols"] for p in world.graph.patches)
    assert START_MARKER not in world.body("carols")
    # The Teams join block outside ours is kept byte for byte, ours follows it.
    body = world.body("series")
    assert TEAMS in body and body.count(START_MARKER) == 1
    assert body.index(TEAMS) < body.index(START_MARKER)

    before = Counter(world.graph.requests)
    second = world.cycle(provider)
    assert second.writes == 0
    assert Counter(world.graph.requests) - before == Counter({"delta": 1})
    assert updates(world) == sent

    # A new process (cron) with the stored cursor: still one delta call, no update.
    before = Counter(world.graph.requests)
    world.cycle(world.provider())
    assert Counter(world.graph.requests) - before == Counter(
        {"delta": 1, "token": 1, "discovery": 1}
    )
    assert updates(world) == sent


def test_a_goal_change_sends_one_more_update_the_next_day_not_twice_a_day(world: World) -> None:
    provider = world.provider()
    world.cycle(provider)
    sent = updates(world)
    standup = world.events["standup"]

    # The same day: the goal changes, the visible text would change, but the
    # standup was written today already: held, not failed, looked at tomorrow.
    world.rules = rules(("Cut the p95 import time in half",))
    held = world.cycle(provider)
    assert held.ok and held.writes == 0
    assert held.outcomes.get(next(r for r in held.outcomes if r.event_id == standup)) == "held"
    assert updates(world) == sent
    assert "Ship the v2 importer" in world.body("standup")

    world.now = NOW + timedelta(days=1)
    world.cycle(provider)
    more = updates(world) - sent
    assert "Cut the p95 import time in half" in world.body("standup")
    # Every agenda shows the team's goals: one more update per meeting and attendee.
    assert set(more) == set(sent) and set(more.values()) == {1}

    # The day after, nothing changed: nothing is sent.
    world.now = NOW + timedelta(days=2)
    world.cycle(provider)
    world.cycle(provider)
    assert updates(world) - sent == more


def test_a_412_is_read_again_and_merged_into_the_users_edit(world: World) -> None:
    series = world.events["series"]
    edited: list[str] = []
    serve_patch = world.graph.routes[-5][2]  # the fake's own PATCH handler

    def user_edits_first(request: Request, match: re.Match[str]) -> Any:
        if not edited and match.group(2) == series:
            edited.append(series)
            content = world.body("series").replace(
                "Meeting ID", "Agenda (Mona): budget. Meeting ID"
            )
            world.graph.store.user_edit(MONA, series, {"body": {"content": content}})
        return serve_patch(request, match)

    world.graph.route("PATCH", r"/v1\.0/users/([^/]+)/events/([^/]+)", user_edits_first)
    report = world.cycle(world.provider())
    assert report.conflicts == 1 and report.writes == 3 and report.ok
    body = world.body("series")
    assert "Agenda (Mona): budget." in body and body.count(START_MARKER) == 1
    assert TEAMS.replace("Meeting ID", "Agenda (Mona): budget. Meeting ID") in body
    # The user's edit sent its own update; ours sent one per attendee, not two.
    assert set(updates(world).values()) == {1}


def test_a_block_exchange_rendered_differently_is_recognised_as_ours(world: World) -> None:
    provider = world.provider()
    world.cycle(provider)
    series = world.events["series"]
    event = world.graph.store.mailboxes[MONA].events[series]
    # The hash we keep matches the block as Exchange stored it (divs, not <br>).
    stored = event["singleValueExtendedProperties"][0]["value"].split()
    assert stored[0] == "v1" and stored[2] == "2026-12-01"
    assert "<br>Feedback" not in event["body"]["content"].split(START_MARKER)[1]
    # A user's edit outside the block comes back; the block stays ours and unchanged.
    sent = updates(world)
    content = event["body"]["content"].replace("Meeting ID", "Dial-in: 555. Meeting ID")
    world.graph.store.user_edit(MONA, series, {"body": {"content": content}})
    again = world.cycle(provider)
    assert again.writes == 0 and again.ok
    assert updates(world) == sent
    # A user's edit inside the block is the user's: never overwritten.
    world.now = NOW + timedelta(days=1)
    body = world.body("series")
    block = read_block(body)
    assert block is not None
    line = block.splitlines()[1]
    world.graph.store.user_edit(
        MONA, series, {"body": {"content": body.replace(line, line + " (Mona: skip this)", 1)}}
    )
    world.cycle(provider)
    assert "(Mona: skip this)" in world.body("series")


def test_a_rendering_that_changes_the_hash_is_stored_without_an_update(world: World) -> None:
    world.graph.store.rewrite_extra = lambda html: html.replace("<b>", "<i>").replace(
        "</b>", "</i>"
    )
    provider = world.provider()
    world.cycle(provider)
    sent = updates(world)
    assert set(sent.values()) == {1}
    # One property-only PATCH per written event recorded the rendering's hash.
    props_only = [p for p in world.graph.patches if p[2] == ["singleValueExtendedProperties"]]
    assert len(props_only) == 3
    series = world.graph.store.mailboxes[MONA].events[world.events["series"]]
    assert "<i>This you can do better</i>" in series["body"]["content"]
    world.now = NOW + timedelta(days=1)
    again = world.cycle(provider)
    assert again.ok and again.writes == 0
    assert updates(world) == sent


def test_reminder_mode_never_patches(world: World) -> None:
    provider = world.provider(write_mode="reminder")
    assert not provider.writes_events  # the runtime asks, and puts agendas in reminders
    meeting = next(iter(provider.read_changes(None).meetings))
    # Even asked directly, the provider never PATCHes in reminder mode.
    (held,) = provider.write([DescriptionWrite(meeting.ref, meeting.etag, "agenda", "h")])
    assert isinstance(held.error, WriteHeld)
    report = world.cycle(provider)
    world.cycle(provider)
    assert world.graph.requests["patch"] == 0
    assert report.ok and report.writes == 0
    assert world.graph.updates() == []
    assert START_MARKER not in world.body("series")


def test_nothing_of_the_events_or_the_secret_reaches_the_logs_or_the_store(world: World) -> None:
    canary = "KANARIE-graph-5e1d"
    series = world.events["series"]
    world.graph.store.user_edit(
        MONA,
        series,
        {"subject": f"Alice / Mona {canary}", "body": {"content": f"{TEAMS}<div>{canary}</div>"}},
    )
    with everything_logged_at_debug() as logged:
        provider = world.provider()
        world.cycle(provider)
        world.graph.fail("get", 503)
        world.graph.fail("batch", 429, retry_after=0)
        world.now = NOW + timedelta(days=1)
        world.cycle(provider)
    text = "\n".join(logged.texts)
    assert canary not in text and SECRET not in text
    assert not any("fake-graph-token" in t for t in logged.texts)
    rows = "\n".join(str(r) for r in world.store.records("mona@example.com").values())
    assert canary not in rows
    logging.getLogger(__name__).debug("%d records checked", len(rows))


def test_occurrence_refs_and_the_window(world: World) -> None:
    provider = world.provider()
    changes = provider.read_changes(None)
    series = next(m for m in changes.meetings if m.ref.event_id == world.events["series"])
    assert series.is_series and series.timezone == ZONE
    assert series.recurrence == ("RRULE:FREQ=WEEKLY;BYDAY=WE",)
    assert series.start == parse_time(
        world.graph.store.mailboxes[MONA].events[world.events["series"]]["start"]
    )
    carols = next(m for m in changes.meetings if m.ref.event_id == world.events["carols"])
    assert not carols.editable
    # A day later the stored window still serves: one delta call, no new round.
    world.now = NOW + timedelta(days=1)
    before = Counter(world.graph.requests)
    next_day = world.provider().read_changes(changes.cursor)
    assert not next_day.full
    assert Counter(world.graph.requests) - before == Counter(
        {"delta": 1, "token": 1, "discovery": 1}
    )
    # More than a week later the window has moved: the stored cursor starts a new round.
    world.now = NOW + timedelta(days=8)
    later = world.provider()
    from feedback_agendas.agendas.errors import CursorExpired

    with pytest.raises(CursorExpired):
        later.read_changes(next_day.cursor)
    assert replace(series).ref == series.ref
