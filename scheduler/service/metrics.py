"""Prometheus metrics of one daemon process, in a registry of its own.

Labels are codes only (kinds of errors, requests and reminders), the
calendar names of the config (which an admin may have made addresses), and
channel ids (a hash of the URL): never calendar content, attendees' addresses
or channel URLs.

The per-calendar gauges come from the ``calendar_health`` table, which every
replica updates with each cycle: all replicas export the same values, so
alert on ``max by (calendar)``.
"""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from feedback_agendas.scheduler.sync.report import CycleReport

__all__ = ["CONTENT_TYPE_LATEST", "DaemonMetrics"]


class DaemonMetrics:
    """Every metric the daemon exports. One instance per process (or per test)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.cycles = Counter(
            "feedback_agendas_cycles", "Sync cycles run, by result", ["result"], registry=r
        )
        self.provider_requests = Counter(
            "feedback_agendas_provider_requests",
            "Requests to calendar backends, by kind",
            ["kind"],
            registry=r,
        )
        self.provider_writes = Counter(
            "feedback_agendas_provider_writes", "Event descriptions written", registry=r
        )
        self.errors = Counter("feedback_agendas_errors", "Errors by kind", ["kind"], registry=r)
        self.reminders_sent = Counter(
            "feedback_agendas_reminders_sent", "Reminders delivered", ["kind"], registry=r
        )
        self.reminders_failed = Counter(
            "feedback_agendas_reminders_failed",
            "Reminder delivery attempts that failed",
            ["kind"],
            registry=r,
        )
        self.reminders_dead = Counter(
            "feedback_agendas_reminders_dead_lettered",
            "Reminders given up after N tries",
            ["kind"],
            registry=r,
        )
        self.reminders_expired = Counter(
            "feedback_agendas_reminders_expired",
            "Reminders dropped as too late (misfire policy)",
            registry=r,
        )
        self.reminders_maybe_duplicate = Counter(
            "feedback_agendas_reminders_maybe_duplicate",
            "Reminders resent after a sender died between sending and recording",
            registry=r,
        )
        self.privacy_conflicts = Counter(
            "feedback_agendas_privacy_conflicts",
            "Events seen with corrective words left in a meeting that is no longer a 1:1,"
            " by reason (the manager is told privately)",
            ["reason"],
            registry=r,
        )
        self.wins = Counter(
            "feedback_agendas_wins", "Feedback wins recorded, by kind", ["kind"], registry=r
        )
        self.leases_held = Gauge(
            "feedback_agendas_leases_held", "Leases this process holds", ["resource"], registry=r
        )
        self.last_cycle = Gauge(
            "feedback_agendas_last_cycle_timestamp_seconds",
            "When the last sync cycle finished (Unix time)",
            registry=r,
        )
        self.calendar_last_success = Gauge(
            "feedback_agendas_calendar_last_success_timestamp_seconds",
            "When the calendar's last successful cycle finished (Unix time; 0: never)",
            ["calendar"],
            registry=r,
        )
        self.calendar_consecutive_failures = Gauge(
            "feedback_agendas_calendar_consecutive_failures",
            "Failed cycles in a row since the calendar's last success",
            ["calendar"],
            registry=r,
        )
        self.calendar_errors = Counter(
            "feedback_agendas_calendar_errors",
            "Failed cycles, writes and events of this process, by calendar and error kind",
            ["calendar", "kind"],
            registry=r,
        )
        self.reminder_channel_failures = Counter(
            "feedback_agendas_reminder_channel_failures",
            "Reminder deliveries that failed, by channel id and error kind",
            ["channel", "kind"],
            registry=r,
        )
        self.job_failures = Counter(
            "feedback_agendas_job_failures",
            "Ticks of the send, plan and housekeeping jobs that failed, by job and error kind",
            ["job", "kind"],
            registry=r,
        )
        self.ready = Gauge(
            "feedback_agendas_ready",
            "1 when /readyz says ready (database up, enough calendars succeeding), else 0",
            registry=r,
        )
        self.outbox_rows = Gauge(
            "feedback_agendas_outbox_rows", "Outbox rows by state", ["state"], registry=r
        )
        self.self_opt_outs = Gauge(
            "feedback_agendas_self_opt_outs",
            "People who opted out of agendas themselves (their link, or the admin's CLI)",
            registry=r,
        )

        self.config_generation = Gauge(
            "feedback_agendas_config_generation",
            "The running config's generation: 1 at start, one more per applied reload",
            registry=r,
        )
        self.config_reloads = Counter(
            "feedback_agendas_config_reloads",
            "Config reloads (SIGHUP or the file changed), by result:"
            " applied, rejected (the old config keeps running), unchanged",
            ["result"],
            registry=r,
        )
        self.config_last_reload_error = Gauge(
            "feedback_agendas_config_last_reload_error",
            "1 while the last reload was rejected, labelled with the first problem's"
            " file, line and key (never its message); 0 with an empty label after a good one",
            ["error"],
            registry=r,
        )
        self.config_needs_restart = Gauge(
            "feedback_agendas_config_needs_restart",
            "1 for each setting the last applied reload changed that only a restart applies",
            ["setting"],
            registry=r,
        )

    def forget_calendar(self, name: str) -> None:
        """Drop the per-calendar gauges of a calendar no longer synced."""
        for gauge in (self.calendar_last_success, self.calendar_consecutive_failures):
            with suppress(KeyError):  # never exported
                gauge.remove(name)

    def count_cycle(self, report: CycleReport) -> None:
        """Count one finished sync cycle: its result, requests, writes, errors and conflicts."""
        self.cycles.labels("ok" if report.ok else "error").inc()
        for kind, n in report.errors.items():
            self.calendar_errors.labels(report.calendar, kind).inc(n)
            self.errors.labels(kind).inc(n)
        finished = report.finished_at or report.started_at
        if report.ok:
            self.calendar_last_success.labels(report.calendar).set(finished.timestamp())
            self.calendar_consecutive_failures.labels(report.calendar).set(0)
        else:  # housekeeping brings both back to what all replicas recorded
            self.calendar_consecutive_failures.labels(report.calendar).inc()
        for kind, n in report.requests.items():
            self.provider_requests.labels(kind).inc(n)
        self.provider_writes.inc(report.writes)
        for decision in report.privacy_conflicts():
            self.privacy_conflicts.labels(decision.privacy_conflict).inc()
        self.last_cycle.set(finished.timestamp())

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
