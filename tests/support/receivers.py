"""Real receivers on loopback: what the daemon's reminders are delivered to in tests.

- :class:`SmtpReceiver`: an aiosmtpd server; apprise sends to it with
  ``mailto://127.0.0.1:PORT?from=...&to=...``.
- :class:`WebhookReceiver`: an HTTP server that records JSON posts
  (apprise ``json://127.0.0.1:PORT/path``); it can be told to fail.
- :func:`free_port`: a TCP port on 127.0.0.1 that was free a moment ago.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ReceivedMail:
    sender: str
    recipients: tuple[str, ...]
    subject: str
    body: str


class SmtpReceiver:
    """A real SMTP server on 127.0.0.1 that keeps what it receives."""

    def __init__(self) -> None:
        self.mails: list[ReceivedMail] = []
        self.port = free_port()
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        part = parsed.get_body(preferencelist=("plain", "html"))
        body = part.get_content() if part is not None else ""
        with self._lock:
            self.mails.append(
                ReceivedMail(
                    sender=envelope.mail_from,
                    recipients=tuple(envelope.rcpt_tos),
                    subject=str(parsed["subject"]),
                    body=body,
                )
            )
        return "250 OK"

    def url(self, to: str, sender: str = "agendas@example.com") -> str:
        return f"mailto://127.0.0.1:{self.port}?from={sender}&to={to}"

    def __enter__(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that records JSON posts per path."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.fail_paths: set[str] = set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length)
                if len(data) < length:
                    # The sender died mid-request (the crash test kills it at
                    # random): a truncated post is no delivery.
                    self.close_connection = True
                    return
                payload = json.loads(data or b"{}")
                if self.path in receiver.fail_paths:
                    self.send_response(503)
                else:
                    with receiver._lock:
                        receiver.posts.append((self.path, payload))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}{path}"

    def bodies(self, path: str) -> list[str]:
        with self._lock:
            return [p.get("message", "") for p_path, p in self.posts if p_path == path]

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
