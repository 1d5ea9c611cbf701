"""The process around a :class:`~scheduler.service.daemon.Daemon`: ticker, endpoints, signals.

APScheduler 3's ``BackgroundScheduler`` with the default in-memory job store,
never shared. Jobs:

- one sync job per calendar, every ``sync.interval_seconds`` ± ``sync.jitter``
  (so 500 calendars do not all fire at once); with push channels this polling
  is the fallback, and a notification adds a one-off sync of that calendar;
- with ``server.public_url``, push channel upkeep (:mod:`feedback_agendas.scheduler.sync.push`) at
  start and every 5 minutes; channels this process registered are stopped on
  shutdown;
- the outbox sender every 15 s, the digest planner every minute, housekeeping
  (lease heartbeat, gauges) every 20 s.

Misfires: ``coalesce=True`` and a grace time of one interval; a missed tick is
simply the next one, because what is due is decided from our tables (see the
misfire policy in :mod:`feedback_agendas.scheduler.reminders.planning`).

SIGTERM/SIGINT: stop taking work, let the jobs in flight finish their writes
(a sync cycle commits at its end; the sender stops between messages), give back
every lease and exit 0 well within 10 s.

SIGHUP, or a change of the config file (looked at every 2 s), reloads the
config (:mod:`feedback_agendas.scheduler.service.reload`): the main thread
loads and checks it, and a good one counts from each calendar's next cycle
on. Calendars added get a sync job, removed ones lose theirs; the push
channels, the opt-out page and a changed ``sync.interval_seconds`` follow.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.service.daemon import (
    Daemon,
    housekeeping_job,
    push_sync_job,
    register,
    reminder_job,
    send_job,
    sync_job,
)
from feedback_agendas.scheduler.service.http_server import EndpointServer, ListenError
from feedback_agendas.scheduler.service.reload import ConfigReloader
from feedback_agendas.scheduler.service.web.dashboard import mount_dashboard
from feedback_agendas.scheduler.service.web.pages import MAX_FORM_BODY, WebPages
from feedback_agendas.scheduler.service.web.security import Signer
from feedback_agendas.scheduler.service.web.self_service import PATH as SELF_SERVICE_PATH
from feedback_agendas.scheduler.service.web.self_service import SelfServicePages
from feedback_agendas.scheduler.sync.cycle import utc_now
from feedback_agendas.scheduler.sync.push import (
    PushChannels,
    follow_up_job,
    maintain_job,
)
from feedback_agendas.scheduler.sync.push import register as register_push

log = logging.getLogger(__name__)

SEND_SECONDS = 15
PLAN_SECONDS = 60
HOUSEKEEPING_SECONDS = 20
PUSH_SECONDS = 300
SHUTDOWN_SECONDS = 8.0
# How often the main thread looks for a stop, a SIGHUP and (every 2 s) the config file.
TICK_SECONDS = 0.25


class SyncJobs:
    """The interval job of each calendar, ``sync:NAME``: added, removed, retimed."""

    def __init__(
        self, scheduler: BackgroundScheduler, daemon_id: str, interval: float, jitter: float
    ) -> None:
        self.scheduler = scheduler
        self.daemon_id = daemon_id
        self.interval = interval
        self.jitter = jitter

    def add(self, names: list[str], start: datetime) -> None:
        """Jobs for ``names``, their first runs spread over the first interval from ``start``."""
        for index, name in enumerate(names):
            first = start + timedelta(
                seconds=(index * self.interval / max(1, len(names))) % self.interval
            )
            add_sync_job(self.scheduler, self.daemon_id, name, first, self.interval, self.jitter)

    def remove(self, names: list[str]) -> None:
        for name in names:
            if self.scheduler.get_job(f"sync:{name}") is not None:
                self.scheduler.remove_job(f"sync:{name}")

    def retime(self, interval: float, jitter: float) -> None:
        """Every job at the new interval (a reload changed ``sync``), spread from now."""
        if (interval, jitter) == (self.interval, self.jitter):
            return
        self.interval, self.jitter = interval, jitter
        names = sorted(
            job.id.removeprefix("sync:")
            for job in self.scheduler.get_jobs()
            if job.id.startswith("sync:")
        )
        self.add(names, utc_now())
        log.info("sync jobs now every %gs", interval)


def build_ticker(
    daemon: Daemon, interval: float, jitter: float
) -> tuple[BackgroundScheduler, SyncJobs]:
    """The per-process ticker with every job of ``daemon``, and its calendars' jobs."""
    daemon_id = register(daemon)
    scheduler = BackgroundScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1},
        executors={"default": {"type": "threadpool", "max_workers": 4}},
    )
    now = utc_now()
    sync_jobs = SyncJobs(scheduler, daemon_id, interval, jitter)
    sync_jobs.add(sorted(daemon.calendars), now)

    def follow_calendars(added: list[str], removed: list[str]) -> None:
        # A calendar source found or lost people, or a reload: sync the new
        # ones within an interval, stop ticking for the others.
        sync_jobs.add(added, utc_now())
        sync_jobs.remove(removed)

    daemon.on_calendars_changed = follow_calendars
    scheduler.add_job(
        send_job,
        "interval",
        args=[daemon_id],
        id="send",
        seconds=SEND_SECONDS,
        next_run_time=now,
        misfire_grace_time=SEND_SECONDS,
    )
    scheduler.add_job(
        reminder_job,
        "interval",
        args=[daemon_id],
        id="plan",
        seconds=PLAN_SECONDS,
        next_run_time=now,
        misfire_grace_time=PLAN_SECONDS,
    )
    scheduler.add_job(
        housekeeping_job,
        "interval",
        args=[daemon_id],
        id="housekeeping",
        seconds=HOUSEKEEPING_SECONDS,
        misfire_grace_time=HOUSEKEEPING_SECONDS,
    )
    return scheduler, sync_jobs


