"""CalDAV provider behaviour the contract suite does not cover, against a real Radicale.

Faults (a server without sync-collection, 5xx, 403) come from a small real
HTTP proxy on 127.0.0.1 in front of Radicale that answers chosen requests
itself and forwards everything else.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from caldav.davclient import DAVClient

from feedback_agendas.agendas.errors import NotFound, PermissionDenied, TransientError
from feedback_agendas.integrations.calendars.caldav import CaldavProvider
from tests.integration.http_proxy import HttpProxy
from tests.integration.radicale import (  # noqa: F401
    RadicaleServer,
    free_loopback_port,
    radicale_server,
)

USER = "mona"
OWNER = "mona@example.com"


def event(uid: str, summary: str = "Mona / Alice 1:1") -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261101T120000Z\r\nDTSTART:20261201T090000Z\r\n"
        f"DTEND:20261201T093000Z\r\nSUMMARY:{summary}\r\nORGANIZER:mailto:{OWNER}\r\n"
        f"ATTENDEE:mailto:{OWNER}\r\nATTENDEE:mailto:alice@example.com\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def basic_client(url: str) -> DAVClient:
    return DAVClient(url=url + "/", username=USER, password="pw", auth_type="basic")


@pytest.fixture
def calendar(radicale_server: RadicaleServer) -> Iterator[Any]:  # noqa: F811
    user = basic_client(radicale_server.url)
    principal: Any = user.get_principal()
    cal_id = uuid.uuid4().hex
    yield principal.make_calendar(name=f"Work {cal_id[:6]}", cal_id=cal_id)
    user.close()


@pytest.fixture
def proxy(radicale_server: RadicaleServer) -> Iterator[HttpProxy]:  # noqa: F811
    fault_proxy = HttpProxy(radicale_server.url)
    yield fault_proxy
    fault_proxy.close()


def provider_at(base: str, calendar: Any, name: str = "work") -> CaldavProvider:
    path = urlsplit(str(calendar.url)).path
    return CaldavProvider(
        name=name,
        url=base + "/",
        username=USER,
        password="pw",
        calendar=path,
        owner=OWNER,
        client=basic_client(base),
    )


def test_a_server_without_sync_collection_is_listed_by_etags(
    calendar: Any, proxy: HttpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    proxy.fault = lambda method, _path, body: 501 if b"sync-collection" in body else None
    calendar.save_event(event("a@example.com"))
    calendar.save_event(event("b@example.com"))
    provider = provider_at(proxy.url, calendar)
    with caplog.at_level(logging.WARNING, logger="feedback_agendas.integrations.calendars.caldav"):
        full = provider.read_changes(None)
        quiet = provider.read_changes(full.cursor)
    assert full.full and len(full.meetings) == 2
    assert caplog.text.count("no sync-collection support") == 1
    assert quiet.meetings == () and quiet.deleted == ()
    assert provider.requests["propfind"] >= 2

    calendar.get_event_by_uid("a@example.com").delete()
    calendar.save_event(event("b@example.com", summary="Mona / Alice 1:1, moved"))
    later = provider.read_changes(quiet.cursor)
    assert not later.full
    assert [m.title for m in later.meetings] == ["Mona / Alice 1:1, moved"]
    assert [r.event_id for r in later.deleted] == ["a@example.com"]
    provider.close()


@pytest.mark.parametrize(
    ("status", "error"),
    [(503, TransientError), (500, TransientError), (403, PermissionDenied)],
)
def test_server_errors_are_translated(
    calendar: Any, proxy: HttpProxy, status: int, error: type[Exception]
) -> None:
    calendar.save_event(event("a@example.com"))
    provider = provider_at(proxy.url, calendar)
    proxy.fault = lambda method, _path, _body: status if method == "REPORT" else None
    with pytest.raises(error):
        provider.read_changes(None)
    provider.close()


def test_a_bug_of_ours_surfaces_as_itself_not_as_a_provider_error(
    calendar: Any,
    radicale_server: RadicaleServer,  # noqa: F811
) -> None:
    """Only what the HTTP library raises for the server is translated (issue 14 item 5).

    Here our side calls the library wrongly on the REPORT (an argument it does
    not take): the TypeError reaches the caller as itself, not as a
    ProviderError that the sync would count as the server's fault and retry.
    """
    calendar.save_event(event("a@example.com"))
    client = basic_client(radicale_server.url)
    real_request = client.session.request

    def request(method: str, url: str, **kwargs: Any) -> Any:
        if method == "REPORT":
            kwargs["no_such_argument"] = True
        return real_request(method, url, **kwargs)

    client.session.request = request
    provider = CaldavProvider(
        name="work",
        url=radicale_server.url + "/",
        username=USER,
        password="pw",
        calendar=urlsplit(str(calendar.url)).path,
        owner=OWNER,
        client=client,
    )
    with pytest.raises(TypeError, match="no_such_argument"):
        provider.read_changes(None)
    provider.close()


def test_an_unreachable_server_is_transient(calendar: Any) -> None:
    provider = provider_at(f"http://127.0.0.1:{free_loopback_port()}", calendar)
    with pytest.raises(TransientError):
        provider.read_changes(None)
    provider.close()


def test_a_missing_calendar_is_not_found(radicale_server: RadicaleServer) -> None:  # noqa: F811
    provider = CaldavProvider(
        name="work",
        url=radicale_server.url + "/",
        username=USER,
        password="pw",
        calendar="No such calendar",
        owner=OWNER,
        client=basic_client(radicale_server.url),
    )
    with pytest.raises(NotFound):
        provider.read_changes(None)
    provider.close()


def test_tasks_are_ignored_not_unreadable(calendar: Any, radicale_server: RadicaleServer) -> None:  # noqa: F811
    calendar.save_event(event("a@example.com"))
    calendar.save_todo(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTODO\r\n"
        "UID:todo@example.com\r\nDTSTAMP:20261101T120000Z\r\nSUMMARY:Prepare\r\n"
        "END:VTODO\r\nEND:VCALENDAR\r\n"
    )
    provider = provider_at(radicale_server.url, calendar)
    changes = provider.read_changes(None)
    assert [m.ref.event_id for m in changes.meetings] == ["a@example.com"]
    assert changes.unreadable == ()
    provider.close()
