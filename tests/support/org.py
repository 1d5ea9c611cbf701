"""The example organisation of the core's unit tests: people, two teams, rules and meetings.

``platform`` (managed by Mona, example.com) and ``analys`` (managed by Sven,
example.se, Swedish, positive-only until 2026-04-30); Mona is also a member
of ``analys``. :func:`meeting` builds a meeting in an owner's calendar.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from feedback_agendas.agendas.model import Attendee, EventRef, Meeting
from feedback_agendas.agendas.policy import Org, Rules, Team

MONA = "mona@example.com"  # manages platform
ANNA = "anna@example.com"
BO = "bo@example.com"
CARL = "carl@example.com"
SVEN = "sven@example.se"  # manages analys
EVA = "eva@example.se"
OLA = "ola@example.se"
DORA = "dora@example.com"  # in no team
ERIK = "erik@example.com"  # in no team
FRIDA = "frida@example.com"  # in no team
GUEST = "guest@customer.org"
ROOM = "room-4@resource.example.com"

PLATFORM = Team(
    name="platform",
    manager=MONA,
    members=frozenset({ANNA, BO, CARL}),
    timezone="Europe/Stockholm",
    goals=("Ship the new billing API",),
)
ANALYS = Team(
    name="analys",
    manager=SVEN,
    members=frozenset({EVA, OLA, MONA}),
    locale="sv",
    timezone="Europe/Stockholm",
    positive_only_until=date(2026, 4, 30),
)
RULES = Rules(
    org=Org(internal_domains=frozenset({"example.com", "example.se"}), teams=(PLATFORM, ANALYS)),
)
START = datetime(2026, 4, 14, 8, 0, tzinfo=UTC)


def person(email: str, **kwargs: object) -> Attendee:
    return Attendee(email=email, **kwargs)  # type: ignore[arg-type]


def meeting(
    *attendees: str | Attendee,
    title: str = "Mona / Anna",
    owner: str = MONA,
    organizer: str | None = None,
    description: str = "",
    calendar: str = "mona",
    **changes: object,
) -> Meeting:
    """A meeting in ``owner``'s calendar, organised by the owner unless told otherwise."""
    base = Meeting(
        ref=EventRef(calendar, f"evt-{abs(hash((title, attendees))) % 10**8}"),
        title=title,
        description=description,
        start=START,
        end=START + timedelta(minutes=30),
        owner=owner,
        etag="1",
        organizer=organizer or owner,
        attendees=tuple(a if isinstance(a, Attendee) else person(a) for a in attendees),
    )
    return replace(base, **changes)  # type: ignore[arg-type]
