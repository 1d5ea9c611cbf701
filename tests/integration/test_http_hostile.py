"""The endpoints against hostile and malformed clients, over raw sockets on loopback.

The server under test is the daemon's own (:class:`EndpointServer` with a real
:class:`Daemon` behind ``/readyz`` and ``/metrics``); the webhook route records
what reaches it, so each case shows whether a refused request got that far.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import yaml

from feedback_agendas.integrations.calendars.memory import MemoryProvider
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.daemon import Daemon
from feedback_agendas.scheduler.service.http_server import EndpointServer
from tests.support.http import write_vdir_config

ROOT = Path(__file__).resolve().parents[2]
HOOK = "/webhooks/google"


class Endpoints:
    """A daemon's endpoint server whose webhook records each call it gets."""

    def __init__(
        self, tmp: Path, *, max_connections: int = 64, request_seconds: float = 10.0
    ) -> None:
        path = write_vdir_config(tmp)
        self.daemon = Daemon(
            load_config(path),
            provider_factory=lambda _c: MemoryProvider("mona", "mona@example.com"),
        )
        self.server = EndpointServer(
            "127.0.0.1",
            0,
            ready=self.daemon.readiness,
            metrics=self.daemon.metrics_text,
            max_connections=max_connections,
            request_seconds=request_seconds,
        )
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.server.register_webhook(HOOK, self.record)
        self.server.start()

    def record(self, headers: Mapping[str, str], body: bytes) -> int:
        self.calls.append((dict(headers), body))
        return 200

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.server.port), timeout=timeout)

    def exchange(self, data: bytes, *, close_writing: bool = False) -> bytes:
        """Send ``data`` and read the reply until the server closes (5 s at most)."""
        with self.connect() as conn:
            conn.sendall(data)
            if close_writing:
                conn.shutdown(socket.SHUT_WR)
            return read_all(conn)

    def get(self, path: str) -> int:
        return status(self.exchange(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()))

    def close(self) -> None:
        self.server.stop()
        self.daemon.shutdown()
        self.daemon.store.close()


def read_all(conn: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            raise AssertionError(f"no reply within the timeout; got {b''.join(chunks)!r}") from None
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def status(reply: bytes) -> int:
    """The status code of a raw reply; 0 when the server closed without one."""
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else 0


def post(headers: str, body: bytes = b"") -> bytes:
    return f"POST {HOOK} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode() + body


@pytest.fixture
def endpoints(tmp_path: Path) -> Iterator[Endpoints]:
    server = Endpoints(tmp_path)
    yield server
    server.close()


def assert_still_serving(endpoints: Endpoints) -> None:
    assert endpoints.get("/healthz") == 200
    assert endpoints.get("/readyz") == 503  # no cycle yet: the route answers
    assert endpoints.get("/metrics") == 200


def test_a_negative_content_length_is_refused_before_any_body_is_read(
    endpoints: Endpoints,
) -> None:
    # Before: the server read until the client closed, holding everything in memory.
    sent = 0
    reply = b""
    with endpoints.connect() as conn:
        conn.sendall(post("Content-Length: -1\r\nX-Goog-Channel-Token: wrong\r\n"))
        chunk = b"x" * 65536
        try:
            while sent < 64 * 1024 * 1024:
                conn.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the server stopped listening to us: what we want
        reply = read_all(conn)
    assert sent < 16 * 1024 * 1024, f"the server took {sent} bytes of an unbounded body"
    assert status(reply) in (0, 400)  # the reply may be lost to the reset
    assert endpoints.exchange(post("Content-Length: -1\r\n")).startswith(b"HTTP/1.0 400")
    assert endpoints.calls == []
    assert_still_serving(endpoints)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Content-Length: abc\r\n", 400),
        ("Content-Length: 1e3\r\n", 400),
        ("Content-Length: +5\r\n", 400),
        ("Content-Length: 0x10\r\n", 400),
        ("Content-Length: 0\r\nContent-Length: 5\r\n", 400),
        ("", 411),  # no Content-Length at all on a POST
        ("Transfer-Encoding: chunked\r\n", 411),
        ("Content-Length: 65537\r\n", 413),
        ("Content-Length: 99999999999999999999999999999\r\n", 413),
    ],
)
def test_a_bad_or_missing_content_length_gets_a_clear_status_and_reaches_no_route(
    endpoints: Endpoints, header: str, expected: int
) -> None:
    reply = endpoints.exchange(post(header))  # headers only: the server must not wait for a body
    assert status(reply) == expected, reply
    assert endpoints.calls == []
    assert_still_serving(endpoints)


