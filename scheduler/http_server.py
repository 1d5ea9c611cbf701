"""The daemon's HTTP endpoints, on a stdlib threading server.

- ``GET /healthz``: the process is alive (200).
- ``GET /readyz``: the database answers and the last cycle is recent (200, else 503).
- ``GET /metrics``: Prometheus text format.
- ``POST /webhooks/google``: a Calendar push notification; the registered
  callback verifies it and starts an incremental sync of that calendar.

The server binds to ``server.host`` (loopback by default); port 0 picks a
free port, which :attr:`EndpointServer.port` reports.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

MAX_WEBHOOK_BODY = 64 * 1024

# (headers, body) -> HTTP status
WebhookCallback = Callable[[Mapping[str, str], bytes], int]


class EndpointServer:
    """Serves the endpoints in a background thread until :meth:`stop`."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ready: Callable[[], tuple[bool, str]],
        metrics: Callable[[], tuple[bytes, str]],
    ) -> None:
        self._ready = ready
        self._metrics = metrics
        self._webhooks: dict[str, WebhookCallback] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "feedback-agendas"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    self._reply(200, b"ok\n")
                elif path == "/readyz":
                    ok, why = outer._ready()
                    self._reply(200 if ok else 503, (why + "\n").encode())
                elif path == "/metrics":
                    body, content_type = outer._metrics()
                    self._reply(200, body, content_type)
                else:
                    self._reply(404, b"not found\n")

            def do_POST(self) -> None:
                path = self.path.split("?", 1)[0]
                callback = outer._webhooks.get(path)
                if callback is None:
                    self._reply(404, b"not found\n")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_WEBHOOK_BODY:
                    self._reply(413, b"too large\n")
                    return
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items()}
                try:
                    status = callback(headers, body)
                except Exception as exc:  # a webhook must never take the server down
                    log.warning("webhook %s failed: %s", path, type(exc).__name__)
                    status = 500
                self._reply(status, b"")

            def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                # Only method and path at debug level: headers may carry channel tokens.
                log.debug("http %s", self.requestline.split(" ")[:2])

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
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

    def register_webhook(self, path: str, callback: WebhookCallback) -> None:
        """Route POSTs to ``path`` to ``callback``."""
        self._webhooks[path] = callback

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
