"""One place for Microsoft Graph HTTP: app-only tokens, JSON calls, ``$batch``, throttling.

A :class:`GraphSession` is shared by every mailbox of one app registration
(tenant, client id, authority, Graph endpoint): one token, one connection
pool. Each call names the mailbox it works for, and the session keeps
Graph's per-mailbox limits on this side of the wire:

- at most :data:`MAX_IN_FLIGHT` (4) requests in flight per mailbox;
- a sliding budget of requests per mailbox and 10 minutes (9,000 of the
  10,000 Graph allows; a ``$batch`` counts as the calls it holds), after
  which a call raises :class:`QuotaExceeded` ("budget") without a request;
- 429 and 503 (and 502/504) are retried a bounded number of times, waiting
  what ``Retry-After`` says (capped), else an exponential backoff.

TLS: the ``requests.Session`` has ``trust_env=False``, so ``REQUESTS_CA_BUNDLE``
and ``CURL_CA_BUNDLE`` cannot replace the trust we set (certifi, plus
``ca_bundle`` when given), and msal gets this session as its ``http_client``.

Errors are translated where they enter; messages carry the status and
Graph's error code only, never a body or a token. Later modules (push
subscriptions, directory lookups) reuse :meth:`GraphSession.call` and
:meth:`GraphSession.batch`.

It runs past 400 lines because auth, trust, the per-mailbox limits, retries
and ``$batch`` are one transport: split, each part would reach into the
others' state (the budget is charged per batch item, retries re-enter the
slot and the budget, the token is fetched inside each attempt).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import certifi
import jwt
import requests

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

DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
DEFAULT_GRAPH = "https://graph.microsoft.com/v1.0"
MAX_IN_FLIGHT = 4  # Graph's concurrency limit per app and mailbox
MAX_BATCH = 20  # Graph's limit of requests in one $batch
BUDGET = 9000  # requests per mailbox and window; Graph allows 10,000
BUDGET_WINDOW = 600.0  # seconds
RETRIES = 4
RETRY_AFTER_CAP = 60.0
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_RESYNC_CODES = frozenset({"syncStateNotFound", "resyncRequired", "syncStateInvalid"})
# Hosts msal knows; any other authority (a sovereign cloud's own, a local fake)
# is used as given, without asking login.microsoftonline.com about it.
_KNOWN_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.windows.net",
        "login.microsoft.com",
        "sts.windows.net",
    }
)


@dataclass(frozen=True, slots=True)
class Certificate:
    """A client certificate: the PEM file (private key and certificate) and its SHA-1 thumbprint."""

    path: Path
    thumbprint: str


@dataclass(frozen=True, slots=True)
class GraphReply:
    """One answer: status, headers (lower-case names) and the JSON body (``{}`` when none)."""

    status: int
    headers: Mapping[str, str]
    body: dict[str, Any]


def graph_error_code(body: Mapping[str, Any]) -> str:
    """Graph's ``error.code`` (safe to log), or ``""``."""
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("code") or "")[:80]
    return ""


def error_for(
    status: int, body: Mapping[str, Any], operation: str, retry_after: float | None
) -> FeedbackAgendasError:
    """Our exception for a Graph error answer (status and error code only)."""
    code = graph_error_code(body)
    text = f"graph {operation}: HTTP {status}" + (f" {code}" if code else "")
    if status == 410 or code in _RESYNC_CODES:
        return CursorExpired(text)
    if status == 412:
        return PreconditionFailed(text)
    if status == 404:
        return NotFound(text)
    if status == 429:
        return RateLimited(text, retry_after)
    if status in (401, 403):
        return PermissionDenied(text)
    if status >= 500 or status == 408:
        return TransientError(text, retry_after)
    return ProviderError(text)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class _Budget:
    """A sliding window of request times per mailbox."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._times: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def take(self, mailbox: str, count: int) -> None:
        with self._lock:
            now = self._clock()
            times = self._times.setdefault(mailbox, deque())
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) + count > self.limit:
                raise QuotaExceeded(
                    f"graph: request budget used up for a mailbox "
                    f"({self.limit} per {int(self.window)} s); waiting for the next cycle"
                )
            times.extend([now] * count)

    def used(self, mailbox: str) -> int:
        with self._lock:
            return len(self._times.get(mailbox, ()))


class _TimeoutHttp:
    """The session msal uses, with a timeout on every call (msal passes none to its client)."""

    def __init__(self, session: requests.Session, timeout: float) -> None:
        self._session = session
        self._timeout = timeout

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return self._session.get(url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return self._session.post(url, **kwargs)

    def close(self) -> None:
        self._session.close()


def trust_file(ca_bundle: Path | None) -> str:
    """The CA file to verify with: certifi's, plus ``ca_bundle`` when given (one combined file)."""
    if ca_bundle is None:
        return certifi.where()
    extra = Path(ca_bundle).read_bytes()
    combined = Path(certifi.where()).read_bytes() + b"\n" + extra
    digest = hashlib.sha256(combined).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"feedback-agendas-ca-{digest}.pem"
    if not path.exists():
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as out:
            out.write(combined)
        Path(out.name).replace(path)
    return str(path)


