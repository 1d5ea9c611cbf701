"""A small real HTTP proxy for tests and benches: counts, faults and rewrites on the wire.

It listens on 127.0.0.1, forwards each request to one upstream server (say
Radicale) and records what crossed the wire, so that a test can count the
requests a client really made (including 401 challenges), and can make the
server misbehave in ways a real one does:

- ``fault(method, path, body)`` answers a request itself with a status (a 500
  for one resource, a 501 for sync-collection) instead of forwarding it;
- ``respond(method, path, body)`` answers with ``(status, headers, body)``;
- ``rename`` maps names the client sees to names stored upstream (for names
  the upstream refuses, like ``a%3Fb.ics``), in paths and in both bodies;
- ``transform(method, path, body)`` rewrites a forwarded response body (for
  relative hrefs, or an injected member);
- ``require_auth`` answers any request without an ``Authorization`` header
  with a Basic challenge, as a server that wants credentials does.

``exchanges`` keeps each request with the body the client sent.

Stdlib only, no mocks: clients talk real HTTP to it. Stop it with ``close()``.
"""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

Fault = Callable[[str, str, bytes], int | None]  # (method, path, body) -> status, or forward
Respond = Callable[[str, str, bytes], tuple[int, dict[str, str], bytes] | None]
Transform = Callable[[str, str, bytes], bytes]  # (method, path, response body) -> body


@dataclass(frozen=True)
class Exchange:
    """One request as it crossed the proxy, and the status the client got."""

    method: str
    path: str
    status: int
    authorized: bool
    body: bytes = b""  # the request body as the client sent it


class HttpProxy:
    """Forwards HTTP to ``upstream``; see the module docstring for the hooks."""

    def __init__(self, upstream: str) -> None:
        self.fault: Fault = lambda _method, _path, _body: None
        self.respond: Respond = lambda _method, _path, _body: None
        self.transform: Transform = lambda _method, _path, body: body
        self.rename: dict[str, str] = {}
        self.require_auth = False
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        target = urlsplit(upstream)
        host = target.hostname or "127.0.0.1"
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path
                authorized = "Authorization" in self.headers
                status, headers, data = proxy._serve(self, path, body, authorized, host, target)
                proxy._record(Exchange(self.command, path, status, authorized, body))
                self._answer(status, headers, data)

            do_GET = do_PUT = do_REPORT = do_PROPFIND = do_DELETE = do_OPTIONS = _handle
            do_MKCALENDAR = do_PROPPATCH = do_HEAD = do_POST = do_MOVE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _serve(
        self,
        handler: BaseHTTPRequestHandler,
        path: str,
        body: bytes,
        authorized: bool,
        host: str,
        target: Any,
    ) -> tuple[int, dict[str, str], bytes]:
        method = handler.command
        if self.require_auth and not authorized:
            return 401, {"WWW-Authenticate": 'Basic realm="proxy"'}, b""
        status = self.fault(method, path, body)
        if status is not None:
            return status, {}, b""
        answer = self.respond(method, path, body)
        if answer is not None:
            return answer
        for visible, stored in self.rename.items():
            path = path.replace(visible, stored)
            body = body.replace(visible.encode(), stored.encode())
        conn = http.client.HTTPConnection(host, target.port, timeout=30)
        try:
            headers = {
                k: v
                for k, v in handler.headers.items()
                # identity bodies upstream, so that ``transform`` sees plain XML
                if k.lower() not in ("host", "content-length", "connection", "accept-encoding")
            }
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            out = {
                k: v
                for k, v in response.getheaders()
                if k.lower() not in ("content-length", "transfer-encoding", "connection")
            }
        finally:
            conn.close()
        for visible, stored in self.rename.items():
            data = data.replace(stored.encode(), visible.encode())
        return response.status, out, self.transform(method, handler.path, data)

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)

    def counts(self) -> Counter[str]:
        """Requests by method (lower case), as the client sent them."""
        with self._lock:
            return Counter(e.method.lower() for e in self.exchanges)

    def statuses(self) -> Counter[int]:
        with self._lock:
            return Counter(e.status for e in self.exchanges)

    def reset(self) -> None:
        with self._lock:
            self.exchanges.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
