"""One sync cycle of one calendar: read, decide, write, record.

The core (:func:`feedback_agendas.agendas.decide.decide`) says what each event should look like;
this module carries that out against a provider and the store:

1. read what changed since the stored cursor (one full resync on an expired
   cursor, or when the rules changed since the cursor was stored);
2. read again the events that are due for a revisit (entering the horizon,
   a series whose occurrence passed, a write that failed last time);
3. decide, then write only what changed, conditionally on the etag; a
   precondition failure is re-read, re-decided and retried a bounded number
   of times;
4. commit the new cursor, the records and the run log in one transaction.

:func:`run_cycle` is the entry point; one :class:`Cycle` object carries a
cycle's inputs and what it learns (records, decisions, outcomes, hashes
written, writes pending) from step to step. Nothing here keeps state between
cycles: the rules fingerprint belongs to the caller that holds the rules.
What a cycle reports is :mod:`.report`; the fingerprint :mod:`.fingerprint`;
``revert`` :mod:`.revert`.

The module is longer than most (about 550 lines) because the cycle's steps
share their state and read best as one class, beside the wrapper that
isolates a calendar's failure (:func:`run_calendar`, :func:`fail_cycle`).

Nothing here logs or stores description text.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from feedback_agendas.agendas.block import known_hashes
from feedback_agendas.agendas.decide import ActionKind, Decision, decide
from feedback_agendas.agendas.errors import (
    CursorExpired,
    PreconditionFailed,
    ProviderError,
    WriteHeld,
)
from feedback_agendas.agendas.model import (
    ChangeSet,
    DescriptionWrite,
    EventRef,
    Meeting,
    WriteOutcome,
)
from feedback_agendas.agendas.policy import Rules
from feedback_agendas.agendas.render import AgendaRenderer
from feedback_agendas.integrations.calendars.base import (
    CalendarProvider,
    write_notices,
    writes_events,
)
from feedback_agendas.scheduler.storage.store import (
    MAX_EVENT_ID,
    MAX_RECURRENCE_ID,
    EventRecord,
    Store,
    is_code,
)
from feedback_agendas.scheduler.sync.failures import (
    CONFLICT,
    INVALID_DATA,
    NOT_FOUND,
    Failure,
    describe_failure,
    error_kind,
)
from feedback_agendas.scheduler.sync.fingerprint import rules_fingerprint
from feedback_agendas.scheduler.sync.report import CycleReport, run_summary

log = logging.getLogger(__name__)

MAX_CONFLICT_RETRIES = 3
# The action recorded for an event whose write the provider held back (WriteHeld).
HELD = "held"
# A block we left alone: what we wrote last stays the reference for "unedited".
# The outcome of an event whose agenda goes into its reminder (a calendar we never write).
IN_REMINDER = "in_reminder"
_NOT_WRITTEN_BY_US = frozenset({ActionKind.LEFT_EDITED, ActionKind.PRIVACY_CONFLICT})


def run_cycle(
    provider: CalendarProvider,
    store: Store,
    rules: Rules,
    renderer: AgendaRenderer,
    now: datetime,
    *,
    dry_run: bool = False,
    max_conflict_retries: int = MAX_CONFLICT_RETRIES,
    clock: Callable[[], datetime] | None = None,
    fingerprint: str | None = None,
) -> CycleReport:
    """Run one cycle of ``provider``'s calendar and return what it did.

    ``now`` drives every decision. ``clock`` (default: ``now``) only stamps the
    end of the run. ``fingerprint`` is :func:`rules_fingerprint` of ``rules``
    and ``renderer``, for callers that run many cycles with the same ones
    (computed here when not given): the caller that holds the long-lived rules
    keeps it, nothing here does. With ``dry_run`` nothing is written and
    nothing is stored. Any exception ends this cycle only: ``report.error``
    gets its kind (see :mod:`feedback_agendas.scheduler.sync.failures`), the
    run log gets a failed run, and the old cursor stays, so the next cycle
    reads the same changes again.
    """
    report = CycleReport(calendar=provider.name, started_at=now)
    requests_before = Counter(provider.requests)
    try:
        if fingerprint is None:
            fingerprint = rules_fingerprint(rules, renderer)
        Cycle(
            provider=provider,
            store=store,
            rules=rules,
            renderer=renderer,
            now=now,
            fingerprint=fingerprint,
            report=report,
            dry_run=dry_run,
            max_conflict_retries=max_conflict_retries,
        ).run()
    except Exception as exc:
        fail_cycle(store, report, exc, finished_at=clock() if clock else now, dry_run=dry_run)
    report.requests = Counter(provider.requests) - requests_before
    if report.finished_at is None:
        report.finished_at = clock() if clock else now
    return report


@dataclass
class Cycle:
    """One cycle of one calendar: what it works with, and what it learns on the way.

    :meth:`run` reads, decides, writes and records. The inputs are fixed for
    the cycle; the state below them starts empty and is filled step by step,
    so that each step reads and adds to one place instead of passing a dozen
    arguments and collecting its results in parameters.
    """

    provider: CalendarProvider
    store: Store
    rules: Rules
    renderer: AgendaRenderer
    now: datetime
    fingerprint: str
    report: CycleReport
    dry_run: bool = False
    max_conflict_retries: int = MAX_CONFLICT_RETRIES

    # Our records of the calendar, read once the provider reports a change.
    records: dict[EventRef, EventRecord] = field(default_factory=dict)
    decisions: dict[EventRef, Decision] = field(default_factory=dict)
    # Events whose decision failed for a reason not in them: ref -> reason.
    retry: dict[EventRef, str] = field(default_factory=dict)
    # ref -> final action of the events we wrote or tried to write.
    outcomes: dict[EventRef, str] = field(default_factory=dict)
    # ref -> the hash of the block a write put there (None: the block was removed).
    written_hash: dict[EventRef, str | None] = field(default_factory=dict)
    # Events whose write did not happen: tried again next cycle.
    pending: set[EventRef] = field(default_factory=set)
    # Writes the provider held back on purpose (WriteHeld): ref -> when to look again.
    held: dict[EventRef, datetime | None] = field(default_factory=dict)

    @property
    def calendar(self) -> str:
        return self.provider.name

    def run(self) -> None:
        start = self.store.begin_cycle(self.calendar, self.now)
        changes = self._read_changes(start.cursor)
        if not (
            changes.full or changes.meetings or changes.deleted or changes.unreadable or start.due
        ):
            self._commit_quiet(start.cursor, changes.cursor)
            return
        self.records = self.store.records(self.calendar)
        meetings, deleted = self._events_to_decide(changes, due=start.due)
        self._decide(meetings)
        if self.dry_run:
            self.report.notices = sum(
                write_notices(self.provider, d.meeting)
                for d in self.decisions.values()
                if d.needs_write
            )
        else:
            if writes_events(self.provider):
                self._write_with_retries()
            else:
                self._hold_for_reminders()
        upserts = self._records_to_store()
        self.report.outcomes = self.outcomes
        if self.dry_run:
            return
        self.report.finished_at = self.now
        self.store.commit_cycle(
            self.calendar,
            f"{self.fingerprint}|{_cursor_after_writes(self.provider, changes.cursor)}",
            upserts,
            sorted(deleted - meetings.keys()),
            run_summary(self.report),
        )

    def _read_changes(self, stored_cursor: str | None) -> ChangeSet:
        try:
            changes = self.provider.read_changes(_split_cursor(stored_cursor, self.fingerprint))
        except CursorExpired:
            log.info("calendar %s: sync cursor expired, one full resync", self.calendar)
            changes = self.provider.read_changes(None)
        self.report.full_resync = changes.full
        return changes

    def _commit_quiet(self, stored_cursor: str | None, provider_cursor: str) -> None:
        """Quiet: nothing to decide, no record to read or change."""
        if self.dry_run:
            return
        self.report.finished_at = self.now
        new_cursor = f"{self.fingerprint}|{provider_cursor}"
        unchanged = new_cursor == stored_cursor
        self.store.commit_quiet(
            self.calendar, None if unchanged else new_cursor, run_summary(self.report)
        )

    def _events_to_decide(
        self, changes: ChangeSet, *, due: bool
    ) -> tuple[dict[EventRef, Meeting], set[EventRef]]:
        """(the events to decide, the events gone) from the changes and the due revisits."""
        meetings: dict[EventRef, Meeting] = {m.ref: m for m in changes.meetings}
        deleted: set[EventRef] = set(changes.deleted)
        for bad in changes.unreadable:
            self._skip(bad.ref, "malformed", bad.reason)
        unreadable = {bad.ref for bad in changes.unreadable}
        # An id the store cannot hold (an outsider's 2,000-character UID, a NUL)
        # would fail the commit and stall the calendar: skip that event alone.
        for ref in [ref for ref in meetings if not storable_ref(ref)]:
            del meetings[ref]
            unreadable.add(ref)
            self._skip(ref, "unstorable_id", "its id is too long or holds a control character")
        deleted = {ref for ref in deleted if storable_ref(ref)}
        if changes.full:
            seen = meetings.keys() | unreadable
            deleted |= {ref for ref in self.records if ref not in seen}

        # Events that need a look although the provider reports no change.
        for ref in self.store.due_refs(self.calendar, self.now) if due else ():
            if ref in meetings or ref in deleted or ref in unreadable:
                continue
            try:
                fresh = self.provider.get(ref)
            except Exception as exc:
                if error_kind(exc) not in PER_EVENT_KINDS:
                    raise
                message = describe_failure(exc, calendar=self.calendar).message
                self._skip(ref, "unreadable", message)
                continue
            if fresh is None:
                deleted.add(ref)
            else:
                meetings[ref] = fresh
        return meetings, deleted

    def _decide(self, meetings: dict[EventRef, Meeting]) -> None:
        for ref, meeting in sorted(meetings.items()):
            try:
                self.decisions[ref] = decide_event(
                    meeting, self.rules, self.now, self.renderer, self.records
                )
            except Exception as exc:  # one event's bad data or template must not stop the others
                failure = self._event_failed(ref, exc)
                if failure.kind != INVALID_DATA:
                    self.retry[ref] = f"error_{failure.kind}"

    def _write_with_retries(self) -> None:
        to_write = [d for d in self.decisions.values() if d.needs_write]
        attempt = 0
        while to_write:
            results = self.provider.write([_as_write(d) for d in to_write])
            conflicted: list[EventRef] = []
            for decision, outcome in zip(to_write, results, strict=True):
                ref = decision.meeting.ref
                if outcome.ok:
                    self.report.writes += 1
                    self.report.notices += write_notices(self.provider, decision.meeting)
                    self.written_hash[ref] = decision.block_hash
                    self.outcomes[ref] = decision.action.value
                elif isinstance(outcome.error, PreconditionFailed):
                    self.report.conflicts += 1
                    conflicted.append(ref)
                elif isinstance(outcome.error, WriteHeld):
                    # Not written and not failed: the block we knew stays ours.
                    self.held[ref] = outcome.error.revisit_at
                    self.outcomes[ref] = HELD
                else:
                    self._mark_failed(ref, outcome)
            attempt += 1
            to_write = []
            for ref in conflicted:
                if attempt > self.max_conflict_retries:
                    log.warning(
                        "calendar %s: gave up on %s after %d conflicts",
                        ref.calendar,
                        ref.event_id,
                        attempt,
                    )
                    self.outcomes[ref] = "failed"
                    self.pending.add(ref)
                    self.report.errors[CONFLICT] += 1
                    continue
                # Someone edited the event between our read and our write: read it
                # again and merge into their version, never over it.
                try:
                    fresh = self.provider.get(ref)
                except ProviderError as exc:
                    self._mark_failed(ref, WriteOutcome(ref=ref, error=exc))
                    continue
                if fresh is None:
                    self.outcomes[ref] = "deleted"
                    continue
                redo = decide_event(fresh, self.rules, self.now, self.renderer, self.records)
                self.decisions[ref] = redo
                if redo.needs_write:
                    to_write.append(redo)
                else:
                    self.outcomes[ref] = redo.action.value

    def _hold_for_reminders(self) -> None:
        """A calendar we never write: the agenda goes into the reminder, not the event."""
        for ref, decision in self.decisions.items():
            if decision.needs_write:
                self.outcomes[ref] = IN_REMINDER

    def _mark_failed(self, ref: EventRef, outcome: WriteOutcome) -> None:
        error = outcome.error
        kind = error_kind(error) if error is not None else "internal"
        text = str(error).strip() if error is not None else ""
        detail = text.splitlines()[0] if text else ""
        log.warning(
            "calendar %s: write to %s failed: %s: %s",
            ref.calendar,
            ref.event_id,
            kind,
            detail or type(error).__name__,
        )
        self.outcomes[ref] = "failed"
        self.pending.add(ref)
        self.report.errors[kind] += 1

    def _records_to_store(self) -> list[EventRecord]:
        """Our record of every decided event, and of every event to decide again."""
        upserts: list[EventRecord] = []
        for ref, decision in self.decisions.items():
            action = self.outcomes.get(ref, decision.action.value)
            self.report.decisions.append(decision)
            self.report.actions[action] += 1
            if decision.action is ActionKind.SKIPPED and decision.reason:
                self.report.skipped[decision.reason] += 1
            upserts.append(
                EventRecord(
                    ref=ref,
                    kind=decision.classification.kind.value,
                    reason=decision.reason,
                    action=action,
                    block_hash=self._recorded_hash(decision),
                    revisit_at=self._revisit_at(decision),
                    pending_write=ref in self.pending,
                    updated_at=self.now,
                )
            )
        # A template or a bug that failed an event is fixed outside the event: read
        # it again next cycle (and report it again) until it decides, instead of
        # waiting for the event to change. What we know of it stays as it was.
        for ref, reason in self.retry.items():
            known = self.records.get(ref)
            upserts.append(
                EventRecord(
                    ref=ref,
                    kind=known.kind if known else "skip",
                    reason=known.reason if known else reason,
                    action=known.action if known else "skipped",
                    block_hash=known.block_hash if known else None,
                    revisit_at=known.revisit_at if known else None,
                    pending_write=True,
                    updated_at=self.now,
                )
            )
        return upserts

    def _revisit_at(self, decision: Decision) -> datetime | None:
        """When to read the event again; a held write may ask for an earlier look."""
        held = self.held.get(decision.meeting.ref)
        if held is None:
            return decision.revisit_at
        return held if decision.revisit_at is None else min(held, decision.revisit_at)

    def _recorded_hash(self, decision: Decision) -> str | None:
        """The hash of our block as it now stands in the event."""
        ref = decision.meeting.ref
        if ref in self.written_hash:
            return self.written_hash[ref]
        previous = self.records.get(ref)
        known = decision.meeting.stored_hash or (previous.block_hash if previous else None)
        # A write that did not happen (failed, dry run) or a block the user edited:
        # what we wrote last time is still the reference for "unedited".
        if ref in self.pending or decision.needs_write or decision.action in _NOT_WRITTEN_BY_US:
            return known
        return decision.block_hash

    def _skip(self, ref: EventRef, reason: str, detail: str) -> None:
        """Skip one event before any decision; logged here, once, and listed in the report."""
        self.report.skipped[reason] += 1
        self.report.actions[ActionKind.SKIPPED.value] += 1
        self.report.unreadable.append((ref, reason, detail))
        log.warning(
            "calendar %s: skipped event %s: %s: %s",
            ref.calendar,
            _short(ref.event_id),
            reason,
            detail,
        )

    def _event_failed(self, ref: EventRef, exc: Exception) -> Failure:
        """Deciding one event raised: skip it with the error's kind as the reason.

        Bad data in the event is a skip like any other. Anything else (an admin
        template that fails at run time, a bug) also counts as an error of the
        cycle, so that ``sync`` and the metrics show it; a bug is logged with its
        traceback.
        """
        failure = describe_failure(exc, calendar=ref.calendar)
        reason = failure.kind if failure.kind == INVALID_DATA else f"error_{failure.kind}"
        self._skip(ref, reason, failure.message)
        if failure.kind != INVALID_DATA:
            self.report.errors[failure.kind] += 1
            bug = type(exc).__qualname__
            if not failure.expected and bug not in self.report.tracebacks_logged:
                # Once per cycle and type: one bug in many events is one traceback.
                self.report.tracebacks_logged.add(bug)
                log.error(
                    "calendar %s: deciding %s failed",
                    ref.calendar,
                    _short(ref.event_id),
                    exc_info=exc,
                )
        return failure


def known_hashes_of(meeting: Meeting, records: dict[EventRef, EventRecord]) -> tuple[str, ...]:
    """The hashes of blocks we wrote to this event: its hash property, our record of it,
    and for one occurrence our record of its series (whose block a client may
    have copied into the occurrence without the hash property)."""
    ref = meeting.ref
    record = records.get(ref)
    series = records.get(EventRef(ref.calendar, ref.event_id)) if ref.recurrence_id else None
    return known_hashes(
        meeting.stored_hash,
        record.block_hash if record else None,
        series.block_hash if series else None,
    )


def decide_event(
    meeting: Meeting,
    rules: Rules,
    now: datetime,
    renderer: AgendaRenderer,
    records: dict[EventRef, EventRecord],
) -> Decision:
    """The decision a sync makes for ``meeting``, given our ``records`` of its calendar."""
    return decide(meeting, rules, now, renderer, known_hash=known_hashes_of(meeting, records))


def _as_write(decision: Decision) -> DescriptionWrite:
    assert decision.description is not None
    return DescriptionWrite(
        ref=decision.meeting.ref,
        etag=decision.meeting.etag,
        description=decision.description,
        block_hash=decision.block_hash,
    )


def run_calendar(
    name: str,
    build: Callable[[], CalendarProvider],
    store: Store,
    rules: Rules,
    renderer: AgendaRenderer,
    now: datetime,
    *,
    dry_run: bool = False,
    clock: Callable[[], datetime] | None = None,
    fingerprint: str | None = None,
    after: Callable[[CalendarProvider, CycleReport], None] | None = None,
    keep_provider: bool = False,
) -> CycleReport:
    """Build calendar ``name``'s provider, run one cycle, then ``after``; never raises.

    A provider that cannot be built (a credentials file missing or readable by
    others, a folder that is gone) fails this calendar's cycle like any other
    error. ``after`` (the daemon's reminder planning) runs only after a cycle
    that finished; its failure is counted on the report but not in the run
    log, which already holds the cycle. The provider is closed at the end,
    unless ``keep_provider`` (``build`` hands out one the caller keeps).
    """
    try:
        provider = build()
    except Exception as exc:
        report = CycleReport(calendar=name, started_at=now)
        fail_cycle(store, report, exc, finished_at=clock() if clock else now, dry_run=dry_run)
        return report
    try:
        report = run_cycle(
            provider,
            store,
            rules,
            renderer,
            now,
            dry_run=dry_run,
            clock=clock,
            fingerprint=fingerprint,
        )
        if after is not None and report.error is None:
            try:
                after(provider, report)
            except Exception as exc:
                _log_failure(report, exc)
        return report
    finally:
        try:
            if not keep_provider:
                provider.close()
        except Exception as exc:  # closing must not hide the cycle's outcome
            log.warning("calendar %s: closing the provider failed: %s", name, type(exc).__name__)


def fail_cycle(
    store: Store,
    report: CycleReport,
    exc: BaseException,
    *,
    finished_at: datetime,
    dry_run: bool = False,
) -> None:
    """End ``report``'s cycle with ``exc``: its kind and message, a log line, a run-log row.

    The old cursor stays. When the run log cannot be written either (the
    database or its disk failed), that is logged and the report still says
    what went wrong.
    """
    _log_failure(report, exc)
    report.finished_at = finished_at
    if dry_run:
        return
    try:
        store.commit_cycle(report.calendar, None, [], [], run_summary(report))
    except Exception as again:
        second = describe_failure(again, calendar=report.calendar)
        log.warning("%s; the failed run could not be recorded", second.message)


def _log_failure(report: CycleReport, exc: BaseException) -> Failure:
    failure = describe_failure(exc, calendar=report.calendar)
    report.fail(failure)
    if failure.expected:
        log.warning("cycle failed: %s", failure.message)
    else:  # a bug: once, with its traceback
        log.error("cycle failed: %s", failure.message, exc_info=exc)
    return failure


# Kinds of error that concern one event only: skip it, go on with the others.
PER_EVENT_KINDS = frozenset({INVALID_DATA, NOT_FOUND})


def storable_ref(ref: EventRef) -> bool:
    """True when the store can hold ``ref``'s ids (see ``scheduler.storage.store`` column sizes)."""
    event_id = ref.event_id
    if not event_id or len(event_id) > MAX_EVENT_ID or not event_id.isprintable():
        return False
    try:
        event_id.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from undecodable bytes
        return False
    rid = ref.recurrence_id
    return rid is None or is_code(rid, MAX_RECURRENCE_ID)


def _split_cursor(stored: str | None, fingerprint: str) -> str | None:
    if not stored:
        return None
    prefix, sep, provider_cursor = stored.partition("|")
    if not sep or prefix != fingerprint:
        return None
    return provider_cursor or None


def _short(text: str, limit: int = 80) -> str:
    """An id as it fits in a log line: a hostile UID can be megabytes long."""
    printable = text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
    return printable if len(printable) <= limit else printable[: limit - 1] + "…"


def _cursor_after_writes(provider: CalendarProvider, cursor: str) -> str:
    """The cursor to store: a provider may fold the versions its writes made into it.

    Optional (CalDAV has it): without it the next cycle may fetch our own
    writes back to learn that nothing changed.
    """
    settle = getattr(provider, "cursor_after_writes", None)
    return str(settle(cursor)) if callable(settle) else cursor


def utc_now() -> datetime:
    """The runtime's clock. Only the CLI and the daemon call it."""
    return datetime.now(UTC)