class GraphSession:
    """App-only access to Graph for the mailboxes of one app registration.

    ``client_secret`` or ``certificate`` authenticates the app (client
    credentials through msal, token cached in memory). ``sleep`` and
    ``clock`` are for tests.
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str | None = None,
        certificate: Certificate | None = None,
        authority: str = DEFAULT_AUTHORITY,
        graph_endpoint: str = DEFAULT_GRAPH,
        ca_bundle: Path | None = None,
        timeout: float = 30.0,
        budget: int = BUDGET,
        budget_window: float = BUDGET_WINDOW,
        retries: int = RETRIES,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (client_secret is None) == (certificate is None):
            raise ValueError("give exactly one of client_secret and certificate")
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.authority = authority.rstrip("/")
        self.graph = graph_endpoint.rstrip("/")
        parts = urlsplit(self.graph)
        self.scope = f"{parts.scheme}://{parts.netloc}/.default"
        self.requests: Counter[str] = Counter()
        self.token_requests = 0
        self._secret = client_secret
        self._certificate = certificate
        self._timeout = timeout
        self._retries = retries
        self._sleep = sleep
        self._budget = _Budget(budget, budget_window, clock)
        self._http = requests.Session()
        self._http.trust_env = False  # REQUESTS_CA_BUNDLE must not replace our trust
        self._http.verify = trust_file(ca_bundle)
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=16)
        self._http.mount("https://", adapter)
        self._http.mount("http://", adapter)
        self._app: Any = None
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}

    # -- auth ------------------------------------------------------------------

    def _msal_app(self) -> Any:
        import msal  # imported on first use: only Microsoft calendars need it

        if self._certificate is not None:
            credential: Any = {
                "private_key": self._certificate.path.read_text(),
                "thumbprint": self._certificate.thumbprint,
            }
        else:
            credential = self._secret
        host = urlsplit(self.authority).hostname or ""
        return msal.ConfidentialClientApplication(
            self.client_id,
            client_credential=credential,
            authority=f"{self.authority}/{self.tenant_id}",
            http_client=_TimeoutHttp(self._http, self._timeout),
            instance_discovery=host in _KNOWN_AUTHORITY_HOSTS,
        )

    def token(self) -> str:
        """An app-only access token for Graph (msal caches it until shortly before expiry)."""
        with self._lock:
            try:
                if self._app is None:
                    self._app = self._msal_app()
                result = self._app.acquire_token_for_client(scopes=[self.scope])
            except requests.RequestException as exc:
                raise TransientError(f"microsoft auth: {type(exc).__name__}") from exc
            except jwt.PyJWTError as exc:  # the certificate's key cannot sign an assertion
                raise PermissionDenied(
                    "microsoft auth: the certificate's private key cannot sign "
                    "(give an RSA key, as Entra requires)"
                ) from exc
            except ValueError as exc:  # tenant discovery refused (unknown tenant, bad authority)
                raise PermissionDenied(
                    "microsoft auth: the authority or tenant was refused "
                    "(check tenant_id and authority)"
                ) from exc
        if "access_token" not in result:
            code = str(result.get("error") or "unknown")[:80]
            raise PermissionDenied(f"microsoft auth: token refused ({code})")
        if result.get("token_source") == "identity_provider":
            self.token_requests += 1
        return str(result["access_token"])

    # -- calls -------------------------------------------------------------------

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("https://", "http://")):
            return path_or_url
        return f"{self.graph}/{path_or_url.lstrip('/')}"

    def _slot(self, mailbox: str) -> threading.BoundedSemaphore:
        with self._lock:
            slot = self._slots.get(mailbox)
            if slot is None:
                slot = self._slots[mailbox] = threading.BoundedSemaphore(MAX_IN_FLIGHT)
            return slot

    def budget_used(self, mailbox: str) -> int:
        """Requests counted against ``mailbox`` in the current window."""
        return self._budget.used(mailbox.lower())

    def _once(
        self,
        method: str,
        url: str,
        *,
        mailbox: str,
        kind: str,
        weight: int,
        body: Any,
        headers: Mapping[str, str] | None,
    ) -> GraphReply:
        self._budget.take(mailbox, weight)
        sent = {
            "Authorization": f"Bearer {self.token()}",
            "Accept": "application/json",
            **(headers or {}),
        }
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            sent["Content-Type"] = "application/json"
        self.requests[kind] += 1
        with self._slot(mailbox):
            try:
                answer = self._http.request(
                    method, url, data=data, headers=sent, timeout=self._timeout
                )
            except requests.RequestException as exc:
                raise TransientError(f"graph {kind}: {type(exc).__name__}") from exc
        try:
            parsed = answer.json() if answer.content else {}
        except ValueError:
            parsed = {}
        reply_headers = {k.lower(): v for k, v in answer.headers.items()}
        return GraphReply(
            answer.status_code, reply_headers, parsed if isinstance(parsed, dict) else {}
        )

    def call(
        self,
        method: str,
        path_or_url: str,
        *,
        mailbox: str,
        kind: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        weight: int = 1,
    ) -> GraphReply:
        """One Graph request for ``mailbox``, retried on throttling and 5xx.

        Returns a 2xx reply; raises our exceptions for anything else (412:
        :class:`PreconditionFailed`, 404: :class:`NotFound`, 410 or a resync
        code: :class:`CursorExpired`). ``kind`` names the request in
        :attr:`requests`.
        """
        url = self.url(path_or_url)
        attempt = 0
        while True:
            try:
                reply = self._once(
                    method,
                    url,
                    mailbox=mailbox.lower(),
                    kind=kind,
                    weight=weight,
                    body=body,
                    headers=headers,
                )
            except TransientError:  # the network, or the token endpoint, failed on the way
                if attempt >= self._retries:
                    raise
                self._sleep(min(RETRY_AFTER_CAP, 2.0**attempt))
                attempt += 1
                continue
            if 200 <= reply.status < 300:
                return reply
            wait = retry_after_seconds(reply.headers)
            if reply.status in _RETRY_STATUSES and attempt < self._retries:
                self._sleep(min(RETRY_AFTER_CAP, wait if wait is not None else 2.0**attempt))
                attempt += 1
                continue
            raise error_for(reply.status, reply.body, kind, wait)

    def batch(
        self, mailbox: str, calls: Sequence[Mapping[str, Any]], *, kind: str = "batch"
    ) -> dict[str, GraphReply]:
        """Send ``calls`` (each ``{"id", "method", "url", ...}``) in ``$batch``es of 20.

        Answers by id. Calls answered 429/503 are sent again (in a later
        batch, after the longest ``Retry-After``) a bounded number of times;
        what still fails comes back with its status for the caller to judge.
        """
        answers: dict[str, GraphReply] = {}
        pending = list(calls)
        attempt = 0
        while pending:
            retry: list[Mapping[str, Any]] = []
            wait = 0.0
            for start in range(0, len(pending), MAX_BATCH):
                chunk = pending[start : start + MAX_BATCH]
                reply = self.call(
                    "POST",
                    "$batch",
                    mailbox=mailbox,
                    kind=kind,
                    body={"requests": list(chunk)},
                    weight=len(chunk),
                )
                by_id = {str(c["id"]): c for c in chunk}
                for item in reply.body.get("responses") or ():
                    ident = str(item.get("id"))
                    if ident not in by_id:
                        continue
                    status = int(item.get("status", 500))
                    headers = {
                        str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()
                    }
                    body = item.get("body") if isinstance(item.get("body"), dict) else {}
                    answer = GraphReply(status, headers, body or {})
                    if status in _RETRY_STATUSES and attempt < self._retries:
                        retry.append(by_id.pop(ident))
                        wait = max(wait, retry_after_seconds(headers) or 2.0**attempt)
                        continue
                    answers[ident] = answer
                    by_id.pop(ident)
                for missing in by_id.values():  # an answer the batch left out
                    if attempt < self._retries:
                        retry.append(missing)
                    else:
                        answers[str(missing["id"])] = GraphReply(503, {}, {})
            pending = retry
            if pending:
                self._sleep(min(RETRY_AFTER_CAP, wait))
                attempt += 1
        return answers

    def close(self) -> None:
        self._http.close()


_SHARED: dict[tuple[str, ...], GraphSession] = {}
_SHARED_LOCK = threading.Lock()


def shared_session(key: tuple[str, ...], make: Callable[[], GraphSession]) -> GraphSession:
    """One session per app registration in this process (``key`` names it; secrets hashed)."""
    with _SHARED_LOCK:
        session = _SHARED.get(key)
        if session is None:
            session = _SHARED[key] = make()
        return session


def raise_for(reply: GraphReply, operation: str) -> None:
    """Raise our exception for a non-2xx ``reply`` (a ``$batch`` answer)."""
    if 200 <= reply.status < 300:
        return
    raise error_for(reply.status, reply.body, operation, retry_after_seconds(reply.headers))
