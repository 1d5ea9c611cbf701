"""The provider contract, run against a real Radicale server over CalDAV.

The "user" is a second, independent ``caldav`` client that PUTs and DELETEs
calendar objects directly, the way a calendar app would.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.calendars import CaldavCalendar
from tests.contract.suite import ProviderContract
from tests.integration.radicale import RadicaleServer, radicale_server  # noqa: F401


class TestCaldavContract(ProviderContract):
    @pytest.fixture
    def provider_factory(
        self,
        radicale_server: RadicaleServer,  # noqa: F811
    ) -> Iterator[CaldavCalendar]:
        calendar = CaldavCalendar(radicale_server)
        yield calendar
        calendar.close()
