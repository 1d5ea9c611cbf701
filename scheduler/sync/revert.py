"""``revert``: remove every unedited agenda block we wrote in a calendar."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from feedback_agendas.agendas.block import merge_block
from feedback_agendas.agendas.model import DescriptionWrite, EventRef
from feedback_agendas.integrations.calendars.base import CalendarProvider
from feedback_agendas.scheduler.storage.store import EventRecord, RunSummary, Store
from feedback_agendas.scheduler.sync.cycle import known_hashes_of


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
        known = known_hashes_of(meeting, records)
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
