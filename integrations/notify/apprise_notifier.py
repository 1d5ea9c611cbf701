"""Delivery through apprise, with one ``Apprise`` object per channel URL.

One object per channel means a retry of a failed channel never resends to a
channel that already succeeded (apprise's ``notify`` on a multi-URL object is
all or nothing from the caller's point of view). ``notify()`` returns an
``AppriseResult`` that is truthy only on full success; anything else is a
:class:`~feedback_agendas.agendas.errors.TransientError`.
"""

from __future__ import annotations

import logging
import threading
import warnings

import apprise
from apprise.plugins import N_MGR

from feedback_agendas.agendas.errors import PermissionDenied, TransientError
from feedback_agendas.integrations.notify.base import Message, channel_id

# apprise logs target hosts and, at debug level, payloads; we log channel ids only.
logging.getLogger("apprise").setLevel(logging.ERROR)

# apprise imports its plugins lazily on the first URL; one of them imports the
# deprecated ``imghdr``. Load them once here, so the warning is not raised later
# in whatever thread adds the first channel.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    N_MGR.load_modules()  # type: ignore[no-untyped-call]


def is_usable_channel(channel_url: str) -> bool:
    """True when apprise can send to ``channel_url`` (parsed only: no network)."""
    return bool(apprise.Apprise().add(channel_url))


class AppriseNotifier:
    """A :class:`~feedback_agendas.integrations.notify.base.Notifier` backed by apprise."""

    def __init__(self) -> None:
        self._channels: dict[str, apprise.Apprise] = {}
        self._lock = threading.Lock()

    def _channel(self, channel_url: str) -> apprise.Apprise:
        with self._lock:
            channel = self._channels.get(channel_url)
            if channel is None:
                channel = apprise.Apprise()
                if not channel.add(channel_url):
                    raise PermissionDenied(f"channel {channel_id(channel_url)}: unusable URL")
                self._channels[channel_url] = channel
            return channel

    def send(self, channel_url: str, message: Message) -> None:
        """Deliver ``message``; raise ``TransientError`` unless apprise reports full success."""
        channel = self._channel(channel_url)
        try:
            result = channel.notify(title=message.subject, body=message.body)
        except Exception as exc:  # apprise plugins raise whatever their transport raises
            raise TransientError(
                f"channel {channel_id(channel_url)}: {type(exc).__name__}"
            ) from exc
        if not result:
            raise TransientError(f"channel {channel_id(channel_url)}: not delivered")

    def close(self) -> None:
        with self._lock:
            self._channels.clear()
