"""Credentials handling and push channels of the Google provider."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from feedback_agendas.agendas.errors import UserError
from feedback_agendas.integrations.calendars.google import GoogleProvider, verify_push
from feedback_agendas.integrations.calendars.google_client import (
    batch_uri_for,
    is_loopback_endpoint,
    write_private_file,
)
from feedback_agendas.integrations.calendars.google_push import push_channel_id
from tests.fakes.google_api import FakeGoogleCalendarAPI

OWNER = "mona@example.com"
SECRET = "s3cr3t-refresh-token-value"


def token_file(folder: Path, mode: int) -> Path:
    path = folder / "token.json"
    path.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "id.apps.googleusercontent.com",
                "client_secret": "client-secret-value",
                "refresh_token": SECRET,
            }
        ),
        encoding="utf-8",
    )
    path.chmod(mode)
    return path


def test_anonymous_credentials_only_for_a_loopback_endpoint() -> None:
    with pytest.raises(UserError, match="loopback"):
        GoogleProvider(
            name="w",
            owner=OWNER,
            credentials="anonymous",
            api_endpoint="https://proxy.example.com/calendar/v3/",
        )
    with pytest.raises(UserError, match="loopback"):
        GoogleProvider(name="w", owner=OWNER, credentials="anonymous")
    assert is_loopback_endpoint("http://127.0.0.1:8080/calendar/v3/")
    assert is_loopback_endpoint("http://[::1]:8080/calendar/v3/")
    assert is_loopback_endpoint("http://localhost:1/calendar/v3/")
    assert not is_loopback_endpoint("http://10.0.0.1/calendar/v3/")


def test_a_token_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = token_file(tmp_path, 0o644)
    with pytest.raises(UserError, match="chmod 600") as caught:
        GoogleProvider(
            name="w", owner=OWNER, credentials=path, api_endpoint="http://127.0.0.1:9/calendar/v3/"
        )
    assert SECRET not in str(caught.value)


def test_a_private_token_file_builds_a_provider_without_a_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = token_file(tmp_path, 0o600)
    provider = GoogleProvider(
        name="w", owner=OWNER, credentials=path, api_endpoint="http://127.0.0.1:9/calendar/v3/"
    )
    assert provider.quota_user == OWNER
    assert sum(provider.requests.values()) == 0
    provider.close()
    assert SECRET not in caplog.text and "client-secret-value" not in caplog.text


def test_a_malformed_key_file_names_the_file_but_not_its_content(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    path.write_text(
        json.dumps({"type": "service_account", "private_key": SECRET}), encoding="utf-8"
    )
    path.chmod(0o600)
    with pytest.raises(UserError) as caught:
        GoogleProvider(
            name="w",
            owner=OWNER,
            credentials=path,
            subject=OWNER,
            api_endpoint="http://127.0.0.1:9/calendar/v3/",
        )
    assert str(path) in str(caught.value)
    assert SECRET not in str(caught.value)
    assert caught.value.__cause__ is None  # no chained library message quoting the key


def test_a_service_account_needs_a_subject(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    path.write_text(json.dumps({"type": "service_account"}), encoding="utf-8")
    path.chmod(0o600)
    with pytest.raises(UserError, match="subject"):
        GoogleProvider(
            name="w", owner=OWNER, credentials=path, api_endpoint="http://127.0.0.1:9/calendar/v3/"
        )


def test_token_files_are_written_private(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    write_private_file(path, "{}")
    assert path.stat().st_mode & 0o077 == 0


def test_the_batch_uri_follows_the_api_endpoint() -> None:
    assert (
        batch_uri_for("http://127.0.0.1:5/calendar/v3/") == "http://127.0.0.1:5/batch/calendar/v3"
    )
    assert batch_uri_for("https://proxy.example.com/google/calendar/v3/") == (
        "https://proxy.example.com/google/batch/calendar/v3"
    )
    assert batch_uri_for("https://www.googleapis.com/calendar/v3/") == (
        "https://www.googleapis.com/batch/calendar/v3"
    )


# -- push ------------------------------------------------------------------------------


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records the notifications it gets."""

    def __init__(self) -> None:
        received = self.received = []  # type: list[dict[str, str]]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(dict(self.headers.items()))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_watch_notify_verify_and_stop(receiver: Receiver) -> None:
    with FakeGoogleCalendarAPI() as api:
        api.add_calendar(OWNER)
        provider = GoogleProvider(
            name="w", owner=OWNER, calendar_id=OWNER, api_endpoint=api.endpoint
        )
        channel = provider.watch("chan-1", receiver.url, "token-abc", ttl=3600)
        assert channel.channel_id == "chan-1" and channel.resource_id
        assert channel.expiration is not None
        (call,) = [c for c in api.calls if c.kind == "watch"]
        assert call.body["token"] == "token-abc" and call.body["type"] == "web_hook"

        assert api.notify_channels(OWNER) == 1
        (headers,) = receiver.received
        assert verify_push(headers, "token-abc")
        assert push_channel_id(headers) == "chan-1"
        assert not verify_push(headers, "another-token")
        assert not verify_push({**headers, "X-Goog-Channel-Token": "token-abX"}, "token-abc")
        assert not verify_push({"X-Goog-Resource-State": "exists"}, "token-abc")
        assert not verify_push(headers, "")

        provider.stop_channel(channel.channel_id, channel.resource_id)
        assert api.channels == {}
        provider.stop_channel(channel.channel_id, channel.resource_id)  # already gone: fine
        assert api.notify_channels(OWNER) == 0
        provider.close()
        assert api.violations == []


def test_a_channel_is_due_for_replacement_before_it_expires() -> None:
    from datetime import UTC, datetime, timedelta

    from feedback_agendas.integrations.calendars.google_push import PushChannel

    now = datetime(2026, 12, 1, tzinfo=UTC)
    channel = PushChannel("c", "r", now + timedelta(hours=2))
    assert not channel.needs_replacing(now, margin_seconds=3600)
    assert channel.needs_replacing(now + timedelta(hours=1, minutes=1), margin_seconds=3600)


def test_the_endpoint_may_come_as_a_validated_url_object() -> None:
    from pydantic import HttpUrl

    with FakeGoogleCalendarAPI() as api:
        api.add_calendar(OWNER)
        provider = GoogleProvider(
            name="w", owner=OWNER, calendar_id=OWNER, api_endpoint=HttpUrl(api.endpoint)
        )
        assert provider.read_changes(None).full
        provider.close()
