"""Graph's change-notification subscriptions, as routes on the fake Graph (:mod:`.graph_api`).

::

    subs = GraphSubscriptions(graph)      # POST/PATCH/DELETE /v1.0/subscriptions
    ...                                  # the daemon subscribes
    subs.notify("mona@example.com")      # posts a change notification to the daemon
    subs.lifecycle(sub_id, "missed")     # posts a lifecycle notification

As Graph does, a POST is answered only after the fake has posted
``?validationToken=...`` to the ``notificationUrl`` (and to a different
``lifecycleNotificationUrl``) and got the token back, as ``text/plain`` with
status 200, within :data:`VALIDATION_SECONDS`; otherwise the subscription is
refused (400 ``ValidationError``). An expiry past 4,230 minutes (or in the
past) is refused too. Notifications go to the daemon's real HTTP server.
"""

from __future__ import annotations

import itertools
import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

from tests.fakes.graph_api import FakeGraph, Reply, Request, error
from tests.fakes.graph_store import parse_time

VALIDATION_SECONDS = 10.0
MAX_LIFETIME = timedelta(minutes=4230)
_RESOURCE = re.compile(r"/?users/([^/]+)/events", re.IGNORECASE)


@dataclass
class Subscription:
    id: str
    mailbox: str
    change_types: tuple[str, ...]
    notification_url: str
    lifecycle_url: str | None
    client_state: str
    expires: datetime


@dataclass
class Delivery:
    """One POST the fake made to the daemon: to which address, what, and the answer."""

    url: str
    body: Any
    status: int
    content_type: str
    answer: bytes
    seconds: float


