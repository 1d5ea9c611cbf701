"""The notification channel protocol.

A :class:`Notifier` delivers one message to one channel. A channel is an
apprise URL (``mailto://``, ``slack://``, ``msteams://``, ``gchat://``,
``json://`` ...). The URL often carries a token or a password, so it never goes
to logs, metrics or the database: callers refer to a channel by
:func:`channel_id`, a short hash of its URL.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Message:
    """One rendered message. ``subject`` may be ignored by chat channels."""

    subject: str
    body: str


@runtime_checkable
class Notifier(Protocol):
    """Delivers messages to channels.

    ``send`` returns only after the channel accepted the message. It raises
    :class:`~feedback_agendas.agendas.errors.TransientError` when delivery failed and may work
    later (the outbox retries with backoff), and
    :class:`~feedback_agendas.agendas.errors.PermissionDenied` when the URL itself is unusable
    (bad scheme or syntax: retrying will not help).
    """

    def send(self, channel_url: str, message: Message) -> None:
        """Deliver ``message`` to the one channel ``channel_url``."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def channel_id(channel_url: str) -> str:
    """A stable, secret-free name for a channel URL: what we store and log."""
    return "ch-" + hashlib.sha256(channel_url.encode("utf-8")).hexdigest()[:16]
