"""The provider contract, run over the real Google client against the local Calendar API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.calendars import GoogleCalendar
from tests.contract.suite import ProviderContract


class TestGoogleContract(ProviderContract):
    @pytest.fixture
    def provider_factory(self) -> Iterator[GoogleCalendar]:
        calendar = GoogleCalendar()
        yield calendar
        calendar.close()
