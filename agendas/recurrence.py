"""Which occurrence of a meeting an agenda is for.

A series is expanded from its RFC 5545 lines (``RRULE``, ``EXRULE``, ``RDATE``,
``EXDATE``) with python-dateutil, in local wall-clock time of the series' zone:
a 09:00 Europe/Stockholm stand-up stays at 09:00 local on both sides of a DST
change. Every date in the lines (UTC, ``TZID=``, floating, ``VALUE=DATE``) is
first brought into that wall-clock frame, so dateutil only sees naive times.

All work is bounded. The rules meetings use almost always (daily, or weekly
on some weekdays, with an interval, UNTIL or COUNT) are expanded by arithmetic
on a :class:`_Grid`, in constant time however old the series (a property
test checks it against a plain dateutil walk). Other rules go through
dateutil: expansion stops after :data:`MAX_SCAN` occurrences, and rules
without ``COUNT`` start a whole number of periods (days, weeks, months...)
later, so an old monthly review is not walked from its first occurrence.
"""

from __future__ import annotations

import heapq
import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rruleset, rrulestr

from feedback_agendas.agendas.errors import FeedbackAgendasError
from feedback_agendas.agendas.model import Meeting

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

# Any of these fixes the days of a monthly rule; without them DTSTART's day applies.
_MONTH_DAY_KEYS = frozenset({"BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO"})

_DST_MARGIN = timedelta(hours=3)

_UNTIL = re.compile(r"(?i)(UNTIL=)([0-9]{8})(T[0-9]{6})?(Z?)")


class RecurrenceError(FeedbackAgendasError, ValueError):
    """The recurrence lines or the time zone of a series cannot be understood.

    The core turns it into a skip (``bad_recurrence``); it never leaves ``decide``.
    """


_WEEKDAYS = {"MO": 0, "TU": 1, "WE": 2, "TH": 3, "FR": 4, "SA": 5, "SU": 6}
_GRID_KEYS = frozenset({"FREQ", "INTERVAL", "BYDAY", "WKST", "UNTIL", "COUNT"})


@dataclass(frozen=True, slots=True)
class _Grid:
    """A daily or weekly rule as arithmetic: periods of ``period_days`` from ``anchor``.

    Each period holds the occurrences at ``offsets`` days from its first day,
    at ``at`` o'clock. The first period drops offsets before the series start.
    Occurrence ``i`` (0-based, before COUNT/UNTIL) is found and counted in O(1).
    """

    anchor: date  # first day of the first period (week start per WKST, or the start day)
    period_days: int  # interval x 1 (daily) or interval x 7 (weekly)
    offsets: tuple[int, ...]  # sorted days into the period
    at: time
    start: datetime  # naive wall-clock start of the series
    skipped: int  # offsets of the first period before the start
    until: datetime | None  # naive wall-clock, inclusive
    count: int | None

    def before(self, moment: datetime) -> int:
        """How many occurrences (ignoring COUNT and UNTIL) start before ``moment``."""
        if moment <= self.start:
            return 0
        days = (moment.date() - self.anchor).days
        period, rest = divmod(days, self.period_days)
        in_period = bisect_left(self.offsets, rest)
        if in_period < len(self.offsets) and self.offsets[in_period] == rest:
            in_period += self.at < moment.time()
        return period * len(self.offsets) + in_period - self.skipped

    def limit(self) -> int | None:
        """Total number of occurrences, or None when endless."""
        total = self.count
        if self.until is not None:
            up_to = self.before(self.until + timedelta(microseconds=1))
            total = up_to if total is None else min(total, up_to)
        return total

    def nth(self, index: int) -> datetime:
        period, slot = divmod(index + self.skipped, len(self.offsets))
        day = self.anchor + timedelta(days=period * self.period_days + self.offsets[slot])
        return datetime.combine(day, self.at)

    def since(self, moment: datetime) -> Iterator[datetime]:
        """Occurrences starting at or after ``moment``, in order."""
        total = self.limit()
        index = self.before(moment)
        while total is None or index < total:
            yield self.nth(index)
            index += 1

    def contains(self, moment: datetime) -> bool:
        if moment < self.start or moment.time() != self.at:
            return False
        rest = (moment.date() - self.anchor).days % self.period_days
        if rest not in self.offsets:
            return False
        total = self.limit()
        return total is None or self.before(moment) < total


