"""What went wrong in one calendar's cycle: a kind to count, a message to act on.

Any exception inside one calendar's cycle ends that calendar's cycle only.
:func:`describe_failure` turns it into a :class:`Failure`:

==============  ==============================================================
kind            what it means, and what raised it
==============  ==============================================================
auth            the credentials were refused: HTTP 401, or a provider's auth
                library refused them (a revoked token, a broken delegation)
permission      HTTP 403, or a file or folder we may not read or write
not_found       the calendar, its folder or a file is gone
quota           quota or rate limit (403 ``quotaExceeded``, 429)
network         timeouts, refused connections, 5xx, a provider's transport error
invalid_data    data we cannot read (a cursor, an event, a rule)
storage         our database or its disk failed (full, unreachable, a value
                it refuses)
config          a setting of this calendar that fails only at run time, such
                as a credentials file that is missing or readable by others
template        an admin template failed while rendering
conflict        the event kept changing under us (412 retries used up)
internal        anything else: a bug. Logged once with its traceback.
==============  ==============================================================

An exception that a provider's library raised (not one of ours) is first
offered to each provider's ``classify_failure`` hook (see
:class:`~feedback_agendas.integrations.calendars.base.ProviderSpec`), which
knows its library's exceptions; the first answer wins.

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
from feedback_agendas.integrations.calendars.base import ProviderFailure
from feedback_agendas.integrations.calendars.registry import provider_specs
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
    AUTH: "check its credentials: the user and password, the token or the delegation",
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
    found = provider_failure(exc)
    if found is not None:
        return found.kind
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
    found = provider_failure(exc)
    detail = found.detail if found is not None else _detail(exc, kind)
    hint = (found.hint if found is not None else None) or _HINTS.get(kind)
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


def provider_failure(exc: BaseException) -> ProviderFailure | None:
    """What a provider's hook makes of ``exc`` (None: no provider claims it).

    Our own exceptions are never offered: they say what they are.
    """
    if isinstance(exc, ProviderError | UserError | PreconditionFailed):
        return None
    for spec in provider_specs():
        if spec.classify_failure is None:
            continue
        found = spec.classify_failure(exc)
        if found is not None:
            return found
    return None


def _is_database_error(exc: BaseException) -> bool:
    from sqlalchemy.exc import SQLAlchemyError

    return isinstance(exc, SQLAlchemyError)


def _is_template_error(exc: BaseException) -> bool:
    from jinja2 import TemplateError

    return isinstance(exc, TemplateError)
