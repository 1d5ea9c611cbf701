"""A local Microsoft identity platform and Graph API subset over HTTPS, for msal and our session.

::

    with FakeGraph() as graph:
        graph.add_app(CLIENT_ID, secret="s3cret")
        graph.store.add_event("mona@example.com", subject=..., start=..., end=...)
        GraphSession(tenant_id=graph.tenant, client_id=CLIENT_ID, client_secret="s3cret",
                     authority=graph.authority, graph_endpoint=graph.graph_endpoint,
                     ca_bundle=graph.ca_file)

Served (anything else is 404 and a :attr:`violations` entry):

- ``/{tenant}/v2.0/.well-known/openid-configuration`` and
  ``/{tenant}/oauth2/v2.0/token`` (client credentials with a secret or a
  certificate's signed ``client_assertion``); Graph calls need its token;
- ``/v1.0/users/{mailbox}/calendarView/delta``: skeletons (id, type,
  seriesMasterId, start, end) over the window given in the first call,
  pages of ``Prefer: odata.maxpagesize``, ``@odata.nextLink`` then
  ``@odata.deltaLink``; an unknown or expired token is 410 ``syncStateNotFound``;
- ``/v1.0/users/{mailbox}/events/{id}`` GET (``$expand`` of our extended
  property) and PATCH (``If-Match`` -> 412 ``ErrorIrresolvableConflict``);
  ``.../events/{id}/instances``;
- ``/v1.0/$batch`` (at most 20 requests).

Other modules add routes with :meth:`FakeGraph.route` (``/users`` listing,
managers, subscriptions) without editing this one. Faults: :meth:`fail`
(one-shot statuses per request kind, with ``Retry-After``),
:meth:`expire_delta` and :attr:`repeat_next_link`. Requests are counted by
kind in :attr:`requests` and by ``(mailbox, kind)`` in :attr:`per_mailbox`.

The mailboxes' data and Exchange's side effects live in
:mod:`tests.fakes.graph_store`; this module is the wire (identity platform,
routes, delta paging, ``$batch``, faults), which is why it runs past 400 lines.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
from cryptography import x509

from tests.fakes.graph_store import FakeMailboxes, parse_time
from tests.fakes.graph_tls import local_tls

TENANT = "contoso.onmicrosoft.com"
Reply = tuple[int, dict[str, str], Any]
Handler = Callable[["Request", "re.Match[str]"], Reply]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw: bytes
    mailbox: str = ""


@dataclass
class Fault:
    kind: str
    status: int
    retry_after: float | None = None
    code: str = ""


@dataclass
class DeltaState:
    mailbox: str
    low: datetime
    high: datetime
    version: int
    items: list[dict[str, Any]] = field(default_factory=list)


def error(status: int, code: str, headers: dict[str, str] | None = None) -> Reply:
    return status, headers or {}, {"error": {"code": code, "message": code}}


def skeleton(event: dict[str, Any]) -> dict[str, Any]:
    shown = {"@odata.type": "#microsoft.graph.event", "id": event["id"], "type": event["type"]}
    if event.get("seriesMasterId"):
        shown["seriesMasterId"] = event["seriesMasterId"]
    shown["start"], shown["end"] = event["start"], event["end"]
    return shown


class FakeGraph:
    """The fake identity platform and Graph. ``start()``/``stop()`` or a context manager."""

    def __init__(self, *, tenant: str = TENANT) -> None:
        self.tenant = tenant
        self.store = FakeMailboxes()
        self.apps: dict[str, dict[str, Any]] = {}
        self.tokens: set[str] = set()
        self.requests: Counter[str] = Counter()
        self.per_mailbox: Counter[tuple[str, str]] = Counter()
        self.violations: list[str] = []
        self.faults: list[Fault] = []
        self.repeat_next_link = False
        self.patches: list[tuple[str, str, list[str]]] = []
        self.deltas: dict[str, DeltaState] = {}
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        # Seconds each mailbox request takes, and how many ran at once per mailbox.
        self.latency = 0.0
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.lock = threading.RLock()
        self._counter = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._graph_routes()

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> FakeGraph:
        fake = self
        tls = local_tls()

        class _Bound(_Handler):
            graph = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Bound)
        self._server.daemon_threads = True
        self._server.socket = tls.server_context().wrap_socket(
            self._server.socket, server_side=True
        )
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGraph:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def authority(self) -> str:
        return self.base

    @property
    def graph_endpoint(self) -> str:
        return f"{self.base}/v1.0"

    @property
    def ca_file(self) -> str:
        return str(local_tls().ca_file)

    # -- set-up and faults ----------------------------------------------------

    def add_app(
        self, client_id: str, *, secret: str | None = None, certificate_pem: bytes | None = None
    ) -> None:
        self.apps[client_id] = {"secret": secret, "certificate": certificate_pem}

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Serve ``method`` on paths matching ``pattern`` (full match) with ``handler``."""
        self.routes.insert(0, (method, re.compile(pattern), handler))

    def fail(
        self,
        kind: str,
        status: int,
        *,
        retry_after: float | None = None,
        times: int = 1,
        code: str = "",
    ) -> None:
        """The next ``times`` requests of ``kind`` (``delta``, ``get``, ``patch``, ``batch``,
        ``batch_get``, ``token``...) answer ``status``."""
        default = {429: "TooManyRequests", 503: "ServiceUnavailable", 410: "syncStateNotFound"}
        self.faults += [
            Fault(
                kind, status, retry_after, code or default.get(status, "ErrorInternalServerError")
            )
        ] * times

    def expire_delta(self, mailbox: str | None = None) -> None:
        """Forget every delta and paging token (of one mailbox): their next use is 410."""
        with self.lock:
            for token in [t for t, s in self.deltas.items() if mailbox in (None, s.mailbox)]:
                del self.deltas[token]

    def updates(self, *, by: str = "app") -> list[tuple[str, str, str]]:
        """The meeting updates sent: (organizer mailbox, event id, attendee)."""
        return [(u.mailbox, u.event_id, u.attendee) for u in self.store.updates if u.by == by]

    def patch_count(self) -> int:
        return self.requests["patch"]

    # -- dispatch -------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        found = re.match(r"/v1\.0/users/([^/]+)/", request.path)
        if found is None:
            return self._dispatch(request)
        mailbox = unquote(found.group(1)).lower()
        with self.lock:
            self.in_flight[mailbox] += 1
            self.max_in_flight[mailbox] = max(self.max_in_flight[mailbox], self.in_flight[mailbox])
        try:
            if self.latency:
                time.sleep(self.latency)
            return self._dispatch(request)
        finally:
            with self.lock:
                self.in_flight[mailbox] -= 1

    def _dispatch(self, request: Request) -> Reply:
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                return handler(request, match)
        self.violations.append(f"{request.method} {request.path}: not served")
        return error(404, "ResourceNotFound")

    def _take_fault(self, kind: str) -> Reply | None:
        with self.lock:
            for fault in self.faults:
                if fault.kind == kind:
                    self.faults.remove(fault)
                    headers = (
                        {"Retry-After": str(fault.retry_after)}
                        if fault.retry_after is not None
                        else {}
                    )
                    return error(fault.status, fault.code, headers)
        return None

    def _count(self, kind: str, mailbox: str = "") -> Reply | None:
        with self.lock:
            self.requests[kind] += 1
            if mailbox:
                self.per_mailbox[(mailbox, kind)] += 1
        return self._take_fault(kind)

    def _authorised(self, request: Request) -> bool:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        return token in self.tokens

    # -- identity platform ----------------------------------------------------

    def _graph_routes(self) -> None:
        self.route("GET", r"/([^/]+)/v2\.0/\.well-known/openid-configuration", self._discovery)
        self.route("POST", r"/([^/]+)/oauth2/v2\.0/token", self._token)
        self.route("GET", r"/v1\.0/users/([^/]+)/calendarView/delta", self._delta)
        self.route("GET", r"/v1\.0/users/([^/]+)/events/([^/]+)", self._get)
        self.route("PATCH", r"/v1\.0/users/([^/]+)/events/([^/]+)", self._patch)
        self.route("GET", r"/v1\.0/users/([^/]+)/events/([^/]+)/instances", self._instances)
        self.route("POST", r"/v1\.0/\$batch", self._batch)

    def _discovery(self, request: Request, match: re.Match[str]) -> Reply:
        self.requests["discovery"] += 1
        tenant = match.group(1)
        if tenant != self.tenant:
            return error(400, "invalid_tenant")
        root = f"{self.base}/{tenant}"
        return (
            200,
            {},
            {
                "token_endpoint": f"{root}/oauth2/v2.0/token",
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
                "issuer": f"{root}/v2.0",
                "jwks_uri": f"{root}/discovery/v2.0/keys",
            },
        )

    def _token(self, request: Request, match: re.Match[str]) -> Reply:
        fault = self._count("token")
        if fault:
            return fault
        form = {k: v[0] for k, v in parse_qs(request.raw.decode()).items()}
        app = self.apps.get(form.get("client_id", ""))
        if form.get("grant_type") != "client_credentials" or app is None:
            return 400, {}, {"error": "unauthorized_client"}
        if not str(form.get("scope", "")).endswith("/.default"):
            return 400, {}, {"error": "invalid_scope"}
        if "client_secret" in form:
            if app["secret"] is None or form["client_secret"] != app["secret"]:
                return 401, {}, {"error": "invalid_client"}
        elif "client_assertion" in form and app["certificate"] is not None:
            public = x509.load_pem_x509_certificate(app["certificate"]).public_key()
            try:
                jwt.decode(
                    form["client_assertion"],
                    key=public,  # type: ignore[arg-type]
                    algorithms=["RS256", "PS256"],
                    audience=f"{self.base}/{match.group(1)}/oauth2/v2.0/token",
                )
            except jwt.PyJWTError:
                return 401, {}, {"error": "invalid_client"}
        else:
            return 401, {}, {"error": "invalid_client"}
        token = f"fake-graph-token-{next(self._counter)}"
        self.tokens.add(token)
        return 200, {}, {"token_type": "Bearer", "expires_in": 3599, "access_token": token}

    # -- Graph ---------------------------------------------------------------------

    def _delta(self, request: Request, match: re.Match[str]) -> Reply:
        mailbox = unquote(match.group(1)).lower()
        fault = self._count("delta", mailbox)
        if fault:
            return fault
        if not self._authorised(request):
            return error(401, "InvalidAuthenticationToken")
        if request.headers.get("prefer", "").find('IdType="ImmutableId"') < 0:
            self.violations.append("delta without Prefer: IdType=ImmutableId")
        size = 100
        found = re.search(r"odata\.maxpagesize=(\d+)", request.headers.get("prefer", ""))
        if found:
            size = int(found.group(1))
        box = self.store.mailbox(mailbox)
        with self.lock:
            token = request.query.get("$skiptoken") or request.query.get("$deltatoken")
            if token is not None:
                state = self.deltas.get(token)
                if state is None or state.mailbox != mailbox:
                    return error(410, "syncStateNotFound")
                if "$deltatoken" in request.query:
                    changed, removed = self.store.changed_since(
                        box, state.version, state.low, state.high
                    )
                    items = [skeleton(e) for e in changed]
                    items += [{"id": i, "@removed": {"reason": "deleted"}} for i in removed]
                    state = DeltaState(mailbox, state.low, state.high, self.store.version, items)
            else:
                try:
                    low = parse_time(request.query["startDateTime"])
                    high = parse_time(request.query["endDateTime"])
                except (KeyError, ValueError):
                    return error(400, "ErrorInvalidParameter")
                shown = [skeleton(e) for e in self.store.in_window(box, low, high)]
                state = DeltaState(mailbox, low, high, self.store.version, shown)
            page, rest = state.items[:size], state.items[size:]
            link = f"{self.base}/v1.0/users/{mailbox}/calendarView/delta"
            answer: dict[str, Any] = {"value": page}
            if rest:
                skip = token if (self.repeat_next_link and token) else f"skip{next(self._counter)}"
                self.deltas[skip] = DeltaState(mailbox, state.low, state.high, state.version, rest)
                answer["@odata.nextLink"] = f"{link}?$skiptoken={skip}"
            else:
                mark = f"delta{next(self._counter)}"
                self.deltas[mark] = DeltaState(mailbox, state.low, state.high, state.version)
                answer["@odata.deltaLink"] = f"{link}?$deltatoken={mark}"
        return 200, {}, answer

    def _event_out(self, event: dict[str, Any], request: Request) -> dict[str, Any]:
        shown = json.loads(json.dumps(event))
        expand = request.query.get("$expand", "")
        props = shown.pop("singleValueExtendedProperties", [])
        if "singleValueExtendedProperties" in expand:
            wanted = re.search(r"id eq '([^']+)'", expand)
            props = [p for p in props if wanted and p["id"].lower() == wanted.group(1).lower()]
            if props:
                shown["singleValueExtendedProperties"] = props
        return shown

    def _get(self, request: Request, match: re.Match[str]) -> Reply:
        mailbox, ident = unquote(match.group(1)).lower(), unquote(match.group(2))
        fault = self._count("get", mailbox)
        if fault:
            return fault
        if not self._authorised(request):
            return error(401, "InvalidAuthenticationToken")
        with self.lock:
            event = self.store.find(mailbox, ident)
            if event is None:
                return error(404, "ErrorItemNotFound")
            return 200, {}, self._event_out(event, request)

    def _instances(self, request: Request, match: re.Match[str]) -> Reply:
        mailbox, ident = unquote(match.group(1)).lower(), unquote(match.group(2))
        fault = self._count("instances", mailbox)
        if fault:
            return fault
        with self.lock:
            box = self.store.mailbox(mailbox)
            master = box.events.get(ident)
            if master is None or master["type"] != "seriesMaster":
                return error(404, "ErrorItemNotFound")
            low = parse_time(request.query["startDateTime"])
            high = parse_time(request.query["endDateTime"])
            found = self.store.expand(box, master, low, high)
            found += [
                e
                for e in box.events.values()
                if e.get("seriesMasterId") == ident
                and parse_time(e["start"]) < high
                and parse_time(e["end"]) > low
            ]
            return 200, {}, {"value": [self._event_out(e, request) for e in found]}

    def _patch(self, request: Request, match: re.Match[str]) -> Reply:
        mailbox, ident = unquote(match.group(1)).lower(), unquote(match.group(2))
        fault = self._count("patch", mailbox)
        if fault:
            return fault
        if not self._authorised(request):
            return error(401, "InvalidAuthenticationToken")
        if not isinstance(request.body, dict):
            return error(400, "ErrorInvalidRequest")
        with self.lock:
            event = self.store.find(mailbox, ident)
            if event is None:
                return error(404, "ErrorItemNotFound")
            wanted = request.headers.get("if-match")
            if wanted is not None and wanted != event["@odata.etag"]:
                return error(412, "ErrorIrresolvableConflict")
            self.patches.append((mailbox, ident, sorted(request.body)))
            changed = self.store.apply(mailbox, ident, request.body, by="app")
            return 200, {}, self._event_out(changed, request)

    def _batch(self, request: Request, match: re.Match[str]) -> Reply:
        fault = self._count("batch")
        if fault:
            return fault
        calls = (request.body or {}).get("requests") if isinstance(request.body, dict) else None
        if not isinstance(calls, list) or not 1 <= len(calls) <= 20:
            self.violations.append("$batch with no requests or more than 20")
            return error(400, "BadRequest")
        answers = []
        for call in calls:
            url = urlsplit("/v1.0" + str(call.get("url", "")))
            inner = Request(
                method=str(call.get("method", "GET")).upper(),
                path=url.path,
                query={k: v[0] for k, v in parse_qs(url.query).items()},
                headers={
                    **request.headers,
                    **{k.lower(): v for k, v in (call.get("headers") or {}).items()},
                },
                body=call.get("body"),
                raw=b"",
            )
            fault = self._take_fault("batch_" + inner.method.lower())
            status, headers, body = fault or self.handle(inner)
            answers.append(
                {"id": call.get("id"), "status": status, "headers": headers, "body": body}
            )
        return 200, {}, {"responses": answers}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    graph: FakeGraph

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        try:
            body = (
                json.loads(raw) if raw and "json" in self.headers.get("Content-Type", "") else None
            )
        except ValueError:
            body = None
        request = Request(
            method=self.command,
            path=unquote(parts.path) if "$batch" in parts.path else parts.path,
            query={k: v[0] for k, v in parse_qs(parts.query).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw=raw,
        )
        status, headers, answer = self.graph.handle(request)
        data = json.dumps(answer).encode()
        try:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = _serve
    do_POST = _serve
    do_PATCH = _serve
    do_DELETE = _serve
