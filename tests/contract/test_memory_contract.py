"""The provider contract, run against the in-memory provider."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.calendars import MemoryCalendar
from tests.contract.suite import ProviderContract


class TestMemoryContract(ProviderContract):
    @pytest.fixture
    def provider_factory(self) -> Iterator[MemoryCalendar]:
        calendar = MemoryCalendar()
        yield calendar
        calendar.close()
