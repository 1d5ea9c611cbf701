"""CalDAV costs on the wire when ``sync`` runs as a new process each time (cron).

Each cycle is a real ``feedback-agendas sync`` process against Radicale,
through the counting proxy of :mod:`tests.integration.http_proxy`, which also
asks for credentials (a 401 challenge) on any request that comes without them,
as a real server does. The calendar is named by display name, so the first
process discovers it; the store keeps the URL for every later one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from caldav.davclient import DAVClient
from caldav.elements import dav

from feedback_agendas.integrations.calendars.caldav import CaldavProvider
from feedback_agendas.scheduler.storage.store import Store
from tests.integration.http_proxy import HttpProxy
from tests.integration.radicale import RadicaleServer, radicale_server  # noqa: F401

USER = "mona"
OWNER = "mona@example.com"
CLI = Path(sys.executable).parent / "feedback-agendas"

# ``sync`` reads the real clock: the 1:1 is two days ahead, inside the horizon.
DAY = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y%m%d")
ONE_ON_ONE = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
    "UID:alice-1on1@example.com\r\nDTSTAMP:20261101T120000Z\r\n"
    f"DTSTART:{DAY}T090000Z\r\nDTEND:{DAY}T093000Z\r\nSUMMARY:Mona / Alice 1:1\r\n"
    f"ORGANIZER:mailto:{OWNER}\r\nATTENDEE:mailto:{OWNER}\r\n"
    "ATTENDEE:mailto:alice@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


@dataclass
class Cron:
    proxy: HttpProxy
    config: Path
    user: DAVClient
    display_name: str

    def write_config(self, calendar: str) -> None:
        self.config.write_text(
            f"""
storage: {{url: "sqlite:///{self.config.parent / "store.db"}"}}
calendars:
  - name: work
    provider: caldav
    url: {self.proxy.url}/
    username: {USER}
    password: ${{CALDAV_PASSWORD}}
    calendar: "{calendar}"
    owner: {OWNER}
org:
  internal_domains: [example.com]
  teams:
    - name: platform
      manager: {OWNER}
      members: [alice@example.com]
"""
        )

    def sync(self) -> tuple[dict[str, Any], Counter[str], Counter[int]]:
        """One ``sync`` process; its JSON report and the requests it made on the wire."""
        self.proxy.reset()
        done = subprocess.run(
            [str(CLI), "sync", "--config", str(self.config), "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "CALDAV_PASSWORD": "pw"},
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout), self.proxy.counts(), self.proxy.statuses()

    def make_calendar(self) -> Any:
        principal: Any = self.user.get_principal()
        calendar = principal.make_calendar(name=self.display_name, cal_id=uuid.uuid4().hex)
        calendar.save_event(ONE_ON_ONE)
        return calendar


@pytest.fixture
def cron(radicale_server: RadicaleServer, tmp_path: Path) -> Iterator[Cron]:  # noqa: F811
    proxy = HttpProxy(radicale_server.url)
    proxy.require_auth = True
    user = DAVClient(url=radicale_server.url + "/", username=USER, password="pw", auth_type="basic")
    setup = Cron(proxy, tmp_path / "config.yaml", user, f"Work {uuid.uuid4().hex[:6]}")
    setup.write_config(setup.display_name)
    yield setup
    user.close()
    proxy.close()


def test_a_later_process_reuses_discovery_and_a_quiet_cycle_is_one_report(cron: Cron) -> None:
    calendar = cron.make_calendar()

    first, wire, statuses = cron.sync()
    assert first["writes"] == 1, [e["reason"] for e in first["events"]]
    assert wire["propfind"] == 3  # principal, calendar home, its members: once
    assert 401 not in statuses  # credentials went with the first request (loopback)

    # The next process: our own write comes back as a change, and is not fetched.
    echo, wire, statuses = cron.sync()
    assert echo["writes"] == 0
    assert wire == {"report": 1}
    assert 401 not in statuses

    quiet, wire, statuses = cron.sync()
    assert quiet["writes"] == 0 and quiet["full_resync"] == []
    assert wire == {"report": 1}  # no PROPFIND, no GET, no PUT
    assert 401 not in statuses

    # The calendar is made again elsewhere (same display name): its old URL
    # answers 404, so this process discovers it again, once.
    calendar.delete()
    cron.make_calendar()
    moved, wire, _ = cron.sync()
    assert wire["propfind"] == 3
    assert moved["writes"] == 1  # the new collection's 1:1 gets its agenda
    assert cron.sync()[1] == {"report": 1}
    assert cron.sync()[1] == {"report": 1}


def test_a_config_change_discovers_again(cron: Cron) -> None:
    calendar = cron.make_calendar()
    cron.sync()
    assert cron.sync()[1] == {"report": 1}

    # The same calendar, now named by its last path segment: a new discovery.
    cron.write_config(str(calendar.url).rstrip("/").rsplit("/", 1)[-1])
    _, wire, _ = cron.sync()
    assert wire["propfind"] == 3
    assert cron.sync()[1] == {"report": 1}


@pytest.mark.parametrize("status", [301, 308])
def test_a_collection_that_moved_permanently_is_discovered_again(
    cron: Cron, tmp_path: Path, status: int
) -> None:
    old = cron.make_calendar()
    store = Store.open(f"sqlite:///{tmp_path / 'moves.db'}")

    def provider() -> CaldavProvider:
        return CaldavProvider(
            name="work",
            url=cron.proxy.url + "/",
            username=USER,
            password="pw",
            calendar=cron.display_name,
            owner=OWNER,
            collections=store,
        )

    first = provider()
    assert [m.ref.event_id for m in first.read_changes(None).meetings] == ["alice-1on1@example.com"]
    first.close()
    old_path = urlsplit(str(old.url)).path

    # The calendar now lives elsewhere; its old URL says so.
    old.set_properties([dav.DisplayName("Archive")])
    new = cron.make_calendar()
    new_path = urlsplit(str(new.url)).path
    cron.proxy.respond = lambda method, path, _body: (
        (status, {"Location": cron.proxy.url + new_path}, b"")
        if path.startswith(old_path)
        else None
    )
    cron.proxy.reset()
    later = provider()
    try:
        changes = later.read_changes(None)
    finally:
        later.close()
    assert [m.ref.event_id for m in changes.meetings] == ["alice-1on1@example.com"]
    assert cron.proxy.counts()["propfind"] == 3  # discovered again, once
    assert store.discovered_collection("work", later._config_digest()) == (
        cron.proxy.url + new_path
    )
    store.close()
