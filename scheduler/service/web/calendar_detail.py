"""One calendar's page: its recent cycles, what its events came to, and its errors.

From the run log and the records: codes, counts and times only. Skip reasons
are shown in words from :mod:`feedback_agendas.agendas.reasons`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from feedback_agendas.agendas.reasons import explain_reason
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.storage.tables import event_records, run_log, run_log_counts

RECENT_RUNS = 40
ERROR_HISTORY = 20


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    started_at: datetime
    finished_at: datetime
    ok: bool
    error_kind: str | None
    writes: int
    counts: dict[str, int]

    @property
    def seconds(self) -> float:
        return max(0.0, (self.finished_at - self.started_at).total_seconds())


@dataclass(frozen=True, slots=True)
class ReasonCount:
    code: str
    text: str
    count: int


@dataclass(frozen=True)
class CalendarDetail:
    name: str
    runs: tuple[Run, ...]
    actions: tuple[tuple[str, int], ...]
    kinds: tuple[tuple[str, int], ...]
    reasons: tuple[ReasonCount, ...]
    errors: tuple[Run, ...]
    run_count: int


def calendar_detail(store: Store, name: str) -> CalendarDetail:
    """The page of calendar ``name`` (it may have no runs yet)."""
    r = run_log.c
    e = event_records.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(r.id, r.started_at, r.finished_at, r.ok, r.error_kind, r.writes)
            .where(r.calendar == name)
            .order_by(r.id.desc())
            .limit(RECENT_RUNS)
        ).all()
        error_rows = conn.execute(
            select(r.id, r.started_at, r.finished_at, r.ok, r.error_kind, r.writes)
            .where(r.calendar == name, r.ok.is_(False))
            .order_by(r.id.desc())
            .limit(ERROR_HISTORY)
        ).all()
        ids = [row[0] for row in rows]
        counts: dict[int, dict[str, int]] = {}
        if ids:
            for run_id, code, count in conn.execute(
                select(run_log_counts.c.run_id, run_log_counts.c.code, run_log_counts.c.count)
                .where(run_log_counts.c.run_id.in_(ids))
                .order_by(run_log_counts.c.code)
            ):
                counts.setdefault(run_id, {})[code] = count
        run_count = conn.scalar(select(func.count()).where(r.calendar == name)) or 0
        groups = conn.execute(
            select(e.kind, e.action, e.reason, func.count())
            .where(e.calendar == name)
            .group_by(e.kind, e.action, e.reason)
        ).all()
    actions: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for kind, action, reason, n in groups:
        actions[action] += n
        kinds[kind] += n
        if reason:
            reasons[reason] += n
    runs = tuple(_run(row, counts.get(row[0], {})) for row in reversed(rows))
    return CalendarDetail(
        name=name,
        runs=runs,
        actions=tuple(sorted(actions.items())),
        kinds=tuple(sorted(kinds.items())),
        reasons=tuple(
            ReasonCount(code, explain_reason(code), n)
            for code, n in sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
        ),
        errors=tuple(_run(row, {}) for row in error_rows),
        run_count=run_count,
    )


def _run(row: Any, counts: dict[str, int]) -> Run:
    run_id, started_at, finished_at, ok, error_kind, writes = row
    return Run(run_id, started_at, finished_at, bool(ok), error_kind, writes, counts)
