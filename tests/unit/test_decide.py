"""decide(): the whole core decision per event, with real rendering and merging."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedback_agendas.agendas.block import has_block
from feedback_agendas.agendas.classify import MeetingKind, SkipReason
from feedback_agendas.agendas.decide import ActionKind, Decision, decide
from feedback_agendas.agendas.model import (
    Attendee,
    EventType,
    Meeting,
    Status,
    TextFormat,
    Visibility,
)
from feedback_agendas.agendas.policy import Focus, OptOut, Policy, Rules
from feedback_agendas.agendas.render import AgendaRenderer
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
    START,
    SVEN,
    meeting,
    person,
)

RENDERER = AgendaRenderer()
NOW = START - timedelta(days=1)
CORRECTIVE = {"better", "stop"}


def run(
    m: Meeting, rules: Rules = RULES, now: datetime = NOW, known: str | None = None
) -> Decision:
    return decide(m, rules, now, RENDERER, known_hash=known)


def applied(d: Decision) -> Meeting:
    """The event after the runtime carried out ``d``: new description and stored hash."""
    if not d.needs_write:
        return d.meeting
    assert d.description is not None
    return replace(d.meeting, description=d.description, stored_hash=d.block_hash)


def with_block(m: Meeting, rules: Rules = RULES) -> Meeting:
    """``m`` as it stands after we wrote its agenda in an earlier cycle."""
    first = run(m, rules)
    assert first.action is ActionKind.INSERTED
    return applied(first)


def edit_inside_block(m: Meeting) -> Meeting:
    """A user types notes into our block (keeps the markers)."""
    plan = run(m).plan
    assert plan is not None
    body = RENDERER.render_block(plan, m.description_format)
    line = next(ln for ln in body.splitlines()[1:] if len(ln.strip()) > 8)
    assert line in m.description
    return replace(m, description=m.description.replace(line, "Anna ran the demo; great pacing."))


# --- writing agendas ------------------------------------------------------------------


def test_one_on_one_gets_a_corrective_agenda_and_a_second_pass_changes_nothing() -> None:
    m = meeting(MONA, ANNA, description="Prep: bring the roadmap.")
    first = run(m)
    assert first.action is ActionKind.INSERTED and first.needs_write
    assert first.classification.kind is MeetingKind.ONE_ON_ONE
    assert first.slots == ("better",)
    assert first.description is not None and first.description.startswith(
        "Prep: bring the roadmap."
    )
    assert has_block(first.description) and first.block_hash
    second = run(applied(first))
    assert (second.action, second.needs_write, second.description) == (
        ActionKind.UNCHANGED, False, None,
    )  # fmt: skip
    assert second.block_hash == first.block_hash


def test_team_meeting_gets_the_praise_agenda() -> None:
    d = run(meeting(MONA, ANNA, BO, CARL, title="Platform stand-up"))
    assert (d.action, d.slots) == (ActionKind.INSERTED, ("praise",))


def test_html_descriptions_round_trip() -> None:
    m = meeting(MONA, ANNA, description="<b>Prep</b>", description_format=TextFormat.HTML)
    first = run(m)
    assert first.action is ActionKind.INSERTED
    assert first.description is not None and first.description.startswith("<b>Prep</b>")
    assert run(applied(first)).action is ActionKind.UNCHANGED


def test_rooms_are_not_counted() -> None:
    d = run(meeting(MONA, ANNA, person(ROOM, resource=True)))
    assert d.slots == ("better",)


def test_positive_only_period_one_on_one_gets_this_you_do_well() -> None:
    d = run(meeting(SVEN, EVA, owner=SVEN))  # analys: positive-only until 2026-04-30
    assert d.slots == ("well",)
    assert d.plan is not None and d.plan.positive_only


def test_admin_changing_the_focus_updates_an_unedited_block() -> None:
    m = with_block(meeting(MONA, ANNA))
    stop = replace(RULES, policy=Policy(one_on_one_focus=Focus.STOP))
    d = run(m, stop)
    assert (d.action, d.slots) == (ActionKind.UPDATED, ("stop",))
    assert d.block_hash != m.stored_hash
    assert run(applied(d), stop).action is ActionKind.UNCHANGED


def test_known_hash_from_the_callers_record_is_used() -> None:
    m = with_block(meeting(MONA, ANNA))
    recorded = m.stored_hash
    bare = replace(m, stored_hash=None)
    stop = replace(RULES, policy=Policy(one_on_one_focus=Focus.STOP))
    assert run(bare, stop, known=recorded).action is ActionKind.UPDATED
    # Without any known hash a differing block cannot be proved ours: left alone.
    assert run(bare, stop).action is ActionKind.LEFT_EDITED
    # ...and neither is one equal to what we would write: a pasted copy is the user's.
    same = run(bare)
    assert (same.action, same.description, same.block_hash) == (
        ActionKind.LEFT_EDITED, None, None,
    )  # fmt: skip


def test_edited_block_is_never_overwritten() -> None:
    m = edit_inside_block(with_block(meeting(MONA, ANNA)))
    d = run(m, replace(RULES, policy=Policy(one_on_one_focus=Focus.STOP)))
    assert (d.action, d.needs_write, d.description) == (ActionKind.LEFT_EDITED, False, None)
    assert d.block_hash == m.stored_hash  # still the reference for "unedited"


# --- I4: a 1:1 that stops being one loses its corrective slot ------------------------------


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"attendees": (person(MONA), person(ANNA), person(GUEST))}, "external_guest"),
        (
            {"attendees": (person(MONA), person(ANNA), person(DORA), person(ERIK))},
            "not_a_team_meeting",
        ),
        ({"attendees_omitted": True}, "attendees_omitted"),
        ({"attendees": (person(MONA), person(ANNA, group=True))}, "group_address"),
        ({"attendees": (person(MONA), person(BO), person(ANNA, group=True))}, "group_address"),
        ({"attendees": (person(MONA), person(EVA))}, "not_manager_and_report"),
        ({"attendees": (person(MONA),)}, "not_a_meeting"),
        ({"title": "1:1 #no-agenda"}, "opted_out_marker"),
    ],
)
def test_one_on_one_that_stops_qualifying_loses_its_block(
    extra: dict[str, object], code: str
) -> None:
    m = with_block(meeting(MONA, ANNA, description="Our notes"))
    d = run(replace(m, **extra))  # type: ignore[arg-type]
    assert (d.action, d.reason, d.block_hash, d.slots) == (ActionKind.REMOVED, code, None, ())
    assert d.description == "Our notes"  # exactly what was there before us
    again = run(applied(d))
    assert (again.action, again.needs_write) == (ActionKind.SKIPPED, False)


def test_third_team_member_turns_the_corrective_slot_into_praise() -> None:
    m = with_block(meeting(MONA, ANNA))
    d = run(replace(m, attendees=(person(MONA), person(ANNA), person(BO))))
    assert (d.action, d.classification.kind, d.slots) == (
        ActionKind.UPDATED, MeetingKind.TEAM, ("praise",),
    )  # fmt: skip


def test_edited_block_in_a_meeting_that_stopped_qualifying_is_left_alone() -> None:
    # Not corrective ("this you do well"): the user's words, nothing to flag.
    well = replace(RULES, policy=Policy(one_on_one_focus=Focus.WELL))
    m = edit_inside_block(with_block(meeting(MONA, ANNA), well))
    d = run(replace(m, attendees=(person(MONA), person(ANNA), person(GUEST))), well)
    assert (d.action, d.reason, d.needs_write) == (ActionKind.LEFT_EDITED, "external_guest", False)
    assert d.privacy_conflict is None


def filled_in(m: Meeting) -> Meeting:
    """The manager wrote their corrective feedback into our 1:1 block."""
    assert "What to do instead: ___" in m.description
    text = m.description.replace("What to do instead: ___", "What to do instead: ask first")
    return replace(m, description=text)


@pytest.mark.parametrize(
    ("attendees", "code"),
    [
        ((MONA, ANNA, GUEST), "external_guest"),
        ((MONA, ANNA, BO), "third_person"),  # now a team meeting of the platform team
        ((MONA, ANNA, SVEN), "third_person"),
        ((MONA, EVA), "not_manager_and_report"),  # the report was swapped for someone else
    ],
)
def test_a_filled_in_corrective_block_in_a_meeting_others_read_is_a_privacy_conflict(
    attendees: tuple[str, ...], code: str
) -> None:
    m = filled_in(with_block(meeting(MONA, ANNA)))
    assert run(m).action is ActionKind.LEFT_EDITED  # still a 1:1: simply the manager's words
    d = run(replace(m, attendees=tuple(person(a) for a in attendees)))
    assert (d.action, d.reason, d.privacy_conflict) == (ActionKind.PRIVACY_CONFLICT, code, code)
    assert (d.needs_write, d.description, d.slots) == (False, None, ())
    assert d.block_hash == m.stored_hash  # never deleted: the words are the manager's


def test_an_unedited_corrective_block_of_ours_is_removed_not_flagged() -> None:
    m = with_block(meeting(MONA, ANNA))
    d = run(replace(m, attendees=(person(MONA), person(ANNA), person(GUEST))))
    assert (d.action, d.privacy_conflict) == (ActionKind.REMOVED, None)
    # The copy lost its hash property, but our record of the series knows it.
    copy = replace(m, stored_hash=None, attendees=(person(MONA), person(ANNA), person(GUEST)))
    d = run(copy, known=m.stored_hash)
    assert (d.action, d.privacy_conflict) == (ActionKind.REMOVED, None)
    # With no hash anywhere it cannot be proved ours: flagged, never deleted.
    d = run(copy)
    assert (d.action, d.privacy_conflict) == (ActionKind.PRIVACY_CONFLICT, "external_guest")


@pytest.mark.parametrize(
    "change",
    [
        {"title": "1:1 #no-agenda"},  # opted out, but still only the two of them
        {"attendees": (person(MONA),)},  # a meeting of one
        {"organizer": ANNA, "attendees": (person(MONA), person(ANNA), person(BO))},  # not ours
    ],
)
def test_no_privacy_conflict_where_no_one_else_reads_it_or_it_is_not_ours(
    change: dict[str, object],
) -> None:
    m = filled_in(with_block(meeting(MONA, ANNA)))
    d = run(replace(m, **change))  # type: ignore[arg-type]
    assert d.privacy_conflict is None
    assert d.action is not ActionKind.PRIVACY_CONFLICT


@pytest.mark.parametrize(
    "opt_out",
    [
        OptOut(users=frozenset({ANNA})),
        OptOut(teams=frozenset({"platform"})),
        OptOut(calendars=frozenset({"mona"})),
    ],
)
def test_opting_out_removes_our_block(opt_out: OptOut) -> None:
    m = with_block(meeting(MONA, ANNA))
    d = run(m, replace(RULES, opt_out=opt_out))
    assert d.action is ActionKind.REMOVED and d.reason and d.reason.startswith("opted_out_")


# --- I6: nothing at all is written -------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"status": Status.CANCELLED}, "cancelled"),
        ({"all_day": True}, "all_day"),
        ({"visibility": Visibility.PRIVATE}, "private"),
        ({"visibility": Visibility.CONFIDENTIAL}, "private"),
        ({"locked": True}, "locked"),
        ({"event_type": EventType.OUT_OF_OFFICE}, "out_of_office"),
        ({"event_type": EventType.FOCUS_TIME}, "focus_time"),
        ({"event_type": EventType.WORKING_LOCATION}, "event_type"),
        ({"event_type": EventType.BIRTHDAY}, "event_type"),
        ({"event_type": EventType.FROM_GMAIL}, "event_type"),
        ({"organizer": ANNA}, "not_organizer"),
        ({"editable": False}, "not_editable"),
    ],
)
def test_write_forbidden_events_are_never_written(changes: dict[str, object], code: str) -> None:
    fresh = replace(meeting(MONA, ANNA), **changes)  # type: ignore[arg-type]
    d = run(fresh)
    assert (d.action, d.reason, d.needs_write, d.block_hash) == (
        ActionKind.SKIPPED,
        code,
        False,
        None,
    )
    # Even our own unedited block stays: not even a removal is written.
    ours = with_block(meeting(MONA, ANNA))
    d = run(replace(ours, **changes))  # type: ignore[arg-type]
    assert (d.action, d.reason, d.needs_write) == (ActionKind.SKIPPED, code, False)
    assert d.block_hash == ours.stored_hash


@pytest.mark.parametrize(
    ("m", "code"),
    [
        (meeting(MONA, ANNA, GUEST), "external_guest"),
        (meeting(ANNA, BO, owner=ANNA), "not_manager_and_report"),
        (meeting(DORA, ERIK, FRIDA, title="Quarterly review", owner=DORA), "not_a_team_meeting"),
        (meeting(MONA, person("all@example.com", group=True)), "group_address"),
        (meeting(MONA, ANNA, attendees_omitted=True), "attendees_omitted"),
        (meeting(), "not_a_meeting"),
        (meeting(SVEN, EVA, OLA, title="Veckomöte #NO-AGENDA", owner=SVEN), "opted_out_marker"),
    ],
)
def test_skips_without_a_block_write_nothing(m: Meeting, code: str) -> None:
    d = run(m)
    assert (d.action, d.reason, d.description, d.plan, d.slots) == (
        ActionKind.SKIPPED, code, None, None, (),
    )  # fmt: skip


def test_every_skip_reason_is_reachable_through_decide() -> None:
    """Each SkipReason code is produced by decide for some meeting."""
    weekly = replace(meeting(MONA, ANNA), recurrence=("RRULE:FREQ=WEEKLY",))
    cases = [
        meeting(MONA, ANNA, status=Status.CANCELLED),
        meeting(MONA, ANNA, all_day=True),
        meeting(MONA, ANNA, visibility=Visibility.PRIVATE),
        meeting(MONA, ANNA, locked=True),
        meeting(MONA, ANNA, event_type=EventType.OUT_OF_OFFICE),
        meeting(MONA, ANNA, event_type=EventType.FOCUS_TIME),
        meeting(MONA, ANNA, event_type=EventType.BIRTHDAY),
        meeting(MONA, ANNA, organizer=ANNA),
        meeting(MONA, ANNA, editable=False),
        meeting(MONA, ANNA, calendar="optout-cal"),
        meeting(MONA, ANNA, description="#no-agenda"),
        meeting(MONA, CARL),
        meeting(MONA, GUEST),
        meeting(MONA, ANNA, attendees_omitted=True),
        meeting(MONA, person("all@example.com", group=True)),
        meeting(),
        meeting(MONA, EVA),
        meeting(DORA, ERIK, FRIDA, title="Quarterly review", owner=DORA),
        replace(weekly, recurrence=("RRULE:FREQ=NEVER",)),
        meeting(MONA, ANNA, start=NOW - timedelta(hours=2), end=NOW - timedelta(hours=1)),
        meeting(MONA, ANNA, start=NOW + timedelta(days=30), end=NOW + timedelta(days=30, hours=1)),
    ]
    rules = replace(
        RULES,
        opt_out=OptOut(
            users=frozenset({CARL}),
            teams=frozenset({"nobody"}),
            calendars=frozenset({"optout-cal"}),
        ),
    )
    team_out = replace(RULES, opt_out=OptOut(teams=frozenset({"platform"})))
    codes = {run(m, rules).reason for m in cases}
    codes.add(run(meeting(MONA, BO), team_out).reason)
    assert codes == {r.value for r in SkipReason}


# --- time ---------------------------------------------------------------------------------


def test_past_meeting_is_skipped_and_its_block_left_alone() -> None:
    m = with_block(meeting(MONA, ANNA))
    d = run(m, now=m.end + timedelta(minutes=1))
    assert (d.action, d.reason, d.needs_write, d.revisit_at) == (
        ActionKind.SKIPPED,
        "past",
        False,
        None,
    )
    assert d.block_hash == m.stored_hash
    assert d.classification.kind is MeetingKind.ONE_ON_ONE


def test_meeting_in_progress_still_gets_its_agenda() -> None:
    m = meeting(MONA, ANNA)
    assert run(m, now=m.start + timedelta(minutes=5)).action is ActionKind.INSERTED


def test_outside_the_horizon_waits_until_it_enters() -> None:
    m = meeting(MONA, ANNA)
    far = m.start - timedelta(days=15)
    d = run(m, now=far)
    assert (d.action, d.reason, d.needs_write) == (ActionKind.SKIPPED, "outside_horizon", False)
    assert d.revisit_at == m.start - timedelta(days=14)
    assert run(m, now=d.revisit_at).action is ActionKind.INSERTED


def test_series_is_revisited_when_its_next_occurrence_ends() -> None:
    weekly = replace(meeting(MONA, ANNA), recurrence=("RRULE:FREQ=WEEKLY",))
    d = run(weekly)
    assert d.revisit_at == weekly.end
    assert d.plan is not None and d.plan.occurrence_start == weekly.start
    later = run(applied(d), now=weekly.end)
    assert later.plan is not None and later.plan.occurrence_start == weekly.start + timedelta(
        days=7
    )
    assert later.revisit_at == weekly.end + timedelta(days=7)


def test_rotating_series_changes_focus_after_each_occurrence() -> None:
    weekly = replace(meeting(MONA, ANNA), recurrence=("RRULE:FREQ=WEEKLY",))
    rotate = replace(RULES, policy=Policy(one_on_one_focus=Focus.ROTATE))
    first = run(weekly, rotate)
    assert first.slots == ("well",)
    second = run(applied(first), rotate, now=first.revisit_at or NOW)
    assert (second.action, second.slots) == (ActionKind.UPDATED, ("better",))
    # The corrective slot follows a praise-free block: never both (I5).
    assert second.description is not None and has_block(second.description)


def test_positive_only_end_is_a_revisit_point_for_a_series() -> None:
    # Analys is positive-only until 2026-04-30 (Stockholm). A late monthly 1:1 starts
    # at 23:00 on the 30th and runs past midnight: the period ends before it does.
    late = datetime(2026, 4, 30, 21, 0, tzinfo=UTC)
    series = replace(
        meeting(SVEN, EVA, owner=SVEN),
        start=late,
        end=late + timedelta(hours=4),
        recurrence=("RRULE:FREQ=MONTHLY",),
    )
    d = run(series, now=late - timedelta(days=1))
    assert d.slots == ("well",)
    assert d.revisit_at == datetime(2026, 4, 30, 22, 0, tzinfo=UTC)  # Stockholm midnight


def test_single_event_needs_no_revisit() -> None:
    assert run(meeting(MONA, ANNA)).revisit_at is None


# --- property: idempotence, I4, I5 -------------------------------------------------------

PEOPLE = [MONA, ANNA, BO, CARL, SVEN, EVA, OLA, DORA, GUEST]
PAIRS = [(MONA, ANNA), (MONA, BO), (SVEN, EVA), (SVEN, MONA), (ANNA, BO)]
TITLES = ["1:1", "Platform stand-up", "Veckomöte", "Quarterly review", "Lunch #no-agenda"]
ANY_TEXT_CHAR = st.characters(codec="utf-8", categories=("L", "M", "N", "P", "S", "Zs", "Cc"))
TRICKY_TEXT = ["", "Agenda:\n- item", "<p>Notes &amp; links</p>", "── feedback", "\r\n"]
USER_TEXT = st.text(alphabet=ANY_TEXT_CHAR, max_size=60) | st.sampled_from(TRICKY_TEXT)


@st.composite
def attendee_lists(draw: st.DrawFn) -> tuple[Attendee, ...]:
    emails = draw(
        st.sampled_from(PAIRS).map(list)
        | st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=5, unique=True)
    )
    return tuple(
        Attendee(
            email=email,
            resource=email == DORA and draw(st.booleans()),
            group=email == OLA and draw(st.booleans()),
            response=draw(st.sampled_from(["accepted", "declined", "needsAction"])),
        )
        for email in emails
    )


@st.composite
def meetings(draw: st.DrawFn) -> Meeting:
    attendees = draw(attendee_lists())
    start = START + timedelta(hours=draw(st.integers(-48, 24 * 30)))
    return replace(
        meeting(
            title=draw(st.sampled_from(TITLES)),
            description=draw(USER_TEXT),
            owner=attendees[0].email if draw(st.booleans()) else MONA,
            description_format=draw(st.sampled_from(list(TextFormat))),
        ),
        attendees=attendees,
        start=start,
        end=start + timedelta(minutes=draw(st.sampled_from([15, 30, 60]))),
        recurrence=draw(
            st.sampled_from([(), ("RRULE:FREQ=WEEKLY",), ("RRULE:FREQ=DAILY;COUNT=3",)])
        ),
        attendees_omitted=draw(st.booleans()) and draw(st.booleans()),
    )


@st.composite
def changed_meetings(draw: st.DrawFn) -> Meeting:
    """A meeting as an earlier cycle left it, then changed: people, title, time or type."""
    earlier = draw(meetings())
    rules = replace(RULES, policy=draw(POLICIES))
    previous = applied(decide(earlier, rules, START - timedelta(days=2), RENDERER))
    changes = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "attendees": attendee_lists(),
                "title": st.sampled_from(TITLES),
                "status": st.sampled_from(list(Status)),
                "editable": st.booleans(),
                "attendees_omitted": st.booleans(),
            },
        )
    )
    return replace(previous, **changes)  # type: ignore[arg-type]


POLICIES = st.sampled_from([Policy(), Policy(one_on_one_focus=Focus.ROTATE)])


@given(meetings() | changed_meetings(), POLICIES, st.integers(0, 24 * 20))
def test_decide_is_idempotent_and_never_mixes_or_leaks(
    m: Meeting, policy: Policy, hours: int
) -> None:
    rules = replace(RULES, policy=policy)
    now = START - timedelta(hours=hours)
    first = decide(m, rules, now, RENDERER)
    if first.slots:
        # I5: one slot; corrective only in a 1:1 (I4), praise only in team meetings.
        assert len(first.slots) == 1
        is_one_on_one = first.classification.kind is MeetingKind.ONE_ON_ONE
        assert (first.slots[0] in CORRECTIVE | {"well"}) == is_one_on_one
    if first.classification.reason is not None and first.classification.reason.write_forbidden:
        assert not first.needs_write  # I6
    if first.action is ActionKind.SKIPPED:
        assert first.description is None
    after = applied(first)
    second = decide(after, rules, now, RENDERER)
    assert not second.needs_write
    if first.action in (ActionKind.INSERTED, ActionKind.UPDATED):
        assert second.action is ActionKind.UNCHANGED
        assert second.block_hash == first.block_hash
    if first.action is ActionKind.REMOVED:
        assert second.action is ActionKind.SKIPPED and not has_block(after.description)
