"""A fifth provider, added by the test suite alone, through one registry line.

``tests/support/shelf_provider.py`` is a whole provider (config model, factory,
push with a Graph-like handshake); this module registers it with
``registry.register`` and nothing in ``scheduler/`` knows its name. It must
pass the contract suite, load from YAML with the config's messages, be synced
by the daemon, and get push channels at ``/webhooks/shelf`` whose validation
is answered with a body.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from feedback_agendas.agendas.block import START_MARKER
from feedback_agendas.agendas.errors import ConfigError
from feedback_agendas.agendas.model import Attendee, EventRef, Meeting
from feedback_agendas.integrations.calendars import registry
from feedback_agendas.scheduler.config.checks import check_config
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.daemon import Daemon
from feedback_agendas.scheduler.service.http_server import EndpointServer
from feedback_agendas.scheduler.sync.providers import build_provider
from feedback_agendas.scheduler.sync.push import PushChannels
from tests.contract.calendars import OWNER, EventSpec, meetings_from_spec
from tests.contract.suite import ProviderContract
from tests.support import shelf_provider
from tests.support.shelf_provider import SHELVES, ShelfCalendar, shelf

MONA = "mona@example.com"
MONDAY = datetime(2026, 3, 23, 7, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def shelf_registered() -> Iterator[None]:
    registry.register("shelf", shelf_provider.__name__)
    yield
    registry.unregister("shelf")
    SHELVES.clear()


class ShelfContractCalendar:
    """The provider as the runtime builds it; the user edits the shelf's server directly."""

    def __init__(self) -> None:
        entry = ShelfCalendar(name="contract", owner=OWNER, provider="shelf", shelf="contract")
        self.provider = build_provider(entry)
        self.server = shelf("contract", OWNER).server

    def seed(self, spec: EventSpec) -> EventRef:
        meetings = meetings_from_spec(spec, "contract")
        for meeting in meetings:
            self.server.put(meeting)  # as typed: the provider lower-cases addresses
        return meetings[0].ref

    def user_edit_description(self, ref: EventRef, text: str) -> None:
        current = self.server.get(ref)
        assert current is not None
        self.server.put(
            Meeting(
                **{s: getattr(current, s) for s in Meeting.__slots__ if s != "description"},
                description=text,
            )
        )

    def delete(self, ref: EventRef) -> None:
        for meeting in self.server.meetings():
            if meeting.ref.event_id == ref.event_id:
                self.server.delete(meeting.ref)

    def close(self) -> None:
        self.provider.close()


class TestShelfContract(ProviderContract):
    @pytest.fixture
    def provider_factory(self) -> Iterator[ShelfContractCalendar]:
        calendar = ShelfContractCalendar()
        yield calendar
        calendar.close()


def write_config(tmp: Path, **extra: Any) -> Path:
    data: dict[str, Any] = {
        "storage": {"url": f"sqlite:///{tmp / 'fa.db'}"},
        "calendars": [{"name": "mona", "provider": "shelf", "owner": MONA, "shelf": "mona"}],
        "org": {
            "internal_domains": ["example.com"],
            "teams": [{"name": "analys", "manager": MONA, "members": ["alice@example.com"]}],
        },
        **extra,
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def one_on_one(start: datetime) -> Meeting:
    return Meeting(
        ref=EventRef("mona", "mona-alice"),
        title="Mona / Alice",
        description="Dial-in: 555",
        start=start,
        end=start + timedelta(minutes=30),
        owner=MONA,
        etag="",
        organizer=MONA,
        attendees=(Attendee(MONA), Attendee("alice@example.com")),
        timezone="Europe/Stockholm",
    )


def test_the_config_knows_the_new_provider_and_its_keys(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path))
    assert isinstance(cfg.calendars[0], ShelfCalendar) and cfg.calendars[0].shelf == "mona"
    assert check_config(write_config(tmp_path)) == []

    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("  shelf: mona\n", "  shelve: mona\n"))
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert refused.value.problems == [
        f"{path}:4: calendars[0].shelf: missing required key",
        f"{path}:7: calendars[0].shelve: unknown key",
    ]
    path.write_text(path.read_text().replace("provider: shelf", "provider: shelves"))
    with pytest.raises(ConfigError) as unknown:
        load_config(path)
    assert unknown.value.problems == [
        f"{path}:5: calendars[0].provider: "
        "should be one of: vdir, google, caldav, memory, microsoft, shelf"
    ]


def test_the_daemon_syncs_the_new_provider_with_no_other_change(tmp_path: Path) -> None:
    server = shelf("mona", MONA).server
    ref = server.put(one_on_one(MONDAY + timedelta(days=1))).ref
    daemon = Daemon(load_config(write_config(tmp_path)), clock=lambda: MONDAY)
    try:
        first = daemon.sync_calendar("mona")
        written = server.get(ref)
        assert written is not None
        assert written.description.startswith("Dial-in: 555")
        assert written.description.count(START_MARKER) == 1
        second = daemon.sync_calendar("mona")
    finally:
        daemon.shutdown()
        daemon.store.close()
    assert first is not None and first.ok and first.writes == 1
    assert second is not None and second.ok and second.writes == 0  # I2: a quiet cycle


def post(url: str, body: bytes) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status), response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), exc.headers["Content-Type"], exc.read()


def test_push_channels_of_the_new_provider_are_validated_renewed_and_notify(
    tmp_path: Path,
) -> None:
    endpoints = EndpointServer(
        "127.0.0.1", 0, ready=lambda: (True, "{}"), metrics=lambda: (b"", "text/plain")
    )
    endpoints.start()
    public = f"http://127.0.0.1:{endpoints.port}/"
    cfg = load_config(write_config(tmp_path, server={"public_url": public}))
    daemon = Daemon(cfg, clock=lambda: MONDAY)
    synced: list[str] = []
    push = PushChannels(cfg, daemon.store, replica_id="r1")
    try:
        for path, handler in push.webhooks(synced.append, lambda *_later: None).items():
            endpoints.register_push(path, handler)
        now = datetime.now(UTC)
        assert push.maintain(now).registered == ["mona"]
        ((channel_id, (address, secret, _expiry)),) = SHELVES["mona"].subscriptions.items()
        assert address == public + "webhooks/shelf"

        # The subscription handshake: the token comes back as the body, as text.
        assert post(address + "?validationToken=abc%20123", b"") == (200, "text/plain", b"abc 123")

        def notify(state: str) -> int:
            body = {"value": [{"subscriptionId": channel_id, "clientState": state}]}
            return post(address, json.dumps(body).encode())[0]

        assert notify("not-the-secret") == 403 and synced == []
        assert notify(secret) == 202 and synced == ["mona"]
        assert post(public + "webhooks/google", b"")[0] == 403  # another provider's route

        # Near its expiry the channel is renewed in place, not replaced.
        report = push.maintain(now + timedelta(days=3) - timedelta(hours=1))
        assert report.renewed == ["mona"] and report.registered == report.replaced == []
        assert list(SHELVES["mona"].subscriptions) == [channel_id]
        assert SHELVES["mona"].renewals == 1
        assert [c.channel_id for c in push.channels("mona")] == [channel_id]
    finally:
        endpoints.stop()
        daemon.shutdown()
        daemon.store.close()
