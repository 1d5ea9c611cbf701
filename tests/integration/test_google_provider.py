"""The Google provider over the real client against the local Calendar API.

Covers mapping (organizer copies, series and exceptions, cancelled stubs,
all-day / out-of-office / focus-time / private events, rooms), paging and sync
tokens, the exact shape of every write, batching, and the provider-side fence
that refuses writes to events that are not ours.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from feedback_agendas.agendas.errors import CursorExpired, PermissionDenied, PreconditionFailed
from feedback_agendas.agendas.model import (
    DescriptionWrite,
    EventRef,
    EventType,
    Meeting,
    Visibility,
)
from feedback_agendas.integrations.calendars.google import GoogleProvider
from feedback_agendas.integrations.calendars.google_map import HASH_PROPERTY
from tests.fakes.google_api import FakeGoogleCalendarAPI

OWNER = "mona@example.com"
ZONE = "Europe/Stockholm"
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def when(moment: datetime) -> dict[str, Any]:
    return {"dateTime": moment.isoformat(), "timeZone": ZONE}


def meeting_resource(**extra: Any) -> dict[str, Any]:
    return {
        "summary": "Mona / Alice",
        "description": "Alice's <b>notes</b>",
        "start": when(START),
        "end": when(START + timedelta(minutes=30)),
        "attendees": [{"email": OWNER}, {"email": "Alice@Example.com"}],
        **extra,
    }


@pytest.fixture
def api() -> Iterator[FakeGoogleCalendarAPI]:
    with FakeGoogleCalendarAPI() as fake:
        fake.add_calendar(OWNER, time_zone=ZONE)
        yield fake


def make_provider(api: FakeGoogleCalendarAPI, **kw: Any) -> GoogleProvider:
    kw.setdefault("sleep", lambda _s: None)
    return GoogleProvider(
        name="work", owner=OWNER, calendar_id=OWNER, api_endpoint=api.endpoint, **kw
    )


@pytest.fixture
def provider(api: FakeGoogleCalendarAPI) -> Iterator[GoogleProvider]:
    p = make_provider(api)
    yield p
    p.close()


def listed(provider: GoogleProvider, cursor: str | None = None) -> dict[EventRef, Meeting]:
    return {m.ref: m for m in provider.read_changes(cursor).meetings}


def patches(api: FakeGoogleCalendarAPI) -> list[Any]:
    return [c for c in api.calls if c.kind == "patch"]


# -- reading ---------------------------------------------------------------------


def test_list_asks_for_every_change_with_the_largest_pages(
    api: FakeGoogleCalendarAPI, provider: GoogleProvider
) -> None:
    api.add_event(OWNER, meeting_resource())
    changes = provider.read_changes(None)
    (call,) = [c for c in api.calls if c.kind == "list"]
    assert call.params["singleEvents"] == "false"
    assert call.params["showDeleted"] == "true"
    assert call.params["maxResults"] == "2500"
    assert call.params["quotaUser"] == OWNER
    assert "syncToken" not in call.params
    assert changes.full and changes.cursor
    provider.read_changes(changes.cursor)
    second = [c for c in api.calls if c.kind == "list"][-1]
    assert second.params["syncToken"] == changes.cursor
    assert not {"timeMin", "timeMax", "q", "orderBy", "updatedMin"} & set(second.params)


def test_paging_runs_to_the_end_and_the_token_comes_from_the_last_page(
    api: FakeGoogleCalendarAPI, provider: GoogleProvider
) -> None:
    api.validate_responses = False  # 2,600 events: keep the test fast
    for n in range(2600):
        api.add_event(OWNER, meeting_resource(summary=f"m{n}"))
    changes = provider.read_changes(None)
    assert len(changes.meetings) == 2600
    assert provider.requests["list"] == 2
    first, second = [c for c in api.calls if c.kind == "list"]
    assert "pageToken" not in first.params and second.params["pageToken"]
    # Nothing changed since: one request, no events.
    again = provider.read_changes(changes.cursor)
    assert again.meetings == () and provider.requests["list"] == 3


def test_an_expired_sync_token_raises_cursor_expired(
    api: FakeGoogleCalendarAPI, provider: GoogleProvider
) -> None:
    api.add_event(OWNER, meeting_resource())
    cursor = provider.read_changes(None).cursor
    api.expire_sync_tokens(OWNER)
    with pytest.raises(CursorExpired):
        provider.read_changes(cursor)


def test_a_410_in_the_middle_of_paging_keeps_no_partial_cursor(
    api: FakeGoogleCalendarAPI, provider: GoogleProvider
) -> None:
    api.validate_responses = False
    for n in range(2501):
        api.add_event(OWNER, meeting_resource(summary=f"m{n}"))
    cursor = provider.read_changes(None).cursor
    for n in range(2501):
        api.user_edit(OWNER, f"ev{n + 1:08d}", {"summary": f"renamed {n}"})
    api.faults.inject("list", 0)  # the first page goes through untouched
    api.faults.inject("list", 410, "fullSyncRequired")
    with pytest.raises(CursorExpired):
        provider.read_changes(cursor)
    # Two pages of full listing, then the first page of changes and the 410 on the second.
    assert provider.requests["list"] == 4
    last = [c for c in api.calls if c.kind == "list"][-1]
    assert last.status == 410 and last.params["pageToken"]


def test_an_event_organized_by_someone_else_is_not_editable(
    api: FakeGoogleCalendarAPI, provider: GoogleProvider
) -> None:
    api.add_calendar("boss@example.com")
    original = api.add_event(
        "boss@example.com", meeting_resource(organizer={"email": "boss@example.com"})
    )
    copy = api.add_attendee_copy("boss@example.com", original["id"], OWNER)
    meeting = listed(provider)[EventRef("work", copy["id"])]
    assert meeting.organizer == "boss@example.com"
    assert not meeting.editable
    outcome = provider.write([DescriptionWrite(meeting.ref, meeting.etag, "ours", "h")])[0]
    assert isinstance(outcome.error, PermissionDenied)
    assert patches(api) == []


@pytest.mark.parametrize(
    ("extra", "check"),
    [
        ({"eventType": "outOfOffice"}, lambda m: m.event_type is EventType.OUT_OF_OFFICE),
        ({"eventType": "focusTime"}, lambda m: m.event_type is EventType.FOCUS_TIME),
        ({"visibility": "private"}, lambda m: m.visibility is Visibility.PRIVATE),
        ({"locked": True}, lambda m: m.locked),
        (
            {"start": {"date": "2026-12-01"}, "end": {"date": "2026-12-02"}},
            lambda m: m.all_day and m.start.date().isoformat() == "2026-12-01",
        ),
    ],
    ids=["out-of-office", "focus-time", "private", "locked", "all-day"],
)
def test_events_we_must_not_write_are_mapped_and_fenced(
    api: FakeGoogleCalendarAPI, provider: GoogleProvider, extra: dict[str, Any], check: Any
) -> None:
    event = api.add_event(OWNER, meeting_resource(**extra))
    meeting = listed(provider)[EventRef("work", event["id"])]
    assert check(meeting)
    outcome = provider.write([DescriptionWrite(meeting.ref, meeting.etag, "ours", "h")])[0]
    if extra.get("start", {}).get("date"):
        # All-day is the core's rule (skip), not a provider fence: the write may go.
        assert outcome.ok
    else:
        assert isinstance(outcome.error, PermissionDenied)
        assert patches(api) == []


def test_a_series_its_exception_and_a_cancelled_occurrence(
    api: FakeGoogleCalendarAPI, provider: GoogleProvider
) -> None:
    series = api.add_event(OWNER, meeting_resource(recurrence=["RRULE:FREQ=WEEKLY;COUNT=10"]))
    cursor = provider.read_changes(None).cursor
    week2, week3 = START + timedelta(days=7), START + timedelta(days=14)
    api.user_edit(
        OWNER,
        api.instance_id(series["id"], week2),
        {"start": when(week2 + timedelta(hours=2)), "end": when(week2 + timedelta(hours=3))},
    )
    api.cancel(OWNER, api.instance_id(series["id"], week3))
    changes = provider.read_changes(cursor)
    moved = EventRef("work", series["id"], "2026-12-08T09:00:00Z")
    cancelled = EventRef("work", series["id"], "2026-12-15T09:00:00Z")
    assert {m.ref for m in changes.meetings} == {moved}
    assert changes.deleted == (cancelled,)
    moved_meeting = changes.meetings[0]
    assert moved_meeting.start == week2 + timedelta(hours=2)
    assert moved_meeting.description == series["description"]  # its own copy
    # The cancelled stub in the listing carries only id, recurringEventId, originalStartTime.
    stub_call = [c for c in api.calls if c.kind == "list"][-1]
    assert stub_call.status == 200
    assert provider.get(cancelled) is None

    # The series and the exception are written apart.
    series_meeting = provider.get(EventRef("work", series["id"]))
    assert series_meeting is not None and series_meeting.is_series
    outcomes = provider.write(
        [
            DescriptionWrite(series_meeting.ref, series_meeting.etag, "series agenda", "hs"),
            DescriptionWrite(moved, moved_meeting.etag, "moved agenda", "hm"),
        ]
    )
    assert all(o.ok for o in outcomes)
    assert api.event(OWNER, series["id"])["description"] == "series agenda"
    exception = api.event(OWNER, api.instance_id(series["id"], week2))
    assert exception["description"] == "moved agenda"
    assert exception["extendedProperties"]["private"][HASH_PROPERTY] == "hm"


def test_rooms_are_resources_and_addresses_are_lower_case(
    api: FakeGoogleCalendarAPI, provider: GoogleProvider
) -> None:
    room = {"email": "Room-4@resource.calendar.google.com", "resource": True}
    event = api.add_event(
        OWNER, meeting_resource(attendees=[{"email": OWNER}, {"email": "Alice@Example.com"}, room])
    )
    meeting = listed(provider)[EventRef("work", event["id"])]
    by_email = {a.email: a for a in meeting.attendees}
    assert by_email["room-4@resource.calendar.google.com"].resource
    assert not by_email["alice@example.com"].resource
    assert meeting.description_format.value == "html"


def test_an_unreadable_event_is_reported_not_fatal(
    api: FakeGoogleCalendarAPI, provider: GoogleProvider
) -> None:
    good = api.add_event(OWNER, meeting_resource())
    bad = api.add_event(OWNER, meeting_resource(start={"dateTime": "not a time"}))
    changes = provider.read_changes(None)
    assert [m.ref.event_id for m in changes.meetings] == [good["id"]]
    assert [u.ref.event_id for u in changes.unreadable] == [bad["id"]]


# -- writing ---------------------------------------------------------------------


def test_a_patch_sends_only_our_fields_with_if_match_and_no_notifications(
    api: FakeGoogleCalendarAPI, provider: GoogleProvider
) -> None:
    event = api.add_event(OWNER, meeting_resource(extendedProperties={"private": {"theirs": "x"}}))
    meeting = listed(provider)[EventRef("work", event["id"])]
    (outcome,) = provider.write([DescriptionWrite(meeting.ref, meeting.etag, "new<br/>text", "h1")])
    assert outcome.ok
    (call,) = patches(api)
    assert call.in_batch
    assert call.headers["if-match"] == meeting.etag
    assert call.params["sendUpdates"] == "none"
    assert call.params["quotaUser"] == OWNER
    assert call.body == {
        "description": "new<br/>text",
        "extendedProperties": {"private": {HASH_PROPERTY: "h1"}},
    }
    stored = api.event(OWNER, event["id"])
    assert stored["extendedProperties"]["private"] == {"theirs": "x", HASH_PROPERTY: "h1"}
    assert stored["attendees"] == event["attendees"]  # arrays untouched
    assert outcome.etag == stored["etag"]
    assert api.violations == []


def test_writes_go_in_batches_of_the_configured_size(api: FakeGoogleCalendarAPI) -> None:
    for n in range(7):
        api.add_event(OWNER, meeting_resource(summary=f"m{n}"))
    provider = make_provider(api, batch_size=3)
    writes = [DescriptionWrite(m.ref, m.etag, "x", "h") for m in listed(provider).values()]
    outcomes = provider.write(writes)
    assert all(o.ok for o in outcomes)
    assert provider.requests["batch"] == 3
    assert api.requests["batch"] == 3 and api.requests["patch"] == 7
    provider.close()


def test_a_batch_with_mixed_outcomes_reports_each_call(
    api: FakeGoogleCalendarAPI, provider: GoogleProvider
) -> None:
    events = [api.add_event(OWNER, meeting_resource(summary=f"m{n}")) for n in range(4)]
    seen = listed(provider)
    api.user_edit(OWNER, events[1]["id"], {"description": "the user was first"})
    api.cancel(OWNER, events[2]["id"])
    api.faults.inject("patch", 0)  # events[0] goes through
    api.faults.inject("patch", 0)  # events[1] reaches the etag check
    api.faults.inject("patch", 0)  # events[2] reaches the deleted check
    api.faults.inject("patch", 500, "backendError")  # events[3], first try only
    writes = [
        DescriptionWrite(
            EventRef("work", e["id"]), seen[EventRef("work", e["id"])].etag, "ours", "h"
        )
        for e in events
    ]
    outcomes = provider.write(writes)
    assert [o.ref for o in outcomes] == [w.ref for w in writes]
    assert outcomes[0].ok
    assert isinstance(outcomes[1].error, PreconditionFailed)
    assert type(outcomes[2].error).__name__ == "NotFound"
    assert outcomes[3].ok  # retried alone, in a second batch
    assert provider.requests["batch"] == 2
    assert api.event(OWNER, events[1]["id"])["description"] == "the user was first"


def test_the_fake_refuses_a_patch_without_if_match(api: FakeGoogleCalendarAPI) -> None:
    event = api.add_event(OWNER, meeting_resource())
    service = build(
        "calendar",
        "v3",
        static_discovery=True,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": api.endpoint},
    )
    request = service.events().patch(
        calendarId=OWNER, eventId=event["id"], body={"description": "x"}, quotaUser=OWNER
    )
    with pytest.raises(HttpError) as caught:
        request.execute()
    service.close()
    assert caught.value.resp.status == 400
    assert any("no If-Match" in v for v in api.violations)
    assert any("sendUpdates=None" in v for v in api.violations)
    assert api.event(OWNER, event["id"])["description"] == event["description"]


def test_the_fake_rejects_parameters_the_discovery_document_does_not_know(
    api: FakeGoogleCalendarAPI,
) -> None:
    import httplib2

    http = httplib2.Http()
    response, _ = http.request(
        f"{api.endpoint}calendars/{OWNER}/events?maxResults=ten&bogus=1&quotaUser={OWNER}"
    )
    http.close()
    assert response.status == 400
    assert any("bogus" in v for v in api.violations)
    assert any("maxResults" in v for v in api.violations)
