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
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
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


def build_scheduler(daemon: Daemon, interval: float, jitter: float) -> BackgroundScheduler:
    """The per-process ticker with every job of ``daemon``."""
    daemon_id = register(daemon)
    scheduler = BackgroundScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1},
        executors={"default": {"type": "threadpool", "max_workers": 4}},
    )
    now = utc_now()
    for index, name in enumerate(sorted(daemon.calendars)):
        # spread the first runs over the first interval, then keep the jitter
        first = now + timedelta(
            seconds=(index * interval / max(1, len(daemon.calendars))) % interval
        )
        add_sync_job(scheduler, daemon_id, name, first, interval, jitter)

    def follow_calendars(added: list[str], removed: list[str]) -> None:
        # A calendar source found or lost people: sync the new ones within an
        # interval, stop ticking for the others.
        start = utc_now()
        for index, name in enumerate(added):
            first = start + timedelta(seconds=(index * interval / max(1, len(added))) % interval)
            add_sync_job(scheduler, daemon_id, name, first, interval, jitter)
        for name in removed:
            if scheduler.get_job(f"sync:{name}") is not None:
                scheduler.remove_job(f"sync:{name}")

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
    return scheduler


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
    interval_seconds: float | None = None,
    echo: Callable[[str], Any] = print,
    stop: threading.Event | None = None,
) -> int:
    """Run the daemon until SIGTERM/SIGINT (or ``stop``); return the exit code (0)."""
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
    scheduler = build_scheduler(daemon, interval, cfg.sync.jitter)
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
        # A backend asked for a channel to be renewed or replaced: maintain now.
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
    dashboard = mount_dashboard(server, daemon, sync_now=sync_now)
    serve_self_service(server, daemon, static_served=dashboard is not None)
    stopped = stop or threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %s: finishing the work in flight, then stopping", signum)
        daemon.stopping.set()
        stopped.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    server.start()
    paths = " ".join(["/healthz", "/readyz", "/metrics", *webhooks])
    echo(f"endpoints on {server.url} ({paths})")
    if dashboard is not None:
        echo(f"dashboard on {server.url}/admin/")
    echo(f"replica {daemon.replica_id}: {len(daemon.calendars)} calendar(s) every {interval:g}s")
    scheduler.start()
    try:
        stopped.wait()
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
