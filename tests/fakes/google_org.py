"""A seeded synthetic organisation in the local Google Calendar API.

Each calendar belongs to a manager with four reports (one team). Its events
cycle through the cases a real calendar has: weekly 1:1 series (some with a
moved occurrence inside the horizon), one-off 1:1s with a room, a weekly
stand-up, a meeting with an outside guest, all-day, out-of-office, focus-time
and private events, an attendee's copy of someone else's meeting, and a 1:1
far beyond the horizon. Every description starts with the user's own text,
so tests can check it survives.

The same ``(calendars, events, seed)`` always gives the same org, so a
benchmark can seed a server in one process and build the rules in another.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from feedback_agendas.agendas.policy import Org, Rules, Team
from tests.fakes.google_api import FakeGoogleCalendarAPI, instance_suffix

DOMAIN = "example.com"
NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)  # a Tuesday morning
ZONE = "Europe/Stockholm"

# Kinds in the order they repeat; "eligible" ones must end with one block.
KINDS = (
    "series_1on1",
    "one_off_1on1_room",
    "standup_series",
    "external",
    "all_day",
    "out_of_office",
    "focus_time",
    "private",
    "attendee_copy",
    "far_future_1on1",
)
ELIGIBLE_KINDS = frozenset({"series_1on1", "one_off_1on1_room", "standup_series"})


def manager(i: int) -> str:
    return f"m{i:05d}@{DOMAIN}"


def reports(i: int) -> list[str]:
    return [f"r{i:05d}{c}@{DOMAIN}" for c in "abcd"]


def rules_for(calendars: int) -> Rules:
    """One team per calendar: the manager and four reports."""
    teams = tuple(
        Team(name=f"team{i:05d}", manager=manager(i), members=frozenset(reports(i)))
        for i in range(calendars)
    )
    return Rules(org=Org(internal_domains=frozenset({DOMAIN}), teams=teams))


@dataclass
class SyntheticOrg:
    """What was seeded: calendar ids, and per event its kind and the user's text."""

    calendars: list[str]
    kinds: dict[tuple[str, str], str] = field(default_factory=dict)
    user_text: dict[tuple[str, str], str] = field(default_factory=dict)

    def eligible(self) -> list[tuple[str, str]]:
        return [key for key, kind in self.kinds.items() if kind in ELIGIBLE_KINDS]


def _when(moment: datetime) -> dict[str, Any]:
    return {"dateTime": moment.isoformat(), "timeZone": ZONE}


def _person(email: str, **extra: Any) -> dict[str, Any]:
    return {"email": email, **extra}


def seed_org(
    api: FakeGoogleCalendarAPI, calendars: int, events: int, seed: int = 7, now: datetime = NOW
) -> SyntheticOrg:
    """Seed ``calendars`` calendars of ``events`` events each; return what was made."""
    rng = random.Random(seed)
    org = SyntheticOrg(calendars=[manager(i) for i in range(calendars)])
    for i in range(calendars):
        owner = manager(i)
        team = reports(i)
        api.add_calendar(owner, time_zone=ZONE)
        for n in range(events):
            kind = KINDS[n % len(KINDS)]
            day = 1 + (n // len(KINDS)) % 12
            start = (now + timedelta(days=day)).replace(hour=8 + n % 8, minute=0)
            text = f"Notes {i}/{n}: room <b>4</b> &amp; dial-in {rng.randint(100, 999)}"
            resource = _resource(kind, owner, team, i, n, start, text, calendars)
            if resource is None:
                continue
            event = api.add_event(owner, resource)
            org.kinds[(owner, event["id"])] = kind
            org.user_text[(owner, event["id"])] = text
            if kind == "series_1on1" and n % 20 == 0:
                moved = _moved_occurrence(event, start + timedelta(days=7), text + " (moved)")
                exception = api.add_event(owner, moved)
                org.kinds[(owner, exception["id"])] = kind
                org.user_text[(owner, exception["id"])] = text + " (moved)"
    return org


def _resource(
    kind: str,
    owner: str,
    team: list[str],
    i: int,
    n: int,
    start: datetime,
    text: str,
    calendars: int,
) -> dict[str, Any] | None:
    report = team[n % len(team)]
    base: dict[str, Any] = {
        "summary": f"{kind} {n}",
        "description": text,
        "start": _when(start),
        "end": _when(start + timedelta(minutes=30)),
        "attendees": [_person(owner), _person(report)],
    }
    if kind == "series_1on1":
        base["summary"] = f"{report.split('@')[0]} / me"
        base["recurrence"] = ["RRULE:FREQ=WEEKLY;COUNT=20"]
    elif kind == "one_off_1on1_room":
        base["attendees"].append(
            _person("room-4@resource.calendar.google.com", resource=True, displayName="Room 4")
        )
    elif kind == "standup_series":
        base["summary"] = "Team standup"
        base["attendees"] = [_person(owner)] + [_person(r) for r in team]
        base["recurrence"] = ["RRULE:FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR"]
    elif kind == "external":
        base["attendees"].append(_person(f"guest{n}@other.org"))
    elif kind == "all_day":
        base["start"] = {"date": start.date().isoformat()}
        base["end"] = {"date": (start.date() + timedelta(days=1)).isoformat()}
    elif kind == "out_of_office":
        base["eventType"] = "outOfOffice"
        base["attendees"] = [_person(owner)]
    elif kind == "focus_time":
        base["eventType"] = "focusTime"
        base["attendees"] = [_person(owner)]
    elif kind == "private":
        base["visibility"] = "private"
    elif kind == "attendee_copy":
        other = manager((i + 1) % max(calendars, 2))
        base["organizer"] = {"email": other}
        base["attendees"] = [_person(other), _person(owner, responseStatus="accepted")]
    elif kind == "far_future_1on1":
        far = start + timedelta(days=60)
        base["start"], base["end"] = _when(far), _when(far + timedelta(minutes=30))
    return base


def _moved_occurrence(series: dict[str, Any], original: datetime, text: str) -> dict[str, Any]:
    moved_to = original + timedelta(hours=2)
    fields = {k: v for k, v in series.items() if k not in ("recurrence", "etag", "id", "iCalUID")}
    return {
        **fields,
        "id": f"{series['id']}_{instance_suffix(original)}",
        "recurringEventId": series["id"],
        "originalStartTime": _when(original),
        "start": _when(moved_to),
        "end": _when(moved_to + timedelta(minutes=30)),
        "description": text,
    }
