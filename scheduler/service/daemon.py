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

A reload (:meth:`Daemon.use_config`, driven by
:mod:`feedback_agendas.scheduler.service.reload`) swaps the config under the
running jobs: each calendar's next cycle runs on the new one.

It runs past 400 lines because :class:`Daemon` is the one place where a
replica's moving state lives (its calendars, rules and renderer, providers,
held leases, reminder settings) and every change of it (a cycle, a source's
new list, a reload, a shutdown) must see the others' locks and turns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from feedback_agendas.agendas.errors import FeedbackAgendasError
from feedback_agendas.agendas.policy import Rules, Team
from feedback_agendas.agendas.render import AgendaRenderer
from feedback_agendas.integrations.calendars.base import (
    CalendarConfig,
    CalendarProvider,
    writes_events,
)
from feedback_agendas.integrations.notify.apprise_notifier import AppriseNotifier
from feedback_agendas.integrations.notify.base import Notifier
from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.reminders.after_sync import (
    entry_labels,
    queue_after_cycle,
    reminder_settings,
)
from feedback_agendas.scheduler.reminders.outbox import Outbox
from feedback_agendas.scheduler.reminders.planning import plan_digests
from feedback_agendas.scheduler.reminders.readback import ReadBacks
from feedback_agendas.scheduler.reminders.wins import Wins, log_win_today
from feedback_agendas.scheduler.service.calendar_turns import ProviderCache, Turns
from feedback_agendas.scheduler.service.commands import make_renderer
from feedback_agendas.scheduler.service.metrics import CONTENT_TYPE_LATEST, DaemonMetrics
from feedback_agendas.scheduler.service.readiness import ReplicaState, readiness
from feedback_agendas.scheduler.service.reload import keep_running_settings
from feedback_agendas.scheduler.service.sender import ReminderSender, SendReport
from feedback_agendas.scheduler.service.web.self_service import opt_out_links
from feedback_agendas.scheduler.storage.leases import Leases, local_replica_id
from feedback_agendas.scheduler.storage.opt_outs import opted_out_addresses
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.sync.cycle import fail_cycle, run_calendar, utc_now
from feedback_agendas.scheduler.sync.discovery import CalendarList, with_calendars
from feedback_agendas.scheduler.sync.failures import (
    AUTH,
    CONFIG,
    INTERNAL,
    NOT_FOUND,
    PERMISSION,
    describe_failure,
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
        # The SQLAlchemy engine (not to be confused with the sync engine, sync.cycle).
        self.db = self.store.engine
        self.clock = clock
        self.notifier = notifier or AppriseNotifier()
        # CalDAV calendars reuse the collection URLs discovered by any process;
        # providers time their rate limits and quota cool-downs on our clock.
        self.provider_factory = provider_factory or partial(
            build_provider,
            store=self.store,
            clock=lambda: self.clock().timestamp(),
            now=lambda: self.clock(),
        )
        self.replica_id = replica_id or local_replica_id()
        self.lease_ttl = lease_ttl
        self.leases = Leases(self.db)
        self.metrics = metrics or DaemonMetrics()
        self.outbox = Outbox(self.db, max_attempts=cfg.reminders.max_attempts)
        # The config's calendars and the people its sources (discover:) found,
        # from the stored lists; refreshed daily by housekeeping.
        self.calendar_list = CalendarList(cfg, self.store, holder=self.replica_id)
        self.calendars = {c.name: c for c in self.calendar_list.current(clock())}
        # Set by the service: called with (added, removed) calendar names, and
        # with the new config after a reload (use_config).
        self.on_calendars_changed: Callable[[list[str], list[str]], None] = lambda _a, _r: None
        self.on_config_changed: Callable[[AppConfig], None] = lambda _cfg: None
        # One change of calendars, config or rules at a time (housekeeping, a
        # reload, an opt-out page): none may apply a list or rules read before another's.
        self._changing = threading.RLock()
        # The config's teams, plus the directory's (org.directory) for the owners
        # of every calendar we sync and the sources' teams, refreshed daily.
        self.rules_cache = RulesCache(self.resolved_config())
        self.renderer = make_renderer(cfg)
        # Every team of the rules gets reminders (the directory's too). One dict,
        # updated in place, shared with the read-backs and the sender.
        self.teams: dict[str, Team] = {}
        # The rules with their fingerprint and renderer, swapped as one: a cycle
        # reads all three. They hold the self-service opt-outs too (see _use_rules).
        self._rules_basis: tuple[Rules, frozenset[str], AgendaRenderer] | None = None
        self.personal = cfg.personal_channels()
        self.settings = reminder_settings(cfg)
        self.last_cycle_at: datetime | None = None
        # The message of each calendar's failure in this process (as logged), for the dashboard.
        self.last_errors: dict[str, str] = {}
        # Set by the service when push channels are on: until when calendar
        # NAME has a live channel (None: no channel, poll at the interval).
        self.push_live_until: Callable[[str], datetime | None] = lambda _name: None
        self.push_fallback = timedelta(seconds=cfg.sync.push_fallback_seconds)
        self._last_synced: dict[str, datetime] = {}
        self.stopping = threading.Event()
        self.started_at = clock()
        self._held: set[str] = set()
        self._held_lock = threading.Lock()
        # One cycle of a calendar at a time, and one provider per calendar for
        # the life of the process (while its config entry is unchanged).
        self._turns = Turns(self.stopping)
        self._providers = ProviderCache(self.provider_factory)
        self.readbacks = ReadBacks(
            self.db,
            teams=self.teams,
            settings=self.settings,
            outbox=self.outbox,
            labels=entry_labels(cfg),
            on_win=lambda kind, n: self.metrics.wins.labels(kind).inc(n),
        )
        self.sender = ReminderSender(
            self.db,
            self.outbox,
            self.notifier,
            teams=self.teams,
            personal=self.personal,
            settings=self.settings,
            owner=self.replica_id,
            lease=lease_ttl,
            clock=lambda: self.clock(),
            metrics=self.metrics,
            stopping=self.stopping,
            opt_out_link=opt_out_links(cfg),
            agenda_renderer=lambda: self.renderer,
        )
        self._use_rules(self.rules_cache.rules(clock()))

    # -- calendars and teams ---------------------------------------------------

    def refresh_calendars(
        self, now: datetime | None = None, *, force: bool = False
    ) -> tuple[list[str], list[str]]:
        """Bring the calendars up to date with the sources' lists; return (added, removed).

        Lists a source when it is due (daily, or at once when ``force``) and
        picks up a list another process stored (a replica's refresh,
        ``discover --accept``). A removed calendar is no longer synced.
        """
        now = now or self.clock()
        with self._changing:
            return self._follow_calendars(self.calendar_list.current(now, force=force), now)

    def use_config(self, cfg: AppConfig, now: datetime | None = None) -> tuple[str, ...]:
        """Run on ``cfg`` (a reload) from each calendar's next cycle on; return what needs restart.

        Everything follows: calendars (added ones are scheduled, removed ones
        let go: their provider closed, their lease given back, their records
        kept), rules, policy, goals, opt-outs, templates, teams and reminder
        settings. The settings the running process cannot change (see
        :func:`~feedback_agendas.scheduler.service.reload.keep_running_settings`)
        keep their running values and are returned by key, never by value.

        What can fail (the templates, the sources' stored lists) is done
        before anything changes: on an exception the old config keeps running.
        """
        now = now or self.clock()
        with self._changing:
            return self._use_config(cfg, now)

    def _use_config(self, cfg: AppConfig, now: datetime) -> tuple[str, ...]:
        cfg, needs_restart = keep_running_settings(self.cfg, cfg)
        renderer = make_renderer(cfg)
        listing = self.calendar_list
        if cfg != listing.cfg:  # a source whose scope changed is listed at once
            listing = CalendarList(cfg, self.store, holder=self.replica_id)
        current = listing.current(now)
        # From here on, nothing fails but a bug.
        self.cfg = cfg
        self.calendar_list = listing
        self.renderer = renderer
        self.personal = cfg.personal_channels()
        self.settings = reminder_settings(cfg)
        self.push_fallback = timedelta(seconds=cfg.sync.push_fallback_seconds)
        self.outbox.max_attempts = cfg.reminders.max_attempts
        self.readbacks.settings = self.sender.settings = self.settings
        self.readbacks.labels = entry_labels(cfg)
        self.sender.use_channels(self.personal)
        self._follow_calendars(current, now, rules_changed=True)
        self.on_config_changed(cfg)
        return needs_restart

    def _follow_calendars(
        self, listed: tuple[CalendarConfig, ...], now: datetime, *, rules_changed: bool = False
    ) -> tuple[list[str], list[str]]:
        """Sync ``listed`` from now on; the rules follow the calendars (and a new config)."""
        current = {c.name: c for c in listed}
        added = sorted(set(current) - set(self.calendars))
        removed = sorted(set(self.calendars) - set(current))
        if not rules_changed and not added and not removed and current == self.calendars:
            return [], []
        self.calendars = current
        # The sources' teams at once; the directory (org.directory) is asked
        # about the owners of the calendars now synced.
        self._use_rules(self.rules_cache.use_config(self.resolved_config(), now))
        for name in removed:
            # As a turn of its own: a cycle in flight finishes first, then lets it go.
            self._turns.run(name, partial(self._let_go, name), partial(self._cycle, name, now))
        if added or removed:
            log.info("calendars: %d added, %d no longer synced", len(added), len(removed))
            self.on_calendars_changed(added, removed)
        return added, removed

    def _let_go(self, name: str) -> None:
        """A calendar no longer synced: close its provider, give its lease back (records stay)."""
        self._providers.drop(name)
        try:
            self.leases.release([CALENDAR_LEASE + name], self.replica_id)
        except Exception as exc:  # it expires on its own
            log.warning("calendar %s: releasing the lease failed: %s", name, type(exc).__name__)
        self._last_synced.pop(name, None)
        self.last_errors.pop(name, None)
        self.metrics.forget_calendar(name)

    def refresh_rules(self, now: datetime | None = None) -> Rules:
        """The rules the next cycles use, with the self-service opt-outs read again.

        Housekeeping does this every tick (so a choice recorded by another
        replica or the CLI counts within one tick); whoever records a choice
        in this process may call it at once.
        """
        with self._changing:
            self._use_rules(self.rules_cache.rules(now or self.clock()))
            return self.rules

    def _use_rules(self, base: Rules) -> None:
        """Use ``base`` (the config's and directory's rules) plus the self-service opt-outs.

        The fingerprint is computed again only when either changed, or the
        renderer (a reload's templates or marker). While the
        database cannot be read, the opt-outs last read stay in use.
        """
        known = self._rules_basis
        try:
            opted_out = opted_out_addresses(self.db)
        except SQLAlchemyError as exc:
            log.warning("self-service opt-outs could not be read: %s", type(exc).__name__)
            opted_out = known[1] if known is not None else frozenset()
        renderer = self.renderer
        if (
            known is not None
            and base is known[0]
            and renderer is known[2]
            and opted_out == known[1]
        ):
            return
        rules = base.with_opted_out_users(opted_out)
        self._rules_fingerprint = (rules, rules_fingerprint(rules, renderer), renderer)
        self._rules_basis = (base, opted_out, renderer)
        # The directory's teams get reminders too: the teams follow the rules.
        fresh = {team.name: team for team in rules.org.teams}
        if fresh != self.teams:
            self.teams.clear()
            self.teams.update(fresh)
            self.sender.use_channels(self.personal)
        self.rules = rules
        self.metrics.self_opt_outs.set(len(opted_out))

    def resolved_config(self) -> AppConfig:
        """The config with every calendar this daemon syncs (the sources' people included)."""
        configured = {c.name for c in self.cfg.calendars}
        return with_calendars(
            self.cfg,
            [c for name, c in self.calendars.items() if name not in configured],
            self.calendar_list.teams,
        )

    # -- sync ----------------------------------------------------------------

    def poll_calendar(self, name: str, now: datetime | None = None) -> CycleReport | None:
        """The interval tick: sync ``name``, unless push keeps it current.

        With a live push channel, the backend tells us when the calendar changes,
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
        if name not in self.calendars:  # its source no longer lists this person
            return None
        return self._turns.run(
            name,
            lambda: self._cycle(name, now or self.clock()),
            lambda: self._cycle(name, self.clock()),
        )

    def provider_for(self, name: str) -> CalendarProvider:
        """The provider of calendar ``name`` (see :class:`ProviderCache`); inside its turn only."""
        return self._providers.get(name, self.calendars[name])

    def _cycle(self, name: str, now: datetime) -> CycleReport | None:
        """Claim the lease, run one cycle, give the lease back; None if another replica has it."""
        entry = self.calendars.get(name)
        if entry is None:  # removed while this turn waited (see _follow_calendars)
            self._let_go(name)
            return None
        resource = CALENDAR_LEASE + name
        try:
            claimed = self.leases.claim([resource], self.replica_id, self.lease_ttl, now, 1)
        except Exception as exc:  # the database is unreachable: nothing to release
            report = CycleReport(calendar=name, started_at=now)
            fail_cycle(self.store, report, exc, finished_at=now, dry_run=True)
            self._count_cycle(report)
            return report
        if not claimed:
            return None
        with self._held_lock:
            self._held.add(resource)
        rules, fingerprint, renderer = self._rules_fingerprint
        try:
            report = run_calendar(
                name,
                partial(self._providers.get, name, entry),
                self.store,
                rules,
                renderer,
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
                self._providers.drop(name)
            self._count_cycle(report)
            return report
        finally:
            try:
                self.leases.release([resource], self.replica_id)
            except Exception as exc:  # it expires on its own
                log.warning("calendar %s: releasing the lease failed: %s", name, type(exc).__name__)
            with self._held_lock:
                self._held.discard(resource)

    def _count_cycle(self, report: CycleReport) -> None:
        self.metrics.count_cycle(report)
        self.last_cycle_at = report.finished_at or report.started_at
        if report.ok:
            self.last_errors.pop(report.calendar, None)
        elif report.error_message:
            self.last_errors[report.calendar] = report.error_message

    def _after_cycle(self, provider: CalendarProvider, report: CycleReport, now: datetime) -> None:
        """Queue the cycle's reminders, then read back this calendar's ended meetings."""
        queue_after_cycle(
            report,
            now,
            outbox=self.outbox,
            teams=self.teams,
            personal=self.personal,
            settings=self.settings,
            readbacks=self.readbacks,
            agenda_in_reminder=not writes_events(provider),
        )
        if writes_events(provider):
            self.readbacks.read_ended(provider, now)

    # -- wins, digests ---------------------------------------------------------

    def log_win(self, team_name: str, kind: str, now: datetime | None = None) -> None:
        """A win logged by hand; praise also queues today's celebration."""
        team = self.teams.get(team_name)
        if team is None:
            raise FeedbackAgendasError(f"no team named {team_name!r}")
        log_win_today(Wins(self.db), self.outbox, team, kind, self.settings, now or self.clock())
        self.metrics.wins.labels(kind).inc()

    def plan_reminders(self, now: datetime | None = None) -> int:
        """Queue the weekly digests whose time has come."""
        now = now or self.clock()
        digests = plan_digests(self.teams.values(), self.personal, self.settings, now)
        return self.outbox.enqueue(digests, now)

    # -- sending ---------------------------------------------------------------

    def send_due(self, *, limit: int = 50) -> SendReport:
        """Claim due outbox rows and deliver them (see :class:`ReminderSender`)."""
        return self.sender.send_due(limit=limit)

    # -- housekeeping ------------------------------------------------------------

    def housekeeping(self, now: datetime | None = None) -> None:
        """Renew our leases, expire stale rows, refresh the gauges and (daily) the teams."""
        now = now or self.clock()
        self.refresh_rules(now)
        with self._held_lock:
            held = sorted(self._held)
        self.leases.heartbeat(held, self.replica_id, self.lease_ttl, now)
        self.outbox.extend_leases(self.replica_id, now, self.lease_ttl)
        self.metrics.leases_held.labels("calendar").set(len(held))
        self.metrics.leases_held.labels("outbox").set(self.outbox.held_by(self.replica_id, now))
        for state, count in self.outbox.counts().items():
            self.metrics.outbox_rows.labels(state).set(count)
        ready, _body = self.readiness(now)  # also refreshes the per-calendar gauges
        self.metrics.ready.set(1 if ready else 0)
        # Last: a directory that is slow or down must not delay the heartbeat.
        self.refresh_calendars(now)

    def readiness(self, now: datetime | None = None) -> tuple[bool, str]:
        """``/readyz``: ready or not, and the JSON body (see :mod:`.readiness`)."""
        state = ReplicaState(
            calendars=self.calendars.keys(),
            started_at=self.started_at,
            last_cycle_at=self.last_cycle_at,
            push_live_until=self.push_live_until,
            push_fallback=self.push_fallback,
        )
        return readiness(self.cfg, self.store, self.metrics, state, now or self.clock())

    def reclaim_dead_local_leases(self) -> int:
        """Give back the leases of earlier processes on this host that are gone; return how many.

        Rows such a process was sending stay ``sending``; a resend is counted as
        a possible duplicate. Call once at start-up, before any work (see
        :meth:`~feedback_agendas.scheduler.storage.leases.Leases.reclaim_dead_local`).
        """
        return self.leases.reclaim_dead_local(CALENDAR_LEASE, self.replica_id, self.outbox)

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
            self.leases.release(held, self.replica_id)
            self.outbox.release(self.replica_id)
        except Exception as exc:
            failure = describe_failure(exc, subject="shutdown")
            log.warning("%s; the leases expire on their own", failure.message)
        self._providers.close()


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
