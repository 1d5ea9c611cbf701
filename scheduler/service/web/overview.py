"""The overview's data: every calendar's health, the outbox, the replicas and their leases.

Only what the store keeps (codes, counts, times) plus, for a calendar that
failed in this process, the failure's message (the one the log got, which
never quotes event content or credentials).

Built for 10,000 calendars: the health of all of them is one query over
``calendar_health`` (state, sort and filter need it), and everything else
(last cycle's counts, cursor age, push channel) is read for the page's rows
only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, or_, select

from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.reminders.outbox import outbox_table
from feedback_agendas.scheduler.storage.leases import leases as leases_table
from feedback_agendas.scheduler.storage.store import (
    Store,
    calendar_cursors,
    calendar_health,
    run_log,
    run_log_counts,
)
from feedback_agendas.scheduler.sync.push import push_channels_table

STATES = ("failing", "stale", "new", "ok", "opted_out")
STATE_TEXT = {
    "failing": "failing",
    "stale": "stale",
    "new": "not synced yet",
    "ok": "ok",
    "opted_out": "opted out",
}
SORTS = ("state", "name", "last_success", "failures")
PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class CalendarRow:
    """One calendar on the overview."""

    name: str
    provider: str
    state: str
    last_success_at: datetime | None
    last_failure_at: datetime | None
    consecutive_failures: int
    error_kind: str | None
    error_message: str | None = None
    writes: int | None = None
    skips: int | None = None
    cursor_age: timedelta | None = None
    push: str = "-"

    @property
    def state_text(self) -> str:
        return STATE_TEXT[self.state]


@dataclass(frozen=True, slots=True)
class OutboxSummary:
    due: int = 0
    sent_today: int = 0
    failed: int = 0
    dead: int = 0


@dataclass(frozen=True, slots=True)
class Replica:
    holder: str
    calendars: int
    outbox_rows: int
    lease_until: datetime | None
    this_process: bool


@dataclass(frozen=True)
class Overview:
    rows: tuple[CalendarRow, ...]
    counts: Mapping[str, int]
    total: int
    matched: int
    page: int
    pages: int
    sort: str
    state: str
    query: str
    outbox: OutboxSummary
    replicas: tuple[Replica, ...]
    generation: int
    fingerprint: str
    now: datetime
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Health:
    name: str
    last_success_at: datetime | None
    last_failure_at: datetime | None
    failures: int
    error_kind: str | None


class CalendarIndex:
    """What the overview needs of the config's calendars, computed once per config.

    The names in display order (case-insensitive), each one's provider, and
    the opted-out ones.
    """

    def __init__(self, cfg: AppConfig) -> None:
        self.providers = {c.name: c.provider for c in cfg.calendars}
        self.by_name = sorted(self.providers, key=lambda n: (n.lower(), n))
        self.lowered = {name: name.lower() for name in self.by_name}
        opted = {name.lower() for name in cfg.opt_out.calendars}
        self.opted_out = frozenset(n for n in self.by_name if n.lower() in opted)


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


# States by rank: the order of the default sort.
_RANK = {state: rank for rank, state in enumerate(STATES)}


def build_overview(
    cfg: AppConfig,
    store: Store,
    now: datetime,
    *,
    started_at: datetime,
    replica_id: str,
    index: CalendarIndex | None = None,
    error_messages: Mapping[str, str] = {},
    generation: int = 1,
    fingerprint: str = "",
    sort: str = "state",
    state: str = "",
    query: str = "",
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> Overview:
    """The overview at ``now``: the page ``page`` of calendars, sorted and filtered, and totals.

    A calendar's state comes from one query over every calendar's health that
    returns only its name and a rank (the database compares the times); the
    page's rows are then read in full. A calendar with no health row has
    never finished a cycle: ``new``, or ``stale`` once the daemon has run
    longer than the staleness window.
    """
    index = index or CalendarIndex(cfg)
    interval = timedelta(seconds=cfg.sync.interval_seconds)
    stale_after = now - cfg.server.ready_after_intervals * interval
    ranks = _health_ranks(store, stale_after)
    unseen = _RANK["stale"] if started_at < stale_after else _RANK["new"]
    opted = index.opted_out
    wanted_query = query.strip().lower()
    wanted_rank = _RANK.get(state)
    counts = [0] * len(STATES)
    # One pass over the names in name order: count every state, keep the matches.
    buckets: list[list[str]] = [[] for _ in STATES]
    lowered = index.lowered
    for name in index.by_name:
        rank = _RANK["opted_out"] if name in opted else ranks.get(name, unseen)
        counts[rank] += 1
        if wanted_rank is not None and rank != wanted_rank:
            continue
        if wanted_query and wanted_query not in lowered[name]:
            continue
        buckets[rank].append(name)
    sort = sort if sort in SORTS else "state"
    names = [name for bucket in buckets for name in bucket]  # by state, then name
    if sort == "name":
        names.sort(key=lowered.__getitem__)
    elif sort in ("last_success", "failures"):
        names = _sorted_by_health(store, names, sort)
    pages = max(1, -(-len(names) // page_size))
    page = min(max(1, page), pages)
    shown = names[(page - 1) * page_size : page * page_size]
    health = _health_of(store, shown)
    details = _page_details(store, shown, now)
    states = {name: STATES[rank] for name, rank in _ranks_of(shown, ranks, opted, unseen)}
    rows = []
    for name in shown:
        h = health.get(name)
        extra = details.get(name, {})
        rows.append(
            CalendarRow(
                name=name,
                provider=index.providers[name],
                state=states[name],
                last_success_at=h.last_success_at if h else None,
                last_failure_at=h.last_failure_at if h else None,
                consecutive_failures=h.failures if h else 0,
                error_kind=h.error_kind if h else None,
                error_message=error_messages.get(name) if h and h.failures else None,
                writes=extra.get("writes"),
                skips=extra.get("skips"),
                cursor_age=extra.get("cursor_age"),
                push=extra.get("push", "-"),
            )
        )
    return Overview(
        rows=tuple(rows),
        counts={s: counts[_RANK[s]] for s in STATES},
        total=len(index.by_name),
        matched=len(names),
        page=page,
        pages=pages,
        sort=sort,
        state=state if state in STATES else "",
        query=query,
        outbox=outbox_summary(store, now),
        replicas=replicas(store, now, replica_id),
        generation=generation,
        fingerprint=fingerprint,
        now=now,
    )


def _ranks_of(
    names: Sequence[str], ranks: Mapping[str, int], opted: frozenset[str], unseen: int
) -> list[tuple[str, int]]:
    return [
        (name, _RANK["opted_out"] if name in opted else ranks.get(name, unseen)) for name in names
    ]


def _health_ranks(store: Store, stale_after: datetime) -> dict[str, int]:
    """Every calendar with a health row, and its state's rank (failing, stale or ok)."""
    t = calendar_health.c
    rank = case(
        (t.consecutive_failures > 0, _RANK["failing"]),
        (or_(t.last_success_at.is_(None), t.last_success_at < stale_after), _RANK["stale"]),
        else_=_RANK["ok"],
    )
    with store.engine.connect() as conn:
        return {name: value for name, value in conn.execute(select(t.calendar, rank))}


