"""The daemon's HTTP endpoints, on a stdlib threading server.

- ``GET /healthz``: the process is alive (200).
- ``GET /readyz``: the database answers and the last cycle is recent (200, else 503).
- ``GET /metrics``: Prometheus text format.
- ``POST /webhooks/<provider>``: a push notification from a calendar
  backend; the provider reads it, the runtime verifies it and starts an
  incremental sync of that calendar. The answer may carry a body and headers
  (a subscription handshake that echoes a token).

More routes plug in with :meth:`EndpointServer.route` (a path ending in ``/``
serves everything under it).

The server binds to ``server.host`` (loopback by default); port 0 picks a
free port, which :attr:`EndpointServer.port` reports. A port it cannot bind
is a :class:`ListenError`, which the CLI prints as one line.

Hostile clients cost little:

- a request's line, headers and body must arrive within ``request_seconds``
  of the connection being accepted, else the connection is cut (no idle
  connection holds a thread for long);
- at most ``max_connections`` connections are served at once; one more gets
  ``503`` and is closed at once;
- a body is read only when it has a valid ``Content-Length`` within the
  route's limit: a missing one on POST/PUT/PATCH or any ``Transfer-Encoding``
  gets ``411``, a negative, non-numeric or repeated-and-different one ``400``,
  one over the limit ``413``, all before a byte of the body is read. A body
  that stops short is dropped without calling the route;
- one request per connection (HTTP/1.0 replies), so no keep-alive connection
  lingers between requests.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from feedback_agendas.agendas.errors import UserError
from feedback_agendas.integrations.calendars.base import WebhookAnswer, WebhookRequest

log = logging.getLogger(__name__)

MAX_WEBHOOK_BODY = 64 * 1024
# Time to send a whole request, from connect to the last byte of the body.
REQUEST_SECONDS = 10.0
MAX_CONNECTIONS = 64

_DIGITS = re.compile(r"[0-9]+")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# After refusing a body we did not read, read (and drop) at most this much
# before closing, so the client sees our reply instead of a connection reset.
_LINGER_BYTES = 256 * 1024
_LINGER_SECONDS = 1.0


class ListenError(UserError):
    """The endpoints cannot listen on the configured host and port."""


@dataclass(frozen=True, slots=True)
class Request:
    """One request as a route sees it: the body is complete and within the route's limit."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    # The peer's address (the TCP connection's, never a header's).
    client: str = ""

    def header(self, name: str) -> str | None:
        """The value of header ``name``, whatever its case; None when absent."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    # More headers, such as Set-Cookie or Location; each (name, value).
    # Content-Type, Content-Length and Connection are the server's.
    headers: tuple[tuple[str, str], ...] = ()


RouteHandler = Callable[[Request], Response]
# (headers, body) -> HTTP status
WebhookCallback = Callable[[Mapping[str, str], bytes], int]
# The whole request -> status, body and headers
PushHandler = Callable[[WebhookRequest], WebhookAnswer]
_OWN_HEADERS = frozenset({"content-type", "content-length", "connection"})
_BREAKS_LINE = re.compile(r"[\r\n\x00]")


@dataclass(frozen=True, slots=True)
class _Route:
    methods: frozenset[str]
    handler: RouteHandler
    max_body: int


class _Server(ThreadingHTTPServer):
    """A threading server with a connection cap and a deadline per request."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        max_connections: int,
        request_seconds: float,
    ) -> None:
        self.request_seconds = request_seconds
        self._slots = threading.BoundedSemaphore(max_connections)
        self._deadlines: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        self.refused = 0
        self._refused_logged_at = 0.0
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse(request)
            return
        with self._lock:
            self._deadlines[request] = time.monotonic() + self.request_seconds
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._done(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done(request)

    def request_read(self, request: socket.socket) -> None:
        """The whole request has arrived: it is no longer on the clock."""
        with self._lock:
            self._deadlines.pop(request, None)

    def _done(self, request: socket.socket) -> None:
        with self._lock:
            self._deadlines.pop(request, None)
        self._slots.release()

    def service_actions(self) -> None:
        # Runs in the accept loop about every 0.5 s: cut connections whose
        # request has not arrived in time. shutdown() wakes the blocked read.
        now = time.monotonic()
        with self._lock:
            late = [r for r, deadline in self._deadlines.items() if deadline <= now]
            for request in late:
                del self._deadlines[request]
        for request in late:
            with contextlib.suppress(OSError):
                request.shutdown(socket.SHUT_RDWR)

    def _refuse(self, request: socket.socket) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._refused_logged_at > 60:
            self._refused_logged_at = now
            log.warning("http: too many connections; refused %d so far", self.refused)
        try:
            request.settimeout(0.5)
            request.sendall(
                b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                b"Content-Length: 22\r\nConnection: close\r\n\r\ntoo many connections\r\n"
            )
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-reply is not our error; never print a traceback.
        log.debug("http connection ended early", exc_info=True)


class EndpointServer:
    """Serves the endpoints in a background thread until :meth:`stop`."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ready: Callable[[], tuple[bool, str]],
        metrics: Callable[[], tuple[bytes, str]],
        max_connections: int = MAX_CONNECTIONS,
        request_seconds: float = REQUEST_SECONDS,
    ) -> None:
        self._routes: dict[str, _Route] = {}

        def healthz(_request: Request) -> Response:
            return Response(200, b"ok\n")

        def readyz(_request: Request) -> Response:
            ok, why = ready()  # a JSON object (see Daemon.readiness)
            return Response(200 if ok else 503, (why + "\n").encode(), "application/json")

        def metrics_route(_request: Request) -> Response:
            body, content_type = metrics()
            return Response(200, body, content_type)

        self.route("GET", "/healthz", healthz)
        self.route("GET", "/readyz", readyz)
        self.route("GET", "/metrics", metrics_route)
        handler = _handler_class(self._find, request_seconds)
        try:
            self._server = _Server(
                (host, port),
                handler,
                max_connections=max_connections,
                request_seconds=request_seconds,
            )
        except OSError as exc:
            raise ListenError(_listen_problem(host, port, exc)) from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="endpoints", daemon=True
        )

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def refused_connections(self) -> int:
        """Connections refused with 503 because ``max_connections`` were busy."""
        return self._server.refused

    def route(self, methods: str, path: str, handler: RouteHandler, *, max_body: int = 0) -> None:
        """Serve ``path`` (and everything under it if it ends in ``/``) with ``handler``.

        ``methods`` is one method or several separated by spaces (``"GET POST"``);
        ``max_body`` is the largest request body accepted, in bytes.
        """
        self._routes[path] = _Route(frozenset(methods.upper().split()), handler, max_body)

    def register_webhook(self, path: str, callback: WebhookCallback) -> None:
        """Route POSTs to ``path`` to ``callback``, which answers a status only."""

        def webhook(request: Request) -> Response:
            return Response(callback(request.headers, request.body))

        self.route("POST", path, webhook, max_body=MAX_WEBHOOK_BODY)

    def register_push(self, path: str, handler: PushHandler) -> None:
        """Route POSTs to ``path`` to ``handler``, which may answer a body and headers."""

        def webhook(request: Request) -> Response:
            answer = handler(WebhookRequest(request.headers, request.query, request.body))
            return Response(answer.status, answer.body, answer.content_type, answer.headers)

        self.route("POST", path, webhook, max_body=MAX_WEBHOOK_BODY)

    def _find(self, path: str) -> _Route | None:
        route = self._routes.get(path)
        if route is not None:
            return route
        prefixes = [p for p in self._routes if p.endswith("/") and path.startswith(p)]
        return self._routes[max(prefixes, key=len)] if prefixes else None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _listen_problem(host: str, port: int, exc: OSError) -> str:
    where = f"cannot listen on {host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return f"{where}: the port is already in use; stop the other process or change server.port"
    if exc.errno == errno.EACCES:
        return f"{where}: permission denied (ports below 1024 need privileges); change server.port"
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return f"{where}: no such address on this machine; change server.host"
    return f"{where}: {exc.strerror or type(exc).__name__}"


def _handler_class(
    find: Callable[[str], _Route | None], request_seconds: float
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "feedback-agendas"
        # Each read also times out on its own, in case the deadline sweep is late.
        timeout = request_seconds
        _linger = False

        def _dispatch(self) -> None:
            path, _, query = self.path.partition("?")
            route = find(path)
            if route is None:
                self._refuse(404, b"not found\n")
                return
            allowed = route.methods | ({"HEAD"} if "GET" in route.methods else set())
            if self.command not in allowed:
                self._refuse(405, b"method not allowed\n")
                return
            body = self._read_body(route.max_body)
            if body is None:
                return
            assert isinstance(self.server, _Server)
            self.server.request_read(self.connection)
            headers = {k: v for k, v in self.headers.items()}
            client = str(self.client_address[0]) if self.client_address else ""
            request = Request(self.command, path, query, headers, body, client)
            try:
                response = route.handler(request)
            except Exception as exc:  # a route must never take the server down
                log.warning("http %s %s failed: %s", self.command, path, type(exc).__name__)
                response = Response(500, b"internal error\n")
            self._reply(response)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

        def _read_body(self, limit: int) -> bytes | None:
            """The body, or None after replying with why it was refused (nothing read)."""
            length = body_length(self.headers, self.command, limit)
            if isinstance(length, Response):
                self._refuse(length.status, length.body)
                return None
            body = self.rfile.read(length) if length else b""
            if len(body) < length:
                # The client stopped (or was cut off at the deadline): nothing to act on.
                self.close_connection = True
                return None
            return body

        def _refuse(self, status: int, why: bytes) -> None:
            self._linger = True
            self._reply(Response(status, why))

        def _reply(self, response: Response) -> None:
            self.close_connection = True
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            for name, value in response.headers:
                if name.lower() not in _OWN_HEADERS and not _BREAKS_LINE.search(name + value):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        def finish(self) -> None:
            super().finish()
            if self._linger:
                _drain(self.connection)

        def log_message(self, format: str, *args: object) -> None:
            # Only method and path at debug level: headers may carry channel tokens,
            # and a query a signed link's token (/opt-out?t=...).
            method, _, rest = getattr(self, "requestline", "").partition(" ")
            log.debug("http %s %s", method, rest.partition(" ")[0].partition("?")[0])

    return Handler


def body_length(headers: Message, method: str, limit: int) -> int | Response:
    """The length of the body to read, or the reply that refuses the request."""
    if "Transfer-Encoding" in headers:
        return Response(411, b"send a Content-Length; no Transfer-Encoding\n")
    values = [v.strip() for v in headers.get_all("Content-Length") or []]
    if not values:
        return Response(411, b"Content-Length required\n") if method in _BODY_METHODS else 0
    if len(set(values)) > 1:
        return Response(400, b"conflicting Content-Length\n")
    if not _DIGITS.fullmatch(values[0]):
        return Response(400, b"bad Content-Length\n")
    if len(values[0]) > 18 or int(values[0]) > limit:
        return Response(413, b"body too large\n")
    return int(values[0])


def _drain(connection: socket.socket) -> None:
    """Stop sending, then read and drop a little of what the client still sends.

    Closing a socket with unread data makes the kernel send a reset, which can
    reach the client before it reads our reply.
    """
    try:
        connection.shutdown(socket.SHUT_WR)
        connection.settimeout(_LINGER_SECONDS)
        deadline = time.monotonic() + _LINGER_SECONDS
        dropped = 0
        while dropped < _LINGER_BYTES and time.monotonic() < deadline:
            chunk = connection.recv(65536)
            if not chunk:
                break
            dropped += len(chunk)
    except OSError:
        pass
