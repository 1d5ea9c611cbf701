"""The contract every calendar provider passes (vdirsyncer ``StorageTests`` style).

:class:`ProviderContract` holds the tests. It is not collected by itself; a
``test_<provider>_contract.py`` module subclasses it and supplies the
``provider_factory`` fixture, which yields a
:class:`~tests.contract.calendars.ContractCalendar`.

How to add a provider (Google against a local fake API, CalDAV against
Radicale, ...):

1. Write a class with the :class:`~tests.contract.calendars.ContractCalendar`
   shape: a ``provider`` attribute (calendar name ``"contract"``, owner
   :data:`~tests.contract.calendars.OWNER`), and ``seed(spec) -> EventRef``,
   ``user_edit_description(ref, text)``, ``delete(ref)`` and ``close()``,
   which change the backend directly, as a user would (for CalDAV: PUT the
   iCalendar built by ``ics.calendar_from_meetings(meetings_from_spec(spec,
   "contract"))``; for Google: insert resources into the fake's store).
   ``seed`` returns the master's ref; the suite derives an occurrence's ref
   with :func:`~tests.contract.calendars.occurrence_ref`.
2. Create ``tests/contract/test_<provider>_contract.py``::

       import pytest
       from tests.contract.suite import ProviderContract

       class TestCaldavContract(ProviderContract):
           @pytest.fixture
           def provider_factory(self, tmp_path):
               calendar = CaldavCalendar(...)   # start servers here
               yield calendar
               calendar.close()                 # and stop them here

3. Every test here must pass unchanged. Provider-specific behaviour goes in
   its own integration tests, not here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from feedback_agendas.agendas.errors import CursorExpired, NotFound, PreconditionFailed
from feedback_agendas.agendas.model import (
    ChangeSet,
    DescriptionWrite,
    EventRef,
    Meeting,
    WriteOutcome,
)
from tests.contract.calendars import (
    OWNER,
    ZONE,
    AttendeeSpec,
    ContractCalendar,
    EventSpec,
    OverrideSpec,
    occurrence_ref,
)

TUESDAY = datetime(2026, 12, 1, 10, 0, tzinfo=ZONE)


def one_on_one(uid: str = "alice-1on1@example.com", description: str = "Dial-in: 555") -> EventSpec:
    return EventSpec(
        uid=uid,
        title="Mona / Alice 1:1",
        start=TUESDAY,
        end=TUESDAY + timedelta(minutes=30),
        description=description,
        attendees=(AttendeeSpec(OWNER), AttendeeSpec("alice@example.com")),
    )


def weekly_with_moved_instance() -> EventSpec:
    moved_to = TUESDAY + timedelta(days=8, hours=3)  # Wed 13:00 the week after
    return EventSpec(
        uid="weekly-bob@example.com",
        title="Bob 1:1",
        start=TUESDAY,
        end=TUESDAY + timedelta(minutes=30),
        description="Series notes",
        attendees=(AttendeeSpec(OWNER), AttendeeSpec("bob@example.com")),
        weekly=True,
        overrides=(
            OverrideSpec(
                original_start=TUESDAY + timedelta(days=7),
                start=moved_to,
                end=moved_to + timedelta(minutes=30),
                description="Moved this week",
            ),
        ),
    )


def by_ref(changes: ChangeSet) -> dict[EventRef, Meeting]:
    return {m.ref: m for m in changes.meetings}


def write(
    cal: ContractCalendar, meeting: Meeting, text: str, block_hash: str | None = "h1"
) -> WriteOutcome:
    (outcome,) = cal.provider.write([DescriptionWrite(meeting.ref, meeting.etag, text, block_hash)])
    return outcome


class ProviderContract:
    """Behaviour the sync engine relies on, for every provider."""

    @pytest.fixture
    def provider_factory(self) -> Iterator[ContractCalendar]:  # pragma: no cover - overridden
        raise NotImplementedError("subclasses supply provider_factory")

    @pytest.fixture
    def cal(self, provider_factory: ContractCalendar) -> ContractCalendar:
        return provider_factory

    def test_full_listing_then_an_empty_incremental_change_set(self, cal: ContractCalendar) -> None:
        first = cal.seed(one_on_one("a@example.com"))
        second = cal.seed(one_on_one("b@example.com"))
        full = cal.provider.read_changes(None)
        assert full.full
        assert {first, second} <= set(by_ref(full))
        again = cal.provider.read_changes(full.cursor)
        assert not again.full
        assert again.meetings == ()
        assert again.deleted == ()

    def test_a_user_edit_shows_up_incrementally(self, cal: ContractCalendar) -> None:
        edited = cal.seed(one_on_one("a@example.com"))
        untouched = cal.seed(one_on_one("b@example.com"))
        before = cal.provider.read_changes(None)
        cal.user_edit_description(edited, "Agenda: quarterly goals, and more")
        after = cal.provider.read_changes(before.cursor)
        assert not after.full
        assert edited in by_ref(after)
        assert untouched not in by_ref(after)
        assert by_ref(after)[edited].description == "Agenda: quarterly goals, and more"
        assert by_ref(after)[edited].etag != by_ref(before)[edited].etag

    def test_a_deletion_shows_up(self, cal: ContractCalendar) -> None:
        gone = cal.seed(one_on_one("a@example.com"))
        kept = cal.seed(one_on_one("b@example.com"))
        before = cal.provider.read_changes(None)
        cal.delete(gone)
        after = cal.provider.read_changes(before.cursor)
        assert gone in after.deleted
        assert gone not in by_ref(after)
        assert kept not in after.deleted
        assert cal.provider.get(gone) is None

    @pytest.mark.parametrize("cursor", ["garbage", "", "vdir1:AAAA", "mem:1:0:0"])
    def test_an_invalid_cursor_raises_cursor_expired(
        self, cal: ContractCalendar, cursor: str
    ) -> None:
        cal.seed(one_on_one())
        with pytest.raises(CursorExpired):
            cal.provider.read_changes(cursor)

    def test_a_write_with_the_current_etag_round_trips(self, cal: ContractCalendar) -> None:
        ref = cal.seed(one_on_one())
        meeting = by_ref(cal.provider.read_changes(None))[ref]
        text = "Dial-in: 555\n\n--- feedback ---\nÅsa; ärlig, konkret\n--- end ---"
        outcome = write(cal, meeting, text, "hash-1")
        assert outcome.ok, outcome.error
        assert outcome.etag and outcome.etag != meeting.etag
        fresh = cal.provider.get(ref)
        assert fresh is not None
        assert fresh.description == text
        assert fresh.stored_hash == "hash-1"
        assert fresh.etag == outcome.etag
        assert fresh.title == meeting.title

    def test_our_own_write_comes_back_as_a_change(self, cal: ContractCalendar) -> None:
        ref = cal.seed(one_on_one())
        full = cal.provider.read_changes(None)
        outcome = write(cal, by_ref(full)[ref], "new text", "hash-1")
        assert outcome.ok
        after = cal.provider.read_changes(full.cursor)
        assert by_ref(after)[ref].etag == outcome.etag
        assert by_ref(after)[ref].stored_hash == "hash-1"

    def test_removing_the_block_removes_the_hash_and_an_empty_description(
        self, cal: ContractCalendar
    ) -> None:
        ref = cal.seed(one_on_one())
        meeting = by_ref(cal.provider.read_changes(None))[ref]
        first = write(cal, meeting, "with block", "hash-1")
        assert first.etag is not None
        second = cal.provider.write([DescriptionWrite(ref, first.etag, "", None)])[0]
        assert second.ok, second.error
        fresh = cal.provider.get(ref)
        assert fresh is not None
        assert fresh.description == ""
        assert fresh.stored_hash is None

    def test_a_stale_etag_fails_and_writes_nothing(self, cal: ContractCalendar) -> None:
        ref = cal.seed(one_on_one())
        seen = by_ref(cal.provider.read_changes(None))[ref]
        cal.user_edit_description(ref, "The user's newer text")
        outcome = write(cal, seen, "our text", "hash-1")
        assert isinstance(outcome.error, PreconditionFailed)
        assert outcome.etag is None
        fresh = cal.provider.get(ref)
        assert fresh is not None
        assert fresh.description == "The user's newer text"
        assert fresh.stored_hash is None

    def test_outcomes_come_in_order_one_per_write(self, cal: ContractCalendar) -> None:
        a = cal.seed(one_on_one("a@example.com"))
        b = cal.seed(one_on_one("b@example.com"))
        seen = by_ref(cal.provider.read_changes(None))
        cal.user_edit_description(a, "edited by the user")
        outcomes = cal.provider.write(
            [
                DescriptionWrite(a, seen[a].etag, "ours", "h"),
                DescriptionWrite(b, seen[b].etag, "ours", "h"),
            ]
        )
        assert [o.ref for o in outcomes] == [a, b]
        assert isinstance(outcomes[0].error, PreconditionFailed)
        assert outcomes[1].ok

    def test_a_write_to_a_deleted_event_fails_in_its_outcome(self, cal: ContractCalendar) -> None:
        ref = cal.seed(one_on_one())
        seen = by_ref(cal.provider.read_changes(None))[ref]
        cal.delete(ref)
        outcome = write(cal, seen, "ours", "h")
        assert isinstance(outcome.error, NotFound | PreconditionFailed)

    def test_a_series_and_its_override_are_two_meetings_written_apart(
        self, cal: ContractCalendar
    ) -> None:
        spec = weekly_with_moved_instance()
        series = cal.seed(spec)
        moved = occurrence_ref(series, spec.overrides[0].original_start)
        changes = cal.provider.read_changes(None)
        listed = by_ref(changes)
        # The series is reported once (not expanded), the moved instance on its own.
        same_uid = [m.ref for m in changes.meetings if m.ref.event_id == series.event_id]
        assert len(same_uid) == 2
        assert set(same_uid) == {series, moved}
        assert listed[series].is_series
        assert any(line.startswith("RRULE:") for line in listed[series].recurrence)
        assert listed[series].timezone == "Europe/Stockholm"
        assert listed[moved].start == spec.overrides[0].start
        assert listed[moved].ref.recurrence_id == "2026-12-08T09:00:00Z"

        outcome = write(cal, listed[moved], "Override agenda", "h-moved")
        assert outcome.ok, outcome.error
        series_now, moved_now = cal.provider.get(series), cal.provider.get(moved)
        assert series_now is not None and moved_now is not None
        assert moved_now.description == "Override agenda"
        assert series_now.description == "Series notes"
        assert series_now.stored_hash is None

        outcome = write(cal, series_now, "Series agenda", "h-series")
        assert outcome.ok, outcome.error
        moved_after = cal.provider.get(moved)
        assert moved_after is not None
        assert moved_after.description == "Override agenda"
        assert moved_after.stored_hash == "h-moved"

    def test_attendees_are_lower_case_and_rooms_are_resources(self, cal: ContractCalendar) -> None:
        spec = EventSpec(
            uid="standup@example.com",
            title="Platform stand-up",
            start=TUESDAY,
            end=TUESDAY + timedelta(minutes=15),
            organizer="Mona@Example.com",
            attendees=(
                AttendeeSpec("Mona@Example.com"),
                AttendeeSpec("Alice@EXAMPLE.com"),
                AttendeeSpec("room-aurora@resource.example.com", resource=True),
            ),
        )
        ref = cal.seed(spec)
        meeting = by_ref(cal.provider.read_changes(None))[ref]
        emails = {a.email: a for a in meeting.attendees}
        assert set(emails) == {
            "mona@example.com",
            "alice@example.com",
            "room-aurora@resource.example.com",
        }
        assert emails["room-aurora@resource.example.com"].resource
        assert not emails["alice@example.com"].resource
        assert meeting.organizer == "mona@example.com"
        assert meeting.owner == OWNER

    def test_requests_are_counted(self, cal: ContractCalendar) -> None:
        ref = cal.seed(one_on_one())
        counts = cal.provider.requests

        def total() -> int:
            return sum(counts.values())

        before = total()
        full = cal.provider.read_changes(None)
        after_read = total()
        assert after_read > before
        cal.provider.get(ref)
        after_get = total()
        assert after_get > after_read
        write(cal, by_ref(full)[ref], "ours", "h")
        assert total() > after_get

    def test_get_of_an_unknown_event_is_none(self, cal: ContractCalendar) -> None:
        ref = cal.seed(one_on_one())
        assert cal.provider.get(EventRef(ref.calendar, "nobody@example.com")) is None
        assert (
            cal.provider.get(EventRef(ref.calendar, ref.event_id, "2030-01-01T00:00:00Z")) is None
        )
