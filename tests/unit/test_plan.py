"""Planning: one slot per agenda, praise in public, correction one to one (R1, R2, R4, R5)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from feedback_agendas.agendas.classify import (
    Classification,
    MeetingKind,
    SkipReason,
    classify_meeting,
)
from feedback_agendas.agendas.model import Meeting
from feedback_agendas.agendas.plan import SlotKind, in_positive_only_period, plan_agenda
from feedback_agendas.agendas.policy import Focus, Policy, Rules, Team
from feedback_agendas.agendas.recurrence import next_occurrence
from tests.support.org import ANALYS, ANNA, BO, EVA, MONA, PLATFORM, RULES, SVEN, meeting

ONE_ON_ONE = Classification(MeetingKind.ONE_ON_ONE, team="platform", counterpart=ANNA)
TEAM_MEETING = Classification(MeetingKind.TEAM, team="platform")


def with_focus(focus: Focus) -> Rules:
    return replace(RULES, policy=Policy(one_on_one_focus=focus))


def test_team_meeting_gets_only_the_praise_slot() -> None:
    m = meeting(MONA, ANNA, BO, title="Platform stand-up")
    plan = plan_agenda(m, classify_meeting(m, RULES), RULES, m.start)
    assert plan.slot is SlotKind.PRAISE
    assert plan.slots == ("praise",)
    assert not plan.trust_checkin  # the trust check-in belongs to 1:1s


@pytest.mark.parametrize(
    ("focus", "slot"),
    [(Focus.WELL, SlotKind.WELL), (Focus.BETTER, SlotKind.BETTER), (Focus.STOP, SlotKind.STOP)],
)
def test_one_on_one_gets_the_configured_focus(focus: Focus, slot: SlotKind) -> None:
    m = meeting(MONA, ANNA)
    plan = plan_agenda(m, ONE_ON_ONE, with_focus(focus), m.start)
    assert plan.slots == (slot.value,)
    assert plan.trust_checkin


def test_default_focus_is_do_better() -> None:
    m = meeting(MONA, ANNA)
    assert plan_agenda(m, ONE_ON_ONE, RULES, m.start).slot is SlotKind.BETTER


def test_no_plan_ever_mixes_praise_and_correction() -> None:
    """I5 over every kind and focus: exactly one slot, praise only in team meetings."""
    m = meeting(MONA, ANNA)
    for focus in Focus:
        for classification in (ONE_ON_ONE, TEAM_MEETING):
            plan = plan_agenda(m, classification, with_focus(focus), m.start)
            assert len(plan.slots) == 1
            assert (plan.slot is SlotKind.PRAISE) == (classification.kind is MeetingKind.TEAM)
            if classification.kind is MeetingKind.TEAM:
                assert not plan.slot.corrective


def test_skipped_meeting_has_no_plan() -> None:
    m = meeting(MONA, ANNA)
    with pytest.raises(ValueError):
        plan_agenda(m, Classification(MeetingKind.SKIP, SkipReason.EXTERNAL_GUEST), RULES, m.start)


def test_rotation_cycles_well_better_stop_over_occurrences() -> None:
    weekly = replace(meeting(MONA, ANNA), recurrence=("RRULE:FREQ=WEEKLY",))
    rules = with_focus(Focus.ROTATE)
    slots = []
    moment = weekly.start - timedelta(minutes=1)
    for _ in range(7):
        found = next_occurrence(weekly, moment)
        assert found is not None
        slots.append(plan_agenda(weekly, ONE_ON_ONE, rules, found[0]).slot)
        moment = found[1]
    assert slots == [
        SlotKind.WELL, SlotKind.BETTER, SlotKind.STOP,
        SlotKind.WELL, SlotKind.BETTER, SlotKind.STOP, SlotKind.WELL,
    ]  # fmt: skip


def test_rotation_on_a_single_event_uses_the_first_focus() -> None:
    m = meeting(MONA, ANNA)
    assert plan_agenda(m, ONE_ON_ONE, with_focus(Focus.ROTATE), m.start).slot is SlotKind.WELL


def test_positive_only_period_gives_one_on_ones_the_well_slot() -> None:
    """R2: up to and including the last day, in the team's time zone; then the focus."""
    m = meeting(SVEN, EVA, owner=SVEN)
    analys_1on1 = classify_meeting(m, RULES)
    # ANALYS is positive-only until 2026-04-30 (Stockholm).
    last_evening = datetime(2026, 4, 30, 21, 30, tzinfo=UTC)  # 23:30 in Stockholm
    after_midnight = datetime(2026, 4, 30, 22, 30, tzinfo=UTC)  # 00:30 on 1 May
    during = plan_agenda(m, analys_1on1, RULES, last_evening)
    assert (during.slot, during.positive_only) == (SlotKind.WELL, True)
    after = plan_agenda(m, analys_1on1, RULES, after_midnight)
    assert (after.slot, after.positive_only) == (SlotKind.BETTER, False)


