"""Which occurrence an agenda is for: expansion in wall-clock time, bounded work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rruleset, rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st

from feedback_agendas.agendas.model import EventRef, Meeting
from feedback_agendas.agendas.recurrence import (
    MAX_SCAN,
    RecurrenceError,
    next_occurrence,
    occurrence_index,
)

STOCKHOLM = ZoneInfo("Europe/Stockholm")
NEW_YORK = ZoneInfo("America/New_York")


def series(
    *lines: str,
    start: datetime = datetime(2026, 3, 23, 9, 0, tzinfo=STOCKHOLM),  # a Monday
    minutes: int = 15,
    timezone: str | None = "Europe/Stockholm",
    recurrence_id: str | None = None,
    all_day: bool = False,
) -> Meeting:
    return Meeting(
        ref=EventRef("cal", "standup", recurrence_id),
        title="Stand-up",
        description="",
        start=start,
        end=start + timedelta(minutes=minutes),
        owner="mona@example.com",
        etag="1",
        timezone=timezone,
        recurrence=tuple(lines),
        all_day=all_day,
    )


def local(moment: datetime, zone: ZoneInfo = STOCKHOLM) -> tuple[int, int, int, int, int]:
    t = moment.astimezone(zone)
    return (t.year, t.month, t.day, t.hour, t.minute)


def test_single_event_is_its_own_occurrence_until_it_ends() -> None:
    meeting = series()
    assert next_occurrence(meeting, meeting.start - timedelta(days=3)) == (
        meeting.start,
        meeting.end,
    )
    # Still running: it counts.
    assert next_occurrence(meeting, meeting.start + timedelta(minutes=10)) == (
        meeting.start,
        meeting.end,
    )
    assert next_occurrence(meeting, meeting.end) is None
    assert occurrence_index(meeting, meeting.start) == 0


def test_one_moved_occurrence_uses_its_own_times_not_the_rule() -> None:
    moved = series(
        "RRULE:FREQ=WEEKLY;BYDAY=MO",
        start=datetime(2026, 4, 1, 13, 0, tzinfo=STOCKHOLM),
        recurrence_id="2026-03-30T07:00:00Z",
    )
    assert next_occurrence(moved, datetime(2026, 3, 31, tzinfo=UTC)) == (moved.start, moved.end)


def test_ongoing_occurrence_counts_then_the_next_one() -> None:
    meeting = series("RRULE:FREQ=DAILY")
    during = datetime(2026, 3, 25, 9, 5, tzinfo=STOCKHOLM)
    start, end = next_occurrence(meeting, during) or (None, None)
    assert start is not None and end is not None
    assert local(start) == (2026, 3, 25, 9, 0)
    assert end - start == timedelta(minutes=15)
    start, _ = next_occurrence(meeting, during.replace(minute=15)) or (None, None)
    assert start is not None and local(start) == (2026, 3, 26, 9, 0)


def test_wall_clock_stays_put_across_spring_and_autumn_dst() -> None:
    meeting = series("RRULE:FREQ=WEEKLY;BYDAY=MO")
    # Sweden moves to summer time on 29 March 2026 and back on 25 October 2026.
    before = next_occurrence(meeting, datetime(2026, 3, 24, tzinfo=UTC))
    spring = next_occurrence(meeting, datetime(2026, 3, 29, tzinfo=UTC))
    autumn = next_occurrence(meeting, datetime(2026, 10, 25, 12, tzinfo=UTC))
    assert before and spring and autumn
    assert local(spring[0]) == (2026, 3, 30, 9, 0)
    assert local(autumn[0]) == (2026, 10, 26, 9, 0)
    # Same wall-clock time, different UTC time.
    assert spring[0].astimezone(UTC).hour == 7
    assert autumn[0].astimezone(UTC).hour == 8
    assert spring[1] - spring[0] == timedelta(minutes=15)


def test_us_and_eu_dst_weeks_differ() -> None:
    meeting = series(
        "RRULE:FREQ=WEEKLY;BYDAY=TU",
        start=datetime(2026, 3, 3, 10, 0, tzinfo=NEW_YORK),
        timezone="America/New_York",
    )
    # The US changes on 8 March 2026: 10:00 local is 15:00 UTC before, 14:00 after.
    first = next_occurrence(meeting, datetime(2026, 3, 4, tzinfo=UTC))
    assert first and local(first[0], NEW_YORK) == (2026, 3, 10, 10, 0)
    assert first[0].astimezone(UTC).hour == 14


def test_exdate_in_utc_tzid_and_date_forms_skip_occurrences() -> None:
    meeting = series(
        "RRULE:FREQ=WEEKLY;BYDAY=MO",
        "EXDATE:20260330T070000Z",
        "EXDATE;TZID=Europe/Stockholm:20260406T090000,20260413T090000",
        "EXDATE;VALUE=DATE:20260420",
    )
    start, _ = next_occurrence(meeting, datetime(2026, 3, 24, tzinfo=UTC)) or (None, None)
    assert start is not None and local(start) == (2026, 4, 27, 9, 0)
    # Excluded occurrences do not count for the index either.
    assert occurrence_index(meeting, start) == 1


def test_rdate_adds_an_occurrence() -> None:
    meeting = series(
        "RRULE:FREQ=WEEKLY;BYDAY=MO",
        "RDATE;TZID=Europe/Stockholm:20260325T140000",
    )
    start, _ = next_occurrence(meeting, datetime(2026, 3, 24, tzinfo=UTC)) or (None, None)
    assert start is not None and local(start) == (2026, 3, 25, 14, 0)
    assert occurrence_index(meeting, start) == 1


def test_until_in_utc_includes_the_last_occurrence_and_then_ends() -> None:
    # UNTIL is the last occurrence's start in UTC (summer time: 07:00Z = 09:00 local).
    meeting = series("RRULE:FREQ=WEEKLY;BYDAY=MO;UNTIL=20260413T070000Z")
    last = next_occurrence(meeting, datetime(2026, 4, 7, tzinfo=UTC))
    assert last and local(last[0]) == (2026, 4, 13, 9, 0)
    assert next_occurrence(meeting, last[1]) is None


def test_until_as_a_date_includes_that_day() -> None:
    meeting = series("RRULE:FREQ=DAILY;UNTIL=20260325")
    last = next_occurrence(meeting, datetime(2026, 3, 25, 0, tzinfo=UTC))
    assert last and local(last[0]) == (2026, 3, 25, 9, 0)
    assert next_occurrence(meeting, last[1]) is None


def test_count_limits_the_series() -> None:
    meeting = series("RRULE:FREQ=DAILY;COUNT=3")
    third = next_occurrence(meeting, datetime(2026, 3, 25, 8, tzinfo=UTC))
    assert third and local(third[0]) == (2026, 3, 25, 9, 0)
    assert occurrence_index(meeting, third[0]) == 2
    assert next_occurrence(meeting, third[1]) is None


def test_interval_keeps_its_grid_far_from_the_start() -> None:
    # Every other Monday from 23 March 2026: 2030-01-07 is 198 weeks later (even),
    # 2029-12-31 is not on the grid.
    meeting = series("RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO")
    start, _ = next_occurrence(meeting, datetime(2030, 1, 1, tzinfo=UTC)) or (None, None)
    assert start is not None and local(start) == (2030, 1, 7, 9, 0)
    assert occurrence_index(meeting, start) == 99


def test_every_weekday_stand_up() -> None:
    meeting = series("RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR")
    friday_after = datetime(2026, 3, 27, 10, tzinfo=STOCKHOLM)
    start, _ = next_occurrence(meeting, friday_after) or (None, None)
    assert start is not None and local(start) == (2026, 3, 30, 9, 0)
    assert occurrence_index(meeting, start) == 5


def test_monthly_by_position() -> None:
    meeting = series(
        "RRULE:FREQ=MONTHLY;BYDAY=1TH",
        start=datetime(2026, 1, 1, 15, 0, tzinfo=STOCKHOLM),
    )
    start, _ = next_occurrence(meeting, datetime(2026, 6, 10, tzinfo=UTC)) or (None, None)
    assert start is not None and local(start) == (2026, 7, 2, 15, 0)
    assert occurrence_index(meeting, start) == 6


def test_all_day_series() -> None:
    meeting = series(
        "RRULE:FREQ=YEARLY",
        start=datetime(2026, 5, 4, tzinfo=STOCKHOLM),
        minutes=24 * 60,
        all_day=True,
    )
    start, end = next_occurrence(meeting, datetime(2027, 5, 4, 12, tzinfo=STOCKHOLM)) or (
        None,
        None,
    )
    assert start is not None and end is not None
    assert local(start) == (2027, 5, 4, 0, 0)
    assert end - start == timedelta(days=1)


def test_series_without_zone_expands_in_its_start_offset() -> None:
    meeting = series(
        "RRULE:FREQ=DAILY",
        start=datetime(2026, 3, 23, 8, 0, tzinfo=UTC),
        timezone=None,
    )
    start, _ = next_occurrence(meeting, datetime(2026, 5, 1, 9, tzinfo=UTC)) or (None, None)
    assert start == datetime(2026, 5, 2, 8, 0, tzinfo=UTC)


def test_same_instant_in_another_zone_expands_in_that_zone() -> None:
    """Without a named zone, the start's own zone is the wall clock (not a cached other one)."""
    in_stockholm = datetime(2026, 3, 23, 9, 0, tzinfo=STOCKHOLM)
    utc = series("RRULE:FREQ=DAILY", start=in_stockholm.astimezone(UTC), timezone=None)
    local = series("RRULE:FREQ=DAILY", start=in_stockholm, timezone=None)
    after_dst = datetime(2026, 4, 1, tzinfo=UTC)
    utc_next, local_next = next_occurrence(utc, after_dst), next_occurrence(local, after_dst)
    assert utc_next and local_next
    assert utc_next[0].astimezone(UTC).hour == 8  # fixed 08:00 UTC
    assert local_next[0].astimezone(UTC).hour == 7  # 09:00 Stockholm summer time


