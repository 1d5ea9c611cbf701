"""The calendar provider protocol, and what a provider module tells the runtime.

A provider does three things: report what changed since a cursor, read one
event again, and write descriptions conditionally on an etag. Everything else
(classification, planning, merging, records) happens outside it.

Each provider module exports a :class:`ProviderSpec` named ``PROVIDER``: its
config model (one ``calendars[]`` entry), a factory that builds the provider
from that model, and optional hooks (push notifications, classifying the
errors its libraries raise, CLI commands). The registry
(:mod:`feedback_agendas.integrations.calendars.registry`) names the modules;
the runtime derives everything else from the specs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from feedback_agendas.agendas.model import (
    ChangeSet,
    DescriptionWrite,
    EventRef,
    Meeting,
    WriteOutcome,
)
from feedback_agendas.integrations.config_types import Email, FrozenModel, Name


@runtime_checkable
class CalendarProvider(Protocol):
    """One calendar.

    ``name`` is the calendar's configured name (``EventRef.calendar``).
    ``requests`` counts the requests made to the backend by kind
    (``list``, ``get``, ``patch``, ``batch``, ``put``, ``report`` ...).
    """

    name: str
    requests: Counter[str]

    def read_changes(self, cursor: str | None) -> ChangeSet:
        """Return what changed since ``cursor``; ``None`` means a full listing.

        Raises :class:`~feedback_agendas.agendas.errors.CursorExpired` when the cursor is no
        longer valid (the caller then calls again with ``None``), and
        :class:`~feedback_agendas.agendas.errors.ProviderError` subclasses on backend failures.
        Events it cannot parse come back in ``ChangeSet.unreadable``.
        """
        ...

    def get(self, ref: EventRef) -> Meeting | None:
        """Read one event (a series, a single event or one occurrence) again.

        Returns ``None`` when it no longer exists.
        """
        ...

    def write(self, writes: Sequence[DescriptionWrite]) -> list[WriteOutcome]:
        """Write each description if the event's etag still matches.

        One outcome per write, in order. A stale etag gives an outcome whose
        ``error`` is :class:`~feedback_agendas.agendas.errors.PreconditionFailed`; other failures
        carry a :class:`~feedback_agendas.agendas.errors.ProviderError`. Writes to different
        occurrences of one stored object (one .ics file) are applied together.
        Only the description and our block hash change.
        """
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...

    # Optional: ``writes_events: bool``. False when the calendar is configured
    # never to change its events (Microsoft's ``write_mode: reminder``): the
    # cycle then decides every meeting but writes nothing, and the agenda
    # travels in the reminder before the meeting instead (see
    # :func:`writes_events`).

    # Optional: ``cursor_after_writes(cursor) -> str``. The engine stores its
    # result instead of ``ChangeSet.cursor`` after the cycle's writes, so that a
    # provider can record the versions its own writes made (CalDAV: the etags
    # its PUTs returned) and not fetch them back in the next cycle.


def writes_events(provider: CalendarProvider) -> bool:
    """True unless ``provider`` says it must never write to its events."""
    return bool(getattr(provider, "writes_events", True))


def write_notices(provider: CalendarProvider, meeting: Meeting) -> int:
    """How many people a write of ``meeting``'s description notifies (0: a silent write).

    A provider whose writes are not silent (Microsoft Graph sends every
    attendee an Outlook meeting update) says so with an optional
    ``write_notices(meeting) -> int``; ``sync --dry-run`` and ``preview`` show
    the sum before anything is written.
    """
    count = getattr(provider, "write_notices", None)
    return int(count(meeting)) if count is not None and writes_events(provider) else 0


# -- push: optional ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PushChannel:
    """A registered channel (a Google ``web_hook`` channel, a Graph subscription).

    ``resource_id`` is what the provider needs besides ``channel_id`` to stop
    it (may equal it); ``expiration`` is None when the backend gave none.
    """

    channel_id: str
    resource_id: str
    expiration: datetime | None

    def needs_replacing(self, now: datetime, margin_seconds: float = 3600.0) -> bool:
        """True when the channel expires within ``margin_seconds`` of ``now``."""
        if self.expiration is None:
            return False
        return (self.expiration - now).total_seconds() <= margin_seconds


@runtime_checkable
class PushProvider(Protocol):
    """A provider that can register, renew and stop push channels for its calendar.

    Each method raises :class:`~feedback_agendas.agendas.errors.FeedbackAgendasError`
    subclasses on failure; the runtime then tries again later (polling covers
    the calendar meanwhile). ``token`` is a secret the backend sends back with
    every notification; the runtime keeps only its hash.
    """

    def watch(self, channel_id: str, address: str, token: str, ttl: int) -> PushChannel:
        """Register a channel that posts to ``address`` for ``ttl`` seconds at most."""
        ...

    def renew_channel(self, channel: PushChannel, ttl: int) -> PushChannel | None:
        """Extend ``channel`` by up to ``ttl`` seconds; None when channels cannot be renewed.

        On None the runtime registers a new channel and then stops the old one.
        """
        ...

    def stop_channel(self, channel_id: str, resource_id: str) -> None:
        """Stop a channel this provider registered."""
        ...


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """A POST to ``/webhooks/<provider>``: headers, the raw query string and the body."""

    headers: Mapping[str, str]
    query: str
    body: bytes

    def header(self, name: str) -> str | None:
        """A header's value, whatever the case of its name."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


