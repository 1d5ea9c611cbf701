"""The reminder sender: claim due outbox rows and deliver each through its channel.

One replica's sender, driven by the daemon's ``send`` job. Rows are claimed
with leases (see :mod:`feedback_agendas.scheduler.reminders.outbox`), so
replicas never send the same row at once; quiet hours defer a row, a row
whose time has passed or whose channel left the config expires. Messages
carry counts from the wins table (celebrations, digests), never content.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from feedback_agendas.agendas.errors import FeedbackAgendasError
from feedback_agendas.agendas.policy import Team
from feedback_agendas.agendas.render import AgendaRenderer
from feedback_agendas.integrations.notify.base import Notifier, channel_id
from feedback_agendas.scheduler.reminders.agenda_text import reminder_agenda
from feedback_agendas.scheduler.reminders.outbox import DEAD, Outbox, OutboxItem
from feedback_agendas.scheduler.reminders.planning import (
    CELEBRATION,
    DIGEST_MANAGER,
    DIGEST_TEAM,
    PERSONAL_KINDS,
    PersonalChannels,
    ReminderRenderer,
    ReminderSettings,
    schedule_outside_quiet_hours,
)
from feedback_agendas.scheduler.reminders.wins import Wins
from feedback_agendas.scheduler.service.metrics import DaemonMetrics
from feedback_agendas.scheduler.sync.failures import error_kind

log = logging.getLogger(__name__)


@dataclass
class SendReport:
    """What one :meth:`ReminderSender.send_due` did: counts, and the keys of the rows sent."""

    sent: int = 0
    failed: int = 0
    dead: int = 0
    deferred: int = 0
    expired: int = 0
    maybe_duplicate: int = 0
    keys: list[tuple[str, str, str, str]] = field(default_factory=list)


def channel_urls(teams: Mapping[str, Team], personal: PersonalChannels) -> dict[str, str]:
    """Every channel of the teams and their managers by its id (what outbox rows name)."""
    urls: dict[str, str] = {}
    for team in teams.values():
        for url in (*team.notify, *personal.get(team.manager, ())):
            urls[channel_id(url)] = url
    return urls


class ReminderSender:
    """Delivers the outbox's due rows for one replica (``owner``)."""

    def __init__(
        self,
        db: Engine,
        outbox: Outbox,
        notifier: Notifier,
        *,
        teams: Mapping[str, Team],
        personal: PersonalChannels,
        settings: ReminderSettings,
        owner: str,
        lease: timedelta,
        clock: Callable[[], datetime],
        metrics: DaemonMetrics,
        stopping: threading.Event,
        opt_out_link: Callable[[str, datetime], str] | None = None,
        agenda_renderer: Callable[[], AgendaRenderer] | None = None,
    ) -> None:
        self.wins = Wins(db)
        self.outbox = outbox
        self.notifier = notifier
        self.teams = teams
        self.settings = settings
        self.owner = owner
        self.lease = lease
        self.clock = clock
        self.metrics = metrics
        self.stopping = stopping
        self.messages = ReminderRenderer()
        self.urls = channel_urls(teams, personal)
        # Each person's signed link to opt out of agendas (or back in), in the
        # messages that go to them alone; None without server.public_url and
        # server.secret.
        self.opt_out_link = opt_out_link
        # Renders the agenda a reminder carries for a calendar we never write.
        self.agenda_renderer = agenda_renderer

    def use_channels(self, personal: PersonalChannels) -> None:
        """Find the channels of the teams as they are now, and of ``personal`` (a reload)."""
        self.urls = channel_urls(self.teams, personal)

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
            items = self.outbox.claim(self.owner, self.clock(), limit=limit, lease=self.lease)
            if not items:
                break
            for index, item in enumerate(items):
                if self.stopping.is_set():
                    # shutting down: give back what we have not started
                    for rest in items[index:]:
                        self.outbox.defer(rest, self.owner, rest.due_at)
                    break
                self._send_one(item, self.clock(), report)
        return report

    def _send_one(self, item: OutboxItem, now: datetime, report: SendReport) -> None:
        team = self.teams.get(item.team or "")
        url = self.urls.get(item.channel)
        if team is None or url is None:  # the channel was removed from the config
            self.outbox.expire(item, self.owner)
            report.expired += 1
            return
        when = schedule_outside_quiet_hours(
            now, item.expires_at, team.zone, self.settings.quiet_hours, pull_forward=False
        )
        if when is None:
            self.outbox.expire(item, self.owner)
            report.expired += 1
            self.metrics.reminders_expired.inc()
            return
        if when > now:
            self.outbox.defer(item, self.owner, when)
            report.deferred += 1
            return
        link = ""
        if self.opt_out_link is not None and item.kind in PERSONAL_KINDS:
            link = self.opt_out_link(item.recipient, now)
        agenda = ""
        if self.agenda_renderer is not None and "agenda" in item.params:
            agenda = reminder_agenda(item.kind, item.params["agenda"], self.agenda_renderer())
        message = self.messages.render(
            item, team, self._counts(item, team), opt_out_url=link, agenda=agenda
        )
        if not self.outbox.begin_send(item, self.owner, now):
            return
        if item.maybe_sent:
            report.maybe_duplicate += 1
            self.metrics.reminders_maybe_duplicate.inc()
        try:
            self.notifier.send(url, message)
        except FeedbackAgendasError as exc:
            # A URL that is unusable (PermissionDenied) dead-letters after its tries too.
            kind = type(exc).__name__
            state = self.outbox.mark_failed(item, self.owner, now, kind)
            self.metrics.reminders_failed.labels(item.kind).inc()
            self.metrics.reminder_channel_failures.labels(item.channel, error_kind(exc)).inc()
            self.metrics.errors.labels(kind).inc()
            report.failed += 1
            if state == DEAD:
                self.metrics.reminders_dead.labels(item.kind).inc()
                report.dead += 1
            log.warning("reminder %s to channel %s failed: %s", item.kind, item.channel, kind)
            return
        self.outbox.mark_sent(item, self.owner, self.clock())
        self.metrics.reminders_sent.labels(item.kind).inc()
        report.sent += 1
        report.keys.append(item.key)

    def _counts(self, item: OutboxItem, team: Team) -> dict[str, int]:
        if item.kind == CELEBRATION:
            day = datetime.fromisoformat(item.params["day"]).date()
            wins = self.wins.between(team.name, day, day)
            return {"praise": wins.praise, "vague": wins.vague}
        if item.kind in (DIGEST_TEAM, DIGEST_MANAGER):
            monday = datetime.fromisoformat(item.params["week_start"]).date()
            wins = self.wins.between(team.name, monday, monday + timedelta(days=6))
            counts = {
                "praise": wins.praise,
                "vague": wins.vague,
                "streak": self.wins.streak(team.name, monday),
            }
            if item.kind == DIGEST_MANAGER:  # corrective and 1:1 wins: numbers, only here
                counts["corrective"] = wins.corrective
                counts["one_on_one_praise"] = wins.one_on_one_praise
            return counts
        return {}
