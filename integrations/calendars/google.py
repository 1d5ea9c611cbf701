"""The Google Calendar provider: incremental sync and edit-safe batched writes.

It only maps and transports; deciding and merging happen in the core. Reads
go through :func:`feedback_agendas.integrations.retry.call_with_retry`; writes go out in
``multipart/mixed`` batches to ``<endpoint>/batch/calendar/v3``, each call
with ``If-Match: <etag>`` and ``sendUpdates=none``, paced by a per-user token
bucket. The client's own ``num_retries`` is never used: it retries PATCH
without a cap and ignores ``Retry-After``.

The module ends with its registration (the ``calendars[]`` model, the
factory and ``PROVIDER``), which is why it runs past 400 lines: the
registry finds a provider's settings in the provider's own module, and the
client, mapping, errors and push reading already live in ``google_*`` modules.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest
from pydantic import Field, model_validator

from feedback_agendas.agendas.errors import (
    CursorExpired,
    FeedbackAgendasError,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    ProviderError,
    QuotaExceeded,
    TransientError,
)
from feedback_agendas.agendas.model import (
    ChangeSet,
    DescriptionWrite,
    EventRef,
    Meeting,
    Unreadable,
    WriteOutcome,
)
from feedback_agendas.integrations.calendars.base import BuildContext, CalendarConfig, ProviderSpec
from feedback_agendas.integrations.calendars.google_client import (
    CALENDAR_SCOPE,
    GoogleClient,
    build_calendar_client,
    credentials_problem,
    google_auth_command,
    load_credentials,
)
from feedback_agendas.integrations.calendars.google_errors import (
    TRANSPORT_ERRORS,
    classify_failure,
    translate_http_error,
    translate_transport_error,
)
from feedback_agendas.integrations.calendars.google_map import (
    google_event_id,
    is_cancelled,
    may_write,
    patch_body,
    ref_for,
    to_meeting_or_unreadable,
)
from feedback_agendas.integrations.calendars.google_push import (
    GooglePush,
    PushChannel,
    expiration_from_millis,
    verify_push,
)
from feedback_agendas.integrations.config_types import (
    Credentials,
    Email,
    HttpUrl,
    NonEmptyStr,
    ProblemAt,
    is_loopback_url,
)
from feedback_agendas.integrations.ratelimit import UserRateLimiter
from feedback_agendas.integrations.retry import DEFAULT_POLICY, RetryPolicy, call_with_retry

__all__ = [
    "PROVIDER",
    "GoogleCalendar",
    "GoogleProvider",
    "PushChannel",
    "build_google",
    "verify_push",
]

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 2500  # Google's maximum for events.list
MAX_BATCH_SIZE = 1000  # Google's maximum calls per batch


class GoogleProvider:
    """One Google calendar, read and written as one user.

    ``credentials`` is ``"anonymous"`` (loopback ``api_endpoint`` only), a
    service-account key file (with ``subject``) or an OAuth token file.
    ``quotaUser`` is ``subject`` (else ``owner``) so each impersonated user
    has their own quota bucket. ``http``, ``clock``, ``sleep`` and ``rng`` are
    for tests; ``limiter`` may be shared between providers of one process.
    """

    def __init__(
        self,
        *,
        name: str,
        owner: str,
        calendar_id: str = "primary",
        credentials: str | Path = "anonymous",
        subject: str | None = None,
        api_endpoint: object | None = None,
        batch_size: int = 50,
        writes_per_minute: int = 60,
        http: Any = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        retry_policy: RetryPolicy = DEFAULT_POLICY,
        limiter: UserRateLimiter | None = None,
    ) -> None:
        # Config may hand us a URL object (pydantic HttpUrl): the client wants text.
        api_endpoint = str(api_endpoint) if api_endpoint else None
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}")
        self.name = name
        self.owner = owner.lower()
        self.calendar_id = calendar_id
        self.quota_user = (subject or owner).lower()
        self.batch_size = batch_size
        self.requests: Counter[str] = Counter()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._policy = retry_policy
        self._limiter = limiter or UserRateLimiter(writes_per_minute, clock=clock, sleep=sleep)
        creds = load_credentials(credentials, subject=subject, api_endpoint=api_endpoint)
        self._client: GoogleClient = build_calendar_client(
            creds, api_endpoint=api_endpoint, http=http, timeout=timeout
        )
        self._events = self._client.events
        self._channels = self._client.channels
        # Refs read this cycle that we must never write (I6, second fence).
        self._unwritable: set[EventRef] = set()

    # -- reading -------------------------------------------------------------

    def read_changes(self, cursor: str | None) -> ChangeSet:
        """List every page since ``cursor`` (a sync token); ``None`` lists everything.

        The new sync token comes only from the last page, so a failure half-way
        leaves the old cursor in place. Raises :class:`CursorExpired` on 410.
        """
        params: dict[str, Any] = {
            "calendarId": self.calendar_id,
            "singleEvents": False,
            "showDeleted": True,
            "maxResults": MAX_PAGE_SIZE,
            "quotaUser": self.quota_user,
        }
        if cursor is not None:
            if not cursor:
                raise CursorExpired("google list: empty sync token")
            params["syncToken"] = cursor
        meetings: dict[EventRef, Meeting] = {}
        deleted: dict[EventRef, None] = {}
        unreadable: dict[EventRef, Unreadable] = {}
        page_token: str | None = None
        while True:
            request = self._events.list(pageToken=page_token, **params)
            page = self._read("list", request)
            for item in page.get("items") or ():
                self._take(item, meetings, deleted, unreadable)
            page_token = page.get("nextPageToken")
            if not page_token:
                sync_token = page.get("nextSyncToken")
                if not sync_token:
                    raise ProviderError("google list: last page without nextSyncToken")
                break
        return ChangeSet(
            meetings=tuple(meetings.values()),
            deleted=tuple(deleted),
            cursor=str(sync_token),
            full=cursor is None,
            unreadable=tuple(unreadable.values()),
        )

    def _take(
        self,
        item: dict[str, Any],
        meetings: dict[EventRef, Meeting],
        deleted: dict[EventRef, None],
        unreadable: dict[EventRef, Unreadable],
    ) -> None:
        # An event changed during paging can come twice: the later copy wins.
        if is_cancelled(item):
            try:
                ref = ref_for(self.name, item)
            except ValueError as exc:
                unreadable[EventRef(self.name, str(item.get("id", "?")))] = Unreadable(
                    EventRef(self.name, str(item.get("id", "?"))), str(exc)
                )
                return
            meetings.pop(ref, None)
            deleted[ref] = None
            return
        mapped = to_meeting_or_unreadable(self.name, self.owner, item)
        if isinstance(mapped, Unreadable):
            unreadable[mapped.ref] = mapped
            return
        deleted.pop(mapped.ref, None)
        meetings[mapped.ref] = mapped
        self._remember_writability(mapped)

    def _remember_writability(self, meeting: Meeting) -> None:
        if may_write(meeting):
            self._unwritable.discard(meeting.ref)
        else:
            self._unwritable.add(meeting.ref)

    def get(self, ref: EventRef) -> Meeting | None:
        """Read one series, single event or occurrence again; ``None`` when it is gone."""
        request = self._events.get(
            calendarId=self.calendar_id,
            eventId=google_event_id(ref),
            quotaUser=self.quota_user,
        )
        try:
            item = self._read("get", request)
        except NotFound:
            return None
        if is_cancelled(item):
            return None
        mapped = to_meeting_or_unreadable(self.name, self.owner, item)
        if isinstance(mapped, Unreadable):
            raise ProviderError(f"google get: unreadable event ({mapped.reason})")
        self._remember_writability(mapped)
        return mapped

    def _read(self, kind: str, request: Any) -> dict[str, Any]:
        def once() -> dict[str, Any]:
            answer: dict[str, Any] = self._execute(kind, request)
            return answer

        result: dict[str, Any] = call_with_retry(
            once, policy=self._policy, sleep=self._sleep, clock=self._clock, rng=self._rng
        )
        return result

    def _execute(self, kind: str, request: Any) -> Any:
        """One request, no retry; errors translated; quota cool-down honoured."""
        self._limiter.check_quota(self.quota_user)
        self.requests[kind] += 1
        try:
            return request.execute(http=self._client.http, num_retries=0)
        except HttpError as exc:
            error = translate_http_error(exc, operation=kind)
            if isinstance(error, QuotaExceeded):
                self._limiter.start_cooldown(self.quota_user)
            raise error from exc
        except TRANSPORT_ERRORS as exc:
            raise translate_transport_error(exc, operation=kind) from exc

    # -- writing -------------------------------------------------------------

    def write(self, writes: Sequence[DescriptionWrite]) -> list[WriteOutcome]:
        """Patch each description conditionally; one outcome per write, in order.

        Writes to events we must not touch fail with :class:`PermissionDenied`
        without a request. Transient per-call failures are retried (only those
        calls) with backoff; ``If-Match`` makes a retried patch safe, because a
        patch that did land turns into a 412 and the caller re-reads.
        """
        outcomes: list[WriteOutcome | None] = [None] * len(writes)
        sendable: list[int] = []
        for index, w in enumerate(writes):
            if w.ref in self._unwritable:
                error: FeedbackAgendasError = PermissionDenied(
                    "google patch: refused, event is not ours to edit"
                )
                outcomes[index] = WriteOutcome(ref=w.ref, error=error)
            elif not w.etag:
                outcomes[index] = WriteOutcome(
                    ref=w.ref, error=PreconditionFailed("google patch: no etag to match")
                )
            else:
                sendable.append(index)
        for start in range(0, len(sendable), self.batch_size):
            chunk = sendable[start : start + self.batch_size]
            self._write_chunk(writes, chunk, outcomes)
        return [
            o if o is not None else WriteOutcome(ref=w.ref)
            for o, w in zip(outcomes, writes, strict=True)
        ]

    def _write_chunk(
        self,
        writes: Sequence[DescriptionWrite],
        chunk: list[int],
        outcomes: list[WriteOutcome | None],
    ) -> None:
        pending = list(chunk)

        def send_pending() -> None:
            transient = self._send_batch(writes, pending, outcomes)
            pending[:] = [i for i in pending if outcomes[i] is None]
            if pending:
                retry_after = max((e.retry_after or 0.0 for e in transient), default=0.0)
                raise TransientError("google batch: transient failures", retry_after or None)

        try:
            call_with_retry(
                send_pending,
                policy=self._policy,
                sleep=self._sleep,
                clock=self._clock,
                rng=self._rng,
            )
        except (TransientError, QuotaExceeded) as exc:
            for i in pending:
                outcomes[i] = WriteOutcome(ref=writes[i].ref, error=exc)

    def _send_batch(
        self,
        writes: Sequence[DescriptionWrite],
        indices: list[int],
        outcomes: list[WriteOutcome | None],
    ) -> list[TransientError]:
        """Send one batch; fill ``outcomes`` for settled calls, return transient errors."""
        self._limiter.acquire_writes(self.quota_user, len(indices))
        transient: list[TransientError] = []

        def settle(request_id: str, response: Any, exception: HttpError | None) -> None:
            i = int(request_id)
            if exception is None:
                outcomes[i] = WriteOutcome(ref=writes[i].ref, etag=str(response.get("etag", "")))
                return
            error = translate_http_error(exception, operation="patch")
            if isinstance(error, TransientError):
                transient.append(error)
                return
            if isinstance(error, QuotaExceeded):
                self._limiter.start_cooldown(self.quota_user)
            outcomes[i] = WriteOutcome(ref=writes[i].ref, error=error)

        batch = BatchHttpRequest(callback=settle, batch_uri=self._client.batch_uri)
        for i in indices:
            w = writes[i]
            request = self._events.patch(
                calendarId=self.calendar_id,
                eventId=google_event_id(w.ref),
                body=patch_body(w.description, w.block_hash),
                sendUpdates="none",
                quotaUser=self.quota_user,
            )
            request.headers["If-Match"] = w.etag
            batch.add(request, request_id=str(i))
        self.requests["batch"] += 1
        self.requests["patch"] += len(indices)
        try:
            batch.execute(http=self._client.http)
        except HttpError as exc:
            error = translate_http_error(exc, operation="batch")
            if isinstance(error, QuotaExceeded):
                self._limiter.start_cooldown(self.quota_user)
            if isinstance(error, TransientError):
                return [error] * len(indices)
            for i in indices:
                outcomes[i] = WriteOutcome(ref=writes[i].ref, error=error)
            return []
        except TRANSPORT_ERRORS as exc:
            return [translate_transport_error(exc, operation="batch")]
        return transient

    # -- push ----------------------------------------------------------------

    def watch(self, channel_id: str, address: str, token: str, ttl: int) -> PushChannel:
        """Register a ``web_hook`` channel for this calendar's events.

        ``token`` is the secret Google echoes in ``X-Goog-Channel-Token``;
        ``ttl`` is the lifetime asked for, in seconds (Google may shorten it).
        """
        body = {
            "id": channel_id,
            "type": "web_hook",
            "address": address,
            "token": token,
            "params": {"ttl": str(int(ttl))},
        }
        request = self._events.watch(
            calendarId=self.calendar_id, body=body, quotaUser=self.quota_user
        )
        answer = self._read("watch", request)
        return PushChannel(
            channel_id=str(answer.get("id", channel_id)),
            resource_id=str(answer.get("resourceId", "")),
            expiration=expiration_from_millis(answer.get("expiration")),
        )

    def renew_channel(self, channel: PushChannel, ttl: int) -> PushChannel | None:
        """None: Google's channels cannot be renewed, only replaced."""
        return None

    def stop_channel(self, channel_id: str, resource_id: str) -> None:
        """Stop a channel (on opt-out, shutdown, or after its replacement started)."""
        request = self._channels.stop(
            body={"id": channel_id, "resourceId": resource_id}, quotaUser=self.quota_user
        )
        with contextlib.suppress(NotFound):  # already gone: that is what we wanted
            self._read("stop", request)

    def close(self) -> None:
        """Drop pooled connections."""
        http = getattr(self._client.http, "http", None)
        connections = getattr(http, "connections", None)
        if isinstance(connections, dict):
            for conn in list(connections.values()):
                conn.close()
            connections.clear()


