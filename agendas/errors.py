"""The one exception tree of feedback-agendas.

::

    FeedbackAgendasError
    ├── UserError                  printed without a traceback
    │   └── ConfigError            bad config: file, line and key for every problem
    │       └── TemplateFailed     an admin template failed rendering one agenda (that event only)
    ├── RecurrenceError            an RRULE we cannot expand (agendas.recurrence; skipped)
    ├── PreconditionFailed         someone else changed the event first (412, etag mismatch)
    ├── WriteHeld                  the provider chose not to write now (not a failure)
    └── ProviderError              a calendar or notification backend failed
        ├── NotFound               the event (or calendar) is gone
        ├── CursorExpired          the sync cursor is no longer valid (Google 410): full resync
        ├── TransientError         worth retrying: 5xx, timeouts, connection resets
        │   └── RateLimited        429 / 403 rateLimitExceeded; may carry retry_after seconds
        ├── QuotaExceeded          403 quotaExceeded: long cool-down
        └── PermissionDenied       401/403 that is not about rate limits

Third-party errors are translated where they enter (``raise X(...) from exc``).
"""

from __future__ import annotations

from datetime import datetime


class FeedbackAgendasError(Exception):
    """Root of every error this project raises on purpose."""


class UserError(FeedbackAgendasError):
    """Something the user can fix; the CLI prints it without a traceback."""


class ConfigError(UserError):
    """The configuration is invalid. ``problems`` lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class TemplateFailed(ConfigError):
    """An agenda template failed while rendering one agenda, at run time.

    Start-up renders every template with worst-case input, so this means an
    input only that event has made an admin template fail (an error in it, or
    a limit of :mod:`feedback_agendas.agendas.template_sandbox`). Only the events it renders
    fail. ``template`` names it; the message never quotes event content.
    """

    def __init__(self, template: str, reason: str) -> None:
        super().__init__([f"{template}: {reason}"])
        self.template = template
        self.reason = reason


class PreconditionFailed(FeedbackAgendasError):
    """The event changed since we read it (HTTP 412, CalDAV/vdir etag mismatch)."""


class WriteHeld(FeedbackAgendasError):
    """A provider held a write back on purpose: not written, and not a failure.

    A backend where every write has a cost for other people (Microsoft Graph
    sends attendees a meeting update) writes only when the agenda's visible
    text changes, and at most once a day per event. The cycle records the
    event as not written, keeps the hash it knew, and reads it again at
    ``revisit_at`` (None: only when the event changes).
    """

    def __init__(self, message: str, revisit_at: datetime | None = None) -> None:
        super().__init__(message)
        self.revisit_at = revisit_at


class ProviderError(FeedbackAgendasError):
    """A calendar or notification backend failed."""


class NotFound(ProviderError):
    """The event or calendar no longer exists."""


class CursorExpired(ProviderError):
    """The stored sync cursor is invalid; the caller must do one full resync."""


class TransientError(ProviderError):
    """A failure worth retrying later (5xx, timeout, connection reset)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(TransientError):
    """Too many requests (429, 403 rateLimitExceeded / userRateLimitExceeded)."""


class QuotaExceeded(ProviderError):
    """The daily/project quota is used up (403 quotaExceeded): cool down for long."""


class PermissionDenied(ProviderError):
    """Authentication or authorisation failed."""
