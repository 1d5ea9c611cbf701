"""Google push notifications: what a notification carries and how to read it.

Google posts an empty body; the headers say which channel (``X-Goog-Channel-Id``),
carry the secret we chose (``X-Goog-Channel-Token``), number the messages of
a channel (``X-Goog-Message-Number``) and give the state (``sync`` when the
channel starts, ``exists``/``not_exists`` on changes). Channels expire and
cannot be renewed, only replaced; notifications may be lost, so polling stays
on as the fallback.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from feedback_agendas.integrations.calendars.base import (
    Notification,
    PushChannel,
    WebhookAnswer,
    WebhookRequest,
)

__all__ = ["GooglePush", "PushChannel", "expiration_from_millis", "push_channel_id", "verify_push"]

PUSH_STATES = frozenset({"sync", "exists", "not_exists"})
_CHANGE_STATES = frozenset({"exists", "not_exists"})
_MESSAGE_NUMBER = re.compile(r"[0-9]{1,18}")


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


class GooglePush:
    """Reads the notifications Google posts to ``/webhooks/google``: one per request."""

    accepted = 200

    def read(self, request: WebhookRequest) -> Sequence[Notification] | WebhookAnswer:
        """The request's one notification.

        Without a valid ``X-Goog-Message-Number`` (Google always sends one) it is
        malformed: 400 once its token checks out, 403 otherwise.
        """
        number = (request.header("X-Goog-Message-Number") or "").strip()
        state = (request.header("X-Goog-Resource-State") or "").strip()
        valid = _MESSAGE_NUMBER.fullmatch(number) is not None
        return [
            Notification(
                channel_id=request.header("X-Goog-Channel-Id") or "",
                token=request.header("X-Goog-Channel-Token") or "",
                changed=state in _CHANGE_STATES,
                message_number=int(number) if valid else None,
                malformed=not valid,
            )
        ]