def build_scheduler(daemon: Daemon, interval: float, jitter: float) -> BackgroundScheduler:
    """The per-process ticker with every job of ``daemon``."""
    return build_ticker(daemon, interval, jitter)[0]


def add_sync_job(
    scheduler: BackgroundScheduler,
    daemon_id: str,
    name: str,
    first: datetime,
    interval: float,
    jitter: float,
) -> None:
    """The interval tick of calendar ``name``, first at ``first``."""
    # APScheduler adds uniform(0, jitter) to each run; start the grid
    # ``jitter`` early so the gaps spread over interval * (1 ± jitter).
    scheduler.add_job(
        sync_job,
        "interval",
        args=[daemon_id, name],
        id=f"sync:{name}",
        seconds=interval * (1 - jitter),
        jitter=2 * interval * jitter or None,
        next_run_time=first,
        misfire_grace_time=int(interval),
        replace_existing=True,
    )


def serve_self_service(
    server: EndpointServer, daemon: Daemon, *, static_served: bool = False
) -> SelfServicePages | None:
    """Serve ``/opt-out``, the page of the links in people's messages, when links are on."""
    secret = getattr(daemon.cfg.server, "secret", None)
    if daemon.sender.opt_out_link is None or secret is None:
        return None
    web = WebPages()
    pages = SelfServicePages(
        daemon.cfg,
        daemon.db,
        Signer(secret.get_secret_value()),
        clock=daemon.clock,
        pages=web,
        # The choice counts from the next cycle on, not from the next housekeeping tick.
        on_change=lambda: daemon.refresh_rules(daemon.clock()),
    )
    server.route("GET POST", SELF_SERVICE_PATH, pages.handle, max_body=MAX_FORM_BODY)
    if not static_served:  # the dashboard serves the same stylesheet
        server.route("GET", web.static_prefix, web.static)
    return pages