def _health_of(store: Store, names: Sequence[str]) -> dict[str, _Health]:
    if not names:
        return {}
    t = calendar_health.c
    query = select(
        t.calendar, t.last_success_at, t.last_failure_at, t.consecutive_failures, t.last_error_kind
    ).where(t.calendar.in_(names))
    with store.engine.connect() as conn:
        return {row[0]: _Health(*row) for row in conn.execute(query)}


def _sorted_by_health(store: Store, names: list[str], sort: str) -> list[str]:
    """``names`` by last success (oldest first, never first of all) or by failures in a row."""
    t = calendar_health.c
    column = t.last_success_at if sort == "last_success" else t.consecutive_failures
    with store.engine.connect() as conn:
        values = {name: value for name, value in conn.execute(select(t.calendar, column))}
    if sort == "failures":
        return sorted(names, key=lambda n: -(values.get(n) or 0))
    never = datetime.min.replace(tzinfo=UTC)
    return sorted(names, key=lambda n: values.get(n) or never)


def _page_details(store: Store, names: Sequence[str], now: datetime) -> dict[str, dict[str, Any]]:
    """Last cycle's writes and skips, cursor age and push state of the page's calendars."""
    if not names:
        return {}
    details: dict[str, dict[str, Any]] = {name: {} for name in names}
    with store.engine.connect() as conn:
        last_ids = list(
            conn.scalars(
                select(func.max(run_log.c.id))
                .where(run_log.c.calendar.in_(names))
                .group_by(run_log.c.calendar)
            )
        )
        runs = conn.execute(
            select(run_log.c.id, run_log.c.calendar, run_log.c.writes).where(
                run_log.c.id.in_(last_ids)
            )
        ).all()
        skips: Counter[int] = Counter()
        for run_id, code, count in conn.execute(
            select(run_log_counts.c.run_id, run_log_counts.c.code, run_log_counts.c.count).where(
                run_log_counts.c.run_id.in_(last_ids)
            )
        ):
            if code.startswith("skipped."):
                skips[run_id] += count
        for run_id, calendar, writes in runs:
            details[calendar]["writes"] = writes
            details[calendar]["skips"] = skips[run_id]
        for calendar, updated in conn.execute(
            select(calendar_cursors.c.calendar, calendar_cursors.c.updated_at).where(
                calendar_cursors.c.calendar.in_(names), calendar_cursors.c.cursor.is_not(None)
            )
        ):
            details[calendar]["cursor_age"] = now - updated
        p = push_channels_table.c
        for calendar, expires in conn.execute(
            select(p.calendar, func.max(p.expires_at))
            .where(p.calendar.in_(names))
            .group_by(p.calendar)
        ):
            expires = _aware(expires)
            if expires is None or expires > now:
                until = f" until {expires:%d %b %H:%M} UTC" if expires else ""
                details[calendar]["push"] = "live" + until
            else:
                details[calendar]["push"] = "expired"
    return details


