"""Real receivers on loopback for the outbox tests, and the PostgreSQL policy.

- :class:`SmtpReceiver`: an aiosmtpd server; apprise sends to it with
  ``mailto://127.0.0.1:PORT?from=...&to=...``.
- :class:`WebhookReceiver`: an HTTP server that records JSON posts
  (apprise ``json://127.0.0.1:PORT/path``); it can be told to fail.
- :func:`postgres_engine`: a fresh schema on the real PostgreSQL, or a skip
  with a reason (a failure when ``FA_REQUIRE_POSTGRES=1``).
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

POSTGRES_URL = os.environ.get(
    "FA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


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


@contextmanager
def postgres_engine() -> Iterator[Engine]:
    """An engine on a fresh schema of the real PostgreSQL, dropped afterwards."""
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        admin.dispose()
        reason = f"PostgreSQL not reachable at {POSTGRES_URL}: {type(exc).__name__}"
        if os.environ.get("FA_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + " (FA_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    schema = f"fa_test_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_engine(
        POSTGRES_URL,
        connect_args={"options": f"-csearch_path={schema}"},
        pool_size=10,
        max_overflow=20,
    )
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_receivers_record_what_they_receive() -> None:
    import smtplib
    import urllib.request

    with SmtpReceiver() as smtp, WebhookReceiver() as hook:
        with smtplib.SMTP("127.0.0.1", smtp.port) as client:
            client.sendmail("a@example.com", ["b@example.com"], "Subject: hi\r\n\r\nbody\r\n")
        request = urllib.request.Request(
            f"http://127.0.0.1:{hook.port}/x", data=b'{"message": "m"}', method="POST"
        )
        urllib.request.urlopen(request).close()
    assert smtp.mails[0].recipients == ("b@example.com",)
    assert smtp.mails[0].subject == "hi"
    assert hook.bodies("/x") == ["m"]
