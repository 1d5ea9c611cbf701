"""The teams page: public praise wins per week as a chart, the streak, the next praise slots.

Public wins only: praise read back from team meetings and praise logged with
``log-win``. Corrective wins and everything from 1:1s belong to the
manager's private digest (R4) and never appear here.

The chart is SVG drawn on the server: one bar per week, each with its number
written above it and its week below, so it reads without colour (and a table
carries the same numbers for screen readers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from feedback_agendas.scheduler.reminders.wins import ONE_ON_ONE, week_start
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.storage.tables import feedback_wins as wins_table
from feedback_agendas.scheduler.storage.tables import praise_readbacks as readbacks_table

WEEKS = 12
NEXT_MEETINGS = 3
CHART_WIDTH = 520
CHART_HEIGHT = 180
_TOP, _BOTTOM, _LEFT = 20, 30, 30


@dataclass(frozen=True, slots=True)
class Bar:
    week: date
    label: str
    wins: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class TeamChart:
    team: str
    weeks: tuple[Bar, ...]
    total: int
    streak: int
    next_meetings: tuple[datetime, ...]
    timezone: str
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    axis_y: float = CHART_HEIGHT - _BOTTOM
    left: float = _LEFT
    peak: int = 0

    @property
    def summary(self) -> str:
        weeks = ", ".join(f"{bar.label}: {bar.wins}" for bar in self.weeks)
        return f"Praise wins per week for {self.team}, oldest first. {weeks}."


def _streak(weekly: Mapping[date, int], this_week: date) -> int:
    """Weeks in a row with praise, ending this week (or last week, if this one has none yet)."""
    monday = this_week if weekly.get(this_week) else this_week - timedelta(weeks=1)
    streak = 0
    while weekly.get(monday - timedelta(weeks=streak)):
        streak += 1
    return streak


def team_charts(
    store: Store,
    teams: Mapping[str, str],
    now: datetime,
    *,
    upcoming: Mapping[str, list[datetime]] | None = None,
) -> list[TeamChart]:
    """One chart per team in ``teams`` (name -> time zone), by name."""
    first = min(
        (week_start(now.astimezone(ZoneInfo(tz)).date()) for tz in teams.values()),
        default=now.date(),
    ) - timedelta(weeks=WEEKS)
    t = wins_table.c
    per_day: dict[str, dict[date, int]] = {}
    streak_days: dict[str, set[date]] = {}
    with store.engine.connect() as conn:
        for team, day, total in conn.execute(
            select(t.team, t.day, func.sum(t.count))
            .where(
                t.team.in_(list(teams)),
                t.kind == "praise",
                t.source != ONE_ON_ONE,
                t.day >= first - timedelta(weeks=WEEKS * 4),
            )
            .group_by(t.team, t.day)
        ):
            per_day.setdefault(team, {})[day] = int(total or 0)
            streak_days.setdefault(team, set()).add(day)
    charts = []
    for team in sorted(teams):
        zone = ZoneInfo(teams[team])
        this_week = week_start(now.astimezone(zone).date())
        weekly: dict[date, int] = {}
        for day, n in per_day.get(team, {}).items():
            weekly[week_start(day)] = weekly.get(week_start(day), 0) + n
        mondays = [this_week - timedelta(weeks=WEEKS - 1 - i) for i in range(WEEKS)]
        values = [weekly.get(m, 0) for m in mondays]
        charts.append(
            _chart(
                team,
                mondays,
                values,
                _streak(weekly, this_week),
                tuple((upcoming or {}).get(team, ())),
                teams[team],
            )
        )
    return charts


def _chart(
    team: str,
    mondays: list[date],
    values: list[int],
    streak: int,
    next_meetings: tuple[datetime, ...],
    timezone: str,
) -> TeamChart:
    peak = max(values, default=0)
    scale = max(peak, 1)
    plot_w = CHART_WIDTH - _LEFT - 10
    plot_h = CHART_HEIGHT - _TOP - _BOTTOM
    slot = plot_w / max(1, len(values))
    bars = []
    for i, (monday, wins) in enumerate(zip(mondays, values, strict=True)):
        height = plot_h * wins / scale
        bars.append(
            Bar(
                week=monday,
                label=f"W{monday.isocalendar().week:02d}",
                wins=wins,
                x=round(_LEFT + i * slot + slot * 0.15, 1),
                y=round(_TOP + plot_h - height, 1),
                width=round(slot * 0.7, 1),
                height=round(height, 1),
            )
        )
    return TeamChart(
        team=team,
        weeks=tuple(bars),
        total=sum(values),
        streak=streak,
        next_meetings=next_meetings,
        timezone=timezone,
        peak=peak,
    )


def upcoming_praise_meetings(store: Store, now: datetime) -> dict[str, list[datetime]]:
    """Per team, when its next meetings with a praise slot end (the earliest few).

    From the read-back list: every team meeting we gave a praise slot is on it
    until it has ended and been read back.
    """
    t = readbacks_table.c
    found: dict[str, list[datetime]] = {}
    with store.engine.connect() as conn:
        for team, ends_at in conn.execute(
            select(t.team, t.ends_at)
            .where(
                t.read_at.is_(None),
                t.ends_at > now,
                (t.slot == "praise") | t.slot.is_(None),
            )
            .order_by(t.ends_at)
        ):
            mine = found.setdefault(team, [])
            if len(mine) < NEXT_MEETINGS:
                mine.append(ends_at)
    return found
