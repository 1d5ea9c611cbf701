"""The ``example`` fixture: config.example.yaml beside a sample week.

tests/unit/conftest.py imports it for the unit tests.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedback_agendas.scheduler.service.commands import demo_week_start
from feedback_agendas.scheduler.service.sample_week import write_sample_week

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """config.example.yaml beside a sample week that lies ahead of today."""
    config = tmp_path / "config.yaml"
    shutil.copy(ROOT / "config.example.yaml", config)
    folder = tmp_path / "examples" / "calendars" / "mona"
    folder.mkdir(parents=True)
    write_sample_week(folder, demo_week_start(datetime.now(UTC), "Europe/Stockholm"))
    return config
