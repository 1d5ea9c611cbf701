"""``feedback-agendas run``: sync cycles on an APScheduler interval job.

APScheduler is only the ticker; everything that must survive a restart (cursors,
records) lives in the store, so a missed tick is simply the next tick.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler

from scheduler.commands import sync_all
from scheduler.config import AppConfig
from scheduler.engine import summarise, utc_now

log = logging.getLogger(__name__)

_CONFIGS: dict[str, AppConfig] = {}


def sync_job(config_id: str) -> None:
    """One cycle over every calendar of the registered config ``config_id``."""
    cfg = _CONFIGS[config_id]
    reports = sync_all(cfg, utc_now())
    summary = summarise(reports)
    log.info("cycle done: writes=%s actions=%s errors=%s", summary["writes"], summary["actions"], summary["errors"])


def run_forever(
    cfg: AppConfig, *, interval_seconds: float | None = None, echo: Callable[[str], Any] = print
) -> None:
    """Run a cycle now and then every ``interval_seconds`` until SIGINT/SIGTERM."""
    interval = interval_seconds or float(cfg.sync.interval_seconds)
    _CONFIGS["main"] = cfg
    scheduler = BlockingScheduler(timezone="UTC")
    scheduler.add_job(
        sync_job,
        "interval",
        args=["main"],
        seconds=interval,
        jitter=max(0.0, interval * cfg.sync.jitter),
        next_run_time=utc_now(),
        coalesce=True,
        max_instances=1,
        misfire_grace_time=int(interval),
        id="sync",
    )

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %s: finishing the cycle in flight, then stopping", signum)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    echo(f"syncing {len(cfg.calendars)} calendar(s) every {interval:g}s; Ctrl-C to stop")
    scheduler.start()
