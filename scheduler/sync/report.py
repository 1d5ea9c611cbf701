"""What one sync cycle of one calendar did: :class:`CycleReport`, and the run-log row.

Only ids, codes and counts: never description text. ``sync --json`` prints
:func:`summarise` of the reports; the store keeps :func:`run_summary` of each.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from feedback_agendas.agendas.decide import ActionKind, Decision
from feedback_agendas.agendas.model import EventRef
from feedback_agendas.scheduler.storage.store import RunSummary
from feedback_agendas.scheduler.sync.failures import Failure


@dataclass
class CycleReport:
    """What one cycle of one calendar did. Only ids, codes and counts."""

    calendar: str
    started_at: datetime
    finished_at: datetime | None = None
    full_resync: bool = False
    writes: int = 0
    # People notified by this cycle's writes (Outlook meeting updates), or by
    # the writes a dry run would make; 0 where writes are silent (Google, ICS).
    notices: int = 0
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
    # What happened to each event the cycle wrote or tried to: ref -> final
    # action ("failed" when its write failed, "deleted" when it went away).
    outcomes: dict[EventRef, str] = field(default_factory=dict)

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
        return self.outcomes.get(d.meeting.ref, d.action.value)


def run_summary(report: CycleReport) -> RunSummary:
    """The run-log row of ``report``: counts by action, skip reason and error kind."""
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


def summarise(reports: Iterable[CycleReport]) -> dict[str, Any]:
    """Merge per-calendar reports into the JSON object ``sync --json`` prints."""
    total: dict[str, Any] = {
        "writes": 0,
        "notices": 0,
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
        total["notices"] += r.notices
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
            "notices": r.notices,
        }
    total["ok"] = all(c["ok"] for c in total["calendars"].values())
    for key in ("requests", "actions", "skipped", "errors"):
        total[key] = dict(sorted(total[key].items()))
    return total
