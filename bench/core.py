"""Throughput of the pure core: classify, plan, render, merge, and decide end to end.

Usage::

    .venv/bin/python bench/core.py [--events 100000] [--seed 7]

Builds N synthetic meetings for a company of ~1,600 people in 200 teams: 1:1s,
team meetings and the many kinds of skip (outside guests, cancelled, opted
out, colleagues, ...), some weekly series, some in HTML, about a third already
holding an agenda block from an earlier cycle. Each stage is timed over all
meetings it applies to and reported in events per second, then ``decide`` is
timed end to end. Peak RSS comes from ``resource.getrusage``. Goal: at least
20,000 events/s end to end on one core, under 200 MB.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from feedback_agendas.agendas.block import merge_block
from feedback_agendas.agendas.classify import Classification, MeetingKind, classify_meeting
from feedback_agendas.agendas.decide import ActionKind, decide
from feedback_agendas.agendas.model import (
    Attendee,
    EventRef,
    EventType,
    Meeting,
    Status,
    TextFormat,
    Visibility,
)
from feedback_agendas.agendas.plan import plan_agenda
from feedback_agendas.agendas.policy import OptOut, Org, Policy, Rules, Team
from feedback_agendas.agendas.recurrence import next_occurrence
from feedback_agendas.agendas.render import AgendaRenderer

T = TypeVar("T")

NOW = datetime(2026, 5, 4, 6, 0, tzinfo=UTC)
TEAMS = 200
TEAM_SIZE = 8
USER_TEXT = [
    "",
    "Prep: bring the roadmap.",
    "Agenda:\n- status\n- blockers\n- next steps",
    "<p>Notes &amp; links: <a href='https://example.com/doc'>doc</a></p>",
    "Join: https://meet.example.com/abc-defg-hij\nDial-in: +46 8 123 456",
]


def build_rules() -> Rules:
    teams = []
    for t in range(TEAMS):
        people = [f"p{t}-{i}@example.com" for i in range(TEAM_SIZE)]
        teams.append(
            Team(
                name=f"team-{t}",
                manager=people[0],
                members=frozenset(people[1:]),
                locale="sv" if t % 3 == 0 else "en",
                timezone="Europe/Stockholm" if t % 2 else "America/New_York",
                goals=(f"Goal A of team {t}", "Ship the thing") if t % 4 else (),
                positive_only_until=date(2026, 5, 10) if t % 5 == 0 else None,
            )
        )
    return Rules(
        org=Org(internal_domains=frozenset({"example.com"}), teams=tuple(teams)),
        policy=Policy(),
        opt_out=OptOut(users=frozenset({"p7-3@example.com"}), teams=frozenset({"team-11"})),
    )


def synthetic_meeting(n: int, rng: random.Random, rules: Rules, series_share: float) -> Meeting:
    team = rules.org.teams[rng.randrange(TEAMS)]
    members = sorted(team.members)
    manager = team.manager
    roll = rng.random()
    title = "1:1"
    attendees: list[str] = []
    changes: dict[str, object] = {}
    if roll < 0.40:  # 1:1 manager / report
        attendees = [manager, rng.choice(members)]
        title = f"1:1 {attendees[1].split('@')[0]}"
    elif roll < 0.65:  # team meeting
        attendees = [manager, *rng.sample(members, rng.randint(3, 7))]
        title = rng.choice(["Stand-up", "Veckomöte", "Sprint planning", "Retro"])
    elif roll < 0.72:  # outside guest
        attendees = [manager, rng.choice(members), "guest@customer.org"]
    elif roll < 0.78:  # two colleagues
        attendees = rng.sample(members, 2)
    elif roll < 0.84:  # quarterly review of people across teams
        other = rules.org.teams[rng.randrange(TEAMS)]
        attendees = [manager, other.manager, f"p{rng.randrange(TEAMS)}-5@example.com"]
        title = "Quarterly review"
    elif roll < 0.90:  # write-forbidden facts
        attendees = [manager, rng.choice(members)]
        changes = rng.choice(
            [
                {"status": Status.CANCELLED},
                {"visibility": Visibility.PRIVATE},
                {"event_type": EventType.OUT_OF_OFFICE},
                {"all_day": True},
            ]
        )
    elif roll < 0.95:  # a room, a group, hidden attendees
        attendees = [manager, rng.choice(members)]
        changes = rng.choice([{"attendees_omitted": True}, {"_room": True}, {"_group": True}])
    else:  # opt-out marker
        attendees = [manager, rng.choice(members)]
        title = "1:1 #no-agenda"
    organizer = attendees[0]
    people = [
        Attendee(email=a, response=rng.choice(["accepted", "needsAction"])) for a in attendees
    ]
    if changes.pop("_room", False):
        people.append(Attendee(email="room-1@resource.example.com", resource=True))
    if changes.pop("_group", False):
        people.append(Attendee(email="all@example.com", group=True))
    start = NOW + timedelta(hours=rng.randint(-24, 24 * 20))
    recurrence: tuple[str, ...] = ()
    if rng.random() < series_share:
        start -= timedelta(weeks=rng.randint(1, 150))
        # Mostly weekly or every weekday (arithmetic path); some monthly (dateutil path).
        rule = rng.choices(
            ["FREQ=WEEKLY", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "FREQ=WEEKLY;INTERVAL=2",
             "FREQ=MONTHLY;BYDAY=1TU"],
            weights=[60, 20, 10, 10],
        )[0]  # fmt: skip
        excluded = start + timedelta(weeks=2)
        recurrence = (f"RRULE:{rule}", f"EXDATE:{excluded:%Y%m%dT%H%M%SZ}")
    fmt = TextFormat.HTML if rng.random() < 0.5 else TextFormat.TEXT
    meeting = Meeting(
        ref=EventRef(f"cal-{organizer}", f"evt-{n}"),
        title=title,
        description=rng.choice(USER_TEXT),
        start=start,
        end=start + timedelta(minutes=rng.choice([15, 30, 45, 60])),
        owner=organizer,
        etag=f"e{n}",
        description_format=fmt,
        timezone=team.timezone,
        recurrence=recurrence,
        organizer=organizer,
        attendees=tuple(people),
    )
    return replace(meeting, **changes)  # type: ignore[arg-type]


def build_meetings(
    count: int, seed: int, rules: Rules, renderer: AgendaRenderer, series_share: float = 0.2
) -> list[Meeting]:
    """N meetings; about a third already carry the block an earlier cycle wrote."""
    rng = random.Random(seed)
    meetings = []
    for n in range(count):
        m = synthetic_meeting(n, rng, rules, series_share)
        if rng.random() < 0.35:
            d = decide(m, rules, NOW - timedelta(days=1), renderer)
            if d.needs_write and d.description is not None:
                m = replace(m, description=d.description, stored_hash=d.block_hash)
        meetings.append(m)
    return meetings


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label: str, items: Sequence[T], work: Callable[[T], object]) -> float:
    """Run ``work`` on every item and print the rate; returns items per second."""
    gc.collect()
    wall = time.perf_counter()
    began = time.process_time()
    for item in items:
        work(item)
    # CPU time of this process: the rate on one core, even when other
    # processes compete for the machine. Wall time is shown beside it.
    elapsed = time.process_time() - began
    wall = time.perf_counter() - wall
    rate = len(items) / elapsed if elapsed else float("inf")
    print(
        f"  {label:<24} {len(items):>8} {elapsed:8.3f} s cpu {wall:8.3f} s wall {rate:>10,.0f} /s"
    )
    return rate


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--series", type=float, default=0.2, help="share of meetings that are weekly series"
    )
    args = parser.parse_args(argv)

    rules = build_rules()
    renderer = AgendaRenderer()
    t0 = time.perf_counter()
    meetings = build_meetings(args.events, args.seed, rules, renderer, args.series)
    print(f"built {len(meetings)} meetings in {time.perf_counter() - t0:.1f} s\n")

    input_mb = peak_rss_mb()
    print(f"peak RSS after building the input: {input_mb:.0f} MB\n")

    # Each stage's input is prepared outside its timed region and dropped after
    # it, so the peak reflects the core, not the bench holding every stage at once.
    print("stage                        events       cpu time        wall time       rate")
    timed("classify", meetings, lambda m: classify_meeting(m, rules))
    eligible = [m for m in meetings if classify_meeting(m, rules).kind is not MeetingKind.SKIP]
    timed("next occurrence", eligible, lambda m: next_occurrence(m, NOW))
    planned: list[tuple[Meeting, Classification, datetime, datetime]] = []
    for m in eligible:
        occ = next_occurrence(m, NOW)
        if occ is not None:
            planned.append((m, classify_meeting(m, rules), occ[0], occ[1]))
    del eligible
    timed("plan", planned, lambda x: plan_agenda(x[0], x[1], rules, x[2], x[3]))
    plans = [(m, plan_agenda(m, c, rules, s, e)) for m, c, s, e in planned]
    del planned
    timed("render", plans, lambda x: renderer.render_block(x[1], x[0].description_format))
    bodies = [(m, renderer.render_block(p, m.description_format)) for m, p in plans]
    del plans
    timed(
        "merge",
        bodies,
        lambda x: merge_block(x[0].description, x[0].description_format, x[1], x[0].stored_hash),
    )
    del bodies

    actions: Counter[str] = Counter()
    reasons: Counter[str] = Counter()

    def decide_one(m: Meeting) -> None:
        d = decide(m, rules, NOW, renderer)
        actions[d.action.value] += 1
        if d.action is ActionKind.SKIPPED and d.reason:
            reasons[d.reason] += 1

    rate = timed("decide (end to end)", meetings, decide_one)
    peak_mb = peak_rss_mb()
    print(f"\nactions: {dict(sorted(actions.items()))}")
    print(f"skips:   {dict(sorted(reasons.items()))}")
    print(
        f"\nend to end: {rate:,.0f} events/s on one core; peak RSS {peak_mb:.0f} MB "
        f"({input_mb:.0f} MB of it the {len(meetings)} input meetings)"
    )
    ok = rate >= 20_000 and peak_mb < 200
    print("goal (>= 20,000 events/s, < 200 MB):", "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
