"""Which occurrence of a meeting an agenda is for.

A series is expanded from its RFC 5545 lines (``RRULE``, ``EXRULE``, ``RDATE``,
``EXDATE``) with python-dateutil, in local wall-clock time of the series' zone:
a 09:00 Europe/Stockholm stand-up stays at 09:00 local on both sides of a DST
change. Every date in the lines (UTC, ``TZID=``, floating, ``VALUE=DATE``) is
first brought into that wall-clock frame, so dateutil only sees naive times.

All work is bounded: expansion stops after :data:`MAX_SCAN` occurrences, and
for rules without ``COUNT`` the start of the rule is moved forward by whole
periods so that finding the next occurrence of an old daily stand-up does not
walk through years of past ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rruleset, rrulestr

from agendas.errors import FeedbackAgendasError
from agendas.model import Meeting

# Upper bound on occurrences looked at per call: far beyond any real meeting
# series (a daily meeting for 50 years), small enough to stay cheap.
MAX_SCAN = 20_000

# Rules whose period has a fixed length can be moved forward by whole periods
# without changing which occurrences they produce. Months and years cannot.
_FIXED_PERIODS = {
    "WEEKLY": timedelta(weeks=1),
    "DAILY": timedelta(days=1),
    "HOURLY": timedelta(hours=1),
    "MINUTELY": timedelta(minutes=1),
    "SECONDLY": timedelta(seconds=1),
}

_DST_MARGIN = timedelta(hours=3)

_UNTIL = re.compile(r"(?i)(UNTIL=)([0-9]{8})(T[0-9]{6})?(Z?)")


class RecurrenceError(FeedbackAgendasError, ValueError):
    """The recurrence lines or the time zone of a series cannot be understood.

    The core turns it into a skip (``bad_recurrence``); it never leaves ``decide``.
    """


@dataclass(frozen=True, slots=True)
class _Rule:
    rule: rrule
    period: timedelta | None  # None: cannot be moved forward (COUNT, monthly, yearly)
    interval: int


@dataclass(frozen=True, slots=True)
class _Series:
    zone: tzinfo
    local_start: datetime  # naive wall-clock time of the first occurrence
    duration: timedelta  # absolute length of one occurrence
    rules: tuple[_Rule, ...]
    exrules: tuple[_Rule, ...]
    rdates: tuple[datetime, ...]  # naive wall-clock times
    exdates: tuple[datetime, ...]


def next_occurrence(meeting: Meeting, after: datetime) -> tuple[datetime, datetime] | None:
    """Return ``(start, end)`` of the first occurrence whose end is after ``after``.

    An occurrence in progress at ``after`` counts. A single event (or one
    occurrence of a series) is its own only occurrence. Returns ``None`` when
    every occurrence has ended. Raises :class:`RecurrenceError` for lines or a
    time zone that cannot be parsed.
    """
    if not meeting.is_series:
        return (meeting.start, meeting.end) if meeting.end > after else None
    series = _series_of(meeting)
    # Wall-clock and absolute order can differ by a DST shift: start a little early.
    threshold = _to_local(after - series.duration, series.zone) - _DST_MARGIN
    for local in _expand(series, floor=threshold).xafter(threshold, count=MAX_SCAN, inc=True):
        start, end = _aware_span(local, series)
        if end > after:
            return start, end
    return None


def occurrence_index(meeting: Meeting, start: datetime) -> int:
    """Return how many occurrences of ``meeting`` start before ``start`` (0-based index).

    A single event (or one occurrence) has index 0. The count stops at
    :data:`MAX_SCAN`, which keeps the work bounded for absurd rules.
    """
    if not meeting.is_series:
        return 0
    series = _series_of(meeting)
    limit = _to_local(start, series.zone)
    count = 0
    for local in _expand(series, floor=None).xafter(series.local_start, count=MAX_SCAN, inc=True):
        if local >= limit:
            break
        count += 1
    return count


def _series_of(meeting: Meeting) -> _Series:
    return _parse_series(meeting.recurrence, meeting.start, meeting.end, meeting.timezone)


@lru_cache(maxsize=4096)
def _parse_series(
    lines: tuple[str, ...], start: datetime, end: datetime, timezone: str | None
) -> _Series:
    zone = _zone(timezone, start)
    local_start = _to_local(start, zone)
    rules: list[_Rule] = []
    exrules: list[_Rule] = []
    rdates: list[datetime] = [local_start]  # DTSTART is always the first instance
    exdates: list[datetime] = []
    for raw in lines:
        name_part, sep, value = raw.strip().partition(":")
        if not sep:
            continue
        name, *params = name_part.split(";")
        name = name.upper()
        if name == "RRULE":
            rules.append(_parse_rule(value, local_start, zone))
        elif name == "EXRULE":
            exrules.append(_parse_rule(value, local_start, zone))
        elif name in ("RDATE", "EXDATE"):
            target = rdates if name == "RDATE" else exdates
            target.extend(_parse_dates(value, params, local_start, zone))
    return _Series(
        zone=zone,
        local_start=local_start,
        duration=end - start,
        rules=tuple(rules),
        exrules=tuple(exrules),
        rdates=tuple(rdates),
        exdates=tuple(exdates),
    )


def _zone(name: str | None, start: datetime) -> tzinfo:
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise RecurrenceError(f"unknown time zone {name!r}") from exc
    if start.tzinfo is None:
        raise RecurrenceError("a series needs an aware start or a time zone")
    return start.tzinfo


def _to_local(moment: datetime, zone: tzinfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def _aware_span(local: datetime, series: _Series) -> tuple[datetime, datetime]:
    start = local.replace(tzinfo=series.zone)
    # The length is absolute: a one-hour meeting lasts one hour even on the
    # night the clocks change.
    end = (start.astimezone(UTC) + series.duration).astimezone(series.zone)
    return start, end


def _parse_rule(text: str, local_start: datetime, zone: tzinfo) -> _Rule:
    parts = {}
    for item in text.split(";"):
        key, _, val = item.partition("=")
        parts[key.strip().upper()] = val.strip()
    try:
        normalised = _UNTIL.sub(lambda m: _local_until(m, zone), text)
        parsed = rrulestr(normalised, dtstart=local_start)
        interval = int(parts.get("INTERVAL", "1") or "1")
    except (ValueError, TypeError) as exc:
        raise RecurrenceError("unparsable recurrence rule") from exc
    if not isinstance(parsed, rrule) or interval < 1:
        raise RecurrenceError("unsupported recurrence rule")
    period = None if "COUNT" in parts else _FIXED_PERIODS.get(parts.get("FREQ", "").upper())
    return _Rule(rule=parsed, period=period, interval=interval)


def _local_until(match: re.Match[str], zone: tzinfo) -> str:
    """Rewrite an UNTIL value as naive wall-clock time in the series' zone."""
    if match.group(3) is None:
        # A date: the whole day is included.
        until = _compact(match.group(2) + "T235959")
    else:
        until = _compact(match.group(2) + match.group(3))
        if match.group(4):
            until = _to_local(until.replace(tzinfo=UTC), zone)
    return f"{match.group(1)}{until:%Y%m%dT%H%M%S}"


