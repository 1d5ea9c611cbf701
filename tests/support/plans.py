"""An agenda plan for the rendering tests: a 1:1 or team meeting of team ``platform``."""

from __future__ import annotations

from datetime import UTC, datetime

from feedback_agendas.agendas.classify import MeetingKind
from feedback_agendas.agendas.plan import AgendaPlan, SlotKind

ONE, TEAM = MeetingKind.ONE_ON_ONE, MeetingKind.TEAM


def plan(
    kind: MeetingKind = ONE,
    slot: SlotKind = SlotKind.BETTER,
    *,
    locale: str = "en",
    goals: tuple[str, ...] = (),
    norm_enabled: bool = True,
    norm_text: str | None = None,
    trust_checkin: bool | None = None,
    positive_only: bool = False,
) -> AgendaPlan:
    return AgendaPlan(
        kind=kind,
        slot=slot,
        team="platform",
        locale=locale,
        timezone="Europe/Stockholm",
        goals=goals,
        norm_enabled=norm_enabled,
        norm_text=norm_text,
        trust_checkin=kind is ONE if trust_checkin is None else trust_checkin,
        positive_only=positive_only,
        occurrence_start=datetime(2026, 3, 2, 9, tzinfo=UTC),
    )