@dataclass(frozen=True, slots=True)
class _Rule:
    rule: rrule | None  # dateutil's form; None when the grid alone expands the series
    text: str  # the rule with UNTIL in wall-clock time
    period: timedelta | None  # None: cannot be moved forward by a fixed time (COUNT, months)
    interval: int
    grid: _Grid | None  # the same rule as arithmetic, when it has that shape
    monthly: bool = False  # moved forward by whole months instead (no COUNT)


@dataclass(frozen=True, slots=True)
class _Series:
    zone: tzinfo
    local_start: datetime  # naive wall-clock time of the first occurrence
    duration: timedelta  # absolute length of one occurrence
    rules: tuple[_Rule, ...]
    exrules: tuple[_Rule, ...]
    rdates: tuple[datetime, ...]  # naive wall-clock times, sorted, unique
    exdates: frozenset[datetime]

    @property
    def grids(self) -> tuple[_Grid, ...] | None:
        """The rules as grids, or None when any rule needs dateutil."""
        if self.exrules or any(r.grid is None for r in self.rules):
            return None
        return tuple(r.grid for r in self.rules if r.grid is not None)


def next_occurrence(meeting: Meeting, after: datetime) -> tuple[datetime, datetime] | None:
    """Return ``(start, end)`` of the first occurrence whose end is after ``after``.

    An occurrence in progress at ``after`` counts. A single event (or one
    occurrence of a series) is its own only occurrence. Returns ``None`` when
    every occurrence has ended. Raises :class:`RecurrenceError` for lines or a
    time zone that cannot be parsed.
    """
    if not meeting.is_series:
        return (meeting.start, meeting.end) if meeting.end > after else None
    try:
        return _next_occurrence(meeting, after)
    except OverflowError as exc:  # arithmetic at the ends of the calendar (year 1, 9999)
        raise RecurrenceError("a date of the series is out of range") from exc


def _next_occurrence(meeting: Meeting, after: datetime) -> tuple[datetime, datetime] | None:
    series = _series_of(meeting)
    # Wall-clock and absolute order can differ by a DST shift: start a little early.
    threshold = _to_local(after - series.duration, series.zone) - _DST_MARGIN
    for scanned, local in enumerate(_occurrences_since(series, threshold)):
        start, end = _aware_span(local, series)
        if end > after:
            return start, end
        if scanned >= MAX_SCAN:
            break
    return None


def occurrence_index(meeting: Meeting, start: datetime) -> int:
    """Return how many occurrences of ``meeting`` start before ``start`` (0-based index).

    A single event (or one occurrence) has index 0. The count stops at
    :data:`MAX_SCAN`, which keeps the work bounded for absurd rules.
    """
    if not meeting.is_series:
        return 0
    try:
        return _occurrence_index(meeting, start)
    except OverflowError as exc:
        raise RecurrenceError("a date of the series is out of range") from exc


def _occurrence_index(meeting: Meeting, start: datetime) -> int:
    series = _series_of(meeting)
    limit = _to_local(start, series.zone)
    grids = series.grids
    if grids is not None and len(grids) == 1:
        return _grid_index(series, grids[0], limit)
    count = 0
    for local in _occurrences_since(series, series.local_start):
        if count >= MAX_SCAN:
            break
        if local >= limit:
            break
        count += 1
    return count