def _compact(token: str) -> datetime:
    """Parse ``YYYYMMDDTHHMMSS`` (a third of the cost of strptime; this runs per series)."""
    if len(token) != 15 or token[8] not in "Tt" or not (token[:8] + token[9:]).isdigit():
        raise ValueError(f"not a compact date-time: {token!r}")
    return datetime(
        int(token[0:4]), int(token[4:6]), int(token[6:8]),
        int(token[9:11]), int(token[11:13]), int(token[13:15]),
    )  # fmt: skip


def _parse_dates(
    value: str, params: list[str], local_start: datetime, zone: tzinfo
) -> list[datetime]:
    source_zone: tzinfo = zone
    for param in params:
        key, _, val = param.partition("=")
        if key.strip().upper() == "TZID":
            try:
                source_zone = ZoneInfo(val.strip().strip('"'))
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise RecurrenceError("unknown time zone in a date list") from exc
    found = []
    for item in value.split(","):
        token = item.strip().split("/")[0]  # a PERIOD starts with its start
        if token:
            found.append(_parse_one_date(token, source_zone, local_start, zone))
    return found


def _parse_one_date(
    token: str, source_zone: tzinfo, local_start: datetime, zone: tzinfo
) -> datetime:
    try:
        if len(token) == 8 and token.isdigit():
            # A date in a list of a timed series means that day's occurrence.
            day = date(int(token[:4]), int(token[4:6]), int(token[6:]))
            return datetime.combine(day, local_start.time())
        utc = token.endswith("Z")
        moment = _compact(token.rstrip("Z"))
    except ValueError as exc:
        raise RecurrenceError("unparsable date in a date list") from exc
    return _to_local(moment.replace(tzinfo=UTC if utc else source_zone), zone)


def _expand(series: _Series, floor: datetime | None) -> rruleset:
    """The series as a dateutil set; rules start no later than ``floor`` when moved."""
    expanded = rruleset()
    for item in series.rules:
        expanded.rrule(_moved_forward(item, series.local_start, floor))
    for item in series.exrules:
        expanded.exrule(_moved_forward(item, series.local_start, floor))
    for moment in series.rdates:
        expanded.rdate(moment)
    for moment in series.exdates:
        expanded.exdate(moment)
    return expanded


def _moved_forward(item: _Rule, local_start: datetime, floor: datetime | None) -> rrule:
    """The rule starting a whole number of periods later, still at or before ``floor``.

    Every occurrence at or after the new start is the same as in the original
    rule, because the period grid, weekday and time of day are unchanged.
    """
    if floor is None or item.period is None or floor <= local_start:
        return item.rule
    step = item.period * item.interval
    periods = (floor - local_start) // step
    if periods <= 0:
        return item.rule
    return item.rule.replace(dtstart=local_start + step * periods)
