"""One sync cycle, end to end over the memory provider and a real SQLite store."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from feedback_agendas.agendas.block import read_block
from feedback_agendas.agendas.errors import PreconditionFailed, TransientError
from feedback_agendas.agendas.model import Attendee, DescriptionWrite, EventRef, Meeting
from feedback_agendas.agendas.policy import OptOut, Org, Policy, Rules, Team
from feedback_agendas.agendas.render import AgendaRenderer
from feedback_agendas.integrations.calendars.memory import MemoryProvider
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.sync.cycle import run_cycle

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
OWNER = "mona@example.com"
TEAM = Team(
    name="platform",
    manager=OWNER,
    members=frozenset({"alice@example.com", "bob@example.com", "dan@example.com"}),
    timezone="Europe/Stockholm",
)
RULES = Rules(org=Org(internal_domains=frozenset({"example.com"}), teams=(TEAM,)))
RENDERER = AgendaRenderer()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'engine.db'}")
    yield s
    s.close()


@pytest.fixture
def calendar() -> MemoryProvider:
    return MemoryProvider("mona", OWNER)


def one_on_one(uid: str, *, days: int = 1, text: str = "Notes: https://doc") -> Meeting:
    start = NOW + timedelta(days=days)
    return Meeting(
        ref=EventRef("mona", uid),
        title="Mona / Alice",
        description=text,
        start=start,
        end=start + timedelta(minutes=30),
        owner=OWNER,
        etag="",
        organizer=OWNER,
        attendees=(Attendee(OWNER), Attendee("alice@example.com")),
    )


def current(calendar: MemoryProvider, uid: str) -> Meeting:
    return next(m for m in calendar.meetings() if m.ref.event_id == uid)


def test_first_cycle_writes_and_the_second_writes_nothing(
    calendar: MemoryProvider, store: Store
) -> None:
    calendar.put(one_on_one("a"))
    first = run_cycle(calendar, store, RULES, RENDERER, NOW)
    assert (first.writes, dict(first.actions)) == (1, {"inserted": 1})
    body = read_block(current(calendar, "a").description)
    assert body is not None and "This you can do better" in body
    second = run_cycle(calendar, store, RULES, RENDERER, NOW)
    assert second.writes == 0
    assert dict(second.actions) == {"unchanged": 1}


def test_a_concurrent_edit_is_re_read_and_merged_not_overwritten(
    calendar: MemoryProvider, store: Store
) -> None:
    calendar.put(one_on_one("a"))

    def user_types_first(write: DescriptionWrite) -> None:
        calendar.before_write = None
        meeting = current(calendar, "a")
        calendar.put(dataclasses.replace(meeting, description=meeting.description + "\nAgenda: Q1"))

    calendar.before_write = user_types_first
    report = run_cycle(calendar, store, RULES, RENDERER, NOW)
    assert report.conflicts == 1 and report.writes == 1
    description = current(calendar, "a").description
    assert description.startswith("Notes: https://doc\nAgenda: Q1")
    assert read_block(description) is not None


def test_conflicts_are_bounded_and_the_write_is_retried_next_cycle(
    calendar: MemoryProvider, store: Store
) -> None:
    calendar.put(one_on_one("a"))

    def user_keeps_typing(write: DescriptionWrite) -> None:
        meeting = current(calendar, "a")
        calendar.put(dataclasses.replace(meeting, description=meeting.description + "."))

    calendar.before_write = user_keeps_typing
    report = run_cycle(calendar, store, RULES, RENDERER, NOW, max_conflict_retries=2)
    assert report.writes == 0 and report.conflicts == 3
    assert report.errors["conflict"] == 1
    assert report.event_entries()[0]["action"] == "failed"

    calendar.before_write = None
    retry = run_cycle(calendar, store, RULES, RENDERER, NOW)
    assert retry.writes == 1
    assert read_block(current(calendar, "a").description) is not None


def test_a_failed_write_is_retried_although_the_event_did_not_change(
    calendar: MemoryProvider, store: Store
) -> None:
    calendar.put(one_on_one("a"))
    calendar.fail_next_write(EventRef("mona", "a"), TransientError("503"))
    failed = run_cycle(calendar, store, RULES, RENDERER, NOW)
    assert failed.writes == 0 and failed.errors["network"] == 1
    # Nothing changed in the calendar since: only the store knows to retry.
    again = run_cycle(calendar, store, RULES, RENDERER, NOW)
    assert again.writes == 1


def test_an_expired_cursor_means_one_full_resync_without_duplicates(
    calendar: MemoryProvider, store: Store
) -> None:
    calendar.put(one_on_one("a"))
    run_cycle(calendar, store, RULES, RENDERER, NOW)
    calendar.expire_cursors()
    report = run_cycle(calendar, store, RULES, RENDERER, NOW)
    assert report.full_resync and report.writes == 0
    assert current(calendar, "a").description.count("── feedback agenda ──") == 1
    assert not run_cycle(calendar, store, RULES, RENDERER, NOW).full_resync


def test_a_meeting_entering_the_horizon_gets_its_agenda_without_any_change(
    calendar: MemoryProvider, store: Store
) -> None:
    calendar.put(one_on_one("far", days=20))
    early = run_cycle(calendar, store, RULES, RENDERER, NOW)
    assert early.skipped == {"outside_horizon": 1} and early.writes == 0
    assert run_cycle(calendar, store, RULES, RENDERER, NOW + timedelta(days=5)).writes == 0
    later = run_cycle(calendar, store, RULES, RENDERER, NOW + timedelta(days=7))
    assert later.writes == 1 and later.actions["inserted"] == 1
    assert later.requests["get"] == 1  # read again by ref, not by a full listing


def test_opting_out_in_the_config_removes_our_blocks(
    calendar: MemoryProvider, store: Store
) -> None:
    calendar.put(one_on_one("a", text="Keep me"))
    run_cycle(calendar, store, RULES, RENDERER, NOW)
    opted_out = dataclasses.replace(RULES, opt_out=OptOut(users=frozenset({"alice@example.com"})))
    report = run_cycle(calendar, store, opted_out, RENDERER, NOW)
    assert report.full_resync, "a config change re-decides every event"
    assert report.actions["removed"] == 1
    assert current(calendar, "a").description == "Keep me"
    # Exactly one full resync: the same rules, rebuilt (new objects, new sets), keep the cursor.
    rebuilt = dataclasses.replace(opted_out, opt_out=OptOut(users=frozenset({"alice@example.com"})))
    after = run_cycle(calendar, store, rebuilt, RENDERER, NOW)
    assert not after.full_resync and after.writes == 0


def test_a_third_person_joining_a_1on1_takes_the_corrective_slot_out(
    calendar: MemoryProvider, store: Store
) -> None:
    calendar.put(one_on_one("a", text="Keep me"))
    run_cycle(calendar, store, RULES, RENDERER, NOW)
    meeting = current(calendar, "a")
    guest = (*meeting.attendees, Attendee("guest@acme.test"))
    calendar.put(dataclasses.replace(meeting, attendees=guest))
    report = run_cycle(calendar, store, RULES, RENDERER, NOW)
    assert report.event_entries()[0] | {"event_id": "a"} == {
        "calendar": "mona",
        "event_id": "a",
        "recurrence_id": None,
        "kind": "skip",
        "slots": [],
        "action": "removed",
        "reason": "external_guest",
    }
    assert current(calendar, "a").description == "Keep me"


def test_a_deleted_event_loses_its_record(calendar: MemoryProvider, store: Store) -> None:
    calendar.put(one_on_one("a"))
    run_cycle(calendar, store, RULES, RENDERER, NOW)
    calendar.delete(EventRef("mona", "a"))
    run_cycle(calendar, store, RULES, RENDERER, NOW)
    assert store.records("mona") == {}


def test_dry_run_writes_and_stores_nothing(calendar: MemoryProvider, store: Store) -> None:
    calendar.put(one_on_one("a"))
    report = run_cycle(calendar, store, RULES, RENDERER, NOW, dry_run=True)
    assert report.actions == {"inserted": 1} and report.writes == 0
    assert calendar.requests["write"] == 0
    assert store.get_cursor("mona") is None and store.records("mona") == {}


def test_a_provider_failure_ends_the_cycle_and_keeps_the_cursor(
    calendar: MemoryProvider, store: Store
) -> None:
    calendar.put(one_on_one("a"))
    run_cycle(calendar, store, RULES, RENDERER, NOW)
    cursor = store.get_cursor("mona")

    def broken(cursor: str | None) -> None:
        raise TransientError("503 from the server")

    calendar.read_changes = broken  # type: ignore[method-assign,assignment]
    report = run_cycle(calendar, store, RULES, RENDERER, NOW)
    assert report.error == "network" and not report.ok
    assert store.get_cursor("mona") == cursor
    assert store.recent_runs(1)[0].ok is False


def test_no_description_text_reaches_the_logs(
    calendar: MemoryProvider, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    canary = "CANARY-7f3a-private-note"
    calendar.put(one_on_one("a", text=canary))
    calendar.fail_next_write(EventRef("mona", "a"), PreconditionFailed(canary))
    with caplog.at_level(logging.DEBUG):
        run_cycle(calendar, store, RULES, RENDERER, NOW)
        run_cycle(
            calendar,
            store,
            dataclasses.replace(RULES, policy=Policy(horizon_days=1)),
            RENDERER,
            NOW,
        )
    assert canary not in caplog.text


class CountingStore(Store):
    """The real store, counting the reads a quiet cycle must not make."""

    def __init__(self, store: Store) -> None:
        super().__init__(store.engine)
        self.reads: list[str] = []

    def records(self, calendar: str) -> dict[EventRef, Any]:
        self.reads.append("records")
        return super().records(calendar)

    def due_refs(self, calendar: str, now: datetime) -> list[EventRef]:
        self.reads.append("due_refs")
        return super().due_refs(calendar, now)


def test_a_quiet_cycle_reads_no_records_and_logs_its_run(
    calendar: MemoryProvider, store: Store
) -> None:
    counting = CountingStore(store)
    calendar.put(one_on_one("a"))
    calendar.put(one_on_one("far", days=20))  # revisited when it enters the horizon
    assert run_cycle(calendar, counting, RULES, RENDERER, NOW).writes == 1
    run_cycle(calendar, counting, RULES, RENDERER, NOW)  # the echo of our write
    counting.reads.clear()
    runs = len(store.recent_runs(limit=100))
    quiet = run_cycle(calendar, counting, RULES, RENDERER, NOW + timedelta(minutes=5))
    assert quiet.ok and quiet.writes == 0 and not quiet.decisions
    assert counting.reads == []
    assert len(store.recent_runs(limit=100)) == runs + 1
    # Something due (the far meeting entering the horizon) is still read, by ref.
    due = run_cycle(calendar, counting, RULES, RENDERER, NOW + timedelta(days=7))
    assert due.writes == 1 and due.requests["get"] == 1
    assert counting.reads == ["records", "due_refs"]