@pytest.mark.parametrize(
    ("lines", "timezone"),
    [
        (("RRULE:FREQ=SOMETIMES",), "Europe/Stockholm"),
        (("RRULE:FREQ=DAILY;INTERVAL=0",), "Europe/Stockholm"),
        (("RRULE:FREQ=DAILY",), "Mars/Olympus"),
        (("RRULE:FREQ=DAILY", "EXDATE:2026-13-45"), "Europe/Stockholm"),
        (("RRULE:FREQ=DAILY;UNTIL=20261399T000000Z",), "Europe/Stockholm"),
        (("RRULE:FREQ=DAILY", "RDATE:20261301T090000"), "Europe/Stockholm"),
        (("RRULE:FREQ=DAILY", "EXDATE;TZID=Nowhere/Land:20260401T090000"), "Europe/Stockholm"),
    ],
)
def test_unparsable_rules_and_zones_raise_recurrence_error(
    lines: tuple[str, ...], timezone: str
) -> None:
    with pytest.raises(RecurrenceError):
        next_occurrence(series(*lines, timezone=timezone), datetime(2026, 4, 1, tzinfo=UTC))


def test_work_is_bounded_for_absurd_rules() -> None:
    every_second = series("RRULE:FREQ=SECONDLY", start=datetime(2020, 1, 1, tzinfo=UTC), minutes=0)
    far = datetime(2026, 1, 1, tzinfo=UTC)
    # Moved forward by whole periods: found without walking six years of seconds.
    found = next_occurrence(every_second, far)
    assert found is not None and far < found[1] <= far + timedelta(seconds=2)
    # Counting stops at the cap.
    assert occurrence_index(every_second, far) == MAX_SCAN


