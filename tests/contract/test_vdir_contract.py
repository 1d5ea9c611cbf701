"""The provider contract, run against a folder of .ics files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.calendars import VdirCalendar
from tests.contract.suite import ProviderContract


class TestVdirContract(ProviderContract):
    @pytest.fixture
    def provider_factory(self, tmp_path: Path) -> Iterator[VdirCalendar]:
        calendar = VdirCalendar(tmp_path)
        yield calendar
        calendar.close()