def outbox_summary(store: Store, now: datetime) -> OutboxSummary:
    """Reminders due now, sent since midnight UTC, failing (to retry) and dead-lettered."""
    t = outbox_table.c
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    with store.engine.connect() as conn:
        due = conn.scalar(
            select(func.count()).where(
                t.state.in_(("pending", "sending")), t.due_at <= now, t.next_attempt_at <= now
            )
        )
        sent = conn.scalar(select(func.count()).where(t.state == "sent", t.sent_at >= midnight))
        failed = conn.scalar(
            select(func.count()).where(t.state.in_(("pending", "sending")), t.attempts > 0)
        )
        dead = conn.scalar(select(func.count()).where(t.state == "dead"))
    return OutboxSummary(due=due or 0, sent_today=sent or 0, failed=failed or 0, dead=dead or 0)


def replicas(store: Store, now: datetime, replica_id: str) -> tuple[Replica, ...]:
    """Each replica holding a lease now (calendars and outbox rows), this one always."""
    lt = leases_table.c
    ot = outbox_table.c
    found: dict[str, dict[str, Any]] = {}
    with store.engine.connect() as conn:
        for holder, count, until in conn.execute(
            select(lt.holder, func.count(), func.max(lt.expires_at))
            .where(lt.holder.is_not(None), lt.expires_at > now)
            .group_by(lt.holder)
        ):
            found.setdefault(holder, {})["calendars"] = count
            found[holder]["until"] = _aware(until)
        for holder, count in conn.execute(
            select(ot.lease_owner, func.count())
            .where(ot.lease_owner.is_not(None), ot.lease_until > now)
            .group_by(ot.lease_owner)
        ):
            found.setdefault(holder, {})["outbox"] = count
    found.setdefault(replica_id, {})
    return tuple(
        Replica(
            holder=holder,
            calendars=info.get("calendars", 0),
            outbox_rows=info.get("outbox", 0),
            lease_until=info.get("until"),
            this_process=holder == replica_id,
        )
        for holder, info in sorted(found.items(), key=lambda item: item[0] != replica_id)
    )