def test_series_with_moved_start_matches_a_full_walk() -> None:
    """The forward-moved rule gives what a walk from the first occurrence gives."""
    meeting = series("RRULE:FREQ=WEEKLY;INTERVAL=3;BYDAY=MO,TH;WKST=SU")
    moment = datetime(2026, 3, 23, 12, tzinfo=UTC)
    walked = []
    for _ in range(60):
        found = next_occurrence(meeting, moment)
        assert found is not None
        walked.append(found[0])
        moment = found[1]
    # Jump straight to a late point: the same occurrence as the walk reached.
    jump = next_occurrence(meeting, walked[-2] + timedelta(minutes=20))
    assert jump is not None and jump[0] == walked[-1]
    # The walk began after the first occurrence (index 0).
    assert [occurrence_index(meeting, s) for s in walked[-3:]] == [58, 59, 60]


# --- arithmetic and moved-forward expansion agree with a plain dateutil walk ------

ZONES = ["Europe/Stockholm", "America/New_York", "UTC"]
DAY_CODES = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
MONTH_DAYS = ["", "BYDAY=1TU", "BYDAY=-1FR", "BYDAY=MO,WE", "BYMONTHDAY=31", "BYMONTHDAY=-1,15"]


@st.composite
def simple_series(draw: st.DrawFn) -> tuple[Meeting, rruleset]:
    """A daily/weekly/monthly series and, independently, the dateutil set it means."""
    zone_name = draw(st.sampled_from(ZONES))
    zone = ZoneInfo(zone_name)
    naive_start = datetime(2025, 1, 1) + timedelta(
        days=draw(st.integers(0, 800)), minutes=15 * draw(st.integers(0, 95))
    )
    freq = draw(st.sampled_from(["DAILY", "WEEKLY", "MONTHLY"]))
    parts = [f"FREQ={freq}"]
    interval = draw(st.integers(1, 4))
    if interval > 1 or draw(st.booleans()):
        parts.append(f"INTERVAL={interval}")
    days = draw(st.lists(st.sampled_from(DAY_CODES), max_size=4, unique=True))
    if freq == "MONTHLY":
        month_days = draw(st.sampled_from(MONTH_DAYS))
        if month_days:
            parts.append(month_days)
    elif days and (freq == "WEEKLY" or interval == 1):
        parts.append("BYDAY=" + ",".join(days))
    if draw(st.booleans()):
        parts.append("WKST=" + draw(st.sampled_from(DAY_CODES)))
    ending = draw(st.sampled_from(["none", "count", "until"]))
    if ending == "count":
        parts.append(f"COUNT={draw(st.integers(1, 40))}")
    elif ending == "until":
        until = naive_start + timedelta(
            days=draw(st.integers(0, 400)), hours=draw(st.integers(0, 23))
        )
        parts.append(f"UNTIL={until:%Y%m%dT%H%M%S}")
    rule_text = ";".join(parts)
    oracle = rruleset()
    rule = rrulestr(rule_text, dtstart=naive_start)
    oracle.rrule(rule)  # type: ignore[arg-type]
    oracle.rdate(naive_start)
    lines = [f"RRULE:{rule_text}"]
    for _ in range(draw(st.integers(0, 3))):
        excluded = naive_start + timedelta(days=draw(st.integers(0, 200)))
        if draw(st.booleans()):
            excluded = rule.after(excluded) or excluded  # usually a real occurrence
        oracle.exdate(excluded)
        lines.append(f"EXDATE;TZID={zone_name}:{excluded:%Y%m%dT%H%M%S}")
    if draw(st.booleans()):
        extra = naive_start + timedelta(
            days=draw(st.integers(0, 300)), hours=draw(st.integers(0, 5))
        )
        oracle.rdate(extra)
        lines.append(f"RDATE;TZID={zone_name}:{extra:%Y%m%dT%H%M%S}")
    start = naive_start.replace(tzinfo=zone)
    minutes = draw(st.sampled_from([15, 60, 150]))
    meeting = series(*lines, start=start, minutes=minutes, timezone=zone_name)
    return meeting, oracle


