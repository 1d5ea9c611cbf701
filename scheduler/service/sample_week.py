"""A realistic week of mona@example.com's calendar, as a vdir folder of .ics files.

Mona manages two teams (see ``config.example.yaml``): ``platform`` (alice,
bob, dan; English) and ``analys`` (sara, lena, erik; Swedish; erik opted out).
The week holds what the product must tell apart: 1:1s (one moved this week,
one with an opted-out person), stand-ups and retros, a meeting with an outside
guest, an all-day offsite, out-of-office, a meeting with people from no team,
and someone else's meeting. Recurring events are open-ended weekly series that
started a few weeks earlier, so they keep occurring.

``python -m feedback_agendas.scheduler.service.sample_week FOLDER [YYYY-MM-DD]``
writes it; the copy in ``examples/calendars/mona/`` is the week of 2026-11-30.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from icalendar import Timezone

from feedback_agendas.agendas.model import Attendee, EventRef, Meeting
from feedback_agendas.integrations.calendars.ics import (
    calendar_from_meetings,
    recurrence_id_text,
    serialise,
)

OWNER = "mona@example.com"
TIMEZONE = "Europe/Stockholm"
ZONE = ZoneInfo(TIMEZONE)
SERIES_STARTED_WEEKS_EARLIER = 4

# A compact VTIMEZONE (current EU rules) instead of one RDATE per year.
STOCKHOLM_VTIMEZONE = """BEGIN:VTIMEZONE
TZID:Europe/Stockholm
BEGIN:DAYLIGHT
TZNAME:CEST
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
DTSTART:19810329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZNAME:CET
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
DTSTART:19961027T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE
"""


@dataclass(frozen=True)
class SampleEvent:
    """One event of the week. ``day`` counts from Monday; ``weekly`` gives BYDAY."""

    slug: str
    title: str
    day: int
    start: time
    minutes: int
    attendees: tuple[str, ...] = ()
    description: str = ""
    organizer: str = OWNER
    weekly: str | None = None  # e.g. "TU" or "MO,TU,WE,TH,FR"
    all_day: bool = False
    rooms: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    moved_to: tuple[int, time] | None = None  # this week's occurrence moved to (day, time)
    moved_note: str = ""
    responses: dict[str, str] = field(default_factory=dict)


def sample_events() -> list[SampleEvent]:
    """The twelve events of Mona's week."""
    return [
        SampleEvent(
            "mona-alice-1on1",
            "Mona / Alice 1:1",
            1,
            time(10, 0),
            30,
            (OWNER, "alice@example.com"),
            "Dial-in: https://meet.example.com/mona-alice\nShared notes: "
            "https://docs.example.com/1on1/alice",
            weekly="TU",
            moved_to=(2, time(13, 0)),
            moved_note="Moved to Wednesday: Alice is at the customer on Tuesday.\n"
            "Dial-in: https://meet.example.com/mona-alice",
        ),
        SampleEvent(
            "bob-1on1",
            "Bob 1:1",
            3,
            time(14, 0),
            30,
            (OWNER, "bob@example.com"),
            "Room: Mona's office, or https://meet.example.com/mona-bob",
        ),
        SampleEvent(
            "mona-erik-1on1",
            "1:1 Mona / Erik",
            0,
            time(13, 0),
            30,
            (OWNER, "erik@example.com"),
            "Erik's running list: https://docs.example.com/1on1/erik",
            weekly="MO",
        ),
        SampleEvent(
            "platform-standup",
            "Platform stand-up",
            0,
            time(9, 15),
            15,
            (OWNER, "alice@example.com", "bob@example.com", "dan@example.com"),
            "Board: https://tracker.example.com/platform/board\n"
            "Yesterday / today / blockers. Keep it to 15 minutes.",
            weekly="MO,TU,WE,TH,FR",
            rooms=("room-aurora@resource.example.com",),
        ),
        SampleEvent(
            "platform-retro",
            "Platform retro",
            4,
            time(15, 0),
            60,
            (OWNER, "alice@example.com", "bob@example.com", "dan@example.com"),
            "Retro board: https://retro.example.com/platform/sprint-48\n"
            "Format: start / stop / continue.",
        ),
        SampleEvent(
            "billing-api-acme",
            "Billing API sync with Acme",
            2,
            time(11, 0),
            45,
            (OWNER, "alice@example.com", "guest@acme.test"),
            "Dial-in: +46 8 555 010 20, PIN 4471\n"
            "Agenda from Acme: rate limits, webhook retries, invoice PDF format.",
        ),
        SampleEvent(
            "company-offsite",
            "Company offsite",
            3,
            time(0, 0),
            0,
            description="Venue: Fotografiska, Stadsgårdshamnen 22. Bus leaves 08:30.",
            all_day=True,
        ),
        SampleEvent(
            "out-of-office",
            "Out of office",
            4,
            time(12, 0),
            300,
            extra=("X-MICROSOFT-CDO-BUSYSTATUS:OOF",),
        ),
        SampleEvent(
            "analys-veckomote",
            "Veckomöte analys",
            2,
            time(9, 0),
            45,
            (OWNER, "sara@example.com", "lena@example.com"),
            "Dagordning: https://docs.example.com/analys/veckomote\n"
            "Läget i kvartalsrapporten, datakällor, övrigt.",
            weekly="WE",
        ),
        SampleEvent(
            "mona-sara-1on1",
            "Sara 1:1",
            3,
            time(10, 0),
            30,
            (OWNER, "sara@example.com"),
            "Mona / Sara. Anteckningar: https://docs.example.com/1on1/sara",
            weekly="TH",
        ),
        SampleEvent(
            "quarterly-review",
            "Quarterly review",
            1,
            time(15, 0),
            60,
            (OWNER, "olof@example.com", "petra@example.com"),
            "Q4 numbers: https://finance.example.com/q4\nPlease read the deck beforehand.",
        ),
        SampleEvent(
            "design-review",
            "Design review",
            2,
            time(14, 0),
            60,
            ("alice@example.com", OWNER, "bob@example.com"),
            "Alice presents the new ingestion pipeline design: "
            "https://docs.example.com/design/ingestion-v2",
            organizer="alice@example.com",
            responses={OWNER: "needsAction"},
        ),
    ]


