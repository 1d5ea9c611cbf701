"""Translate the Google client's errors into our exception tree, where they enter.

=====================================================  ==========================
Google says                                            we raise
=====================================================  ==========================
412 ``conditionNotMet``                                PreconditionFailed
404, or 410 on a single event                          NotFound
410 ``fullSyncRequired`` (or any 410 on a list)         CursorExpired
429, 403 ``rateLimitExceeded``/``userRateLimitExceeded``  RateLimited (retry_after)
5xx, timeouts, connection resets                       TransientError
403 ``quotaExceeded``/``dailyLimitExceeded``           QuotaExceeded
401, other 403                                         PermissionDenied
=====================================================  ==========================

Messages carry the status and reason only, never a response body.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import httplib2
from googleapiclient.errors import HttpError

from feedback_agendas.agendas.errors import (
    CursorExpired,
    FeedbackAgendasError,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    ProviderError,
    QuotaExceeded,
    RateLimited,
    TransientError,
)
from feedback_agendas.integrations.calendars.base import ProviderFailure

RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})

# Errors raised by the transport below the client: worth a retry.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    socket.timeout,
    ConnectionError,
    httplib2.HttpLib2Error,
    OSError,
)


def error_reason(exc: HttpError) -> str:
    """The first ``error.errors[].reason`` (or ``error.status``) of a Google error body."""
    try:
        body: Any = json.loads(exc.content.decode("utf-8") if exc.content else "{}")
        error = body.get("error", {})
        errors = error.get("errors") or []
        if errors and isinstance(errors[0], dict) and errors[0].get("reason"):
            return str(errors[0]["reason"])
        return str(error.get("status", ""))
    except (ValueError, AttributeError, UnicodeDecodeError):
        return ""


def retry_after_seconds(exc: HttpError) -> float | None:
    """``Retry-After`` in seconds, if the response sent one as a number."""
    value = exc.resp.get("retry-after") if exc.resp is not None else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def translate_http_error(exc: HttpError, *, operation: str) -> FeedbackAgendasError:
    """Our error for ``exc``. ``operation`` is ``list``, ``get``, ``patch``, ``watch`` ..."""
    status = int(exc.resp.status)
    reason = error_reason(exc)
    what = f"google {operation}: HTTP {status} {reason}".strip()
    if status == 412:
        return PreconditionFailed(what)
    if status == 410 and operation == "list":
        return CursorExpired(what)
    if status in (404, 410):
        return NotFound(what)
    if status == 429 or (status == 403 and reason in RATE_LIMIT_REASONS):
        return RateLimited(what, retry_after=retry_after_seconds(exc))
    if status == 403 and reason in QUOTA_REASONS:
        return QuotaExceeded(what)
    if status >= 500:
        return TransientError(what, retry_after=retry_after_seconds(exc))
    if status in (401, 403):
        return PermissionDenied(what)
    return ProviderError(what)


def translate_transport_error(exc: BaseException, *, operation: str) -> TransientError:
    """A timeout or broken connection below the client."""
    return TransientError(f"google {operation}: {type(exc).__name__}")


AUTH_HINT = (
    "check its credentials: the Google token (feedback-agendas google-auth) "
    "or the service account's delegation"
)


def classify_failure(exc: BaseException) -> ProviderFailure | None:
    """google-auth's own exceptions (raised while fetching a token), as a failure kind.

    A refresh that failed on the way (not a refusal) is a network problem.
    The detail names the OAuth ``error`` code (``invalid_grant``), never the
    description or a token.
    """
    from google.auth import exceptions as google_auth

    if isinstance(exc, google_auth.RefreshError):
        kind = "network" if getattr(exc, "retryable", False) else "auth"
    elif isinstance(exc, google_auth.TransportError):
        kind = "network"
    elif isinstance(exc, google_auth.GoogleAuthError):
        kind = "auth"
    else:
        return None
    code = _oauth_error_code(exc)
    what = "refused the credentials" if kind == "auth" else "could not be reached"
    detail = f"Google's token endpoint {what}" + (f" ({code})" if code else "")
    return ProviderFailure(kind, detail, AUTH_HINT if kind == "auth" else None)


def _oauth_error_code(exc: BaseException) -> str:
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, dict) and isinstance(arg.get("error"), str):
            code = arg["error"]
            return code if code.replace("_", "").isalnum() and len(code) < 40 else ""
    return ""