def run_forever(
    cfg: AppConfig,
    *,
    config_path: Path | None = None,
    interval_seconds: float | None = None,
    echo: Callable[[str], Any] = print,
    stop: threading.Event | None = None,
) -> int:
    """Run the daemon until SIGTERM/SIGINT (or ``stop``); return the exit code (0).

    With ``config_path`` (the file ``cfg`` was loaded from) the config is
    reloaded on SIGHUP and when the file changes. ``interval_seconds`` (``run
    --interval``) wins over ``sync.interval_seconds``, reloaded or not.
    """
    interval = interval_seconds or float(cfg.sync.interval_seconds)
    daemon = Daemon(cfg)
    reclaimed = daemon.reclaim_dead_local_leases()
    if reclaimed:
        log.info("took back %d lease(s) of an earlier process on this host that died", reclaimed)
    try:
        server = EndpointServer(
            cfg.server.host, cfg.server.port, ready=daemon.readiness, metrics=daemon.metrics_text
        )
    except ListenError:
        daemon.store.close()
        raise
    scheduler, sync_jobs = build_ticker(daemon, interval, cfg.sync.jitter)
    push = PushChannels(
        daemon.resolved_config(),
        daemon.store,
        replica_id=daemon.replica_id,
        provider_factory=daemon.provider_factory,
    )
    push_id = register_push(push)
    if push.enabled:
        daemon.push_live_until = push.live_until
        scheduler.add_job(
            maintain_job,
            "interval",
            args=[push_id],
            id="push-channels",
            seconds=PUSH_SECONDS,
            next_run_time=utc_now(),
            misfire_grace_time=PUSH_SECONDS,
        )

    def sync_now(calendar: str) -> None:
        scheduler.add_job(
            push_sync_job,
            args=[daemon.replica_id, calendar],
            id=f"push:{calendar}",
            replace_existing=True,
            misfire_grace_time=60,
        )

    def sync_later(calendar: str, channel_id: str, noticed_at: datetime, at: datetime) -> None:
        # One follow-up per channel: a later notification in the same window
        # replaces it (same time, and its sync covers the earlier one).
        scheduler.add_job(
            follow_up_job,
            "date",
            run_date=at,
            args=[push_id, calendar, channel_id, noticed_at.isoformat()],
            id=f"push-later:{channel_id}",
            replace_existing=True,
            misfire_grace_time=60,
        )

    def maintain_soon() -> None:
        # A backend asked for a channel to be renewed or replaced, or calendars
        # came or went (a source, a reload): maintain now.
        scheduler.add_job(
            maintain_job,
            args=[push_id],
            id="push-channels-now",
            replace_existing=True,
            misfire_grace_time=60,
        )

    webhooks = push.webhooks(sync_now, sync_later, maintain_soon)
    for path, handler in webhooks.items():
        server.register_push(path, handler)
    reloader = ConfigReloader.for_daemon(config_path, daemon) if config_path else None
    dashboard = mount_dashboard(
        server,
        daemon,
        sync_now=sync_now,
        generation=(lambda: reloader.generation) if reloader else (lambda: 1),
    )
    self_service = serve_self_service(server, daemon, static_served=dashboard is not None)

    def maintain_push_soon() -> None:
        if push.enabled:  # without a public URL no channel is ours to keep or stop
            maintain_soon()

    follow_calendars = daemon.on_calendars_changed

    def on_calendars_changed(added: list[str], removed: list[str]) -> None:
        follow_calendars(added, removed)
        push.use_config(daemon.resolved_config())
        maintain_push_soon()

    def on_config_changed(new: AppConfig) -> None:
        push.use_config(daemon.resolved_config())
        maintain_push_soon()
        if self_service is not None:
            self_service.use_config(new)
        if interval_seconds is None:
            sync_jobs.retime(float(new.sync.interval_seconds), new.sync.jitter)

    daemon.on_calendars_changed = on_calendars_changed
    daemon.on_config_changed = on_config_changed
    stopped = stop or threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %s: finishing the work in flight, then stopping", signum)
        daemon.stopping.set()
        stopped.set()

    def on_hangup(_signum: int, _frame: object) -> None:
        if reloader is not None:
            reloader.request()  # only a flag: the main loop reloads

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGHUP, on_hangup)
    server.start()
    paths = " ".join(["/healthz", "/readyz", "/metrics", *webhooks])
    echo(f"endpoints on {server.url} ({paths})")
    if dashboard is not None:
        echo(f"dashboard on {server.url}/admin/")
    echo(f"replica {daemon.replica_id}: {len(daemon.calendars)} calendar(s) every {interval:g}s")
    scheduler.start()
    try:
        # Polled, not stopped.wait(): a signal handler that sets the event
        # while this thread is inside its wait could deadlock on its lock.
        while not stopped.is_set():
            time.sleep(TICK_SECONDS)
            if reloader is not None and not stopped.is_set():
                reloader.poll()
    finally:
        daemon.stopping.set()
        waiter = threading.Thread(target=scheduler.shutdown, kwargs={"wait": True}, daemon=True)
        waiter.start()
        waiter.join(SHUTDOWN_SECONDS)
        if push.enabled:
            push.stop_own(utc_now())
        daemon.shutdown()
        server.stop()
        daemon.store.close()
        echo("stopped")
    return 0
