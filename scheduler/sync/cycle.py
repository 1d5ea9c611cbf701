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

Nothing here logs or stores description text.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, date, datetime, time
from enum import Enum
from typing import Any

from feedback_agendas.agendas.block import known_hashes, merge_block
from feedback_agendas.agendas.decide import ActionKind, Decision, decide
from feedback_agendas.agendas.errors import CursorExpired, PreconditionFailed, ProviderError
from feedback_agendas.agendas.model import DescriptionWrite, EventRef, Meeting, WriteOutcome
from feedback_agendas.agendas.policy import Rules
from feedback_agendas.agendas.render import AgendaRenderer
from feedback_agendas.integrations.calendars.base import CalendarProvider
from feedback_agendas.scheduler.storage.store import (
    MAX_EVENT_ID,
    MAX_RECURRENCE_ID,
    EventRecord,
    RunSummary,
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

log = logging.getLogger(__name__)

MAX_CONFLICT_RETRIES = 3
# A block we left alone: what we wrote last stays the reference for "unedited".
_NOT_WRITTEN_BY_US = frozenset({ActionKind.LEFT_EDITED, ActionKind.PRIVACY_CONFLICT})


@dataclass
class CycleReport:
    """What one cycle of one calendar did. Only ids, codes and counts."""

    calendar: str
    started_at: datetime
    finished_at: datetime | None = None
    full_resync: bool = False
    writes: int = 0
    conflicts: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    decisions: list[Decision] = field(default_factory=list)
    # The cycle's failure: a kind from scheduler.sync.failures, and a message without secrets.
    error: str | None = None
    error_message: str | None = None
    # Events skipped before any decision: (ref, reason code, detail).
    unreadable: list[tuple[EventRef, str, str]] = field(default_factory=list)
    tracebacks_logged: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        """True when the cycle finished and every write it tried went through."""
        return self.error is None and not self.errors

    def fail(self, failure: Failure) -> None:
        """End the cycle with ``failure`` (the first failure wins the ``error`` field)."""
        if self.error is None:
            self.error = failure.kind
            self.error_message = failure.message
        self.errors[failure.kind] += 1

    def event_entries(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = [
            {
                "calendar": ref.calendar,
                "event_id": ref.event_id,
                "recurrence_id": ref.recurrence_id,
                "kind": "unreadable",
                "slots": [],
                "action": ActionKind.SKIPPED.value,
                "reason": reason,
                "detail": detail,
            }
            for ref, reason, detail in self.unreadable
        ]
        for d in self.decisions:
            ref = d.meeting.ref
            entries.append(
                {
                    "calendar": ref.calendar,
                    "event_id": ref.event_id,
                    "recurrence_id": ref.recurrence_id,
                    "kind": d.classification.kind.value,
                    "slots": list(d.slots),
                    "action": self.final_action(d),
                    "reason": d.reason,
                }
            )
        return entries

    def privacy_conflicts(self) -> list[Decision]:
        """Events where corrective words sit in a meeting that is no longer a 1:1 (R4).

        The block is not ours to remove (the manager wrote in it, or it is
        not provably ours); the manager is told privately, and ``sync --json``,
        ``status`` and the metrics report it.
        """
        return [d for d in self.decisions if d.privacy_conflict]

    def final_action(self, d: Decision) -> str:
        """What happened to the event: the decision, or ``failed`` when its write failed."""
        return self._outcomes.get(d.meeting.ref, d.action.value)

    # filled by the engine: ref -> final action ("failed" when a write failed)
    _outcomes: dict[EventRef, str] = field(default_factory=dict)


def rules_fingerprint(rules: Rules, renderer: AgendaRenderer) -> str:
    """A short hash of everything that changes what we would write.

    Stored with the cursor: when an admin edits the config (an opt-out, a
    new team member, a reworded norm), the next cycle lists the calendar in
    full and re-decides every event, even though no event changed.

    It is computed from a canonical serialisation (:func:`canonical_rules`),
    so the same config gives the same value in every process, on every
    machine and Python version: a new ``sync`` process (cron), a restarted
    daemon and every replica keep the stored cursor. ``repr()`` would not do:
    the order of a frozenset changes with the per-process hash seed.
    Callers that run many cycles with the same rules compute it once and pass
    it to :func:`run_cycle`.
    """
    canonical = {
        "rules": canonical_rules(rules),
        "templates": getattr(renderer, "fingerprint", ""),
    }
    raw = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(raw.encode("ascii")).hexdigest()[:12]


def canonical_rules(value: Any) -> Any:
    """``value`` (the frozen rules objects) as plain JSON data in one canonical order.

    Dataclasses become objects keyed by field name (their type named too);
    sets and frozensets become sorted lists; mappings get sorted keys; tuples
    keep their order (the config's order, the same in every process); dates
    and enums become text. Fields kept out of ``repr`` (notification URLs,
    which may hold tokens) never change what we write and are left out.
    """
    if is_dataclass(value) and not isinstance(value, type):
        data = {f.name: canonical_rules(getattr(value, f.name)) for f in fields(value) if f.repr}
        return {"type": type(value).__name__, **data}
    if isinstance(value, Enum):
        return canonical_rules(value.value)
    if isinstance(value, (set, frozenset)):
        members = [canonical_rules(v) for v in value]
        return sorted(members, key=lambda m: json.dumps(m, sort_keys=True))
    if isinstance(value, (list, tuple)):
        return [canonical_rules(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): canonical_rules(v) for k, v in value.items()}
    if isinstance(value, (date, time)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"no canonical form for {type(value).__name__} in the rules")


def _split_cursor(stored: str | None, fingerprint: str) -> str | None:
    if not stored:
        return None
    prefix, sep, provider_cursor = stored.partition("|")
    if not sep or prefix != fingerprint:
        return None
    return provider_cursor or None


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
    (computed here when not given). With ``dry_run`` nothing is written and
    nothing is stored. Any exception ends this cycle only: ``report.error``
    gets its kind (see :mod:`feedback_agendas.scheduler.sync.failures`), the run log gets a failed
    run, and the old
    cursor stays, so the next cycle reads the same changes again.
    """
    calendar = provider.name
    report = CycleReport(calendar=calendar, started_at=now)
    requests_before = Counter(provider.requests)
    try:
        if fingerprint is None:
            fingerprint = rules_fingerprint(rules, renderer)
        _run(
            provider,
            store,
            rules,
            renderer,
            now,
            report,
            fingerprint,
            dry_run,
            max_conflict_retries,
        )
    except Exception as exc:
        fail_cycle(store, report, exc, finished_at=clock() if clock else now, dry_run=dry_run)
    report.requests = Counter(provider.requests) - requests_before
    if report.finished_at is None:
        report.finished_at = clock() if clock else now
    return report


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
        store.commit_cycle(report.calendar, None, [], [], _summary(report))
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


def _run(
    provider: CalendarProvider,
    store: Store,
    rules: Rules,
    renderer: AgendaRenderer,
    now: datetime,
    report: CycleReport,
    fingerprint: str,
    dry_run: bool,
    max_conflict_retries: int,
) -> None:
    calendar = provider.name
    start = store.begin_cycle(calendar, now)
    cursor = _split_cursor(start.cursor, fingerprint)
    try:
        changes = provider.read_changes(cursor)
    except CursorExpired:
        log.info("calendar %s: sync cursor expired, one full resync", calendar)
        changes = provider.read_changes(None)
    report.full_resync = changes.full

    if not (changes.full or changes.meetings or changes.deleted or changes.unreadable or start.due):
        # Quiet: nothing to decide, no record to read or change.
        if not dry_run:
            report.finished_at = now
            new_cursor = f"{fingerprint}|{changes.cursor}"
            unchanged = new_cursor == start.cursor
            store.commit_quiet(calendar, None if unchanged else new_cursor, _summary(report))
        return

    records = store.records(calendar)
    meetings: dict[EventRef, Meeting] = {m.ref: m for m in changes.meetings}
    deleted: set[EventRef] = set(changes.deleted)
    for bad in changes.unreadable:
        _skip_item(report, bad.ref, "malformed", bad.reason)
    unreadable = {bad.ref for bad in changes.unreadable}
    # An id the store cannot hold (an outsider's 2,000-character UID, a NUL)
    # would fail the commit and stall the calendar: skip that event alone.
    for ref in [ref for ref in meetings if not storable_ref(ref)]:
        del meetings[ref]
        unreadable.add(ref)
        _skip_item(report, ref, "unstorable_id", "its id is too long or holds a control character")
    deleted = {ref for ref in deleted if storable_ref(ref)}
    if changes.full:
        seen = meetings.keys() | unreadable
        deleted |= {ref for ref in records if ref not in seen}

    # Events that need a look although the provider reports no change.
    for ref in store.due_refs(calendar, now) if start.due else ():
        if ref in meetings or ref in deleted or ref in unreadable:
            continue
        try:
            fresh = provider.get(ref)
        except Exception as exc:
            if error_kind(exc) not in PER_EVENT_KINDS:
                raise
            _skip_item(report, ref, "unreadable", describe_failure(exc, calendar=calendar).message)
            continue
        if fresh is None:
            deleted.add(ref)
        else:
            meetings[ref] = fresh

    decisions: dict[EventRef, Decision] = {}
    retry: dict[EventRef, str] = {}  # events whose decision failed for a reason not in them
    for ref, meeting in sorted(meetings.items()):
        try:
            decisions[ref] = decide_event(meeting, rules, now, renderer, records)
        except Exception as exc:  # one event's bad data or template must not stop the others
            failure = _event_failed(report, ref, exc)
            if failure.kind != INVALID_DATA:
                retry[ref] = f"error_{failure.kind}"
    outcomes: dict[EventRef, str] = {}
    written_hash: dict[EventRef, str | None] = {}
    pending: set[EventRef] = set()
    if not dry_run:
        _write_with_retries(
            provider,
            rules,
            now,
            renderer,
            records,
            decisions,
            outcomes,
            written_hash,
            pending,
            report,
            max_conflict_retries,
        )

    upserts: list[EventRecord] = []
    for ref, decision in decisions.items():
        action = outcomes.get(ref, decision.action.value)
        report.decisions.append(decision)
        report.actions[action] += 1
        if decision.action is ActionKind.SKIPPED and decision.reason:
            report.skipped[decision.reason] += 1
        block_hash = _recorded_hash(decision, records.get(ref), written_hash, pending)
        upserts.append(
            EventRecord(
                ref=ref,
                kind=decision.classification.kind.value,
                reason=decision.reason,
                action=action,
                block_hash=block_hash,
                revisit_at=decision.revisit_at,
                pending_write=ref in pending,
                updated_at=now,
            )
        )
    # A template or a bug that failed an event is fixed outside the event: read
    # it again next cycle (and report it again) until it decides, instead of
    # waiting for the event to change. What we know of it stays as it was.
    for ref, reason in retry.items():
        known = records.get(ref)
        upserts.append(
            EventRecord(
                ref=ref,
                kind=known.kind if known else "skip",
                reason=known.reason if known else reason,
                action=known.action if known else "skipped",
                block_hash=known.block_hash if known else None,
                revisit_at=known.revisit_at if known else None,
                pending_write=True,
                updated_at=now,
            )
        )
    report._outcomes = outcomes
    if dry_run:
        return
    report.finished_at = now
    store.commit_cycle(
        calendar,
        f"{fingerprint}|{_cursor_after_writes(provider, changes.cursor)}",
        upserts,
        sorted(deleted - meetings.keys()),
        _summary(report),
    )


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


def _skip_item(report: CycleReport, ref: EventRef, reason: str, detail: str) -> None:
    """Skip one event before any decision; logged here, once, and listed in the report."""
    report.skipped[reason] += 1
    report.actions[ActionKind.SKIPPED.value] += 1
    report.unreadable.append((ref, reason, detail))
    log.warning(
        "calendar %s: skipped event %s: %s: %s", ref.calendar, _short(ref.event_id), reason, detail
    )


def _event_failed(report: CycleReport, ref: EventRef, exc: Exception) -> Failure:
    """Deciding one event raised: skip it with the error's kind as the reason.

    Bad data in the event is a skip like any other. Anything else (an admin
    template that fails at run time, a bug) also counts as an error of the
    cycle, so that ``sync`` and the metrics show it; a bug is logged with its
    traceback.
    """
    failure = describe_failure(exc, calendar=ref.calendar)
    reason = failure.kind if failure.kind == INVALID_DATA else f"error_{failure.kind}"
    _skip_item(report, ref, reason, failure.message)
    if failure.kind != INVALID_DATA:
        report.errors[failure.kind] += 1
        bug = type(exc).__qualname__
        if not failure.expected and bug not in report.tracebacks_logged:
            # Once per cycle and type: one bug in many events is one traceback.
            report.tracebacks_logged.add(bug)
            log.error(
                "calendar %s: deciding %s failed", ref.calendar, _short(ref.event_id), exc_info=exc
            )
    return failure


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


def _recorded_hash(
    decision: Decision,
    previous: EventRecord | None,
    written_hash: dict[EventRef, str | None],
    pending: set[EventRef],
) -> str | None:
    """The hash of our block as it now stands in the event."""
    ref = decision.meeting.ref
    if ref in written_hash:
        return written_hash[ref]
    known = decision.meeting.stored_hash or (previous.block_hash if previous else None)
    # A write that did not happen (failed, dry run) or a block the user edited:
    # what we wrote last time is still the reference for "unedited".
    if ref in pending or decision.needs_write or decision.action in _NOT_WRITTEN_BY_US:
        return known
    return decision.block_hash


def _known_hashes(meeting: Meeting, records: dict[EventRef, EventRecord]) -> tuple[str, ...]:
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
    return decide(meeting, rules, now, renderer, known_hash=_known_hashes(meeting, records))


def _write_with_retries(
    provider: CalendarProvider,
    rules: Rules,
    now: datetime,
    renderer: AgendaRenderer,
    records: dict[EventRef, EventRecord],
    decisions: dict[EventRef, Decision],
    outcomes: dict[EventRef, str],
    written_hash: dict[EventRef, str | None],
    pending: set[EventRef],
    report: CycleReport,
    max_conflict_retries: int,
) -> None:
    to_write = [d for d in decisions.values() if d.needs_write]
    attempt = 0
    while to_write:
        results = provider.write([_as_write(d) for d in to_write])
        conflicted: list[EventRef] = []
        for decision, outcome in zip(to_write, results, strict=True):
            ref = decision.meeting.ref
            if outcome.ok:
                report.writes += 1
                written_hash[ref] = decision.block_hash
                outcomes[ref] = decision.action.value
            elif isinstance(outcome.error, PreconditionFailed):
                report.conflicts += 1
                conflicted.append(ref)
            else:
                _mark_failed(ref, outcome, outcomes, pending, report)
        attempt += 1
        to_write = []
        for ref in conflicted:
            if attempt > max_conflict_retries:
                log.warning(
                    "calendar %s: gave up on %s after %d conflicts",
                    ref.calendar,
                    ref.event_id,
                    attempt,
                )
                outcomes[ref] = "failed"
                pending.add(ref)
                report.errors[CONFLICT] += 1
                continue
            # Someone edited the event between our read and our write: read it
            # again and merge into their version, never over it.
            try:
                fresh = provider.get(ref)
            except ProviderError as exc:
                _mark_failed(ref, WriteOutcome(ref=ref, error=exc), outcomes, pending, report)
                continue
            if fresh is None:
                outcomes[ref] = "deleted"
                continue
            redo = decide_event(fresh, rules, now, renderer, records)
            decisions[ref] = redo
            if redo.needs_write:
                to_write.append(redo)
            else:
                outcomes[ref] = redo.action.value


def _mark_failed(
    ref: EventRef,
    outcome: WriteOutcome,
    outcomes: dict[EventRef, str],
    pending: set[EventRef],
    report: CycleReport,
) -> None:
    error = outcome.error
    kind = error_kind(error) if error is not None else "internal"
    detail = str(error).strip().splitlines()[0] if error is not None and str(error).strip() else ""
    log.warning(
        "calendar %s: write to %s failed: %s: %s",
        ref.calendar,
        ref.event_id,
        kind,
        detail or type(error).__name__,
    )
    outcomes[ref] = "failed"
    pending.add(ref)
    report.errors[kind] += 1


def _as_write(decision: Decision) -> DescriptionWrite:
    assert decision.description is not None
    return DescriptionWrite(
        ref=decision.meeting.ref,
        etag=decision.meeting.etag,
        description=decision.description,
        block_hash=decision.block_hash,
    )


def _summary(report: CycleReport) -> RunSummary:
    counts: dict[str, int] = {}
    counts.update({f"action.{k}": v for k, v in report.actions.items()})
    counts.update({f"skipped.{k}": v for k, v in report.skipped.items()})
    counts.update({f"error.{k}": v for k, v in report.errors.items()})
    return RunSummary(
        calendar=report.calendar,
        started_at=report.started_at,
        finished_at=report.finished_at or report.started_at,
        ok=report.ok,
        error_kind=report.error or next(iter(sorted(report.errors)), None),
        writes=report.writes,
        counts=counts,
    )


@dataclass
class RevertReport:
    removed: list[EventRef] = field(default_factory=list)
    left_edited: list[EventRef] = field(default_factory=list)
    failed: list[EventRef] = field(default_factory=list)


def revert_calendar(
    provider: CalendarProvider, store: Store, now: datetime, *, dry_run: bool = False
) -> RevertReport:
    """Remove every unedited block we wrote in this calendar; list the edited ones left."""
    result = RevertReport()
    records = store.records(provider.name)
    refs = sorted(ref for ref, rec in records.items() if rec.block_hash)
    writes: list[DescriptionWrite] = []
    for ref in refs:
        meeting = provider.get(ref)
        if meeting is None:
            continue
        known = _known_hashes(meeting, records)
        merged = merge_block(meeting.description, meeting.description_format, None, known)
        if merged.outcome.value == "left_edited":
            result.left_edited.append(ref)
        elif merged.outcome.value == "removed":
            result.removed.append(ref)
            writes.append(DescriptionWrite(ref, meeting.etag, merged.description, None))
    if dry_run or not writes:
        return result
    outcomes = provider.write(writes)
    upserts = []
    for write, outcome in zip(writes, outcomes, strict=True):
        if not outcome.ok:
            result.removed.remove(write.ref)
            result.failed.append(write.ref)
            continue
        rec = records[write.ref]
        upserts.append(
            EventRecord(
                ref=rec.ref,
                kind=rec.kind,
                reason="reverted",
                action="removed",
                block_hash=None,
                revisit_at=None,
                pending_write=False,
                updated_at=now,
            )
        )
    run = RunSummary(
        calendar=provider.name,
        started_at=now,
        finished_at=now,
        ok=not result.failed,
        error_kind=None,
        writes=len(upserts),
        counts={"action.removed": len(upserts)},
    )
    store.commit_cycle(provider.name, None, upserts, [], run)
    return result


def utc_now() -> datetime:
    """The runtime's clock. Only the CLI and the daemon call it."""
    return datetime.now(UTC)


def summarise(reports: Iterable[CycleReport]) -> dict[str, Any]:
    """Merge per-calendar reports into the JSON object ``sync --json`` prints."""
    total: dict[str, Any] = {
        "writes": 0,
        "requests": Counter(),
        "actions": Counter(),
        "skipped": Counter(),
        "errors": Counter(),
        "conflicts": 0,
        "full_resync": [],
        "privacy_conflicts": [],
        "events": [],
        "calendars": {},
    }
    for r in reports:
        total["writes"] += r.writes
        total["conflicts"] += r.conflicts
        total["requests"].update(r.requests)
        total["actions"].update(r.actions)
        total["skipped"].update(r.skipped)
        total["errors"].update(r.errors)
        if r.full_resync:
            total["full_resync"].append(r.calendar)
        total["events"].extend(r.event_entries())
        total["privacy_conflicts"].extend(
            {
                "calendar": d.meeting.ref.calendar,
                "event_id": d.meeting.ref.event_id,
                "recurrence_id": d.meeting.ref.recurrence_id,
                "reason": d.privacy_conflict,
            }
            for d in r.privacy_conflicts()
        )
        total["calendars"][r.calendar] = {
            "ok": r.ok,
            "error_kind": r.error or next(iter(sorted(r.errors)), None),
            "error": r.error_message,
            "errors": dict(sorted(r.errors.items())),
            "writes": r.writes,
        }
    total["ok"] = all(c["ok"] for c in total["calendars"].values())
    for key in ("requests", "actions", "skipped", "errors"):
        total[key] = dict(sorted(total[key].items()))
    return total
