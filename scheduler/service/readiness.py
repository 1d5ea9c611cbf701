"""``/readyz``: is this replica ready, and which calendars are failing.

Ready when the database answers, a cycle finished recently, and enough
calendars succeed. A calendar is failing when its last successful cycle (by
any replica, from ``calendar_health``) is older than
``server.ready_after_intervals`` sync intervals (with a live push channel:
than the push fallback), or it never had one and this process has run that
long. Not ready when the failing share is above
``server.ready_max_failing_share``. The answer is a JSON object that names
the failing calendars and their error kinds, never a message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.service.metrics import DaemonMetrics
from feedback_agendas.scheduler.storage.store import CalendarHealth, Store


@dataclass(frozen=True, slots=True)
class ReplicaState:
    """What the readiness check needs to know about this replica."""

    calendars: Collection[str]
    started_at: datetime
    last_cycle_at: datetime | None
    # Until when a calendar has a live push channel (None: none, poll at the interval).
    push_live_until: Callable[[str], datetime | None]
    push_fallback: timedelta


def readiness(
    cfg: AppConfig, store: Store, metrics: DaemonMetrics, replica: ReplicaState, now: datetime
) -> tuple[bool, str]:
    """Whether this replica is ready, and the JSON body of ``/readyz``.

    Also refreshes the per-calendar gauges from ``calendar_health``.
    """
    try:
        with store.engine.connect() as conn:
            conn.execute(text("select 1"))
        health = store.calendar_health()
    except Exception as exc:
        return False, _ready_body(False, f"database unreachable: {type(exc).__name__}")
    failing = _failing_calendars(cfg, metrics, replica, health, now)
    if replica.last_cycle_at is None:
        return False, _ready_body(False, "no cycle finished yet", failing)
    limit = timedelta(seconds=3 * cfg.sync.interval_seconds + 60)
    if now - replica.last_cycle_at > limit:
        return False, _ready_body(False, "the last cycle is too old", failing)
    share = len(failing) / max(1, len(replica.calendars))
    if failing and share > cfg.server.ready_max_failing_share:
        why = f"{len(failing)} of {len(replica.calendars)} calendar(s) not synced successfully"
        return False, _ready_body(False, why, failing)
    return True, _ready_body(True, "ready", failing)


def _failing_calendars(
    cfg: AppConfig,
    metrics: DaemonMetrics,
    replica: ReplicaState,
    health: Mapping[str, CalendarHealth],
    now: datetime,
) -> list[dict[str, Any]]:
    interval = timedelta(seconds=cfg.sync.interval_seconds)
    window = cfg.server.ready_after_intervals * interval
    failing = []
    for name in sorted(replica.calendars):
        row = health.get(name)
        last = row.last_success_at if row else None
        failures = row.consecutive_failures if row else 0
        metrics.calendar_last_success.labels(name).set(last.timestamp() if last else 0)
        metrics.calendar_consecutive_failures.labels(name).set(failures)
        allowed = window
        live_until = replica.push_live_until(name)
        if live_until and live_until > now:
            allowed = max(window, replica.push_fallback + interval)
        if now - (last or replica.started_at) > allowed:
            failing.append(
                {
                    "calendar": name,
                    "last_success": last.isoformat() if last else None,
                    "consecutive_failures": failures,
                    "error_kind": row.last_error_kind if row else None,
                }
            )
    return failing


def _ready_body(ready: bool, reason: str, failing: list[dict[str, Any]] | None = None) -> str:
    """The JSON answer of ``/readyz``: calendar names and error kinds, never a message."""
    return json.dumps(
        {"ready": ready, "reason": reason, "failing_calendars": failing or []}, sort_keys=True
    )
