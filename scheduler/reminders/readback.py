"""The read-back of ended meetings (R6): once a meeting is over, count what was filled in.

After a sync cycle, the meetings whose slot can give a win are watched
(:meth:`ReadBacks.watch`): a team meeting's praise slot, and a 1:1's focus slot.
Once one has ended, the next cycle of its calendar reads it back, once
(:meth:`ReadBacks.read_ended`):

- a team meeting's filled praise entries are public wins (with how many are
  vague), and queue the team's celebration;
- a 1:1 with any entry filled in is one private win, ``corrective`` for the
  "do better"/"stop doing" focus and ``praise`` for "do well"; never a
  celebration (see :mod:`feedback_agendas.scheduler.reminders.wins`).

A meeting that ended more than :data:`READBACK_WINDOW` ago (the daemon was
down) is marked read without asking the provider. Only counts are kept, and a
digest of the etag that was read (``version``), never any text: a series
keeps one description for all its occurrences, so an occurrence of a series
that was not edited since the last read-back counts nothing.

The ``praise_readbacks`` table (in :mod:`feedback_agendas.scheduler.storage.tables`)
is read and written here only.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from feedback_agendas.agendas.block import (
    OUR_ENTRY_LABELS,
    EntryLabels,
    PraiseCount,
    count_filled_entries,
    count_praise,
)
from feedback_agendas.agendas.classify import MeetingKind
from feedback_agendas.agendas.model import EventRef
from feedback_agendas.agendas.plan import SlotKind
from feedback_agendas.agendas.policy import Team
from feedback_agendas.integrations.calendars.base import CalendarProvider
from feedback_agendas.scheduler.reminders.outbox import Outbox
from feedback_agendas.scheduler.reminders.planning import (
    ONE_ON_ONE_SLOTS,
    ReminderSettings,
    plan_celebration,
)
from feedback_agendas.scheduler.reminders.wins import Wins
from feedback_agendas.scheduler.storage.db import write_transaction
from feedback_agendas.scheduler.storage.tables import praise_readbacks

log = logging.getLogger(__name__)

# A meeting that ended longer ago than this is not read any more (the daemon was down).
READBACK_WINDOW = timedelta(hours=24)
# A row's slot is a 1:1's focus (planning.ONE_ON_ONE_SLOTS: well, better, stop) or
# a team meeting's "praise" (NULL in rows from before 1:1s were read back).

# (win kind, how many): told for every win recorded, for the metrics.
OnWin = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class Watched:
    """A meeting occurrence to read back once it has ended: ids, codes and a time."""

    occurrence: str
    ref: EventRef
    team: str
    ends_at: datetime
    slot: SlotKind


def is_read_back(kind: MeetingKind, slot: SlotKind) -> bool:
    """True for the meetings whose slot gives a win: a team's praise slot, a 1:1's focus."""
    team_praise = kind is MeetingKind.TEAM and slot is SlotKind.PRAISE
    return team_praise or (kind is MeetingKind.ONE_ON_ONE and slot in ONE_ON_ONE_SLOTS)


class ReadBacks:
    """The read-back on one database, for the configured teams. Every method takes ``now``."""

    def __init__(
        self,
        db: Engine,
        *,
        teams: Mapping[str, Team],
        settings: ReminderSettings,
        outbox: Outbox,
        labels: EntryLabels = OUR_ENTRY_LABELS,
        on_win: OnWin = lambda _kind, _n: None,
    ) -> None:
        self.db = db
        self.wins = Wins(db)
        self.teams = teams
        self.settings = settings
        self.outbox = outbox
        self.labels = labels
        self.on_win = on_win

    def watch(self, meetings: Iterable[Watched]) -> None:
        """Remember these occurrences for a read-back; one already known is left as it is."""
        rows = {
            m.occurrence: {
                "occurrence": m.occurrence,
                "calendar": m.ref.calendar,
                "event_id": m.ref.event_id,
                "recurrence_id": m.ref.recurrence_id,
                "team": m.team,
                "ends_at": m.ends_at,
                "slot": m.slot.value,
            }
            for m in meetings
        }
        if not rows:
            return
        t = praise_readbacks
        with write_transaction(self.db) as conn:
            known = set(conn.scalars(select(t.c.occurrence).where(t.c.occurrence.in_(list(rows)))))
            fresh = [row for key, row in rows.items() if key not in known]
            if fresh:
                conn.execute(t.insert(), fresh)

    def read_ended(self, provider: CalendarProvider, now: datetime) -> int:
        """Read back this calendar's ended meetings, once each; return the wins recorded."""
        t = praise_readbacks
        with self.db.connect() as conn:
            due = conn.execute(
                select(t)
                .where(t.c.calendar == provider.name, t.c.read_at.is_(None), t.c.ends_at <= now)
                .order_by(t.c.ends_at)  # oldest first: a series compares with the one before
            ).all()
        recorded = 0
        for row in due:
            description = version = None
            if row.ends_at > now - READBACK_WINDOW:
                meeting = provider.get(EventRef(row.calendar, row.event_id, row.recurrence_id))
                if meeting is not None:
                    description = meeting.description
                    version = _version(meeting.etag)
            one_on_one = row.slot in ONE_ON_ONE_SLOTS
            if one_on_one:
                count = PraiseCount(
                    count_filled_entries(description, self.labels.one_on_one) if description else 0
                )
            else:
                count = (
                    count_praise(description, self.labels.praise) if description else PraiseCount()
                )
            if count.filled and self._read_before(row, version):
                log.info(
                    "%s: %s occurrence ending %s: the series was not edited since its last"
                    " read-back; its entries were counted then",
                    row.calendar,
                    "a 1:1" if one_on_one else "a team meeting",
                    row.ends_at.isoformat(),
                )
            elif one_on_one:
                recorded += self._record_one_on_one(row, count.filled, now)
            else:
                recorded += self._record_team_praise(row, count, now)
            with write_transaction(self.db) as conn:
                conn.execute(
                    update(t)
                    .where(t.c.occurrence == row.occurrence)
                    .values(read_at=now, filled=count.filled, version=version)
                )
        return recorded

    def _count(self, description: str | None, one_on_one: bool) -> PraiseCount:
        """The filled entries (and vague praise) of what was read; zero when nothing was."""
        if not description:
            return PraiseCount()
        if one_on_one:
            return PraiseCount(count_filled_entries(description, self.labels.one_on_one))
        return count_praise(description, self.labels.praise)

    def _read_before(self, row: Any, version: str | None) -> bool:
        """True when an earlier occurrence of this series was read back from the same version.

        A series keeps one description for all its occurrences: entries filled
        in for one week are still there the next. They count again only after
        the series was edited (its etag changed). An occurrence moved or edited
        on its own has a ``recurrence_id`` and a description of its own.
        """
        if version is None or row.recurrence_id is not None:
            return False
        t = praise_readbacks
        with self.db.connect() as conn:
            last = conn.scalar(
                select(t.c.version)
                .where(
                    t.c.calendar == row.calendar,
                    t.c.event_id == row.event_id,
                    t.c.recurrence_id.is_(None),
                    t.c.occurrence != row.occurrence,
                    t.c.read_at.is_not(None),
                    t.c.version.is_not(None),
                    t.c.ends_at < row.ends_at,
                )
                .order_by(t.c.ends_at.desc())
                .limit(1)
            )
        return bool(last == version)

    def _record_team_praise(self, row: Any, count: PraiseCount, now: datetime) -> int:
        team = self.teams.get(row.team)
        if team is None or not count.filled:
            return 0
        day = row.ends_at.astimezone(team.zone).date()
        if not self.wins.record_meeting_praise(
            team=team.name,
            occurrence=row.occurrence,
            day=day,
            filled=count.filled,
            vague=count.vague,
            now=now,
        ):
            return 0
        self.on_win("praise", count.filled)
        today = now.astimezone(team.zone).date()
        self.outbox.enqueue(plan_celebration(team, today, self.settings, now), now)
        return count.filled

    def _record_one_on_one(self, row: Any, filled: int, now: datetime) -> int:
        """A 1:1 with an entry filled in is done: one private win, never a celebration.

        ``corrective`` for the "do better"/"stop doing" focus, ``praise`` for
        "do well"; either shows only as a number in the manager's digest.
        """
        team = self.teams.get(row.team)
        if team is None or not filled:
            return 0
        kind = "praise" if row.slot == SlotKind.WELL else "corrective"
        day = row.ends_at.astimezone(team.zone).date()
        if not self.wins.record_one_on_one(
            team=team.name, occurrence=row.occurrence, day=day, kind=kind, now=now
        ):
            return 0
        self.on_win(kind, 1)
        return 1


def _version(etag: str) -> str | None:
    """A fixed-size digest of a provider's version token; None when it has none."""
    if not etag:
        return None
    return hashlib.sha256(etag.encode("utf-8")).hexdigest()[:32]