def _grid_index(series: _Series, grid: _Grid, limit: datetime) -> int:
    """Occurrences before ``limit``: the rule's, plus extra dates, minus excluded ones."""
    total = grid.limit()
    from_rule = grid.before(limit) if total is None else min(grid.before(limit), total)
    extra = sum(
        1
        for moment in series.rdates
        if moment < limit and moment not in series.exdates and not grid.contains(moment)
    )
    excluded = sum(1 for moment in series.exdates if moment < limit and grid.contains(moment))
    return from_rule + extra - excluded


def _occurrences_since(series: _Series, moment: datetime) -> Iterator[datetime]:
    """The series' occurrences at or after ``moment``, in order, without duplicates."""
    grids = series.grids
    if grids is None:
        yield from _expand(series, floor=moment).xafter(moment, count=MAX_SCAN, inc=True)
        return
    extra = series.rdates[bisect_left(series.rdates, moment) :]
    previous = None
    for local in heapq.merge(extra, *(grid.since(moment) for grid in grids)):
        if local != previous and local not in series.exdates:
            yield local
        previous = local


def _series_of(meeting: Meeting) -> _Series:
    # The zone of the start is part of the key: equal instants in different
    # zones compare equal, but expand differently when no timezone is named.
    start = meeting.start
    return _parse_series(meeting.recurrence, start, start.tzinfo, meeting.end, meeting.timezone)


@lru_cache(maxsize=8192)
def _parse_series(
    lines: tuple[str, ...],
    start: datetime,
    start_zone: tzinfo | None,
    end: datetime,
    timezone: str | None,
) -> _Series:
    zone = _zone(timezone, start_zone)
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
    if exrules or any(item.grid is None for item in rules):
        rules = _with_dateutil_rules(rules, local_start)
        exrules = _with_dateutil_rules(exrules, local_start)
    return _Series(
        zone=zone,
        local_start=local_start,
        duration=end - start,
        rules=tuple(rules),
        exrules=tuple(exrules),
        rdates=tuple(sorted(set(rdates))),
        exdates=frozenset(exdates),
    )


def _zone(name: str | None, start_zone: tzinfo | None) -> tzinfo:
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise RecurrenceError(f"unknown time zone {name!r}") from exc
    if start_zone is None:
        raise RecurrenceError("a series needs an aware start or a time zone")
    return start_zone


def _to_local(moment: datetime, zone: tzinfo) -> datetime:
    try:
        return moment.astimezone(zone).replace(tzinfo=None)
    except OverflowError:
        # ``UNTIL=99991231T235959Z`` east of UTC lies past year 9999: as late (or
        # early) as a date can be, which is what the rule means.
        return datetime.max if moment.year > 1 else datetime.min


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
        interval = int(parts.get("INTERVAL", "1") or "1")
    except (ValueError, TypeError) as exc:
        raise RecurrenceError("unparsable recurrence rule") from exc
    if interval < 1:
        raise RecurrenceError("unsupported recurrence rule")
    freq = parts.get("FREQ", "").upper()
    period = None if "COUNT" in parts else _FIXED_PERIODS.get(freq)
    monthly = freq == "MONTHLY" and "COUNT" not in parts
    if monthly and not parts.keys() & _MONTH_DAY_KEYS:
        # dateutil takes the day from DTSTART; say it explicitly so the rule
        # can start in a later month without changing its days.
        normalised += f";BYMONTHDAY={local_start.day}"
    grid = _as_grid(parts, normalised, local_start)
    # Building dateutil's rule costs more than the rest of the parse: only
    # when the arithmetic cannot do the job (see _with_dateutil_rules).
    rule = None if grid is not None else _dateutil_rule(normalised, local_start)
    return _Rule(
        rule=rule, text=normalised, period=period, interval=interval, grid=grid, monthly=monthly
    )


def _dateutil_rule(text: str, local_start: datetime) -> rrule:
    try:
        parsed = rrulestr(text, dtstart=local_start)
    except (ValueError, TypeError) as exc:
        raise RecurrenceError("unparsable recurrence rule") from exc
    if not isinstance(parsed, rrule):
        raise RecurrenceError("unsupported recurrence rule")
    return parsed


