"""Feedback wins (R6): praise read back from team meetings, and wins logged by hand.

A win is a count, never content:

- after a team meeting ends, its praise slot is read back and each filled entry
  (not our placeholders) is a praise win; we keep the count and how many were
  vague ("good job", "bra jobbat"), as numbers only;
- ``feedback-agendas log-win --team T --kind praise|corrective`` adds one win;
  there is no free text to store;
- after a 1:1 ends, its focus slot is read back; a 1:1 with at least one entry
  filled in is "marked as done": one win for the occurrence, ``corrective``
  for the "do better"/"stop doing" focus and ``praise`` for "do well", with
  the private source :data:`ONE_ON_ONE`;
- a recurring meeting shares one description across its occurrences, so an
  occurrence of a series that was not edited since the last read-back counts
  nothing (the daemon compares a digest of the etag, never the text).

Corrective wins are only ever shown, as a number, in the manager's private
digest. So are all wins from 1:1s, praise included: they never count towards
a team's celebration, digest or streak, which the whole team sees.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from feedback_agendas.agendas.policy import Team
from feedback_agendas.scheduler.reminders.outbox import Outbox
from feedback_agendas.scheduler.reminders.planning import ReminderSettings, plan_celebration
from feedback_agendas.scheduler.storage.db import insert_ignoring, write_transaction
from feedback_agendas.scheduler.storage.tables import feedback_wins as wins_table

WIN_KINDS = ("praise", "corrective")
# The source of wins from 1:1s: private, counted only in the manager's digest.
ONE_ON_ONE = "one_on_one"


@dataclass(frozen=True, slots=True)
class WinCounts:
    """Wins of a team over some days.

    ``praise`` and ``vague`` are public (team meetings, the command line);
    ``corrective`` (the command line, 1:1s) and ``one_on_one_praise`` (1:1s
    with the "do well" focus) are for the manager's private digest only.
    """

    praise: int = 0
    corrective: int = 0
    vague: int = 0
    one_on_one_praise: int = 0


def week_start(day: date) -> date:
    """The Monday of ``day``'s ISO week."""
    return day - timedelta(days=day.weekday())


class Wins:
    """The wins table on one database (``db``, a SQLAlchemy engine). Counts only."""

    def __init__(self, db: Engine) -> None:
        self.db = db

    def record_meeting_praise(
        self,
        *,
        team: str,
        occurrence: str,
        day: date,
        filled: int,
        vague: int,
        now: datetime,
    ) -> bool:
        """Record the praise read back from one team meeting occurrence, once.

        Returns False when this occurrence was already read back. Nothing is
        recorded for an empty slot: no praise is not a win.
        """
        if filled <= 0:
            return False
        stmt = (
            insert_ignoring(self.db, wins_table, ["source", "occurrence", "kind"])
            .values(
                team=team,
                day=day,
                kind="praise",
                source="meeting",
                occurrence=occurrence,
                count=filled,
                vague=min(vague, filled),
                recorded_at=now,
            )
            .returning(wins_table.c.id)
        )
        with write_transaction(self.db) as conn:
            return conn.execute(stmt).first() is not None

    def record_one_on_one(
        self, *, team: str, occurrence: str, day: date, kind: str, now: datetime
    ) -> bool:
        """Record one 1:1 occurrence marked as done, once: a private win of ``kind``.

        Returns False when this occurrence was already recorded. Only the team,
        day, kind and occurrence id are kept: nothing about who or what.
        """
        if kind not in WIN_KINDS:
            raise ValueError(f"kind must be one of {', '.join(WIN_KINDS)}")
        stmt = (
            insert_ignoring(self.db, wins_table, ["source", "occurrence", "kind"])
            .values(
                team=team,
                day=day,
                kind=kind,
                source=ONE_ON_ONE,
                occurrence=occurrence,
                count=1,
                vague=0,
                recorded_at=now,
            )
            .returning(wins_table.c.id)
        )
        with write_transaction(self.db) as conn:
            return conn.execute(stmt).first() is not None

    def log(self, *, team: str, kind: str, day: date, now: datetime) -> None:
        """Record one win logged on the command line. Only the team, kind and day are kept."""
        if kind not in WIN_KINDS:
            raise ValueError(f"kind must be one of {', '.join(WIN_KINDS)}")
        with write_transaction(self.db) as conn:
            conn.execute(
                wins_table.insert().values(
                    team=team,
                    day=day,
                    kind=kind,
                    source="cli",
                    occurrence=f"cli:{uuid.uuid4().hex}",
                    count=1,
                    vague=0,
                    recorded_at=now,
                )
            )

    def between(self, team: str, first: date, last: date) -> WinCounts:
        """Wins of ``team`` on the days ``first`` to ``last``, inclusive."""
        t = wins_table
        with self.db.connect() as conn:
            rows = conn.execute(
                select(t.c.kind, t.c.source, func.sum(t.c.count), func.sum(t.c.vague))
                .where(t.c.team == team, t.c.day >= first, t.c.day <= last)
                .group_by(t.c.kind, t.c.source)
            ).all()
        public: dict[str, int] = {}
        private: dict[str, int] = {}
        vague = 0
        for kind, source, total, vague_total in rows:
            into = private if source == ONE_ON_ONE else public
            into[kind] = into.get(kind, 0) + int(total or 0)
            if into is public and kind == "praise":
                vague += int(vague_total or 0)
        return WinCounts(
            praise=public.get("praise", 0),
            corrective=public.get("corrective", 0) + private.get("corrective", 0),
            vague=vague,
            one_on_one_praise=private.get("praise", 0),
        )

    def streak(self, team: str, last_week: date) -> int:
        """How many weeks in a row, ending with ``last_week``'s week, had praise.

        Public praise only: praise from 1:1s is private and makes no team streak.
        """
        t = wins_table
        monday = week_start(last_week)
        with self.db.connect() as conn:
            days = conn.scalars(
                select(t.c.day)
                .where(
                    t.c.team == team,
                    t.c.kind == "praise",
                    t.c.source != ONE_ON_ONE,
                    t.c.day <= monday + timedelta(days=6),
                )
                .distinct()
            ).all()
        weeks = {week_start(d) for d in days}
        streak = 0
        while monday - timedelta(weeks=streak) in weeks:
            streak += 1
        return streak


def log_win_today(
    wins: Wins,
    outbox: Outbox,
    team: Team,
    kind: str,
    settings: ReminderSettings,
    now: datetime,
) -> None:
    """One win logged by hand today (in the team's time zone); praise queues the celebration."""
    today = now.astimezone(team.zone).date()
    wins.log(team=team.name, kind=kind, day=today, now=now)
    if kind == "praise":
        outbox.enqueue(plan_celebration(team, today, settings, now), now)
