"""Classification: 1:1, team meeting or skip, failing closed (R4, I4, I6)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from feedback_agendas.agendas.classify import (
    Classification,
    MeetingKind,
    SkipReason,
    classify_meeting,
    skip,
)
from feedback_agendas.agendas.model import (
    EventType,
    Meeting,
    Status,
    Visibility,
)
from feedback_agendas.agendas.policy import OptOut, Policy, Rules
from tests.support.org import (
    ANNA,
    BO,
    CARL,
    DORA,
    ERIK,
    EVA,
    FRIDA,
    GUEST,
    MONA,
    OLA,
    ROOM,
    RULES,
    SVEN,
    meeting,
    person,
)


def one_on_one(**changes: object) -> Meeting:
    return meeting(MONA, ANNA, **changes)  # type: ignore[arg-type]


def reason(m: Meeting, rules: Rules = RULES) -> SkipReason | None:
    result = classify_meeting(m, rules)
    assert (result.kind is MeetingKind.SKIP) == (result.reason is not None)
    return result.reason


# --- 1:1s ---------------------------------------------------------------------


def test_manager_and_report_is_a_one_on_one_with_the_report_as_counterpart() -> None:
    assert classify_meeting(one_on_one(), RULES) == Classification(
        kind=MeetingKind.ONE_ON_ONE, team="platform", counterpart=ANNA
    )


def test_report_organising_their_own_one_on_one_also_counts() -> None:
    m = meeting(ANNA, MONA, owner=ANNA, calendar="anna")
    assert classify_meeting(m, RULES).counterpart == ANNA


def test_organizer_counts_even_when_not_in_the_attendee_list() -> None:
    m = meeting(ANNA)  # Google leaves the organizer out sometimes
    assert classify_meeting(m, RULES).kind is MeetingKind.ONE_ON_ONE


def test_rooms_are_not_people() -> None:
    m = meeting(MONA, ANNA, person(ROOM, resource=True))
    assert classify_meeting(m, RULES).kind is MeetingKind.ONE_ON_ONE


def test_manager_in_two_teams_uses_the_team_of_the_report() -> None:
    # Mona manages platform and is a member of analys, managed by Sven.
    m = meeting(SVEN, MONA, owner=SVEN, calendar="sven")
    result = classify_meeting(m, RULES)
    assert (result.kind, result.team, result.counterpart) == (
        MeetingKind.ONE_ON_ONE,
        "analys",
        MONA,
    )


def test_addresses_are_compared_case_insensitively() -> None:
    m = meeting("Mona@Example.com", "ANNA@example.com", organizer="MONA@example.COM")
    assert classify_meeting(m, RULES).kind is MeetingKind.ONE_ON_ONE


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        ((ANNA, BO), SkipReason.NOT_MANAGER_AND_REPORT),  # two colleagues
        ((MONA, EVA), SkipReason.NOT_MANAGER_AND_REPORT),  # manager and someone else's report
        ((MONA, DORA), SkipReason.NOT_MANAGER_AND_REPORT),  # someone in no team
    ],
)
def test_two_people_who_are_not_manager_and_report_are_skipped(
    pair: tuple[str, str], expected: SkipReason
) -> None:
    owner = pair[0]
    assert reason(meeting(*pair, owner=owner)) is expected


def test_third_person_makes_it_not_a_one_on_one() -> None:
    """I4: exactly two people; a third, even one who declined, means no corrective slot."""
    declined = person(BO, response="declined")
    result = classify_meeting(meeting(MONA, ANNA, declined), RULES)
    assert result.kind is not MeetingKind.ONE_ON_ONE


def test_outside_guest_makes_it_a_skip() -> None:
    assert reason(meeting(MONA, ANNA, GUEST)) is SkipReason.EXTERNAL_GUEST
    assert reason(meeting(MONA, GUEST)) is SkipReason.EXTERNAL_GUEST


def test_look_alike_domains_are_not_internal() -> None:
    assert reason(meeting(MONA, "anna@example.com.evil.org")) is SkipReason.EXTERNAL_GUEST
    assert reason(meeting(MONA, "anna@sub.example.com")) is SkipReason.EXTERNAL_GUEST


def test_hidden_attendees_are_never_a_one_on_one() -> None:
    assert reason(one_on_one(attendees_omitted=True)) is SkipReason.ATTENDEES_OMITTED


def test_group_addresses_are_never_a_one_on_one() -> None:
    group = person("platform-all@example.com", group=True)
    assert reason(meeting(MONA, group)) is SkipReason.GROUP_ADDRESS
    assert reason(meeting(MONA, ANNA, group)) is SkipReason.GROUP_ADDRESS


def test_alone_is_not_a_meeting() -> None:
    assert reason(meeting()) is SkipReason.NOT_A_MEETING
    assert reason(meeting(MONA, person(ROOM, resource=True))) is SkipReason.NOT_A_MEETING


# --- team meetings --------------------------------------------------------------


def test_team_majority_is_a_team_meeting_without_any_keyword() -> None:
    m = meeting(MONA, ANNA, BO, DORA, title="Billing sync")
    assert classify_meeting(m, RULES) == Classification(kind=MeetingKind.TEAM, team="platform")


def test_half_is_not_a_majority() -> None:
    m = meeting(MONA, ANNA, DORA, ERIK, title="Billing sync")
    assert reason(m) is SkipReason.NOT_A_TEAM_MEETING


@pytest.mark.parametrize(
    "title", ["Platform stand-up", "Veckomöte analys", "TEAM lunch", "Retro (sprint 12)", "standup"]
)
def test_keyword_in_the_title_makes_a_team_meeting(title: str) -> None:
    m = meeting(MONA, DORA, ERIK, FRIDA, title=title)
    result = classify_meeting(m, RULES)
    assert result.kind is MeetingKind.TEAM
    assert result.team == "platform"  # the team with the most of its people present


@pytest.mark.parametrize("title", ["Teamwork workshop", "Retrospective planning", "Steam engines"])
def test_keywords_match_whole_words_only(title: str) -> None:
    assert reason(meeting(MONA, DORA, ERIK, title=title)) is SkipReason.NOT_A_TEAM_MEETING


def test_keyword_without_team_people_has_no_team() -> None:
    m = meeting(DORA, ERIK, FRIDA, title="Team offsite", owner=DORA)
    assert classify_meeting(m, RULES) == Classification(kind=MeetingKind.TEAM, team=None)


def test_quarterly_review_of_three_colleagues_outside_any_team_is_not_a_team_meeting() -> None:
    m = meeting(DORA, ERIK, FRIDA, title="Quarterly review", owner=DORA)
    assert reason(m) is SkipReason.NOT_A_TEAM_MEETING


def test_team_with_most_people_present_wins_ties_go_to_config_order() -> None:
    # Sven, Eva, Ola (analys, 3) and Mona, Anna (platform 2; Mona also analys).
    m = meeting(SVEN, EVA, OLA, ANNA, title="Fika", owner=SVEN)
    assert classify_meeting(m, RULES).team == "analys"
    tie = meeting(ANNA, BO, EVA, OLA, title="Team fika", owner=ANNA)
    assert classify_meeting(tie, RULES).team == "platform"


def test_team_meeting_with_an_outside_guest_is_skipped() -> None:
    m = meeting(MONA, ANNA, BO, GUEST, title="Platform stand-up")
    assert reason(m) is SkipReason.EXTERNAL_GUEST


def test_custom_keywords_replace_the_defaults() -> None:
    rules = replace(RULES, policy=Policy(team_meeting_keywords=("daily",)))
    assert reason(meeting(MONA, DORA, ERIK, title="Team daily"), rules) is None
    assert (
        reason(meeting(MONA, DORA, ERIK, title="Team sync"), rules) is SkipReason.NOT_A_TEAM_MEETING
    )
    empty = replace(RULES, policy=Policy(team_meeting_keywords=()))
    assert reason(meeting(MONA, DORA, ERIK, title="Team"), empty) is SkipReason.NOT_A_TEAM_MEETING


# --- facts that forbid any write (I6) ------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"status": Status.CANCELLED}, SkipReason.CANCELLED),
        ({"all_day": True}, SkipReason.ALL_DAY),
        ({"visibility": Visibility.PRIVATE}, SkipReason.PRIVATE),
        ({"visibility": Visibility.CONFIDENTIAL}, SkipReason.PRIVATE),
        ({"locked": True}, SkipReason.LOCKED),
        ({"event_type": EventType.OUT_OF_OFFICE}, SkipReason.OUT_OF_OFFICE),
        ({"event_type": EventType.FOCUS_TIME}, SkipReason.FOCUS_TIME),
        ({"event_type": EventType.WORKING_LOCATION}, SkipReason.EVENT_TYPE),
        ({"event_type": EventType.BIRTHDAY}, SkipReason.EVENT_TYPE),
        ({"event_type": EventType.FROM_GMAIL}, SkipReason.EVENT_TYPE),
        ({"event_type": EventType.OTHER}, SkipReason.EVENT_TYPE),
        ({"organizer": ANNA}, SkipReason.NOT_ORGANIZER),
        ({"editable": False}, SkipReason.NOT_EDITABLE),
    ],
)
def test_write_forbidden_facts(changes: dict[str, object], expected: SkipReason) -> None:
    assert reason(replace(one_on_one(), **changes)) is expected  # type: ignore[arg-type]
    assert expected.write_forbidden


def test_write_forbidden_facts_come_before_opt_outs_and_structure() -> None:
    m = replace(
        meeting(MONA, GUEST, description="#no-agenda"), status=Status.CANCELLED, all_day=True
    )
    assert reason(m) is SkipReason.CANCELLED


def test_other_skips_are_not_write_forbidden() -> None:
    allowed = {
        SkipReason.CANCELLED, SkipReason.ALL_DAY, SkipReason.PRIVATE, SkipReason.LOCKED,
        SkipReason.OUT_OF_OFFICE, SkipReason.FOCUS_TIME, SkipReason.EVENT_TYPE,
        SkipReason.NOT_ORGANIZER, SkipReason.NOT_EDITABLE,
    }  # fmt: skip
    assert {r for r in SkipReason if r.write_forbidden} == allowed


def test_an_unknown_organizer_is_not_the_owner() -> None:
    # Providers set the owner where that is certain; unknown means someone else's.
    m = replace(one_on_one(), organizer=None)
    assert classify_meeting(m, RULES) == skip(SkipReason.NOT_ORGANIZER)


# --- opt-outs ---------------------------------------------------------------------------


def test_opt_out_calendar() -> None:
    rules = replace(RULES, opt_out=OptOut(calendars=frozenset({"mona"})))
    assert reason(one_on_one(), rules) is SkipReason.OPTED_OUT_CALENDAR
    assert reason(one_on_one(calendar="other"), rules) is None


@pytest.mark.parametrize(
    "where",
    [{"title": "1:1 #No-Agenda"}, {"description": "private chat\n#NO-AGENDA please"}],
)
def test_opt_out_marker_in_title_or_description_any_case(where: dict[str, str]) -> None:
    assert reason(one_on_one(**where)) is SkipReason.OPTED_OUT_MARKER


def test_custom_marker_and_no_empty_marker() -> None:
    custom = replace(RULES, opt_out=OptOut(marker="[skip-feedback]"))
    assert reason(one_on_one(description="[SKIP-feedback]"), custom) is SkipReason.OPTED_OUT_MARKER
    assert reason(one_on_one(description="#no-agenda"), custom) is None
    blank = replace(RULES, opt_out=OptOut(marker=""))
    assert reason(one_on_one(), blank) is None


@pytest.mark.parametrize("who", [ANNA, MONA])
def test_opt_out_user_attendee_or_organizer(who: str) -> None:
    rules = replace(RULES, opt_out=OptOut(users=frozenset({who})))
    assert reason(one_on_one(), rules) is SkipReason.OPTED_OUT_USER
    # Also when Mona organises without being in the list.
    assert reason(meeting(ANNA), rules) is SkipReason.OPTED_OUT_USER


def test_opt_out_user_keeps_a_team_meeting_someone_else_organizes() -> None:
    # A person's opt-out covers their 1:1s and the meetings they organize only:
    # one member must not switch off the whole team's praise slot.
    rules = replace(RULES, opt_out=OptOut(users=frozenset({CARL})))
    m = meeting(MONA, ANNA, BO, CARL, title="Platform stand-up")
    assert classify_meeting(m, rules) == Classification(kind=MeetingKind.TEAM, team="platform")
    # The meetings Carl organizes are his to opt out of.
    own = meeting(MONA, ANNA, BO, title="Platform stand-up", owner=CARL)
    assert reason(own, rules) is SkipReason.OPTED_OUT_USER
    # The marker and a team opt-out still remove the slot.
    marked = meeting(MONA, ANNA, BO, CARL, title="Platform stand-up #no-agenda")
    assert reason(marked, rules) is SkipReason.OPTED_OUT_MARKER
    team = replace(rules, opt_out=replace(rules.opt_out, teams=frozenset({"platform"})))
    assert reason(m, team) is SkipReason.OPTED_OUT_TEAM


def test_opt_out_team_for_one_on_ones_and_team_meetings() -> None:
    rules = replace(RULES, opt_out=OptOut(teams=frozenset({"platform"})))
    assert reason(one_on_one(), rules) is SkipReason.OPTED_OUT_TEAM
    standup = meeting(MONA, ANNA, BO, title="Platform stand-up")
    assert reason(standup, rules) is SkipReason.OPTED_OUT_TEAM
    # Other teams are not affected.
    other = meeting(SVEN, EVA, owner=SVEN)
    assert reason(other, rules) is None


def test_opt_out_comes_before_structure() -> None:
    rules = replace(RULES, opt_out=OptOut(users=frozenset({GUEST})))
    assert reason(meeting(MONA, GUEST), rules) is SkipReason.OPTED_OUT_USER
    # In a meeting of three organized by someone else, the guest's opt-out plays no part.
    assert reason(meeting(MONA, ANNA, GUEST), rules) is SkipReason.EXTERNAL_GUEST
