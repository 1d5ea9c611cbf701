"""Microsoft Graph change notifications: one subscription per mailbox on its events.

A subscription (``POST /subscriptions``) watches ``users/{mailbox}/events``
for ``created,updated,deleted`` and posts to ``<public_url>/webhooks/microsoft``,
its lifecycle notifications to the same address. Graph checks the address
before it answers the POST: it posts ``?validationToken=...`` and wants the
token back as ``text/plain`` with status 200 within 10 seconds, which
:class:`MicrosoftPush` answers without looking up a channel.

- ``clientState`` is the channel's secret; every notification carries it
  and the runtime compares its hash with the stored one;
- a subscription on events lasts at most :data:`MAX_LIFETIME` (4,230
  minutes); it is renewed with ``PATCH /subscriptions/{id}`` before then, and
  stopped with ``DELETE``;
- lifecycle notifications (``lifecycleEvent``): ``reauthorizationRequired``
  asks for a renewal, ``subscriptionRemoved`` for a new subscription (and a
  delta round: changes may have gone unreported), ``missed`` for a delta round.

A notification only starts a delta round of that mailbox: its content
(``resourceData``) is not trusted or read. Notifications are answered 202.
Polling stays on as the fallback, because Graph does not promise delivery.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, quote

from feedback_agendas.agendas.errors import NotFound, ProviderError
from feedback_agendas.integrations.calendars.base import (
    Notification,
    PushChannel,
    WebhookAnswer,
    WebhookRequest,
)
from feedback_agendas.integrations.calendars.microsoft import MicrosoftProvider
from feedback_agendas.integrations.calendars.microsoft_map import parse_graph_time, utc_text

MAX_LIFETIME = timedelta(minutes=4230)  # Graph's limit for subscriptions on events
# Asked for below the limit, so a clock a little ahead of Graph's is not refused.
LIFETIME_MARGIN = timedelta(minutes=5)
CHANGE_TYPES = "created,updated,deleted"
_MAX_TOKEN = 1024  # a validation token longer than this is not Graph's


class MicrosoftPushProvider(MicrosoftProvider):
    """A mailbox's calendar that can also subscribe to its events' changes."""

    def _expiry(self, ttl: int) -> datetime:
        now = self._now().astimezone(UTC)
        wanted = min(timedelta(seconds=ttl), MAX_LIFETIME - LIFETIME_MARGIN)
        return (now + wanted).replace(microsecond=0)

    def _channel(self, body: dict[str, object], operation: str) -> PushChannel:
        ident = str(body.get("id") or "")
        if not ident:
            raise ProviderError(f"graph {operation}: the answer names no subscription")
        try:
            expiry = parse_graph_time(str(body.get("expirationDateTime") or ""), "expiry")
        except ValueError:
            expiry = None
        return PushChannel(ident, ident, expiry)

    def watch(self, channel_id: str, address: str, token: str, ttl: int) -> PushChannel:
        """``POST /subscriptions``; Graph validates ``address`` before it answers.

        ``channel_id`` is ours; Graph names the subscription, and that id is the channel's.
        """
        del channel_id
        body = {
            "changeType": CHANGE_TYPES,
            "notificationUrl": address,
            "lifecycleNotificationUrl": address,
            "resource": f"users/{self.mailbox}/events",  # as Graph writes it: no %40
            "expirationDateTime": utc_text(self._expiry(ttl)),
            "clientState": token,
        }
        reply = self._call("POST", "subscriptions", "subscribe", body=body)
        return self._channel(reply.body, "subscribe")

    def renew_channel(self, channel: PushChannel, ttl: int) -> PushChannel | None:
        """``PATCH /subscriptions/{id}`` with a new expiry (:class:`NotFound` when it is gone)."""
        url = f"subscriptions/{quote(channel.channel_id, safe='')}"
        body = {"expirationDateTime": utc_text(self._expiry(ttl))}
        reply = self._call("PATCH", url, "renew", body=body)
        return self._channel(reply.body, "renew")

    def stop_channel(self, channel_id: str, resource_id: str) -> None:
        """``DELETE /subscriptions/{id}``; one that is gone already counts as stopped."""
        with contextlib.suppress(NotFound):
            self._call("DELETE", f"subscriptions/{quote(channel_id, safe='')}", "unsubscribe")


class MicrosoftPush:
    """Reads what Graph posts to ``/webhooks/microsoft``: validations, changes, lifecycle."""

    accepted = 202

    def read(self, request: WebhookRequest) -> Sequence[Notification] | WebhookAnswer:
        """The validation echo at once; else one notification per item of ``value``.

        A body that is not Graph's notification shape is answered 403 (nothing
        tells a stranger which subscriptions exist); an item without a
        subscription id or client state is malformed.
        """
        token = parse_qs(request.query).get("validationToken")
        if token:
            echo = token[0][:_MAX_TOKEN].encode("utf-8")
            return WebhookAnswer(200, echo, "text/plain; charset=utf-8")
        try:
            items = json.loads(request.body)["value"]
        except (ValueError, KeyError, TypeError):
            return WebhookAnswer(403)
        if not isinstance(items, list) or not items:
            return WebhookAnswer(403)
        return [_notification(item) for item in items]


def _notification(item: object) -> Notification:
    if not isinstance(item, dict):
        return Notification(channel_id="", token="", changed=False, malformed=True)
    channel_id = item.get("subscriptionId")
    token = item.get("clientState")
    if not isinstance(channel_id, str) or not isinstance(token, str):
        return Notification(str(channel_id or ""), token="", changed=False, malformed=True)
    event = item.get("lifecycleEvent")
    if event is None:
        return Notification(channel_id, token, changed=True, malformed="changeType" not in item)
    if event == "reauthorizationRequired":
        return Notification(channel_id, token, changed=False, channel_action="renew")
    if event == "subscriptionRemoved":
        return Notification(channel_id, token, changed=True, channel_action="replace")
    if event == "missed":
        return Notification(channel_id, token, changed=True)
    return Notification(channel_id, token, changed=False)  # a lifecycle event of a later API
