"""A fresh Radicale collection behind the real fault proxy, with a store and the sync engine.

The world of the CalDAV tests about how servers name, serve and store
resources (``test_caldav_hrefs``, ``test_caldav_line_endings``): the
:func:`cal` fixture (import it with ``radicale_server``), a 1:1 to put in it,
and the report's entries by event id. The proxy stores the names Radicale
refuses in a PUT under the plain names in :data:`RENAMED`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import niquests
import pytest

from feedback_agendas.agendas.render import AgendaRenderer
from feedback_agendas.integrations.calendars.caldav import CaldavProvider
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.sync.cycle import run_cycle
from feedback_agendas.scheduler.sync.report import CycleReport
from tests.integration.http_proxy import HttpProxy
from tests.integration.radicale import RadicaleServer
from tests.support.rules import example_com_rules, platform_team

USER = "mona"
OWNER = "mona@example.com"
NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
RULES = example_com_rules(platform_team(OWNER, "alice@example.com", "bob@example.com"))
# Radicale refuses these in a PUT; the proxy stores them under a plain name.
RENAMED = {"a%3Fb.ics": "renamed-question.ics", "a%3Ab.ics": "renamed-colon.ics"}


def one_on_one(uid: str, with_whom: str = "alice@example.com") -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261101T120000Z\r\nDTSTART:20261201T090000Z\r\n"
        "DTEND:20261201T093000Z\r\nSUMMARY:Mona 1:1\r\nDESCRIPTION:Notes\r\n"
        f"ORGANIZER:mailto:{OWNER}\r\nATTENDEE:mailto:{OWNER}\r\n"
        f"ATTENDEE:mailto:{with_whom}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


@dataclass
class Calendar:
    """A fresh Radicale collection behind a proxy, a store, and the user's HTTP session."""

    server: RadicaleServer
    proxy: HttpProxy
    path: str  # /mona/<id>/
    store: Store
    renderer: AgendaRenderer
    user: Any  # niquests.Session with Basic auth, straight to Radicale

    @property
    def folder(self) -> Path:
        return self.server.storage / "collection-root" / USER / self.path.strip("/").split("/")[-1]

    def put(self, name: str, data: bytes) -> None:
        """Store a resource as a user's app would, through the proxy (so renames apply)."""
        response = self.user.put(
            self.proxy.url + self.path + name,
            data=data,
            headers={"Content-Type": "text/calendar"},
        )
        assert response.status_code in (201, 204), (name, response.status_code)

    def get(self, name: str) -> bytes:
        response = self.user.get(self.proxy.url + self.path + name)
        assert response.status_code == 200, (name, response.status_code)
        return bytes(response.content)

    def provider(self) -> CaldavProvider:
        """A new provider, as a new process would build it."""
        return CaldavProvider(
            name="work",
            url=self.proxy.url + "/",
            username=USER,
            password="pw",
            calendar=self.path,
            owner=OWNER,
        )

    def cycle(self, provider: CaldavProvider | None = None) -> CycleReport:
        own = provider is None
        provider = provider or self.provider()
        try:
            return run_cycle(provider, self.store, RULES, self.renderer, NOW)
        finally:
            if own:
                provider.close()


@pytest.fixture
def cal(radicale_server: RadicaleServer, tmp_path: Path) -> Iterator[Calendar]:
    user = niquests.Session()
    user.auth = (USER, "pw")
    path = f"/{USER}/{uuid.uuid4().hex}/"
    assert user.request("MKCALENDAR", radicale_server.url + path).status_code == 201
    proxy = HttpProxy(radicale_server.url)
    proxy.rename = dict(RENAMED)
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    yield Calendar(radicale_server, proxy, path, store, AgendaRenderer(), user)
    store.close()
    proxy.close()
    user.close()


def entries(report: CycleReport) -> dict[str, dict[str, Any]]:
    return {e["event_id"]: e for e in report.event_entries()}