@settings(max_examples=300)
@given(simple_series(), st.integers(-2 * 24, 24 * 900))
def test_next_occurrence_and_index_match_a_dateutil_walk(
    case: tuple[Meeting, rruleset], hours: int
) -> None:
    meeting, oracle = case
    zone = ZoneInfo(meeting.timezone or "UTC")
    after = meeting.start + timedelta(hours=hours)
    duration = meeting.end - meeting.start
    expected = None
    for index, local in enumerate(oracle.xafter(datetime(1970, 1, 1), count=5000)):
        start = local.replace(tzinfo=zone)
        if start.astimezone(UTC) + duration > after:
            expected = (start, index)
            break
    found = next_occurrence(meeting, after)
    if expected is None:
        assert found is None
        return
    assert found is not None
    assert found[0] == expected[0] and found[0].utcoffset() == expected[0].utcoffset()
    assert occurrence_index(meeting, found[0]) == expected[1]


@pytest.mark.parametrize(
    "rule",
    [
        "RRULE:FREQ=DAILY;UNTIL=99991231T235959Z",
        "RRULE:FREQ=WEEKLY;BYDAY=MO;UNTIL=99991231T235959Z",
        "RRULE:FREQ=DAILY;UNTIL=99991231",
    ],
)
def test_an_until_at_the_end_of_the_calendar_east_of_utc_is_an_open_series(rule: str) -> None:
    # 9999-12-31 23:59:59 UTC is past year 9999 in Stockholm: read it as "no end".
    standup = series(rule)
    after = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    found = next_occurrence(standup, after)
    assert found is not None and found[0] > after
    assert occurrence_index(standup, found[0]) > 0
