"""Meetings in Mona's memory calendar, for the daemon tests that seed one by hand."""

from __future__ import annotations

from datetime import datetime, timedelta

from feedback_agendas.agendas.model import Attendee, EventRef, Meeting


def mona_meeting(
    event_id: str, title: str, start: datetime, attendees: list[str], description: str = ""
) -> Meeting:
    """A 30-minute meeting that mona@example.com organises in her calendar ``mona``."""
    return Meeting(
        ref=EventRef("mona", event_id),
        title=title,
        description=description,
        start=start,
        end=start + timedelta(minutes=30),
        owner="mona@example.com",
        etag="",
        organizer="mona@example.com",
        attendees=tuple(Attendee(a) for a in attendees),
        timezone="Europe/Stockholm",
    )
