"""The provider contract, run over msal and requests against the local Graph over HTTPS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.calendars import MicrosoftCalendar
from tests.contract.suite import ProviderContract


class TestMicrosoftContract(ProviderContract):
    @pytest.fixture
    def provider_factory(self) -> Iterator[MicrosoftCalendar]:
        calendar = MicrosoftCalendar()
        yield calendar
        calendar.close()
