"""Rendered agendas compared exactly with reviewed files in tests/golden/.

After an intended wording or layout change, regenerate with
``UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedback_agendas.agendas.classify import MeetingKind
from feedback_agendas.agendas.model import TextFormat
from feedback_agendas.agendas.plan import AgendaPlan, SlotKind
from feedback_agendas.agendas.render import AgendaRenderer

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
GOALS = ("Ship the new onboarding by June", "Answer every support ticket within four hours")
EXTENSIONS = {TextFormat.TEXT: "txt", TextFormat.HTML: "html"}

# name -> (kind, slot, positive_only): the 1:1 focuses and the team praise slot;
# "well" and the team agenda as they look during the positive-only period (R2).
CASES = {
    "one_on_one_better": (MeetingKind.ONE_ON_ONE, SlotKind.BETTER, False),
    "one_on_one_stop": (MeetingKind.ONE_ON_ONE, SlotKind.STOP, False),
    "one_on_one_well": (MeetingKind.ONE_ON_ONE, SlotKind.WELL, True),
    "team": (MeetingKind.TEAM, SlotKind.PRAISE, True),
}


@pytest.fixture(scope="module")
def renderer() -> AgendaRenderer:
    return AgendaRenderer()


@pytest.mark.parametrize("fmt", list(TextFormat))
@pytest.mark.parametrize("locale", ["en", "sv"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_rendered_agenda_matches_the_golden_file(
    renderer: AgendaRenderer, name: str, locale: str, fmt: TextFormat
) -> None:
    kind, slot, positive_only = CASES[name]
    plan = AgendaPlan(
        kind=kind,
        slot=slot,
        team="platform",
        locale=locale,
        timezone="Europe/Stockholm",
        goals=GOALS,
        norm_enabled=True,
        norm_text=None,
        trust_checkin=kind is MeetingKind.ONE_ON_ONE,
        positive_only=positive_only,
        occurrence_start=datetime(2026, 3, 2, 8, tzinfo=UTC),
    )
    rendered = renderer.render_block(plan, fmt) + "\n"
    path = GOLDEN / f"{name}.{locale}.{EXTENSIONS[fmt]}"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(rendered, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == rendered