def _with_dateutil_rules(rules: list[_Rule], local_start: datetime) -> list[_Rule]:
    """The rules, each with its dateutil form (a series that dateutil must expand)."""
    return [
        item
        if item.rule is not None
        else _Rule(
            rule=_dateutil_rule(item.text, local_start),
            text=item.text,
            period=item.period,
            interval=item.interval,
            grid=item.grid,
            monthly=item.monthly,
        )
        for item in rules
    ]


def _as_grid(parts: dict[str, str], normalised: str, local_start: datetime) -> _Grid | None:
    """The rule as a :class:`_Grid` when it is daily or weekly on plain weekdays, else None."""
    if not parts.keys() <= _GRID_KEYS:
        return None
    freq = parts.get("FREQ", "").upper()
    interval = int(parts.get("INTERVAL", "1") or "1")
    days_text = [d.strip().upper() for d in parts.get("BYDAY", "").split(",") if d.strip()]
    if any(d not in _WEEKDAYS for d in days_text):
        return None  # ordinals such as 1MO, or nonsense: dateutil decides
    weekdays = sorted({_WEEKDAYS[d] for d in days_text})
    if freq == "DAILY" and weekdays and interval == 1:
        freq = "WEEKLY"  # every day, filtered by weekday: the same as weekly on those days
    start_day = local_start.date()
    offsets: tuple[int, ...]
    if freq == "DAILY" and not weekdays:
        anchor, period_days, offsets = start_day, interval, (0,)
    elif freq == "WEEKLY":
        wkst = _WEEKDAYS.get(parts.get("WKST", "MO").strip().upper())
        if wkst is None:
            return None
        anchor = start_day - timedelta(days=(start_day.weekday() - wkst) % 7)
        period_days = 7 * interval
        days = weekdays or [start_day.weekday()]
        offsets = tuple(sorted((d - wkst) % 7 for d in days))
    else:
        return None
    start_offset = (start_day - anchor).days
    found = re.search(r"(?i)UNTIL=([0-9]{8}T[0-9]{6})", normalised)  # already local
    until = _compact(found.group(1)) if found else None
    count = int(parts["COUNT"]) if parts.get("COUNT", "").isdigit() else None
    if "COUNT" in parts and count is None:
        return None
    return _Grid(
        anchor=anchor,
        period_days=period_days,
        offsets=offsets,
        at=local_start.time(),
        start=local_start,
        skipped=bisect_left(offsets, start_offset),
        until=until,
        count=count,
    )


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
    rule = item.rule
    if rule is None:  # _parse_series gives every rule its dateutil form in such a series
        raise RecurrenceError("internal: a dateutil expansion without a dateutil rule")
    if floor is None or floor <= local_start:
        return rule
    if item.monthly:
        return _moved_forward_by_months(rule, item.interval, local_start, floor)
    if item.period is None:
        return rule
    step = item.period * item.interval
    periods = (floor - local_start) // step
    if periods <= 0:
        return rule
    return rule.replace(dtstart=local_start + step * periods)


def _moved_forward_by_months(
    rule: rrule, interval: int, local_start: datetime, floor: datetime
) -> rrule:
    """A monthly rule starting on the 1st of a later month of its grid, before ``floor``.

    Its days are explicit (BYMONTHDAY or BYDAY), and every occurrence in a
    month is on or after the 1st at the series' time of day.
    """
    months = (floor.year - local_start.year) * 12 + floor.month - local_start.month
    periods = months // interval - 1  # one whole period early, for safety
    if periods <= 0:
        return rule
    month_index = local_start.month - 1 + periods * interval
    moved = local_start.replace(
        year=local_start.year + month_index // 12, month=month_index % 12 + 1, day=1
    )
    return rule.replace(dtstart=moved)
