"""Push channels: register, renew or replace, stop, and check the notifications they bring.

Provider-neutral: a provider whose spec has ``push`` (see
:class:`~feedback_agendas.integrations.calendars.base.PushNotifications`)
registers, renews and stops channels itself
(:class:`~feedback_agendas.integrations.calendars.base.PushProvider`) and reads
its own notifications; this module keeps the channels and decides what a
verified notification starts.

When ``server.public_url`` is set, every calendar of such a provider that is
not opted out gets a channel whose address is
``<public_url>/webhooks/<provider>``. A notification then starts an
incremental sync of that calendar at once; polling stays on as the fallback,
because no backend promises delivery.

The ``push_channels`` table is shared by every replica:

- the channel's id, the backend's resource id, its expiry and the replica
  that registered it;
- the SHA-256 of the channel's secret token, never the token itself: the
  token is a credential. A notification is verified by hashing the token it
  presents and comparing the hashes in constant time, so any replica can
  accept any channel's notifications.

Notifications are checked against the same rows, so the checks hold across
replicas:

- a replayed notification (a message number among the last
  :data:`RECENT_MESSAGES` accepted on that channel, for backends that number
  their messages) is acknowledged and dropped. Only exact repeats: a forged
  higher number must not make the backend's next genuine ones look old;
- a channel starts at most one sync per :data:`PUSH_SYNC_WINDOW`. A
  notification inside the window is not lost: one follow-up sync runs when
  the window ends, unless a sync that began after the notification (on any
  replica) already covers it.

A backend may ask for a channel itself (``Notification.channel_action``): to
renew it soon (its expiry is set to now) or to replace it, because it no
longer exists (its row is forgotten, and the calendar synced at once). The
next :meth:`PushChannels.maintain`, asked for at once, does the rest.

:meth:`PushChannels.maintain` (a periodic job) registers missing channels,
renews those about to expire (or replaces them, where the backend cannot
renew a channel), and stops the channels of calendars that were opted out or
removed from the config. Only the holder of the lease ``push:NAME`` changes a
calendar's channels, so replicas never register two channels for one calendar
at once.

One room past 400 lines: a channel's whole life (its row, registration,
renewal, stopping, and the checks on each notification) shares the one table
and the one lease.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import delete, func, or_, select, update

from feedback_agendas.agendas.errors import FeedbackAgendasError
from feedback_agendas.integrations.calendars.base import (
    Notification,
    PushChannel,
    PushProvider,
    WebhookAnswer,
    WebhookRequest,
)
from feedback_agendas.integrations.calendars.registry import provider_names, provider_spec
from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.storage.db import write_transaction
from feedback_agendas.scheduler.storage.leases import Leases
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.storage.tables import push_channels as push_channels_table
from feedback_agendas.scheduler.sync.cycle import utc_now
from feedback_agendas.scheduler.sync.providers import build_provider

log = logging.getLogger(__name__)

PUSH_LEASE = "push:"
WEBHOOK_PREFIX = "/webhooks/"
# Asked for; a backend may give less (its channel's expiry is what counts).
# A week keeps replacements rare where the backend allows that long.
CHANNEL_TTL = timedelta(days=7)
# Renew or replace this long before expiry: many maintenance runs (and a restart) fit in it.
REPLACE_MARGIN = timedelta(hours=6)
# A channel starts at most one sync per window; notifications inside it are
# folded into one follow-up sync at its end.
PUSH_SYNC_WINDOW = timedelta(seconds=10)
# Message numbers remembered per channel for the replay check.
RECENT_MESSAGES = 48

# (calendar, channel id, when the notification came, when to call follow_up)
SyncLater = Callable[[str, str, datetime, datetime], None]


WebhookHandler = Callable[[WebhookRequest], WebhookAnswer]


def token_verifier(token: str) -> str:
    """The SHA-256 (hex) of a channel token: what we keep instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# Compared against when a notification names no known channel, so that an
# unknown channel id costs the same time as a known one with a wrong token.
_NO_CHANNEL = token_verifier(secrets.token_urlsafe(32))


@dataclass(frozen=True, slots=True)
class StoredChannel:
    """One row of ``push_channels`` (no token: only its hash)."""

    channel_id: str
    calendar: str
    resource_id: str
    verifier: str
    expires_at: datetime | None
    registered_by: str

    def needs_replacing(self, now: datetime, margin: timedelta) -> bool:
        return PushChannel(self.channel_id, self.resource_id, self.expires_at).needs_replacing(
            now, margin.total_seconds()
        )


