"""What went wrong in one calendar's cycle: a kind to count, a message to act on.

Any exception inside one calendar's cycle ends that calendar's cycle only.
:func:`describe_failure` turns it into a :class:`Failure`:

==============  ==============================================================
kind            what it means, and what raised it
==============  ==============================================================
auth            the credentials were refused: HTTP 401, Google ``RefreshError``
                (``invalid_grant``: a revoked token or a broken delegation)
permission      HTTP 403, or a file or folder we may not read or write
not_found       the calendar, its folder or a file is gone
quota           quota or rate limit (403 ``quotaExceeded``, 429)
network         timeouts, refused connections, 5xx, Google ``TransportError``
invalid_data    data we cannot read (a cursor, an event, a rule)
storage         our database or its disk failed (full, unreachable, a value
                it refuses)
config          a setting of this calendar that fails only at run time, such
                as a credentials file that is missing or readable by others
template        an admin template failed while rendering
conflict        the event kept changing under us (412 retries used up)
internal        anything else: a bug. Logged once with its traceback.
==============  ==============================================================

Messages name the calendar's path or setting where the error carries one,
never a secret: our own errors' messages are written to be safe (status and
reason, never a body), and third-party errors contribute their type, an
errno text and a file name only.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from feedback_agendas.agendas.errors import (
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    ProviderError,
    QuotaExceeded,
    RateLimited,
    TemplateFailed,
    TransientError,
    UserError,
)
from feedback_agendas.integrations.redact import mask_urls_in

AUTH = "auth"
PERMISSION = "permission"
NOT_FOUND = "not_found"
QUOTA = "quota"
NETWORK = "network"
INVALID_DATA = "invalid_data"
STORAGE = "storage"
CONFIG = "config"
TEMPLATE = "template"
CONFLICT = "conflict"
INTERNAL = "internal"

KINDS = (
    AUTH,
    PERMISSION,
    NOT_FOUND,
    QUOTA,
    NETWORK,
    INVALID_DATA,
    STORAGE,
    CONFIG,
    TEMPLATE,
    CONFLICT,
    INTERNAL,
)

_HINTS = {
    AUTH: (
        "check its credentials: the CalDAV user and password, the Google token "
        "(feedback-agendas google-auth) or the service account's delegation"
    ),
    PERMISSION: "give the service user access to it",
    NOT_FOUND: "check the calendar's path or id in the config",
    QUOTA: "it retries on its own; lower writes_per_minute if this goes on",
    NETWORK: "it retries on its own next cycle",
    STORAGE: "check the database and the free space of its disk",
}

_MAX_MESSAGE = 300
_DISK_WORDS = ("full", "disk", "space", "i/o", "quota")


@dataclass(frozen=True, slots=True)
class Failure:
    """One failure: ``kind`` (a code from :data:`KINDS`) and a message without secrets."""

    kind: str
    message: str

    @property
    def expected(self) -> bool:
        """False for ``internal``: a bug, worth its traceback in the log."""
        return self.kind != INTERNAL


def error_kind(exc: BaseException) -> str:
    """The kind of ``exc`` (see the module's table)."""
    if isinstance(exc, PreconditionFailed):
        return CONFLICT
    if isinstance(exc, QuotaExceeded | RateLimited):
        return QUOTA
    if isinstance(exc, PermissionDenied):
        return AUTH if "401" in str(exc) else PERMISSION
    if isinstance(exc, NotFound):
        return NOT_FOUND
    if isinstance(exc, TransientError):
        return NETWORK
    if isinstance(exc, TemplateFailed):  # a ConfigError, but it shows only at run time
        return TEMPLATE
    if isinstance(exc, UserError):
        return CONFIG
    if isinstance(exc, ProviderError):
        return _provider_kind(exc)
    google = _google_auth_kind(exc)
    if google is not None:
        return google
    if _is_database_error(exc):
        return STORAGE
    if _is_template_error(exc):
        return TEMPLATE
    if isinstance(exc, OSError):
        return _os_kind(exc)
    from feedback_agendas.agendas.recurrence import RecurrenceError

    if isinstance(exc, RecurrenceError | UnicodeError):
        return INVALID_DATA
    return INTERNAL


def describe_failure(
    exc: BaseException, *, calendar: str | None = None, subject: str | None = None
) -> Failure:
    """``exc`` as a kind and a one-line message that names ``calendar`` (or ``subject``)."""
    kind = error_kind(exc)
    detail = _detail(exc, kind)
    hint = _HINTS.get(kind)
    if kind == STORAGE and not any(word in detail.lower() for word in _DISK_WORDS):
        hint = "check the database"  # not the disk: a missing table, a refused value
    message = f"{f'calendar {calendar}' if calendar is not None else subject}: {kind}: {detail}"
    if hint:
        message += f" ({hint})"
    # Any URL an exception quotes keeps its host but never its userinfo.
    return Failure(kind=kind, message=mask_urls_in(message)[:_MAX_MESSAGE])


def _detail(exc: BaseException, kind: str) -> str:
    if kind == INTERNAL:
        return f"unexpected {type(exc).__name__}"
    if isinstance(exc, ProviderError | UserError | PreconditionFailed):
        # Our own messages: status, reason, path; never a body or a secret.
        text = _first_line(str(exc))
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.strerror and cause.strerror not in text:
            text += f": {cause.strerror}"
        return text or type(exc).__name__
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or type(exc).__name__}{where}"
    if kind == STORAGE:
        orig = getattr(exc, "orig", None)
        # The driver's first line ("database or disk is full"); later lines may quote values.
        reason = _first_line(str(orig)) if orig is not None else ""
        return f"database: {type(exc).__name__}" + (f": {reason}" if reason else "")
    if kind in (AUTH, NETWORK) and _google_auth_kind(exc) is not None:
        code = _google_error_code(exc)
        what = "refused the credentials" if kind == AUTH else "could not be reached"
        return f"Google's token endpoint {what}" + (f" ({code})" if code else "")
    if kind == TEMPLATE:
        return f"an admin template failed: {type(exc).__name__}"
    return type(exc).__name__


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _provider_kind(exc: ProviderError) -> str:
    cause = exc.__cause__
    if isinstance(cause, OSError):
        return _os_kind(cause)
    return NETWORK if "timeout" in str(exc).lower() else INVALID_DATA


def _os_kind(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return NOT_FOUND
    if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
        return PERMISSION
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
        return STORAGE
    if isinstance(exc, ConnectionError | TimeoutError):
        return NETWORK
    return STORAGE


def _google_auth_kind(exc: BaseException) -> str | None:
    try:
        from google.auth import exceptions as google_auth
    except ImportError:  # pragma: no cover - google-auth is a dependency
        return None
    if isinstance(exc, google_auth.RefreshError):
        # A refresh that failed on the way (not a refusal) is a network problem.
        return NETWORK if getattr(exc, "retryable", False) else AUTH
    if isinstance(exc, google_auth.TransportError):
        return NETWORK
    if isinstance(exc, google_auth.GoogleAuthError):
        return AUTH
    return None


def _google_error_code(exc: BaseException) -> str:
    """The OAuth ``error`` code (``invalid_grant``), never the description or a token."""
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, dict) and isinstance(arg.get("error"), str):
            code = arg["error"]
            return code if code.replace("_", "").isalnum() and len(code) < 40 else ""
    return ""


def _is_database_error(exc: BaseException) -> bool:
    from sqlalchemy.exc import SQLAlchemyError

    return isinstance(exc, SQLAlchemyError)


def _is_template_error(exc: BaseException) -> bool:
    from jinja2 import TemplateError

    return isinstance(exc, TemplateError)