def post(url: str, body: bytes, content_type: str) -> tuple[int, str, bytes, float]:
    """POST ``body`` to ``url``; (status, content type, answer, seconds)."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type}
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=VALIDATION_SECONDS) as response:
            answer = (int(response.status), response.headers.get("Content-Type", ""))
            return (*answer, response.read(), time.monotonic() - started)
    except urllib.error.HTTPError as exc:
        with exc:
            answer = (int(exc.code), exc.headers.get("Content-Type", ""))
            return (*answer, exc.read(), time.monotonic() - started)
    except (OSError, urllib.error.URLError):
        return 0, "", b"", time.monotonic() - started


class GraphSubscriptions:
    """Subscriptions on ``users/{mailbox}/events`` and the notifications they deliver."""

    def __init__(self, graph: FakeGraph) -> None:
        self.graph = graph
        self.subscriptions: dict[str, Subscription] = {}
        self.deliveries: list[Delivery] = []
        self.refused: list[str] = []  # why each refused POST was refused
        self.renewals = 0
        self.deleted: list[str] = []
        self._ids = itertools.count(1)
        graph.route("POST", r"/v1\.0/subscriptions", self._create)
        graph.route("PATCH", r"/v1\.0/subscriptions/([^/]+)", self._renew)
        graph.route("DELETE", r"/v1\.0/subscriptions/([^/]+)", self._delete)

    # -- routes --------------------------------------------------------------

    def _expiry(self, body: dict[str, Any]) -> datetime | str:
        try:
            expires = parse_time(str(body["expirationDateTime"]))
        except (KeyError, ValueError):
            return "expirationDateTime missing or unreadable"
        now = datetime.now(UTC)
        if expires <= now or expires > now + MAX_LIFETIME:
            return "expirationDateTime must be within 4230 minutes from now"
        return expires

    def _refuse(self, why: str, code: str = "ValidationError") -> Reply:
        self.refused.append(why)
        return error(400, code)

    def _create(self, request: Request, match: re.Match[str]) -> Reply:
        fault = self.graph._count("subscribe")
        if fault:
            return fault
        if not self.graph._authorised(request):
            return error(401, "InvalidAuthenticationToken")
        body = request.body if isinstance(request.body, dict) else {}
        resource = _RESOURCE.fullmatch(str(body.get("resource", "")))
        if resource is None:
            return self._refuse("resource is not users/{id}/events", "InvalidRequest")
        change_types = tuple(str(body.get("changeType", "")).split(","))
        if not set(change_types) <= {"created", "updated", "deleted"}:
            return self._refuse("unknown changeType", "InvalidRequest")
        state = body.get("clientState")
        if not isinstance(state, str) or not 0 < len(state) <= 128:
            return self._refuse("clientState missing or longer than 128", "InvalidRequest")
        expires = self._expiry(body)
        if isinstance(expires, str):
            return self._refuse(expires, "InvalidRequest")
        url = str(body.get("notificationUrl", ""))
        lifecycle = body.get("lifecycleNotificationUrl")
        for address in dict.fromkeys([url, *([str(lifecycle)] if lifecycle else [])]):
            problem = self._validate(address)
            if problem:
                return self._refuse(problem)
        ident = f"sub-{next(self._ids):04d}-{resource.group(1).split('@')[0]}"
        with self.graph.lock:
            self.subscriptions[ident] = Subscription(
                ident,
                unquote(resource.group(1)).lower(),
                change_types,
                url,
                str(lifecycle) if lifecycle else None,
                state,
                expires,
            )
        return 201, {}, self._shown(self.subscriptions[ident])

    def _validate(self, address: str) -> str | None:
        """Graph's check of a notification address; None when the echo is right."""
        if not address.startswith(("https://", "http://")):
            return "notificationUrl is not a URL"
        token = f"Validation: Testing client application reachability {next(self._ids)} <&>"
        joiner = "&" if "?" in address else "?"
        status, content_type, answer, seconds = post(
            f"{address}{joiner}validationToken={quote(token)}", b"", "text/plain; charset=utf-8"
        )
        self.deliveries.append(
            Delivery(address, {"validationToken": token}, status, content_type, answer, seconds)
        )
        if status != 200:
            return f"validation answered {status}"
        if not content_type.startswith("text/plain"):
            return "validation answer is not text/plain"
        if answer.decode("utf-8", "replace") != token:
            return "validation answer is not the token"
        if seconds > VALIDATION_SECONDS:
            return "validation answered too late"
        return None

    def _renew(self, request: Request, match: re.Match[str]) -> Reply:
        fault = self.graph._count("renew")
        if fault:
            return fault
        if not self.graph._authorised(request):
            return error(401, "InvalidAuthenticationToken")
        with self.graph.lock:
            sub = self.subscriptions.get(unquote(match.group(1)))
            if sub is None:
                return error(404, "ResourceNotFound")
            expires = self._expiry(request.body if isinstance(request.body, dict) else {})
            if isinstance(expires, str):
                return self._refuse(expires, "InvalidRequest")
            sub.expires = expires
            self.renewals += 1
            return 200, {}, self._shown(sub)

    def _delete(self, request: Request, match: re.Match[str]) -> Reply:
        fault = self.graph._count("unsubscribe")
        if fault:
            return fault
        if not self.graph._authorised(request):
            return error(401, "InvalidAuthenticationToken")
        with self.graph.lock:
            ident = unquote(match.group(1))
            if self.subscriptions.pop(ident, None) is None:
                return error(404, "ResourceNotFound")
            self.deleted.append(ident)
        # Graph answers 204; the fake's wire always sends a JSON body, which a 204 must not have.
        return 200, {}, {}

    @staticmethod
    def _shown(sub: Subscription) -> dict[str, Any]:
        return {
            "id": sub.id,
            "resource": f"users/{sub.mailbox}/events",
            "changeType": ",".join(sub.change_types),
            "notificationUrl": sub.notification_url,
            "lifecycleNotificationUrl": sub.lifecycle_url,
            "expirationDateTime": sub.expires.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
            "clientState": None,  # Graph does not give the secret back
        }

    # -- deliveries (what Graph posts to the daemon) ----------------------------

    def of(self, mailbox: str) -> list[Subscription]:
        return [s for s in self.subscriptions.values() if s.mailbox == mailbox.lower()]

    def deliver(self, url: str, items: list[dict[str, Any]]) -> int:
        """POST ``{"value": items}`` to ``url`` as Graph does; the status the daemon answered."""
        body = {"value": items}
        status, content_type, answer, seconds = post(
            url, json.dumps(body).encode(), "application/json; charset=utf-8"
        )
        self.deliveries.append(Delivery(url, body, status, content_type, answer, seconds))
        return status

    def notify(
        self, mailbox: str, change_type: str = "updated", event_id: str = "AAMkEV000001"
    ) -> list[int]:
        """A change notification from every subscription on ``mailbox``; the statuses."""
        statuses = []
        for sub in self.of(mailbox):
            item = {
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": self._shown(sub)["expirationDateTime"],
                "changeType": change_type,
                "resource": f"Users/{sub.mailbox}/Events/{event_id}",
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Event",
                    "@odata.id": f"Users/{sub.mailbox}/Events/{event_id}",
                    "id": event_id,
                },
                "clientState": sub.client_state,
                "tenantId": self.graph.tenant,
            }
            statuses.append(self.deliver(sub.notification_url, [item]))
        return statuses

    def lifecycle(self, subscription_id: str, event: str) -> int:
        """A lifecycle notification (``reauthorizationRequired``, ``subscriptionRemoved``,
        ``missed``) of one subscription; ``subscriptionRemoved`` removes it first."""
        with self.graph.lock:
            sub = self.subscriptions[subscription_id]
            if event == "subscriptionRemoved":
                del self.subscriptions[subscription_id]
        item = {
            "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": self._shown(sub)["expirationDateTime"],
            "lifecycleEvent": event,
            "clientState": sub.client_state,
            "organizationId": self.graph.tenant,
        }
        return self.deliver(sub.lifecycle_url or sub.notification_url, [item])
