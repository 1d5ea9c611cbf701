"""The real daemon with its dashboard on a test config, for the dashboard's tests.

- ``mona``: a vdir folder with the sample week (1:1s, team meetings, skips);
- ``bob-google``: a Google calendar on the local fake API (tests/fakes);
- ``a-broken``: a Google calendar whose credentials the (real, local) token
  endpoint refuses: broken on purpose, and first by name;

storage in SQLite under the test's folder, a login (``admin`` / PASSWORD) and
``server.secret``. :func:`start_daemon` runs ``run_forever`` (what
``feedback-agendas run`` runs) in a thread, with its endpoint server on a free
port, after one ``feedback-agendas sync`` so every calendar has a history.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.cli import main
from feedback_agendas.scheduler.service.commands import demo_week_start
from feedback_agendas.scheduler.service.loop import run_forever
from feedback_agendas.scheduler.service.sample_week import write_sample_week
from feedback_agendas.scheduler.service.web.passwords import hash_password
from tests.support.google_keys import service_account_file

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
SECRET = "test-secret-0123456789abcdef-KANARIE-sekret"
OWNER = "mona@example.com"
_HASH = hash_password(PASSWORD)


class RefusingTokenEndpoint:
    """A real OAuth token endpoint on loopback that refuses every refresh (invalid_grant)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.dumps(
                    {"error": "invalid_grant", "error_description": "Token has been revoked."}
                ).encode()
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_config(
    tmp: Path,
    google_endpoint: str,
    token_uri: str,
    *,
    server: dict[str, Any] | None = None,
    storage_url: str | None = None,
) -> Path:
    """The test config (see the module docstring); ``server`` replaces the server section."""
    data = yaml.safe_load((ROOT / "config.example.yaml").read_text(encoding="utf-8"))
    folder = tmp / "calendars" / "mona"
    folder.mkdir(parents=True, exist_ok=True)
    write_sample_week(folder, demo_week_start(datetime.now(UTC), "Europe/Stockholm"))
    data["storage"] = {"url": storage_url or f"sqlite:///{tmp / 'fa.db'}"}
    data["calendars"] = [
        {
            "name": "mona",
            "provider": "vdir",
            "path": str(folder),
            "owner": OWNER,
            "timezone": "Europe/Stockholm",
        },
        {
            "name": "bob-google",
            "provider": "google",
            "owner": "bob@example.com",
            "credentials": "anonymous",
            "api_endpoint": google_endpoint,
        },
        {
            "name": "a-broken",
            "provider": "google",
            "owner": "dan@example.com",
            "credentials": str(service_account_file(tmp, token_uri, "broken-key.json")),
            "api_endpoint": google_endpoint,
            "subject": "dan@example.com",
        },
    ]
    data["server"] = (
        server
        if server is not None
        else {
            "host": "127.0.0.1",
            "port": 0,
            "secret": SECRET,
            "admin": {"username": "admin", "password_hash": _HASH},
        }
    )
    data["sync"] = {"interval_seconds": 3600, "jitter": 0}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@dataclass
class LiveDaemon:
    """A running daemon: its config, its dashboard's base URL and what it printed."""

    config_path: Path
    cfg: AppConfig
    url: str
    printed: list[str]

    @property
    def admin(self) -> str:
        return self.url + "/admin/"


def sync_once(config_path: Path) -> dict[str, Any]:
    """``feedback-agendas sync --json`` once (a cron run); its JSON summary."""
    result = CliRunner().invoke(main, ["sync", "--config", str(config_path), "--json"])
    assert result.exit_code in (0, 1), result.output
    return dict(json.loads(result.stdout))


@contextmanager
def start_daemon(config_path: Path, *, first_sync: bool = True) -> Iterator[LiveDaemon]:
    """``run_forever`` on ``config_path`` in a thread until the block ends."""
    if first_sync:
        sync_once(config_path)
    cfg = load_config(config_path)
    printed: list[str] = []
    stop = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            run_forever(cfg, echo=printed.append, stop=stop)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=serve, name="daemon-under-test", daemon=True)
    thread.start()
    url = wait_for(lambda: _dashboard_url(printed) or (failure and "failed"), 20)
    if failure:
        raise failure[0]
    try:
        yield LiveDaemon(config_path, cfg, url.removesuffix("/admin/"), printed)
    finally:
        stop.set()
        thread.join(20)
        assert not thread.is_alive(), "the daemon did not stop"


def _dashboard_url(printed: list[str]) -> str | None:
    for line in printed:
        found = re.match(r"dashboard on (\S+)", line)
        if found:
            return found.group(1)
    return None


def wait_for(check: Callable[[], Any], seconds: float, every: float = 0.1) -> Any:
    """The first truthy result of ``check()`` within ``seconds``; AssertionError otherwise."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds} s")
        time.sleep(every)


class Client:
    """A tiny HTTP client with cookies that does not follow redirects (to see each answer)."""

    def __init__(self, base: str) -> None:
        import http.cookiejar
        import urllib.request

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *_args: Any, **_kw: Any) -> None:
                return None

        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), NoRedirect()
        )

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], str]:
        """(status, headers, body) of one request."""
        import urllib.error
        import urllib.parse
        import urllib.request

        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers=headers or {}
        )
        if data is not None:
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with self.opener.open(request, timeout=30) as reply:
                return reply.status, dict(reply.headers.items()), reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers.items()), exc.read().decode()

    def get(self, path: str, **kw: Any) -> tuple[int, dict[str, str], str]:
        return self.request("GET", path, **kw)

    def csrf(self, path: str) -> str:
        """The CSRF token of the form on page ``path``."""
        status, _headers, body = self.get(path)
        assert status == 200, (path, status)
        found = re.search(r'name="csrf" value="([^"]+)"', body)
        assert found, path
        return found.group(1)

    def log_in(self, password: str = PASSWORD, username: str = "admin") -> int:
        token = self.csrf("/admin/login")
        status, _h, _b = self.request(
            "POST", "/admin/login", {"csrf": token, "username": username, "password": password}
        )
        return status
