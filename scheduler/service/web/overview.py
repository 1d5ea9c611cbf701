"""The overview's data: every calendar's health, the outbox, the replicas and their leases.

Only what the store keeps (codes, counts, times) plus, for a calendar that
failed in this process, the failure's message (the one the log got, which
never quotes event content or credentials).

Built for 10,000 calendars: the health of all of them is one query over
``calendar_health`` (state, sort and filter need it), and everything else
(last cycle's counts, cursor age, push channel) is read for the page's rows
only.

It runs past 400 lines because the ordering and counting by state is done in
SQL (so 10,000 calendars cost about what 100 do), and those queries, the
states' ranks and the row assembly have to agree with each other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import case, func, or_, select

from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.storage.tables import (
    calendar_cursors,
    calendar_health,
    run_log,
    run_log_counts,
)
from feedback_agendas.scheduler.storage.tables import leases as leases_table
from feedback_agendas.scheduler.storage.tables import push_channels as push_channels_table
from feedback_agendas.scheduler.storage.tables import reminder_outbox as outbox_table

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

    The names in display order (case-insensitive), each one's provider, the
    opted-out ones, and (kept in step with the store by :meth:`refresh`) the
    calendars with no health row yet and the health rows of calendars no
    longer in the config.
    """

    def __init__(self, cfg: AppConfig, calendars: Iterable[Any] | None = None) -> None:
        # The daemon's calendars (the config's, and those a discover: source lists).
        listed = cfg.calendars if calendars is None else calendars
        self.providers = {c.name: c.provider for c in listed}
        self.by_name = sorted(self.providers, key=_name_key)
        opted = {name.lower() for name in cfg.opt_out.calendars}
        self.opted = [n for n in self.by_name if n.lower() in opted]
        self._health_rows = -1
        self.unseen: list[str] = []
        self.excluded: list[str] = []

    def refresh(self, store: Store) -> None:
        """Compare the config's names with the health rows, when their number changed.

        Counting the rows is cheap; their names are read again only when a
        calendar had its first cycle (or a row went away).
        """
        t = calendar_health.c
        with store.engine.connect() as conn:
            count = conn.scalar(select(func.count()).select_from(calendar_health)) or 0
            if count == self._health_rows:
                return
            known = set(conn.scalars(select(t.calendar)))
        self._health_rows = count
        self.unseen = [n for n in self.by_name if n not in known]
        opted = set(self.opted)
        # Rows the SQL side must leave out: removed calendars, and the opted-out ones
        # (shown as opted out whatever their health).
        self.excluded = sorted((known - set(self.providers)) | (known & opted))


def _name_key(name: str) -> tuple[str, str]:
    return (name.lower(), name)


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


# States by rank: the order of the default sort.
_RANK = {state: rank for rank, state in enumerate(STATES)}