@dataclass
class PushReport:
    """What one :meth:`PushChannels.maintain` run did, by calendar name."""

    registered: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    renewed: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def webhook_path(provider: str) -> str:
    """``/webhooks/<provider>``: where one provider's notifications arrive."""
    return WEBHOOK_PREFIX + provider


def webhook_address(public_url: object, provider: str) -> str:
    """``<public_url>/webhooks/<provider>`` (``public_url`` may carry a path prefix)."""
    return str(public_url).rstrip("/") + webhook_path(provider)


def pushing_providers() -> tuple[str, ...]:
    """The registered providers that offer push channels, in registry order."""
    return tuple(name for name in provider_names() if provider_spec(name).push is not None)


def _offers_push(provider: str) -> bool:
    try:
        return provider_spec(provider).push is not None
    except ValueError:  # no longer registered
        return False


class PushChannels:
    """The push channels of one replica's configured calendars (those whose provider pushes)."""

    def __init__(
        self,
        cfg: AppConfig,
        store: Store,
        *,
        replica_id: str,
        provider_factory: Callable[[Any], Any] = build_provider,
        lease_ttl: timedelta = timedelta(seconds=60),
        channel_ttl: timedelta = CHANNEL_TTL,
        margin: timedelta = REPLACE_MARGIN,
        new_token: Callable[[], str] = lambda: secrets.token_urlsafe(32),
        sync_window: timedelta | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.replica_id = replica_id
        self.provider_factory = provider_factory
        self.lease_ttl = lease_ttl
        self.channel_ttl = channel_ttl
        self.margin = margin
        self.new_token = new_token
        self.sync_window = sync_window if sync_window is not None else PUSH_SYNC_WINDOW
        self.clock = clock
        self.replays = 0  # notifications dropped as replays by this process
        self._replay_logged_at = -60.0
        self._sync_now: Callable[[str], None] = lambda _calendar: None
        self._sync_later: SyncLater = lambda _calendar, _channel, _noticed, _at: None
        self._maintain_soon: Callable[[], None] = lambda: None
        self.calendars = {c.name: c for c in cfg.calendars}
        self.public_url = cfg.server.public_url

    def use_config(self, cfg: AppConfig) -> None:
        """Follow a reloaded config, or calendars a source found or lost.

        The next :meth:`maintain` registers the channels of new calendars and
        stops those of calendars removed or opted out. A removed calendar's
        entry is kept, so that its channels are stopped with its credentials.
        The public URL stays the one the process started with.
        """
        self.cfg = cfg
        self.calendars = {**self.calendars, **{c.name: c for c in cfg.calendars}}

    @property
    def enabled(self) -> bool:
        """Channels are registered only when the service has a public URL."""
        return self.public_url is not None

    def wanted(self) -> set[str]:
        """The calendars that should have a channel: of a provider that pushes, not opted out."""
        if not self.enabled:
            return set()
        opted_out_calendars = set(self.cfg.opt_out.calendars)
        opted_out_users = {u.lower() for u in self.cfg.opt_out.users}
        return {
            c.name
            for c in self.cfg.calendars
            if _offers_push(c.provider)
            and c.name not in opted_out_calendars
            and c.owner.lower() not in opted_out_users
        }

    # -- the table -------------------------------------------------------------

    def live_until(self, calendar: str) -> datetime | None:
        """When the calendar's newest channel expires; None when it has none."""
        t = push_channels_table
        query = select(func.max(t.c.expires_at)).where(t.c.calendar == calendar)
        with self.store.engine.connect() as conn:
            expires: datetime | None = conn.execute(query).scalar_one_or_none()
        return expires

    def channels(self, calendar: str | None = None) -> list[StoredChannel]:
        """The stored channels (of one calendar), newest expiry last."""
        t = push_channels_table
        query = select(t).order_by(t.c.calendar, t.c.expires_at, t.c.created_at)
        if calendar is not None:
            query = query.where(t.c.calendar == calendar)
        with self.store.engine.connect() as conn:
            return [
                StoredChannel(
                    channel_id=row.channel_id,
                    calendar=row.calendar,
                    resource_id=row.resource_id,
                    verifier=row.verifier,
                    expires_at=row.expires_at,
                    registered_by=row.registered_by,
                )
                for row in conn.execute(query)
            ]

    def _forget(self, channel_ids: list[str]) -> None:
        if not channel_ids:
            return
        t = push_channels_table
        with write_transaction(self.store.engine) as conn:
            conn.execute(delete(t).where(t.c.channel_id.in_(channel_ids)))

    # -- maintenance -------------------------------------------------------------

    def maintain(self, now: datetime) -> PushReport:
        """Register missing channels, replace expiring ones, stop unwanted ones.

        One query when nothing is to be done. A calendar whose backend call
        fails is reported in ``failed`` and tried again on the next run;
        polling covers it meanwhile.
        """
        report = PushReport()
        wanted = self.wanted()
        by_calendar: dict[str, list[StoredChannel]] = {}
        for channel in self.channels():
            by_calendar.setdefault(channel.calendar, []).append(channel)
        for name in sorted(wanted):
            current = by_calendar.get(name, [])
            fresh = [c for c in current if not c.needs_replacing(now, self.margin)]
            if len(fresh) == 1 and len(current) == 1:
                continue
            self._under_lease(name, now, partial(self._renew, name, now, report))
        for name in sorted(set(by_calendar) - wanted):
            self._under_lease(name, now, partial(self._stop, name, report, only_mine=False))
        return report

    def stop_own(self, now: datetime) -> PushReport:
        """On shutdown: stop the channels this replica registered.

        Another replica's next :meth:`maintain` registers new ones.
        """
        report = PushReport()
        names = {c.calendar for c in self.channels() if c.registered_by == self.replica_id}
        for name in sorted(names):
            self._under_lease(name, now, partial(self._stop, name, report, only_mine=True))
        return report

    def _under_lease(self, calendar: str, now: datetime, work: Callable[[], None]) -> None:
        resource = PUSH_LEASE + calendar
        if not Leases(self.store.engine).claim([resource], self.replica_id, self.lease_ttl, now, 1):
            return  # another replica is on it
        try:
            work()
        finally:
            Leases(self.store.engine).release([resource], self.replica_id)

    def _renew(self, name: str, now: datetime, report: PushReport) -> None:
        # Read again under the lease: another replica may have just done it.
        current = self.channels(name)
        fresh = [c for c in current if not c.needs_replacing(now, self.margin)]
        keep = fresh[-1] if fresh else None
        provider = self.provider_factory(self.calendars[name])
        try:
            if keep is None and current:
                keep = self._renew_channel(provider, current[-1])
                if keep is not None:
                    report.renewed.append(name)
            if keep is None:
                try:
                    keep = self._register(provider, name, now)
                except FeedbackAgendasError as exc:
                    log.warning("push channel for calendar %s: %s", name, type(exc).__name__)
                    report.failed.append(name)
                    return
                (report.replaced if current else report.registered).append(name)
            # The new channel runs before the old ones stop, so no change is missed.
            old = [c for c in current if c.channel_id != keep.channel_id]
            self._stop_channels(provider, old)
        finally:
            provider.close()

    def _renew_channel(
        self, provider: PushProvider, channel: StoredChannel
    ) -> StoredChannel | None:
        """Extend ``channel`` where the backend can; None when it cannot (or failed to)."""
        current = PushChannel(channel.channel_id, channel.resource_id, channel.expires_at)
        try:
            renewed = provider.renew_channel(current, int(self.channel_ttl.total_seconds()))
        except FeedbackAgendasError as exc:
            log.warning(
                "renewing the push channel of calendar %s: %s", channel.calendar, type(exc).__name__
            )
            return None
        if renewed is None:
            return None
        t = push_channels_table
        with write_transaction(self.store.engine) as conn:
            conn.execute(
                update(t)
                .where(t.c.channel_id == channel.channel_id)
                .values(expires_at=renewed.expiration)
            )
        log.info("push channel renewed for calendar %s", channel.calendar)
        return dataclasses.replace(channel, expires_at=renewed.expiration)

    def _register(self, provider: PushProvider, name: str, now: datetime) -> StoredChannel:
        assert self.public_url is not None
        address = webhook_address(self.public_url, self.calendars[name].provider)
        token = self.new_token()
        channel = provider.watch(
            f"fa-{uuid.uuid4().hex}", address, token, int(self.channel_ttl.total_seconds())
        )
        stored = StoredChannel(
            channel_id=channel.channel_id,
            calendar=name,
            resource_id=channel.resource_id,
            verifier=token_verifier(token),
            expires_at=channel.expiration,
            registered_by=self.replica_id,
        )
        with write_transaction(self.store.engine) as conn:
            conn.execute(
                push_channels_table.insert(),
                {
                    "channel_id": stored.channel_id,
                    "calendar": stored.calendar,
                    "resource_id": stored.resource_id,
                    "verifier": stored.verifier,
                    "expires_at": stored.expires_at,
                    "registered_by": stored.registered_by,
                    "created_at": now,
                },
            )
        log.info("push channel registered for calendar %s", name)
        return stored

    def _stop(self, name: str, report: PushReport, *, only_mine: bool) -> None:
        current = [
            c for c in self.channels(name) if not only_mine or c.registered_by == self.replica_id
        ]
        if not current:
            return
        calendar = self.calendars.get(name)
        if calendar is None or not _offers_push(calendar.provider):
            # Removed from the config: we have no credentials to stop it with.
            # Forgetting it makes its notifications fail verification until it expires.
            self._forget([c.channel_id for c in current])
            report.stopped.append(name)
            return
        provider = self.provider_factory(calendar)
        try:
            if self._stop_channels(provider, current):
                report.stopped.append(name)
            else:
                report.failed.append(name)
        finally:
            provider.close()

    def _stop_channels(self, provider: PushProvider, channels: list[StoredChannel]) -> bool:
        """Stop each channel at its backend, then forget it; False if any stop failed."""
        stopped: list[str] = []
        for channel in channels:
            try:
                provider.stop_channel(channel.channel_id, channel.resource_id)
            except FeedbackAgendasError as exc:
                log.warning(
                    "stopping a push channel of calendar %s: %s",
                    channel.calendar,
                    type(exc).__name__,
                )
                continue
            stopped.append(channel.channel_id)
        self._forget(stopped)
        return len(stopped) == len(channels)

    # -- notifications -------------------------------------------------------------

    def calendar_for(self, channel_id: str, token: str) -> str | None:
        """The calendar of channel ``channel_id``, if ``token`` is that channel's secret."""
        t = push_channels_table
        row = None
        if channel_id:
            with self.store.engine.connect() as conn:
                row = conn.execute(
                    select(t.c.calendar, t.c.verifier).where(t.c.channel_id == channel_id)
                ).first()
        expected = row.verifier if row is not None else _NO_CHANNEL
        presented = token_verifier(token) if token else ""
        if not hmac.compare_digest(presented.encode(), expected.encode()) or row is None:
            return None
        return str(row.calendar)

    def accept_message(self, channel_id: str, number: int) -> bool:
        """Record message ``number`` of a verified channel; False if it is a replay."""
        t = push_channels_table
        key = str(number)
        with write_transaction(self.store.engine) as conn:
            recent = conn.execute(
                select(t.c.recent_numbers).where(t.c.channel_id == channel_id).with_for_update()
            ).scalar_one_or_none()
            seen = (recent or "").split()
            if key in seen:
                return False
            seen = [*seen, key][-RECENT_MESSAGES:]
            conn.execute(
                update(t).where(t.c.channel_id == channel_id).values(recent_numbers=" ".join(seen))
            )
        return True

    def claim_sync(self, channel_id: str, noticed_at: datetime, now: datetime) -> bool | datetime:
        """May a notification seen at ``noticed_at`` start a sync at ``now``?

        True: yes, and the window is ours. False: no need, a sync that began
        at or after ``noticed_at`` covers it. A time: the window is taken;
        try again then.
        """
        t = push_channels_table
        with write_transaction(self.store.engine) as conn:
            taken = conn.execute(
                update(t)
                .where(t.c.channel_id == channel_id)
                .where(or_(t.c.synced_at.is_(None), t.c.synced_at <= now - self.sync_window))
                .values(synced_at=now)
            ).rowcount
            if taken:
                return True
            synced_at: datetime | None = conn.execute(
                select(t.c.synced_at).where(t.c.channel_id == channel_id)
            ).scalar_one_or_none()
        if synced_at is None:
            return False  # the channel is gone
        if synced_at >= noticed_at:
            return False
        return synced_at + self.sync_window

    def follow_up(self, calendar: str, channel_id: str, noticed_at: datetime) -> None:
        """The end of a window that held a notification: sync now unless already covered."""
        decision = self.claim_sync(channel_id, noticed_at, self.clock())
        if decision is True:
            self._sync_now(calendar)
        elif isinstance(decision, datetime):
            self._sync_later(calendar, channel_id, noticed_at, decision)

    def _log_replay(self, calendar: str) -> None:
        # A flood of replays must not flood the log: one line a minute at most.
        self.replays += 1
        now = time.monotonic()
        if now - self._replay_logged_at >= 60:
            self._replay_logged_at = now
            log.warning(
                "push: dropped a replayed notification for calendar %s (%d replays so far)",
                calendar,
                self.replays,
            )

    def webhooks(
        self,
        sync_now: Callable[[str], None],
        sync_later: SyncLater,
        maintain_soon: Callable[[], None] | None = None,
    ) -> dict[str, WebhookHandler]:
        """``/webhooks/<provider>`` -> its handler, for every provider that pushes.

        ``sync_now(calendar)`` starts an incremental sync; ``sync_later(calendar,
        channel_id, noticed_at, at)`` asks for :meth:`follow_up` at ``at``;
        ``maintain_soon()`` asks for a :meth:`maintain` run when a backend asked
        for a channel to be renewed or replaced (without it, the periodic run does).
        """
        self._sync_now = sync_now
        self._sync_later = sync_later
        if maintain_soon is not None:
            self._maintain_soon = maintain_soon
        return {webhook_path(name): self.webhook(name) for name in pushing_providers()}

    def webhook(self, provider: str) -> WebhookHandler:
        """The handler of ``/webhooks/<provider>``: verify, drop replays, sync that calendar.

        The provider reads the request (and may answer it at once, as for a
        handshake). Each notification must name a known channel of that
        provider and present its token, else 403; a malformed one from a
        verified sender gets 400. A replay is acknowledged and dropped. A
        change starts an incremental sync of the channel's calendar, at most
        once per channel and window; inside the window one follow-up is
        asked for at its end.
        """
        reader = provider_spec(provider).push
        assert reader is not None, provider

        def on_push(request: WebhookRequest) -> WebhookAnswer:
            read = reader.read(request)
            if isinstance(read, WebhookAnswer):
                return read
            checked: list[tuple[str, Notification]] = []
            for notification in read:
                calendar = self.calendar_for(notification.channel_id, notification.token)
                configured = self.calendars.get(calendar or "")
                if calendar is None or (configured is not None and configured.provider != provider):
                    return WebhookAnswer(403)
                if notification.malformed:
                    return WebhookAnswer(400)
                checked.append((calendar, notification))
            for calendar, notification in checked:
                self._on_notification(calendar, notification)
            return WebhookAnswer(reader.accepted)

        return on_push

    def _on_notification(self, calendar: str, notification: Notification) -> None:
        channel_id = notification.channel_id
        number = notification.message_number
        if number is not None and not self.accept_message(channel_id, number):
            self._log_replay(calendar)
            return
        if notification.channel_action is not None:
            self._channel_asked(calendar, channel_id, notification.channel_action)
            if notification.channel_action == "replace":
                # The channel is gone, and with it the window: changes may have gone
                # unreported, so one sync now.
                if notification.changed and calendar in self.wanted():
                    self._sync_now(calendar)
                return
        if not notification.changed or calendar not in self.wanted():
            return
        noticed_at = self.clock()
        decision = self.claim_sync(channel_id, noticed_at, noticed_at)
        if decision is True:
            self._sync_now(calendar)
        elif isinstance(decision, datetime):
            self._sync_later(calendar, channel_id, noticed_at, decision)

    def _channel_asked(self, calendar: str, channel_id: str, action: str) -> None:
        """The backend asked for the channel: due for renewal now, or gone (register anew).

        Marked in the table, so that the next :meth:`maintain` (asked for at
        once) does it under the calendar's lease, on whichever replica runs it.
        """
        t = push_channels_table
        with write_transaction(self.store.engine) as conn:
            if action == "replace":
                conn.execute(delete(t).where(t.c.channel_id == channel_id))
            else:
                conn.execute(
                    update(t).where(t.c.channel_id == channel_id).values(expires_at=self.clock())
                )
        log.info("push: the backend asked to %s the channel of calendar %s", action, calendar)
        self._maintain_soon()


# -- the ticker's job: a module-level function that takes an id ------------------

_MANAGERS: dict[str, PushChannels] = {}


def register(manager: PushChannels) -> str:
    """Make ``manager`` reachable from :func:`maintain_job`; return its id."""
    _MANAGERS[manager.replica_id] = manager
    return manager.replica_id


def maintain_job(manager_id: str) -> None:
    _MANAGERS[manager_id].maintain(utc_now())


def follow_up_job(manager_id: str, calendar: str, channel_id: str, noticed_at: str) -> None:
    """A window that held a notification has ended (``noticed_at`` in ISO 8601)."""
    _MANAGERS[manager_id].follow_up(calendar, channel_id, datetime.fromisoformat(noticed_at))
