"""``feedback-agendas run``: the long-running service.

APScheduler is only this process's ticker. Its jobs are module-level functions
that take ids (:func:`sync_job`, :func:`reminder_job`, :func:`send_job`,
:func:`housekeeping_job`); they look the :class:`Daemon` up by id and call one
of its methods with the clock's ``now``. What is due and what was done lives in
our tables (cursors, records, leases, outbox, wins), so a missed tick is just
the next tick, and the scheduler needs no job store of its own.

Each method is also callable directly with any ``now``: tests drive the
daemon with an injected clock and no sleeps.

Several replicas may share one PostgreSQL database: a calendar is synced only
under a lease (``calendar:NAME`` in the leases table) and outbox rows are
claimed with leases too. A replica that dies stops renewing; its work moves
on when the leases expire.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import select, text, update

from feedback_agendas.agendas.block import count_filled_entries, count_filled_praise, read_block
from feedback_agendas.agendas.classify import MeetingKind
from feedback_agendas.agendas.decide import ActionKind
from feedback_agendas.agendas.errors import FeedbackAgendasError, PermissionDenied
from feedback_agendas.agendas.model import EventRef
from feedback_agendas.agendas.plan import SlotKind
from feedback_agendas.agendas.policy import Team
from feedback_agendas.integrations.calendars.base import CalendarProvider
from feedback_agendas.integrations.notify.apprise_notifier import AppriseNotifier
from feedback_agendas.integrations.notify.base import Notifier, channel_id
from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.reminders.outbox import DEAD, Outbox, OutboxItem
from feedback_agendas.scheduler.reminders.planning import (
    CELEBRATION,
    DIGEST_MANAGER,
    DIGEST_TEAM,
    MEETING_KINDS,
    ONE_ON_ONE_SLOTS,
    MeetingSlot,
    PersonalChannels,
    PrivacyConflict,
    QuietHours,
    ReminderRenderer,
    ReminderSettings,
    plan_celebration,
    plan_digests,
    plan_meeting_reminders,
    plan_privacy_alerts,
    schedule_outside_quiet_hours,
)
from feedback_agendas.scheduler.reminders.wins import (
    is_vague_praise,
    log_win,
    praise_streak,
    record_meeting_praise,
    record_one_on_one,
    wins_between,
)
from feedback_agendas.scheduler.service.commands import make_renderer
from feedback_agendas.scheduler.service.metrics import CONTENT_TYPE_LATEST, DaemonMetrics
from feedback_agendas.scheduler.storage import leases
from feedback_agendas.scheduler.storage.db import write_transaction
from feedback_agendas.scheduler.storage.store import CalendarHealth, Store
from feedback_agendas.scheduler.storage.tables import MAX_OCCURRENCE_KEY
from feedback_agendas.scheduler.storage.tables import praise_readbacks as readbacks_table
from feedback_agendas.scheduler.sync.cycle import fail_cycle, run_calendar, utc_now
from feedback_agendas.scheduler.sync.failures import (
    AUTH,
    CONFIG,
    INTERNAL,
    NOT_FOUND,
    PERMISSION,
    describe_failure,
    error_kind,
)
from feedback_agendas.scheduler.sync.fingerprint import rules_fingerprint
from feedback_agendas.scheduler.sync.org_directory import RulesCache
from feedback_agendas.scheduler.sync.providers import build_provider
from feedback_agendas.scheduler.sync.report import CycleReport

log = logging.getLogger(__name__)

CALENDAR_LEASE = "calendar:"
# A cycle that failed so is followed by a freshly built provider; any other
# keeps it (and with it a quota cool-down, tokens, connections).
REBUILD_PROVIDER_AFTER = frozenset({AUTH, CONFIG, INTERNAL, NOT_FOUND, PERMISSION})
READBACK_WINDOW = timedelta(hours=24)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")



def occurrence_key(ref: EventRef, start: datetime) -> str:
    """A stable id of one meeting occurrence: calendar, event and original start.

    A key longer than its columns (an event id of 1,000 characters) keeps its
    head and ends in a digest of the whole key: the same in every process,
    and still unique.
    """
    key = f"{ref.calendar}/{ref.event_id}/{ref.recurrence_id or start.astimezone(UTC).isoformat()}"
    if len(key) <= MAX_OCCURRENCE_KEY:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{key[: MAX_OCCURRENCE_KEY - len(digest) - 1]}#{digest}"


@dataclass
class SendReport:
    sent: int = 0
    failed: int = 0
    dead: int = 0
    deferred: int = 0
    expired: int = 0
    maybe_duplicate: int = 0
    keys: list[tuple[str, str, str, str]] = field(default_factory=list)


def reminder_settings(cfg: AppConfig) -> ReminderSettings:
    r = cfg.reminders
    quiet = QuietHours(r.quiet_hours.start, r.quiet_hours.end) if r.quiet_hours else None
    digest = r.weekly_digest
    return ReminderSettings(
        before_team_minutes=r.before_team_meeting_minutes,
        before_one_on_one_minutes=r.before_one_on_one_minutes,
        quiet_hours=quiet,
        celebrations=r.celebrations,
        digest_weekday=WEEKDAYS.index(digest.weekday) if digest else None,
        digest_time=digest.time if digest else ReminderSettings().digest_time,
    )


class Daemon:
    """One replica: syncs calendars under leases, plans and sends reminders."""

    def __init__(
        self,
        cfg: AppConfig,
        *,
        store: Store | None = None,
        clock: Callable[[], datetime] = utc_now,
        notifier: Notifier | None = None,
        provider_factory: Callable[[Any], CalendarProvider] | None = None,
        replica_id: str | None = None,
        lease_ttl: timedelta = timedelta(seconds=60),
        metrics: DaemonMetrics | None = None,
    ) -> None:
        self.cfg = cfg
        self.store = store or Store.open(cfg.storage.url)
        self.engine = self.store.engine
        self.clock = clock
        self.notifier = notifier or AppriseNotifier()
        # CalDAV calendars reuse the collection URLs discovered by any process;
        # providers time their rate limits and quota cool-downs on our clock.
        self.provider_factory = provider_factory or partial(
            build_provider, store=self.store, clock=lambda: self.clock().timestamp()
        )
        self.replica_id = (
            replica_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
        self.lease_ttl = lease_ttl
        self.metrics = metrics or DaemonMetrics()
        self.outbox = Outbox(self.engine, max_attempts=cfg.reminders.max_attempts)
        # The config's teams, plus the directory's (org.directory), refreshed daily.
        self.rules_cache = RulesCache(cfg)
        self.renderer = make_renderer(cfg)
        self.rules = self.rules_cache.rules(clock())
        # The rules with their fingerprint, swapped as one: a cycle reads both.
        self._rules_fingerprint = (self.rules, rules_fingerprint(self.rules, self.renderer))
        self.teams = cfg.teams()
        self.personal = cfg.personal_channels()
        self.settings = reminder_settings(cfg)
        self.messages = ReminderRenderer()
        self.calendars = {c.name: c for c in cfg.calendars}
        self.urls = self._channel_urls()
        self.last_cycle_at: datetime | None = None
        # Set by the service when push channels are on: until when calendar
        # NAME has a live channel (None: no channel, poll at the interval).
        self.push_live_until: Callable[[str], datetime | None] = lambda _name: None
        self.push_fallback = timedelta(seconds=cfg.sync.push_fallback_seconds)
        self._last_synced: dict[str, datetime] = {}
        self.stopping = threading.Event()
        self.started_at = clock()
        self._held: set[str] = set()
        self._held_lock = threading.Lock()
        # One provider per calendar for the life of the process, with the config
        # entry it was built from; and one cycle of a calendar at a time.
        self._providers: dict[str, tuple[Any, CalendarProvider]] = {}
        self._turns: dict[str, _Turn] = {}
        self._turns_lock = threading.Lock()

    def _channel_urls(self) -> dict[str, str]:
        urls: dict[str, str] = {}
        for team in self.teams.values():
            for url in (*team.notify, *self.personal.get(team.manager, ())):
                urls[channel_id(url)] = url
        return urls

    # -- sync ----------------------------------------------------------------

    def poll_calendar(self, name: str, now: datetime | None = None) -> CycleReport | None:
        """The interval tick: sync ``name``, unless push keeps it current.

        With a live push channel, Google tells us when the calendar changes,
        so a quiet calendar costs no requests; the poll still runs once per
        ``sync.push_fallback_seconds``, because notifications can be lost.
        """
        now = now or self.clock()
        live_until = self.push_live_until(name)
        last = self._last_synced.get(name)
        if live_until and live_until > now and last and now - last < self.push_fallback:
            return None
        return self.sync_calendar(name, now)

    def sync_calendar(self, name: str, now: datetime | None = None) -> CycleReport | None:
        """One cycle of calendar ``name`` under its lease; None if it did not run now.

        At most one cycle of a calendar runs at a time in this process, whatever
        asked for it (the interval job, a push notification, a direct call). A
        request that arrives while a cycle runs is not lost: that cycle runs
        once more when it ends (any number of requests meanwhile make one more
        cycle), and this call returns None at once. None also means that
        another replica holds the calendar's lease.

        Never raises: any failure (the provider cannot be built, the cycle,
        the reminder planning after it, the database) ends this calendar's
        cycle only, is logged, counted and, where the database allows, written
        to the run log; the lease is given back in every case.
        """
        turn = self._turn(name)
        with turn.lock:
            if turn.running:
                turn.again = True
                return None
            turn.running = True
        try:
            report = self._cycle(name, now or self.clock())
            while True:
                with turn.lock:
                    if not turn.again or self.stopping.is_set():
                        turn.running = turn.again = False
                        return report
                    turn.again = False
                self._cycle(name, self.clock())
        except BaseException:
            with turn.lock:
                turn.running = turn.again = False
            raise

    def _turn(self, name: str) -> _Turn:
        with self._turns_lock:
            return self._turns.setdefault(name, _Turn())

    def provider_for(self, name: str) -> CalendarProvider:
        """The provider of calendar ``name``: built once, kept while its config entry is unchanged.

        It carries what a calendar's cycles learn: rate limits and quota
        cool-downs, credentials and tokens, discovered URLs, open connections.
        Call only inside the calendar's turn (:meth:`sync_calendar`).
        """
        calendar = self.calendars[name]
        cached = self._providers.get(name)
        if cached is not None and cached[0] == calendar:
            return cached[1]
        self._drop_provider(name)
        provider = self.provider_factory(calendar)
        self._providers[name] = (calendar, provider)
        return provider

    def _drop_provider(self, name: str) -> None:
        cached = self._providers.pop(name, None)
        if cached is None:
            return
        try:
            cached[1].close()
        except Exception as exc:  # closing must not hide the cycle's outcome
            log.warning("calendar %s: closing the provider failed: %s", name, type(exc).__name__)

    def _cycle(self, name: str, now: datetime) -> CycleReport | None:
        """Claim the lease, run one cycle, give the lease back; None if another replica has it."""
        resource = CALENDAR_LEASE + name
        try:
            claimed = leases.claim(self.store, [resource], self.replica_id, self.lease_ttl, now, 1)
        except Exception as exc:  # the database is unreachable: nothing to release
            report = CycleReport(calendar=name, started_at=now)
            fail_cycle(self.store, report, exc, finished_at=now, dry_run=True)
            self._count_cycle(report)
            return report
        if not claimed:
            return None
        with self._held_lock:
            self._held.add(resource)
        rules, fingerprint = self._rules_fingerprint
        try:
            report = run_calendar(
                name,
                partial(self.provider_for, name),
                self.store,
                rules,
                self.renderer,
                now,
                clock=self.clock,
                fingerprint=fingerprint,
                after=lambda provider, report: self._after_cycle(provider, report, now),
                keep_provider=True,
            )
            if report.error is None:
                self._last_synced[name] = now
            elif report.error in REBUILD_PROVIDER_AFTER:
                # Credentials or a setting may be fixed by the next cycle: build
                # the provider again. A cool-down or a network error keeps it.
                self._drop_provider(name)
            self._count_cycle(report)
            return report
        finally:
            try:
                leases.release(self.store, [resource], self.replica_id)
            except Exception as exc:  # it expires on its own
                log.warning("calendar %s: releasing the lease failed: %s", name, type(exc).__name__)
            with self._held_lock:
                self._held.discard(resource)

    def _count_cycle(self, report: CycleReport) -> None:
        self.metrics.cycles.labels("ok" if report.ok else "error").inc()
        for kind, n in report.errors.items():
            self.metrics.calendar_errors.labels(report.calendar, kind).inc(n)
        finished = report.finished_at or report.started_at
        if report.ok:
            self.metrics.calendar_last_success.labels(report.calendar).set(finished.timestamp())
            self.metrics.calendar_consecutive_failures.labels(report.calendar).set(0)
        else:  # housekeeping brings both back to what all replicas recorded
            self.metrics.calendar_consecutive_failures.labels(report.calendar).inc()
        for kind, n in report.requests.items():
            self.metrics.provider_requests.labels(kind).inc(n)
        self.metrics.provider_writes.inc(report.writes)
        for kind, n in report.errors.items():
            self.metrics.errors.labels(kind).inc(n)
        for decision in report.privacy_conflicts():
            self.metrics.privacy_conflicts.labels(decision.privacy_conflict).inc()
        finished = report.finished_at or report.started_at
        self.last_cycle_at = finished
        self.metrics.last_cycle.set(finished.timestamp())

    def _after_cycle(self, provider: CalendarProvider, report: CycleReport, now: datetime) -> None:
        """Turn the cycle's decisions into reminder rows, then read back ended meetings."""
        slots: list[MeetingSlot] = []
        watch: list[dict[str, Any]] = []
        for decision in report.decisions:
            meeting = decision.meeting
            span = _next_span(meeting, now)
            if span is None:
                continue
            start, end = span
            key = occurrence_key(meeting.ref, start)
            plan = decision.plan
            if decision.action is ActionKind.SKIPPED or not decision.slots or plan is None:
                self.outbox.cancel(key, MEETING_KINDS, now)
                continue
            slot = MeetingSlot(
                occurrence=key,
                kind=decision.classification.kind,
                slot=plan.slot,
                team=decision.classification.team,
                start=start,
                end=end,
            )
            slots.append(slot)
            team_praise = slot.kind is MeetingKind.TEAM and slot.slot is SlotKind.PRAISE
            one_on_one = slot.kind is MeetingKind.ONE_ON_ONE and slot.slot in ONE_ON_ONE_SLOTS
            if (team_praise or one_on_one) and slot.team:
                watch.append(
                    {
                        "occurrence": key,
                        "calendar": meeting.ref.calendar,
                        "event_id": meeting.ref.event_id,
                        "recurrence_id": meeting.ref.recurrence_id,
                        "team": slot.team,
                        "ends_at": end,
                        "slot": slot.slot.value,
                    }
                )
        self.outbox.enqueue(
            plan_meeting_reminders(slots, self.teams, self.personal, self.settings, now), now
        )
        enqueue_privacy_alerts(self.outbox, self.teams, self.personal, [report], now)
        self._watch(watch)
        self.read_back_ended(provider, now)

    def _watch(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        t = readbacks_table
        with write_transaction(self.engine) as conn:
            known = set(
                conn.scalars(
                    select(t.c.occurrence).where(
                        t.c.occurrence.in_([r["occurrence"] for r in rows])
                    )
                )
            )
            fresh = [r for r in rows if r["occurrence"] not in known]
            if fresh:
                conn.execute(t.insert(), fresh)

    def read_back_ended(self, provider: CalendarProvider, now: datetime) -> int:
        """Read back this calendar's ended meetings, once each; return the wins recorded.

        A team meeting's filled praise entries are public wins and queue the
        team's celebration. A 1:1 with any entry filled in is one private win
        (see :meth:`_record_one_on_one`).
        """
        t = readbacks_table
        with self.engine.connect() as conn:
            due = conn.execute(
                select(t)
                .where(
                    t.c.calendar == provider.name,
                    t.c.read_at.is_(None),
                    t.c.ends_at <= now,
                )
                .order_by(t.c.ends_at)  # oldest first: a series compares with the one before
            ).all()
        recorded = 0
        for row in due:
            description = version = None
            if row.ends_at > now - READBACK_WINDOW:
                meeting = provider.get(EventRef(row.calendar, row.event_id, row.recurrence_id))
                if meeting is not None:
                    description = meeting.description
                    version = _version(meeting.etag)
            vague = 0
            if row.slot in ONE_ON_ONE_SLOTS:
                filled = count_filled_entries(description) if description else 0
            else:
                filled, vague = praise_counts(description) if description else (0, 0)
            if filled and self._read_before(row, version):
                log.info(
                    "%s: %s occurrence ending %s: the series was not edited since its last"
                    " read-back; its entries were counted then",
                    row.calendar,
                    "a 1:1" if row.slot in ONE_ON_ONE_SLOTS else "a team meeting",
                    row.ends_at.isoformat(),
                )
            elif row.slot in ONE_ON_ONE_SLOTS:
                recorded += self._record_one_on_one(row, filled, now)
            else:
                recorded += self._record_team_praise(row, filled, vague, now)
            with write_transaction(self.engine) as conn:
                conn.execute(
                    update(t)
                    .where(t.c.occurrence == row.occurrence)
                    .values(read_at=now, filled=filled, version=version)
                )
        return recorded

    def _read_before(self, row: Any, version: str | None) -> bool:
        """True when an earlier occurrence of this series was read back from the same version.

        A series keeps one description for all its occurrences: entries filled
        in for one week are still there the next. They count again only after
        the series was edited (its etag changed). An occurrence moved or edited
        on its own has a ``recurrence_id`` and a description of its own.
        """
        if version is None or row.recurrence_id is not None:
            return False
        t = readbacks_table
        with self.engine.connect() as conn:
            last = conn.scalar(
                select(t.c.version)
                .where(
                    t.c.calendar == row.calendar,
                    t.c.event_id == row.event_id,
                    t.c.recurrence_id.is_(None),
                    t.c.occurrence != row.occurrence,
                    t.c.read_at.is_not(None),
                    t.c.version.is_not(None),
                    t.c.ends_at < row.ends_at,
                )
                .order_by(t.c.ends_at.desc())
                .limit(1)
            )
        return last == version

    def _record_team_praise(self, row: Any, filled: int, vague: int, now: datetime) -> int:
        team = self.teams.get(row.team)
        if team is None or not filled:
            return 0
        day = row.ends_at.astimezone(team.zone).date()
        if not record_meeting_praise(
            self.engine,
            team=team.name,
            occurrence=row.occurrence,
            day=day,
            filled=filled,
            vague=vague,
            now=now,
        ):
            return 0
        self.metrics.wins.labels("praise").inc(filled)
        today = now.astimezone(team.zone).date()
        self.outbox.enqueue(plan_celebration(team, today, self.settings, now), now)
        return filled

    def _record_one_on_one(self, row: Any, filled: int, now: datetime) -> int:
        """A 1:1 with an entry filled in is done: one private win, never a celebration.

        ``corrective`` for the "do better"/"stop doing" focus, ``praise`` for
        "do well"; either shows only as a number in the manager's digest.
        """
        team = self.teams.get(row.team)
        if team is None or not filled:
            return 0
        kind = "praise" if row.slot == SlotKind.WELL else "corrective"
        day = row.ends_at.astimezone(team.zone).date()
        if not record_one_on_one(
            self.engine, team=team.name, occurrence=row.occurrence, day=day, kind=kind, now=now
        ):
            return 0
        self.metrics.wins.labels(kind).inc()
        return 1

    # -- wins, digests ---------------------------------------------------------

    def log_win(self, team_name: str, kind: str, now: datetime | None = None) -> None:
        """A win logged on the command line; praise also queues today's celebration."""
        now = now or self.clock()
        team = self.teams.get(team_name)
        if team is None:
            raise FeedbackAgendasError(f"no team named {team_name!r}")
        today = now.astimezone(team.zone).date()
        log_win(self.engine, team=team.name, kind=kind, day=today, now=now)
        self.metrics.wins.labels(kind).inc()
        if kind == "praise":
            self.outbox.enqueue(plan_celebration(team, today, self.settings, now), now)

    def plan_reminders(self, now: datetime | None = None) -> int:
        """Queue the weekly digests whose time has come."""
        now = now or self.clock()
        return self.outbox.enqueue(
            plan_digests(self.teams.values(), self.personal, self.settings, now), now
        )

    # -- sending ---------------------------------------------------------------

    def send_due(self, *, limit: int = 50) -> SendReport:
        """Claim due outbox rows and deliver them, one channel each.

        Slow channels can keep this loop busy for longer than a lease, so each
        batch is claimed, and each row begun, at the clock's time then: a lease
        dated from when the call began could already have run out, and another
        replica could claim and send the same row.
        """
        report = SendReport()
        report.expired += self.outbox.expire_overdue(self.clock())
        self.metrics.reminders_expired.inc(report.expired)
        while not self.stopping.is_set():
            items = self.outbox.claim(
                self.replica_id, self.clock(), limit=limit, lease=self.lease_ttl
            )
            if not items:
                break
            for index, item in enumerate(items):
                if self.stopping.is_set():
                    # shutting down: give back what we have not started
                    for rest in items[index:]:
                        self.outbox.defer(rest, self.replica_id, rest.due_at)
                    break
                self._send_one(item, self.clock(), report)
        return report

    def _send_one(self, item: OutboxItem, now: datetime, report: SendReport) -> None:
        team = self.teams.get(item.team or "")
        url = self.urls.get(item.channel)
        if team is None or url is None:  # the channel was removed from the config
            self.outbox.expire(item, self.replica_id)
            report.expired += 1
            return
        when = schedule_outside_quiet_hours(
            now, item.expires_at, team.zone, self.settings.quiet_hours, pull_forward=False
        )
        if when is None:
            self.outbox.expire(item, self.replica_id)
            report.expired += 1
            self.metrics.reminders_expired.inc()
            return
        if when > now:
            self.outbox.defer(item, self.replica_id, when)
            report.deferred += 1
            return
        message = self.messages.render(item, team, self._counts(item, team))
        if not self.outbox.begin_send(item, self.replica_id, now):
            return
        if item.maybe_sent:
            report.maybe_duplicate += 1
            self.metrics.reminders_maybe_duplicate.inc()
        try:
            self.notifier.send(url, message)
        except FeedbackAgendasError as exc:
            kind = type(exc).__name__
            state = self.outbox.mark_failed(item, self.replica_id, now, kind)
            if isinstance(exc, PermissionDenied) and state != DEAD:
                pass  # the URL is unusable; it will dead-letter after its tries
            self.metrics.reminders_failed.labels(item.kind).inc()
            self.metrics.reminder_channel_failures.labels(item.channel, error_kind(exc)).inc()
            self.metrics.errors.labels(kind).inc()
            report.failed += 1
            if state == DEAD:
                self.metrics.reminders_dead.labels(item.kind).inc()
                report.dead += 1
            log.warning("reminder %s to channel %s failed: %s", item.kind, item.channel, kind)
            return
        self.outbox.mark_sent(item, self.replica_id, self.clock())
        self.metrics.reminders_sent.labels(item.kind).inc()
        report.sent += 1
        report.keys.append(item.key)

    def _counts(self, item: OutboxItem, team: Team) -> dict[str, int]:
        if item.kind == CELEBRATION:
            day = datetime.fromisoformat(item.params["day"]).date()
            wins = wins_between(self.engine, team.name, day, day)
            return {"praise": wins.praise, "vague": wins.vague}
        if item.kind in (DIGEST_TEAM, DIGEST_MANAGER):
            monday = datetime.fromisoformat(item.params["week_start"]).date()
            wins = wins_between(self.engine, team.name, monday, monday + timedelta(days=6))
            counts = {
                "praise": wins.praise,
                "vague": wins.vague,
                "streak": praise_streak(self.engine, team.name, monday),
            }
            if item.kind == DIGEST_MANAGER:  # corrective and 1:1 wins: numbers, only here
                counts["corrective"] = wins.corrective
                counts["one_on_one_praise"] = wins.one_on_one_praise
            return counts
        return {}

    # -- housekeeping ------------------------------------------------------------

    def housekeeping(self, now: datetime | None = None) -> None:
        """Renew our leases, expire stale rows, refresh the gauges and (daily) the teams."""
        now = now or self.clock()
        rules = self.rules_cache.rules(now)
        if rules is not self._rules_fingerprint[0]:
            self._rules_fingerprint = (rules, rules_fingerprint(rules, self.renderer))
        self.rules = rules
        with self._held_lock:
            held = sorted(self._held)
        leases.heartbeat(self.store, held, self.replica_id, self.lease_ttl, now)
        self.outbox.extend_leases(self.replica_id, now, self.lease_ttl)
        self.metrics.leases_held.labels("calendar").set(len(held))
        self.metrics.leases_held.labels("outbox").set(self.outbox.held_by(self.replica_id, now))
        for state, count in self.outbox.counts().items():
            self.metrics.outbox_rows.labels(state).set(count)
        ready, _body = self.readiness(now)  # also refreshes the per-calendar gauges
        self.metrics.ready.set(1 if ready else 0)

    def readiness(self, now: datetime | None = None) -> tuple[bool, str]:
        """Ready when the database answers, a cycle finished recently, and enough calendars succeed.

        A calendar is failing when its last successful cycle (by any replica,
        from ``calendar_health``) is older than ``server.ready_after_intervals``
        sync intervals (with a live push channel: than the push fallback), or
        it never had one and this process has run that long. Not ready when
        the failing share is above ``server.ready_max_failing_share``. The
        answer is a JSON object that names the failing calendars.
        """
        now = now or self.clock()
        try:
            with self.engine.connect() as conn:
                conn.execute(text("select 1"))
            health = self.store.calendar_health()
        except Exception as exc:
            return False, _ready_body(False, f"database unreachable: {type(exc).__name__}")
        failing = self._failing_calendars(health, now)
        if self.last_cycle_at is None:
            return False, _ready_body(False, "no cycle finished yet", failing)
        limit = timedelta(seconds=3 * self.cfg.sync.interval_seconds + 60)
        if now - self.last_cycle_at > limit:
            return False, _ready_body(False, "the last cycle is too old", failing)
        share = len(failing) / max(1, len(self.calendars))
        if failing and share > self.cfg.server.ready_max_failing_share:
            why = f"{len(failing)} of {len(self.calendars)} calendar(s) not synced successfully"
            return False, _ready_body(False, why, failing)
        return True, _ready_body(True, "ready", failing)

    def _failing_calendars(
        self, health: Mapping[str, CalendarHealth], now: datetime
    ) -> list[dict[str, Any]]:
        interval = timedelta(seconds=self.cfg.sync.interval_seconds)
        window = self.cfg.server.ready_after_intervals * interval
        failing = []
        for name in sorted(self.calendars):
            row = health.get(name)
            last = row.last_success_at if row else None
            failures = row.consecutive_failures if row else 0
            self.metrics.calendar_last_success.labels(name).set(last.timestamp() if last else 0)
            self.metrics.calendar_consecutive_failures.labels(name).set(failures)
            allowed = window
            live_until = self.push_live_until(name)
            if live_until and live_until > now:
                allowed = max(window, self.push_fallback + interval)
            if now - (last or self.started_at) > allowed:
                failing.append(
                    {
                        "calendar": name,
                        "last_success": last.isoformat() if last else None,
                        "consecutive_failures": failures,
                        "error_kind": row.last_error_kind if row else None,
                    }
                )
        return failing

    def reclaim_dead_local_leases(self) -> int:
        """Give back the leases of earlier processes on this host that are gone; return how many.

        A default replica id is ``HOST-PID-RANDOM``. A process killed with
        ``kill -9`` (or by the OOM killer) cannot release its leases, and a
        restarted daemon would wait out the whole lease (60 s) before it may
        sync those calendars or send those reminders. On this host we can tell
        that the holder is dead: its pid no longer exists, or it is our own pid
        under another id (a container restarted as pid 1). A pid that exists is
        treated as alive, even if it was reused: then we wait, which is safe.
        Rows it was sending stay ``sending``; a resend is counted as a
        possible duplicate.

        Call once at start-up, before any work, in a process that runs one daemon.
        """
        pattern = re.compile(re.escape(socket.gethostname()) + r"-(\d+)-[0-9a-f]{6}")
        calendar_holders = leases.holders(self.store, CALENDAR_LEASE)
        candidates = {h for h in calendar_holders.values() if h} | self.outbox.lease_owners()
        dead = set()
        for holder in candidates - {self.replica_id}:
            found = pattern.fullmatch(holder)
            if found and _process_gone(int(found.group(1))):
                dead.add(holder)
        released = 0
        for holder in sorted(dead):
            held = [r for r, h in calendar_holders.items() if h == holder]
            leases.release(self.store, held, holder)
            released += len(held) + self.outbox.release(holder)
        return released

    def metrics_text(self) -> tuple[bytes, str]:
        return self.metrics.render(), CONTENT_TYPE_LATEST

    def shutdown(self) -> None:
        """Stop taking work and give back every lease we hold.

        With the database gone the leases cannot be given back; they expire on
        their own, and the process still stops.
        """
        self.stopping.set()
        with self._held_lock:
            held = sorted(self._held)
            self._held.clear()
        try:
            leases.release(self.store, held, self.replica_id)
            self.outbox.release(self.replica_id)
        except Exception as exc:
            failure = describe_failure(exc, subject="shutdown")
            log.warning("%s; the leases expire on their own", failure.message)
        for name in list(self._providers):
            self._drop_provider(name)


@dataclass
class _Turn:
    """Whether a cycle of one calendar runs in this process, and whether another was asked for."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    running: bool = False
    again: bool = False


def _ready_body(ready: bool, reason: str, failing: list[dict[str, Any]] | None = None) -> str:
    """The JSON answer of ``/readyz``: calendar names and error kinds, never a message."""
    return json.dumps(
        {"ready": ready, "reason": reason, "failing_calendars": failing or []}, sort_keys=True
    )


def _process_gone(pid: int) -> bool:
    """True when no process ``pid`` runs on this host, or it is this very process."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's live process
        return False
    return False


def praise_counts(description: str) -> tuple[int, int]:
    """(filled praise entries, how many of them are vague) in a block; counts only."""
    filled = count_filled_praise(description)
    if not filled:
        return 0, 0
    body = read_block(description) or ""
    vague = 0
    for line in body.split("\n"):
        label, sep, rest = line.removeprefix("- ").partition(":")
        if sep and label.strip().casefold() in ("praise", "beröm"):
            entry = rest.strip(" _.…-–—")
            if entry and is_vague_praise(entry):
                vague += 1
    return filled, min(vague, filled)


def _version(etag: str) -> str | None:
    """A fixed-size digest of a provider's version token; None when it has none."""
    if not etag:
        return None
    return hashlib.sha256(etag.encode("utf-8")).hexdigest()[:32]


def enqueue_privacy_alerts(
    outbox: Outbox,
    teams: Mapping[str, Team],
    personal: PersonalChannels,
    reports: list[CycleReport],
    now: datetime,
) -> int:
    """Queue, due now, the managers' private messages about the cycles' privacy conflicts."""
    conflicts = [c for report in reports for c in _conflicts(report, now)]
    if not conflicts:
        return 0
    rows = plan_privacy_alerts(conflicts, teams, personal, now)
    for conflict in conflicts:
        owner = conflict.owner.strip().lower()
        if not any(t.manager == owner and personal.get(t.manager) for t in teams.values()):
            log.warning(
                "calendar %s: privacy conflict in event %s (%s): its manager has no private"
                " channel (people[].notify) to be told through",
                conflict.calendar,
                conflict.event_id,
                conflict.reason,
            )
    return outbox.enqueue(rows, now)


def _conflicts(report: CycleReport, now: datetime) -> list[PrivacyConflict]:
    """The cycle's privacy conflicts, as the manager's alert needs them: ids and codes."""
    conflicts = []
    for decision in report.privacy_conflicts():
        meeting = decision.meeting
        span = _next_span(meeting, now)
        conflicts.append(
            PrivacyConflict(
                calendar=meeting.ref.calendar,
                event_id=meeting.ref.event_id,
                recurrence_id=meeting.ref.recurrence_id,
                owner=meeting.owner,
                team=decision.classification.team,
                reason=str(decision.privacy_conflict),
                start=span[0] if span else meeting.start,
            )
        )
    return conflicts


def _next_span(meeting: Any, now: datetime) -> tuple[datetime, datetime] | None:
    """The occurrence reminders are about: the next one of a series, else the event itself."""
    if meeting.is_series:
        from feedback_agendas.agendas.recurrence import RecurrenceError, next_occurrence

        try:
            return next_occurrence(meeting, now - READBACK_WINDOW)
        except RecurrenceError:  # an unreadable rule: no reminders, the engine logs the event
            return None
    return meeting.start, meeting.end


# -- the ticker's jobs: module-level functions that take ids -------------------

_DAEMONS: dict[str, Daemon] = {}


def register(daemon: Daemon) -> str:
    _DAEMONS[daemon.replica_id] = daemon
    return daemon.replica_id


def sync_job(daemon_id: str, calendar: str) -> None:
    """The interval tick of one calendar (skipped while push keeps it current)."""
    daemon = _DAEMONS[daemon_id]
    if not daemon.stopping.is_set():
        daemon.poll_calendar(calendar)


def push_sync_job(daemon_id: str, calendar: str) -> None:
    """A push notification said the calendar changed: sync it now."""
    daemon = _DAEMONS[daemon_id]
    if not daemon.stopping.is_set():
        daemon.sync_calendar(calendar)


def reminder_job(daemon_id: str) -> None:
    _run_job(_DAEMONS[daemon_id], "plan", lambda daemon: daemon.plan_reminders())


def send_job(daemon_id: str) -> None:
    _run_job(_DAEMONS[daemon_id], "send", lambda daemon: daemon.send_due())


def housekeeping_job(daemon_id: str) -> None:
    _run_job(_DAEMONS[daemon_id], "housekeeping", lambda daemon: daemon.housekeeping())


def _run_job(daemon: Daemon, job: str, work: Callable[[Daemon], object]) -> None:
    """One tick of a job; a failure is one log line and a count, never the ticker's traceback.

    The next tick tries again (what is due lives in the database). A bug is
    logged with its traceback.
    """
    if daemon.stopping.is_set():
        return
    try:
        work(daemon)
    except Exception as exc:
        failure = describe_failure(exc, subject=f"the {job} job")
        daemon.metrics.job_failures.labels(job, failure.kind).inc()
        if failure.expected:
            log.warning("%s", failure.message)
        else:
            log.error("%s", failure.message, exc_info=exc)


def webhook_router(
    daemon: Daemon, tokens: Mapping[str, str], trigger: Callable[[str], None]
) -> Callable[[Mapping[str, str], bytes], int]:
    """A ``/webhooks/google`` callback: verify the channel token, then sync that calendar now.

    ``tokens`` maps a calendar name to the token of its push channel.
    """
    from feedback_agendas.integrations.calendars.google_push import verify_push

    def on_push(headers: Mapping[str, str], _body: bytes) -> int:
        for calendar, token in tokens.items():
            if verify_push(headers, token):
                trigger(calendar)
                return 200
        return 403

    return on_push
