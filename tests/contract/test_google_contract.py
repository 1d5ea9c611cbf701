"""The provider contract, run over the real Google client against the local Calendar API."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from feedback_agendas.agendas.model import EventRef
from feedback_agendas.integrations.calendars.google import GoogleProvider
from tests.contract.calendars import OWNER, TIMEZONE, EventSpec
from tests.contract.suite import ProviderContract
from tests.fakes.google_api import FakeGoogleCalendarAPI, instance_suffix


def google_id(uid: str) -> str:
    """Google ids use base32hex characters only: derive one from the spec's UID."""
    return "c" + hashlib.sha1(uid.encode()).hexdigest()[:24]


def when(moment: datetime) -> dict[str, Any]:
    return {"dateTime": moment.isoformat(), "timeZone": TIMEZONE}


class GoogleCalendar:
    """A calendar in the fake API; the user acts on the fake's store directly."""

    def __init__(self) -> None:
        self.api = FakeGoogleCalendarAPI().start()
        self.api.add_calendar(OWNER)
        self.provider = GoogleProvider(
            name="contract",
            owner=OWNER,
            calendar_id=OWNER,
            credentials="anonymous",
            api_endpoint=self.api.endpoint,
            sleep=lambda _s: None,
        )

    def seed(self, spec: EventSpec) -> EventRef:
        series_id = google_id(spec.uid)
        resource: dict[str, Any] = {
            "id": series_id,
            "summary": spec.title,
            "description": spec.description,
            "start": when(spec.start),
            "end": when(spec.end),
            "attendees": [
                {"email": a.email, **({"resource": True} if a.resource else {})}
                for a in spec.attendees
            ],
        }
        if spec.organizer:
            resource["organizer"] = {"email": spec.organizer}
        if spec.weekly:
            resource["recurrence"] = ["RRULE:FREQ=WEEKLY"]
        self.api.add_event(OWNER, resource)
        for override in spec.overrides:
            original = override.original_start.astimezone(UTC)
            self.api.add_event(
                OWNER,
                {
                    **{k: v for k, v in resource.items() if k != "recurrence"},
                    "id": f"{series_id}_{instance_suffix(original)}",
                    "recurringEventId": series_id,
                    "originalStartTime": when(override.original_start),
                    "start": when(override.start),
                    "end": when(override.end),
                    "description": override.description,
                },
            )
        return EventRef("contract", series_id)

    def user_edit_description(self, ref: EventRef, text: str) -> None:
        event_id = ref.event_id
        if ref.recurrence_id:
            event_id += "_" + ref.recurrence_id.replace("-", "").replace(":", "")
        self.api.user_edit(OWNER, event_id, {"description": text})

    def delete(self, ref: EventRef) -> None:
        for event_id in list(self.api.calendars[OWNER].events):
            if event_id == ref.event_id or event_id.startswith(ref.event_id + "_"):
                self.api.cancel(OWNER, event_id)

    def close(self) -> None:
        self.provider.close()
        self.api.stop()
        assert self.api.violations == []


class TestGoogleContract(ProviderContract):
    @pytest.fixture
    def provider_factory(self) -> Iterator[GoogleCalendar]:
        calendar = GoogleCalendar()
        yield calendar
        calendar.close()