def test_a_body_cut_short_reaches_no_route(endpoints: Endpoints) -> None:
    reply = endpoints.exchange(post("Content-Length: 10\r\n", b"12345"), close_writing=True)
    assert status(reply) == 0 and endpoints.calls == []
    endpoints.exchange(post("Content-Length: 10\r\n", b"1234567890"))
    assert [body for _h, body in endpoints.calls] == [b"1234567890"]


def test_googles_notification_as_documented_still_reaches_the_webhook(
    endpoints: Endpoints,
) -> None:
    # The form Google documents for a Calendar notification: headers only,
    # an empty body with Content-Length: 0.
    notification = (
        f"POST {HOOK} HTTP/1.1\r\n"
        "Host: agendas.example.com\r\n"
        "Content-Type: application/json; utf-8\r\n"
        "Content-Length: 0\r\n"
        "X-Goog-Channel-ID: 4ba78bf0-6a47-11e2-bcfd-0800200c9a66\r\n"
        "X-Goog-Channel-Token: 398348u3tu83ut8uu38\r\n"
        "X-Goog-Channel-Expiration: Tue, 19 Nov 2013 01:13:52 GMT\r\n"
        "X-Goog-Resource-ID:  ret08u3rv24htgh289g\r\n"
        "X-Goog-Resource-URI: https://www.googleapis.com/calendar/v3/calendars/my_calendar@gmail.com/events\r\n"
        "X-Goog-Resource-State:  exists\r\n"
        "X-Goog-Message-Number: 10\r\n"
        "\r\n"
    ).encode()
    assert endpoints.exchange(notification).startswith(b"HTTP/1.0 200")
    [(headers, body)] = endpoints.calls
    assert body == b"" and headers["X-Goog-Message-Number"] == "10"


def test_an_idle_or_dripping_connection_is_cut_at_the_request_deadline(tmp_path: Path) -> None:
    endpoints = Endpoints(tmp_path, request_seconds=1.0)
    try:
        started = time.monotonic()
        with endpoints.connect(timeout=10) as idle:
            assert read_all(idle) == b""  # closed by the server, no reply
        assert time.monotonic() - started < 4

        # One byte every 0.2 s would keep a per-read timeout happy forever.
        started = time.monotonic()
        cut = False
        with endpoints.connect(timeout=10) as drip:
            for byte in post("Content-Length: 0\r\n"):
                try:
                    drip.sendall(bytes([byte]))
                except OSError:
                    cut = True
                    break
                time.sleep(0.2)
                if time.monotonic() - started > 8:
                    break
            cut = cut or not read_all(drip)
        assert cut and time.monotonic() - started < 5
        assert endpoints.calls == []
        assert_still_serving(endpoints)
    finally:
        endpoints.close()


def test_connections_over_the_cap_get_503_and_the_server_recovers(tmp_path: Path) -> None:
    endpoints = Endpoints(tmp_path, max_connections=2, request_seconds=30.0)
    try:
        held = [endpoints.connect() for _ in range(2)]
        for conn in held:
            conn.sendall(b"GET /healthz HTTP/1.1\r\n")  # and never the end of the headers
        time.sleep(0.3)  # let the server take both
        assert endpoints.get("/healthz") == 503
        assert endpoints.server.refused_connections >= 1
        for conn in held:
            conn.close()
        deadline = time.monotonic() + 5
        while endpoints.get("/healthz") != 200:
            assert time.monotonic() < deadline, "slots were not given back"
            time.sleep(0.05)
        assert_still_serving(endpoints)
    finally:
        endpoints.close()


def test_many_clients_at_once_within_the_cap_are_all_served(endpoints: Endpoints) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        code = endpoints.get("/healthz")
        with lock:
            results.append(code)

    threads = [threading.Thread(target=one) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [200] * 20


def test_run_on_a_port_in_use_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = tmp_path / "config.yaml"
        (tmp_path / "cal").mkdir()
        path.write_text(
            yaml.safe_dump(
                {
                    "storage": {"url": f"sqlite:///{tmp_path / 'fa.db'}"},
                    "calendars": [
                        {
                            "name": "mona",
                            "provider": "vdir",
                            "path": str(tmp_path / "cal"),
                            "owner": "mona@example.com",
                        }
                    ],
                    "org": {"internal_domains": ["example.com"]},
                    "server": {"host": "127.0.0.1", "port": port},
                }
            ),
            encoding="utf-8",
        )
        done = subprocess.run(
            [sys.executable, "-m", "feedback_agendas", "run", "--config", str(path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    assert done.returncode == 2
    assert done.stderr == (
        f"error: cannot listen on 127.0.0.1:{port}: the port is already in use; "
        "stop the other process or change server.port\n"
    )
    assert done.stdout == ""
