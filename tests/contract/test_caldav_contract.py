"""The provider contract, run against a real Radicale server over CalDAV.

The "user" is a second, independent ``caldav`` client that PUTs and DELETEs
calendar objects directly, the way a calendar app would.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from caldav.davclient import DAVClient

from feedback_agendas.agendas.model import EventRef
from feedback_agendas.integrations.calendars.caldav import CaldavProvider
from feedback_agendas.integrations.calendars.ics import (
    calendar_from_meetings,
    find_events,
    parse_calendar,
    serialise,
)
from tests.contract.calendars import OWNER, TIMEZONE, EventSpec, meetings_from_spec
from tests.contract.suite import ProviderContract
from tests.integration.radicale import RadicaleServer, radicale_server  # noqa: F401

USER = "mona"


def fast_client(server: RadicaleServer) -> DAVClient:
    """A client that sends Basic auth up front.

    Radicale answers the unauthenticated first request with a 401 after a
    deliberate delay (its brute-force guard); skipping that keeps the suite fast.
    """
    return DAVClient(url=server.url + "/", username=USER, password="pw", auth_type="basic")


class CaldavCalendar:
    """A fresh calendar collection on Radicale; a second client plays the user."""

    def __init__(self, server: RadicaleServer) -> None:
        self.user = fast_client(server)
        # caldav's stubs type every call as "sync or async"; this client is sync.
        principal: Any = self.user.get_principal()
        self.calendar: Any = principal.make_calendar(name="contract", cal_id=uuid.uuid4().hex)
        self.provider = CaldavProvider(
            name="contract",
            url=server.url + "/",
            username=USER,
            password="pw",
            calendar=str(self.calendar.url),
            owner=OWNER,
            default_timezone=TIMEZONE,
            client=fast_client(server),
        )

    def seed(self, spec: EventSpec) -> EventRef:
        meetings = meetings_from_spec(spec, self.provider.name)
        self.calendar.save_event(serialise(calendar_from_meetings(meetings)).decode())
        return meetings[0].ref

    def user_edit_description(self, ref: EventRef, text: str) -> None:
        resource: Any = self.calendar.get_event_by_uid(ref.event_id)
        resource.load(only_if_unloaded=False)
        cal = parse_calendar(bytes(resource.raw_data))
        (event,) = find_events(cal, ref, TIMEZONE)
        event.pop("DESCRIPTION", None)
        if text:
            event.add("DESCRIPTION", text)
        resource.save(raw_data=serialise(cal), increase_seqno=False, precondition="etag")

    def delete(self, ref: EventRef) -> None:
        self.calendar.get_event_by_uid(ref.event_id).delete()

    def close(self) -> None:
        self.provider.close()
        self.user.close()


class TestCaldavContract(ProviderContract):
    @pytest.fixture
    def provider_factory(
        self,
        radicale_server: RadicaleServer,  # noqa: F811
    ) -> Iterator[CaldavCalendar]:
        calendar = CaldavCalendar(radicale_server)
        yield calendar
        calendar.close()