@dataclass(frozen=True, slots=True)
class WebhookAnswer:
    """What the endpoint answers: a status, and a body and headers when the backend wants them.

    Microsoft Graph's subscription validation, for one, echoes a token as
    ``text/plain`` in the body.
    """

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification as its provider read it; the runtime checks it against its channel.

    - ``channel_id``: the channel it names (the runtime finds the calendar);
    - ``token``: the secret it presents, compared in constant time with the
      hash kept for that channel;
    - ``changed``: whether the calendar may have changed (False for a
      handshake such as Google's first ``sync`` message);
    - ``message_number``: the backend's sequence number, for dropping
      replays; None when the backend numbers none;
    - ``malformed``: the request lacks what this backend always sends; the
      runtime answers 400 once the sender has proved the channel's token;
    - ``channel_action``: the backend asks for the channel itself: ``renew``
      it soon (Graph's ``reauthorizationRequired``), or ``replace`` it, because
      the backend no longer has it (Graph's ``subscriptionRemoved``).
    """

    channel_id: str
    token: str
    changed: bool
    message_number: int | None = None
    malformed: bool = False
    channel_action: Literal["renew", "replace"] | None = None


class PushNotifications(Protocol):
    """How a provider reads the requests its backend posts to ``/webhooks/<provider>``."""

    def read(self, request: WebhookRequest) -> Sequence[Notification] | WebhookAnswer:
        """The notifications in ``request``, or the answer to give at once.

        An answer at once serves handshakes that need no channel (Graph's
        validation echo) and requests that are not notifications at all
        (answer 403: nothing tells a stranger which channels exist).
        Never raises for what a sender posts.
        """
        ...

    @property
    def accepted(self) -> int:
        """The status for notifications that were accepted (Google 200, Graph 202)."""
        ...


class CalendarConfig(FrozenModel):
    """One ``calendars[]`` entry; each provider's config model extends it.

    A subclass declares ``provider: Literal["<its name>"]`` (the config's
    discriminator) and its own keys. Relative paths resolve against the
    config file's folder (see :mod:`feedback_agendas.integrations.config_types`).
    """

    name: Name
    owner: Email
    provider: str

    def problems_here(self) -> list[tuple[str, str]]:
        """(key, message) for what this entry names on this machine and cannot use.

        Runs without the network: a missing folder, a credentials file the
        library refuses. Default: none.
        """
        return []

    def warnings(self) -> list[str]:
        """Settings that are allowed but unsafe (the CLI prints them). Default: none."""
        return []


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What the runtime offers a provider factory besides its config entry.

    ``collections`` (the store) lets a provider remember what it discovered
    across processes (CalDAV: the collection URL of a calendar named by its
    display name); it may be None (a preview). ``clock`` (seconds) times
    budgets and deadlines; None means ``time.monotonic``. ``now`` is the
    runtime's wall clock, for what a provider decides by the date (Microsoft
    writes a meeting at most once a day); None means ``datetime.now(UTC)``.
    """

    collections: Any = None
    clock: Callable[[], float] | None = None
    now: Callable[[], datetime] | None = None


@dataclass(frozen=True, slots=True)
class ProviderFailure:
    """A provider's reading of an exception its libraries raised (see ``classify_failure``).

    ``kind`` is one of the failure kinds of the runtime (``auth``, ``network``,
    ``permission``, ...); ``detail`` and ``hint`` are safe to log: never a
    token, a body or a password.
    """

    kind: str
    detail: str
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """What one provider module tells the runtime (exported as ``PROVIDER``).

    - ``name``: the value of ``provider:`` in the config;
    - ``config``: its ``calendars[]`` model (a :class:`CalendarConfig` whose
      ``provider`` is ``Literal[name]``);
    - ``build(config, context)``: a :class:`CalendarProvider` for one entry;
    - ``push``: how it reads webhook requests, when it offers push channels
      (:class:`PushNotifications`; its providers then implement :class:`PushProvider`);
    - ``classify_failure(exc)``: a :class:`ProviderFailure` for an exception
      its libraries raise that is not one of ours, else None;
    - ``commands``: CLI commands it contributes (``click`` commands), such as
      an OAuth flow.
    """

    name: str
    config: type[CalendarConfig]
    build: Callable[[Any, BuildContext], CalendarProvider]
    push: PushNotifications | None = None
    classify_failure: Callable[[BaseException], ProviderFailure | None] | None = None
    commands: tuple[Any, ...] = ()
