"""A fifth, throwaway calendar provider that exists only in the test suite.

It proves that a provider plugs in through the registry alone: this module
and one ``registry.register("shelf", __name__)`` line, no change in
``scheduler/``. Its backend is a "server" in this process: :data:`SHELVES`
maps a shelf name to a :class:`MemoryProvider` that plays the remote
calendar, so every provider the daemon builds for a calendar sees the same
events. It also offers push, the way a Graph-like backend does: a
subscription is validated by echoing a token in the body, notifications come
as JSON with a ``clientState`` secret, and channels are renewed, not replaced.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import parse_qs

from feedback_agendas.agendas.errors import NotFound
from feedback_agendas.agendas.model import (
    ChangeSet,
    DescriptionWrite,
    EventRef,
    Meeting,
    WriteOutcome,
)
from feedback_agendas.integrations.calendars.base import (
    BuildContext,
    CalendarConfig,
    Notification,
    ProviderSpec,
    PushChannel,
    WebhookAnswer,
    WebhookRequest,
)
from feedback_agendas.integrations.calendars.memory import MemoryProvider
from feedback_agendas.integrations.config_types import NonEmptyStr

NAME = "shelf"


@dataclass
class Shelf:
    """One remote calendar: its events and the subscriptions that watch it."""

    server: MemoryProvider
    # channel id -> (address, client state, expiry)
    subscriptions: dict[str, tuple[str, str, datetime]] = field(default_factory=dict)
    renewals: int = 0


SHELVES: dict[str, Shelf] = {}


def shelf(name: str, owner: str) -> Shelf:
    """The shelf ``name`` (created empty on first use)."""
    if name not in SHELVES:
        SHELVES[name] = Shelf(MemoryProvider(name, owner))
    return SHELVES[name]


class ShelfCalendar(CalendarConfig):
    """A calendar on a shelf of this process."""

    provider: Literal["shelf"]
    shelf: NonEmptyStr


class ShelfProvider:
    """A client of one shelf; its events carry the calendar's configured name."""

    def __init__(self, name: str, owner: str, shelf_name: str) -> None:
        self.name = name
        self.owner = owner
        self.requests: Counter[str] = Counter()
        self._shelf = shelf(shelf_name, owner)

    @property
    def _server(self) -> MemoryProvider:
        return self._shelf.server

    def read_changes(self, cursor: str | None) -> ChangeSet:
        self.requests["list"] += 1
        changes = self._server.read_changes(cursor)
        return dataclasses.replace(changes, meetings=tuple(map(_normalised, changes.meetings)))

    def get(self, ref: EventRef) -> Meeting | None:
        self.requests["get"] += 1
        meeting = self._server.get(ref)
        return _normalised(meeting) if meeting is not None else None

    def write(self, writes: Sequence[DescriptionWrite]) -> list[WriteOutcome]:
        self.requests["put"] += len(writes)
        return self._server.write(writes)

    def close(self) -> None:
        pass

    # -- push ------------------------------------------------------------------

    def watch(self, channel_id: str, address: str, token: str, ttl: int) -> PushChannel:
        expiry = datetime.now(UTC) + timedelta(seconds=min(ttl, 3 * 24 * 3600))
        self._shelf.subscriptions[channel_id] = (address, token, expiry)
        return PushChannel(channel_id, channel_id, expiry)

    def renew_channel(self, channel: PushChannel, ttl: int) -> PushChannel | None:
        if channel.channel_id not in self._shelf.subscriptions:
            raise NotFound(f"no subscription {channel.channel_id}")
        address, token, _old = self._shelf.subscriptions[channel.channel_id]
        expiry = datetime.now(UTC) + timedelta(seconds=min(ttl, 3 * 24 * 3600))
        self._shelf.subscriptions[channel.channel_id] = (address, token, expiry)
        self._shelf.renewals += 1
        return PushChannel(channel.channel_id, channel.resource_id, expiry)

    def stop_channel(self, channel_id: str, resource_id: str) -> None:
        self._shelf.subscriptions.pop(channel_id, None)


def _normalised(meeting: Meeting) -> Meeting:
    """Addresses in lower case, as the contract asks of every provider."""
    return dataclasses.replace(
        meeting,
        organizer=meeting.organizer.lower() if meeting.organizer else None,
        attendees=tuple(dataclasses.replace(a, email=a.email.lower()) for a in meeting.attendees),
    )


class ShelfPush:
    """Graph-like: ``?validationToken=`` is echoed as text/plain; notifications are JSON."""

    accepted = 202

    def read(self, request: WebhookRequest) -> Sequence[Notification] | WebhookAnswer:
        token = parse_qs(request.query).get("validationToken")
        if token:
            return WebhookAnswer(200, token[0].encode("utf-8"), "text/plain")
        try:
            items = json.loads(request.body)["value"]
            return [
                Notification(
                    channel_id=str(item["subscriptionId"]),
                    token=str(item["clientState"]),
                    changed=item.get("changeType") != "heartbeat",
                )
                for item in items
            ]
        except (ValueError, KeyError, TypeError):
            return WebhookAnswer(400)


def build_shelf(config: ShelfCalendar, context: BuildContext) -> ShelfProvider:
    return ShelfProvider(config.name, config.owner, config.shelf)


PROVIDER = ProviderSpec(name=NAME, config=ShelfCalendar, build=build_shelf, push=ShelfPush())