@dataclass(frozen=True)
class _Segment:
    """A run of the ordered list: ``count`` names, ``take(offset, limit)`` reads some."""

    count: int
    take: Callable[[int, int], list[str]]


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

    The database counts the calendars by state (it compares the times) and
    orders them, and only the page's names are read; so a page of 10,000
    calendars costs about what a page of 100 does. A calendar with no health
    row has never finished a cycle: ``new``, or ``stale`` once the daemon
    has run longer than the staleness window; those and the opted-out ones
    are lists of the config, merged in.
    """
    index = index or CalendarIndex(cfg)
    index.refresh(store)
    interval = timedelta(seconds=cfg.sync.interval_seconds)
    stale_after = now - cfg.server.ready_after_intervals * interval
    unseen_rank = _RANK["stale"] if started_at < stale_after else _RANK["new"]
    sql = _HealthQuery(store, stale_after, index.excluded)
    opted_rank = _RANK["opted_out"]
    totals = sql.counts("")
    totals[unseen_rank] = totals.get(unseen_rank, 0) + len(index.unseen)
    totals[opted_rank] = len(index.opted)
    wanted = query.strip().lower()
    unseen = [n for n in index.unseen if wanted in n.lower()]
    opted = [n for n in index.opted if wanted in n.lower()]
    matching = sql.counts(wanted)  # in the store only
    sort = sort if sort in SORTS else "state"
    wanted_rank = _RANK.get(state)
    segments: list[_Segment] = []
    if sort == "state":
        for rank in range(len(STATES)):
            if wanted_rank is not None and rank != wanted_rank:
                continue
            if rank == opted_rank:
                segments.append(_listed(opted))
                continue
            extra = unseen if rank == unseen_rank else []
            segments.append(_merged(sql, wanted, rank, matching.get(rank, 0), extra))
    else:  # the store's calendars in that order, then the unseen, then the opted out
        if wanted_rank != opted_rank:
            in_sql = sum(matching.values()) if wanted_rank is None else matching.get(wanted_rank, 0)
            segments.append(_Segment(in_sql, partial(sql.names, wanted, wanted_rank, sort)))
        if wanted_rank in (None, unseen_rank):
            segments.append(_listed(unseen))
        if wanted_rank in (None, opted_rank):
            segments.append(_listed(opted))
    matched = sum(segment.count for segment in segments)
    pages = max(1, -(-matched // page_size))
    page = min(max(1, page), pages)
    shown = _slice(segments, (page - 1) * page_size, page_size)
    health = _health_of(store, shown)
    details = _page_details(store, shown, now)
    opted_set = set(index.opted)
    rows = []
    for name in shown:
        h = health.get(name)
        extra_details = details.get(name, {})
        rows.append(
            CalendarRow(
                name=name,
                provider=index.providers[name],
                state=_state_of(h, name in opted_set, stale_after, STATES[unseen_rank]),
                last_success_at=h.last_success_at if h else None,
                last_failure_at=h.last_failure_at if h else None,
                consecutive_failures=h.failures if h else 0,
                error_kind=h.error_kind if h else None,
                error_message=error_messages.get(name) if h and h.failures else None,
                writes=extra_details.get("writes"),
                skips=extra_details.get("skips"),
                cursor_age=extra_details.get("cursor_age"),
                push=extra_details.get("push", "-"),
            )
        )
    return Overview(
        rows=tuple(rows),
        counts={s: totals.get(_RANK[s], 0) for s in STATES},
        total=len(index.by_name),
        matched=matched,
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


def _state_of(h: _Health | None, opted_out: bool, stale_after: datetime, unseen: str) -> str:
    if opted_out:
        return "opted_out"
    if h is None:
        return unseen
    if h.failures > 0:
        return "failing"
    if h.last_success_at is None or h.last_success_at < stale_after:
        return "stale"
    return "ok"


def _listed(names: list[str]) -> _Segment:
    return _Segment(len(names), lambda offset, limit: names[offset : offset + limit])


def _merged(sql: _HealthQuery, wanted: str, rank: int, in_sql: int, extra: list[str]) -> _Segment:
    """The calendars of one state by name: the store's, merged with the config's ``extra``."""
    if not extra:
        return _Segment(in_sql, lambda o, n: sql.names(wanted, rank, "name", o, n))
    if not in_sql:
        return _listed(extra)

    def take(offset: int, limit: int) -> list[str]:
        # Rare (calendars that never synced, in a stale window): read the head of both.
        head = sql.names(wanted, rank, "name", 0, offset + limit)
        return sorted([*head, *extra[: offset + limit]], key=_name_key)[offset : offset + limit]

    return _Segment(in_sql + len(extra), take)


def _slice(segments: list[_Segment], offset: int, limit: int) -> list[str]:
    """Names ``offset`` to ``offset + limit`` of the segments one after the other."""
    found: list[str] = []
    for segment in segments:
        if limit <= 0:
            break
        if offset >= segment.count:
            offset -= segment.count
            continue
        taken = segment.take(offset, min(limit, segment.count - offset))
        found += taken
        limit -= len(taken)
        offset = 0
    return found


class _HealthQuery:
    """Counts and ordered names from ``calendar_health``, leaving out ``excluded`` names."""

    def __init__(self, store: Store, stale_after: datetime, excluded: list[str]) -> None:
        t = calendar_health.c
        self.store = store
        self.rank = case(
            (t.consecutive_failures > 0, _RANK["failing"]),
            (or_(t.last_success_at.is_(None), t.last_success_at < stale_after), _RANK["stale"]),
            else_=_RANK["ok"],
        )
        self.excluded = excluded
        self._counts: dict[str, dict[int, int]] = {}

    def _where(self, wanted: str) -> list[Any]:
        t = calendar_health.c
        where: list[Any] = []
        if self.excluded:
            where.append(t.calendar.not_in(self.excluded))
        if wanted:
            where.append(func.lower(t.calendar).contains(wanted, autoescape=True))
        return where

    def counts(self, wanted: str) -> dict[int, int]:
        """Calendars by state rank, whose lowered name contains ``wanted``."""
        if wanted not in self._counts:
            query = (
                select(self.rank.label("rank"), func.count())
                .where(*self._where(wanted))
                .group_by(self.rank)
            )
            with self.store.engine.connect() as conn:
                self._counts[wanted] = {int(r): int(n) for r, n in conn.execute(query)}
        return dict(self._counts[wanted])

    def names(self, wanted: str, rank: int | None, sort: str, offset: int, limit: int) -> list[str]:
        t = calendar_health.c
        where = self._where(wanted)
        if rank is not None:
            where.append(self.rank == rank)
        by_name = (func.lower(t.calendar), t.calendar)
        if sort == "last_success":
            order: tuple[Any, ...] = (t.last_success_at.asc().nulls_first(), *by_name)
        elif sort == "failures":
            order = (t.consecutive_failures.desc(), *by_name)
        else:
            order = by_name
        query = select(t.calendar).where(*where).order_by(*order).offset(offset).limit(limit)
        with self.store.engine.connect() as conn:
            return list(conn.scalars(query))


def _health_of(store: Store, names: Sequence[str]) -> dict[str, _Health]:
    if not names:
        return {}
    t = calendar_health.c
    query = select(
        t.calendar, t.last_success_at, t.last_failure_at, t.consecutive_failures, t.last_error_kind
    ).where(t.calendar.in_(names))
    with store.engine.connect() as conn:
        return {row[0]: _Health(*row) for row in conn.execute(query)}


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