# -- registration -------------------------------------------------------------


class GoogleCalendar(CalendarConfig):
    """A Google calendar through Calendar API v3."""

    provider: Literal["google"]
    credentials: Credentials
    subject: Email | None = None
    calendar_id: NonEmptyStr = "primary"
    api_endpoint: HttpUrl | None = None
    batch_size: int = Field(default=50, ge=1, le=1000)
    writes_per_minute: int = Field(default=60, ge=1)

    @model_validator(mode="after")
    def _anonymous_only_on_loopback(self) -> GoogleCalendar:
        if self.credentials == "anonymous" and not is_loopback_url(self.api_endpoint):
            raise ProblemAt(
                "credentials",
                "'anonymous' is allowed only with an api_endpoint on this machine "
                "(127.0.0.1, ::1 or localhost)",
            )
        return self

    def problems_here(self) -> list[tuple[str, str]]:
        """The credentials file, loaded as the provider loads it (no token is fetched)."""
        problem = credentials_problem(
            self.credentials,
            subject=self.subject,
            api_endpoint=self.api_endpoint,
            scopes=(CALENDAR_SCOPE,),
        )
        return [("credentials", problem)] if problem else []


def build_google(config: GoogleCalendar, context: BuildContext) -> GoogleProvider:
    """The provider for one entry; ``context.clock`` times its write budget and deadlines."""
    options: dict[str, Any] = {"clock": context.clock} if context.clock is not None else {}
    return GoogleProvider(
        name=config.name,
        owner=config.owner,
        calendar_id=config.calendar_id,
        credentials=config.credentials,
        subject=config.subject,
        api_endpoint=config.api_endpoint,
        batch_size=config.batch_size,
        writes_per_minute=config.writes_per_minute,
        **options,
    )


PROVIDER = ProviderSpec(
    name="google",
    config=GoogleCalendar,
    build=build_google,
    push=GooglePush(),
    classify_failure=classify_failure,
    commands=(google_auth_command,),
)