def test_positive_only_overrides_rotation_and_stop() -> None:
    m = meeting(SVEN, EVA, owner=SVEN)
    c = classify_meeting(m, RULES)
    for focus in (Focus.STOP, Focus.ROTATE, Focus.BETTER):
        assert plan_agenda(m, c, with_focus(focus), m.start).slot is SlotKind.WELL


def test_team_meeting_in_positive_only_period_is_flagged_for_encouragement() -> None:
    m = meeting(SVEN, EVA, BO, title="Veckomöte analys", owner=SVEN)
    plan = plan_agenda(m, classify_meeting(m, RULES), RULES, m.start)
    assert (plan.slot, plan.positive_only, plan.team) == (SlotKind.PRAISE, True, "analys")


def test_in_positive_only_period_without_team_or_date() -> None:
    start = datetime(2026, 4, 1, tzinfo=UTC)
    assert not in_positive_only_period(None, start)
    assert not in_positive_only_period(PLATFORM, start)
    assert in_positive_only_period(ANALYS, start)
    ended = Team("t", MONA, frozenset({ANNA}), positive_only_until=date(2026, 3, 31))
    assert not in_positive_only_period(ended, start)


def test_locale_timezone_and_goals_come_from_the_team() -> None:
    m = meeting(SVEN, EVA, owner=SVEN)
    plan = plan_agenda(m, classify_meeting(m, RULES), RULES, m.start)
    assert (plan.team, plan.locale, plan.timezone, plan.goals) == (
        "analys", "sv", "Europe/Stockholm", (),
    )  # fmt: skip
    platform = plan_agenda(m, ONE_ON_ONE, RULES, m.start)
    assert platform.goals == ("Ship the new billing API",)


def test_without_team_defaults_apply() -> None:
    m = meeting(MONA, ANNA, BO)
    plan = plan_agenda(m, Classification(MeetingKind.TEAM), RULES, m.start)
    assert (plan.team, plan.locale, plan.timezone, plan.goals) == (None, "en", "UTC", ())


def test_norm_sentence_can_be_reworded_per_locale_or_turned_off() -> None:
    m = meeting(MONA, ANNA)
    default = plan_agenda(m, ONE_ON_ONE, RULES, m.start)
    assert (default.norm_enabled, default.norm_text) == (True, None)
    reworded = replace(RULES, policy=Policy(team_norm_text={"sv": "Hos oss ger vi feedback."}))
    sv = plan_agenda(
        meeting(SVEN, EVA, owner=SVEN), replace(ONE_ON_ONE, team="analys"), reworded, m.start
    )
    assert sv.norm_text == "Hos oss ger vi feedback."
    assert plan_agenda(m, ONE_ON_ONE, reworded, m.start).norm_text is None  # en keeps ours
    off = replace(RULES, policy=Policy(team_norm_enabled=False, trust_checkin=False))
    plan = plan_agenda(m, ONE_ON_ONE, off, m.start)
    assert (plan.norm_enabled, plan.trust_checkin) == (False, False)


def test_plan_records_the_occurrence() -> None:
    m: Meeting = meeting(MONA, ANNA)
    plan = plan_agenda(m, ONE_ON_ONE, RULES, m.start, m.end)
    assert (plan.occurrence_start, plan.occurrence_end) == (m.start, m.end)