def write_sample_week(folder: Path, week_start: date) -> list[Path]:
    """Write the sample week (``week_start`` is a Monday) into ``folder``; return the files."""
    if week_start.weekday() != 0:
        raise ValueError(f"week_start {week_start} is not a Monday")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for event in sample_events():
        path = folder / f"{event.slug}.ics"
        path.write_bytes(calendar_bytes(event, week_start))
        written.append(path)
    return written


def calendar_bytes(event: SampleEvent, week_start: date) -> bytes:
    """One event (with its moved occurrence, if any) as an .ics file."""
    meetings = _meetings(event, week_start)
    cal = calendar_from_meetings(meetings, event.extra, add_timezones=False)
    if not event.all_day:
        cal.subcomponents.insert(0, Timezone.from_ical(STOCKHOLM_VTIMEZONE))
    return serialise(cal)


def _meetings(event: SampleEvent, week_start: date) -> list[Meeting]:
    day = week_start + timedelta(days=event.day)
    if event.weekly:
        day -= timedelta(weeks=SERIES_STARTED_WEEKS_EARLIER)
    start = datetime.combine(day, event.start, tzinfo=ZONE)
    end = start + timedelta(minutes=event.minutes)
    if event.all_day:
        end = start + timedelta(days=1)
    attendees = tuple(
        Attendee(email, response=event.responses.get(email, "accepted"))
        for email in event.attendees
    ) + tuple(Attendee(room, resource=True, response="accepted") for room in event.rooms)
    master = Meeting(
        ref=EventRef("mona", f"{event.slug}@example.com"),
        title=event.title,
        description=event.description,
        start=start,
        end=end,
        owner=OWNER,
        etag="",
        all_day=event.all_day,
        timezone=TIMEZONE,
        recurrence=(f"RRULE:FREQ=WEEKLY;BYDAY={event.weekly}",) if event.weekly else (),
        organizer=event.organizer,
        attendees=attendees,
    )
    if event.moved_to is None:
        return [master]
    original = datetime.combine(week_start + timedelta(days=event.day), event.start, ZONE)
    moved_day, moved_time = event.moved_to
    moved_start = datetime.combine(week_start + timedelta(days=moved_day), moved_time, ZONE)
    moved = Meeting(
        ref=EventRef("mona", master.ref.event_id, recurrence_id_text(original)),
        title=event.title,
        description=event.moved_note,
        start=moved_start,
        end=moved_start + timedelta(minutes=event.minutes),
        owner=OWNER,
        etag="",
        timezone=TIMEZONE,
        organizer=event.organizer,
        attendees=attendees,
    )
    return [master, moved]


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print(
            "usage: python -m feedback_agendas.scheduler.service.sample_week FOLDER [MONDAY]",
            file=sys.stderr,
        )
        return 2
    week_start = date.fromisoformat(argv[1]) if len(argv) == 2 else date(2026, 11, 30)
    for path in write_sample_week(Path(argv[0]), week_start):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
