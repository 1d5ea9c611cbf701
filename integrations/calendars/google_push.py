"""Google push notifications: the channel we registered and how to check a notification.

Google posts an empty body; the headers say which channel (``X-Goog-Channel-Id``),
carry the secret we chose (``X-Goog-Channel-Token``) and the state (``sync``
when the channel starts, ``exists``/``not_exists`` on changes). Channels
expire and cannot be renewed, only replaced; notifications may be lost, so
polling stays on as the fallback.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

PUSH_STATES = frozenset({"sync", "exists", "not_exists"})


@dataclass(frozen=True, slots=True)
class PushChannel:
    """A registered ``web_hook`` channel. ``expiration`` is None when Google gave none."""

    channel_id: str
    resource_id: str
    expiration: datetime | None

    def needs_replacing(self, now: datetime, margin_seconds: float = 3600.0) -> bool:
        """True when the channel expires within ``margin_seconds`` of ``now``."""
        if self.expiration is None:
            return False
        return (self.expiration - now).total_seconds() <= margin_seconds


def expiration_from_millis(value: object) -> datetime | None:
    """Google's ``expiration`` (milliseconds since the epoch, as a string) -> datetime."""
    if value in (None, ""):
        return None
    try:
        return datetime.fromtimestamp(int(str(value)) / 1000.0, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def verify_push(headers: Mapping[str, str], expected_token: str) -> bool:
    """True when a notification carries our channel token and a known resource state.

    The token comparison is constant-time. An empty expected token never matches.
    """
    if not expected_token:
        return False
    token = _header(headers, "X-Goog-Channel-Token")
    state = _header(headers, "X-Goog-Resource-State")
    if token is None or state not in PUSH_STATES:
        return False
    return hmac.compare_digest(token.encode("utf-8"), expected_token.encode("utf-8"))


def push_channel_id(headers: Mapping[str, str]) -> str | None:
    """The ``X-Goog-Channel-Id`` of a notification (to find the calendar to sync)."""
    return _header(headers, "X-Goog-Channel-Id")
