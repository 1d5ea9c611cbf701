"""Which agenda a classified meeting gets, per the rules (R1, R2, R4, R5, R7).

A plan holds exactly one slot: praise for team meetings (praise in public),
one of well/better/stop for 1:1s (correction one to one), never both (I5).
It also carries everything the renderer needs, so rendering is a pure
function of the plan and the text format.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from feedback_agendas.agendas.classify import Classification, MeetingKind, team_index
from feedback_agendas.agendas.model import Meeting
from feedback_agendas.agendas.policy import Focus, Rules, Team
from feedback_agendas.agendas.recurrence import occurrence_index


class SlotKind(StrEnum):
    """The one slot of an agenda.

    ``praise`` is the public praise slot (team meetings only); ``well`` is
    "this you do well" (1:1, R2 or focus well); ``better`` and ``stop`` are the
    corrective slots (1:1 only).
    """

    PRAISE = "praise"
    WELL = "well"
    BETTER = "better"
    STOP = "stop"

    @property
    def corrective(self) -> bool:
        return self in (SlotKind.BETTER, SlotKind.STOP)


# Focus rotation order (R5: one focus per occurrence, rotating if the admin asks).
ROTATION = (SlotKind.WELL, SlotKind.BETTER, SlotKind.STOP)

_FOCUS_SLOTS = {Focus.WELL: SlotKind.WELL, Focus.BETTER: SlotKind.BETTER, Focus.STOP: SlotKind.STOP}

DEFAULT_LOCALE = "en"
DEFAULT_TIMEZONE = "UTC"


@dataclass(frozen=True, slots=True)
class AgendaPlan:
    """The desired agenda of one meeting occurrence.

    ``norm_text`` is the admin's rewording of the team-norm sentence for this
    locale (``None``: the template's sentence); ``norm_enabled`` is False when
    the admin turned the sentence off. ``positive_only`` is True during the
    team's positive-only period (R2). ``occurrence_start``/``occurrence_end``
    are the occurrence the agenda is for (the next one, for a series).
    """

    kind: MeetingKind
    slot: SlotKind
    team: str | None
    locale: str
    timezone: str
    goals: tuple[str, ...]
    norm_enabled: bool
    norm_text: str | None
    trust_checkin: bool
    positive_only: bool
    occurrence_start: datetime
    occurrence_end: datetime | None = None

    @property
    def slots(self) -> tuple[str, ...]:
        """The slot codes of this agenda: always exactly one."""
        return (self.slot.value,)


def plan_agenda(
    meeting: Meeting,
    classification: Classification,
    rules: Rules,
    occurrence_start: datetime,
    occurrence_end: datetime | None = None,
) -> AgendaPlan:
    """Plan the agenda of the occurrence of ``meeting`` starting at ``occurrence_start``.

    ``classification`` must be a 1:1 or a team meeting; a skip raises
    ``ValueError`` (a skipped meeting has no agenda).
    """
    if classification.kind is MeetingKind.SKIP:
        raise ValueError("a skipped meeting has no agenda")
    team = team_index(rules.org).by_name.get(classification.team or "")
    positive_only = in_positive_only_period(team, occurrence_start)
    if classification.kind is MeetingKind.TEAM:
        slot = SlotKind.PRAISE
    elif positive_only:
        slot = SlotKind.WELL
    else:
        slot = one_on_one_focus(meeting, rules.policy.one_on_one_focus, occurrence_start)
    locale = team.locale if team else DEFAULT_LOCALE
    policy = rules.policy
    return AgendaPlan(
        kind=classification.kind,
        slot=slot,
        team=team.name if team else None,
        locale=locale,
        timezone=team.timezone if team else DEFAULT_TIMEZONE,
        goals=team.goals if team else (),
        norm_enabled=policy.team_norm_enabled,
        norm_text=policy.team_norm_text.get(locale),
        trust_checkin=classification.kind is MeetingKind.ONE_ON_ONE and policy.trust_checkin,
        positive_only=positive_only,
        occurrence_start=occurrence_start,
        occurrence_end=occurrence_end,
    )


def in_positive_only_period(team: Team | None, occurrence_start: datetime) -> bool:
    """True when the occurrence's date, in the team's zone, is within the team's R2 period."""
    if team is None or team.positive_only_until is None:
        return False
    local_day = occurrence_start.astimezone(team_zone(team.timezone)).date()
    return local_day <= team.positive_only_until


def one_on_one_focus(meeting: Meeting, focus: Focus, occurrence_start: datetime) -> SlotKind:
    """The 1:1 slot outside the positive-only period: fixed, or rotating per occurrence."""
    if focus is Focus.ROTATE:
        return ROTATION[occurrence_index(meeting, occurrence_start) % len(ROTATION)]
    return _FOCUS_SLOTS[focus]


@lru_cache(maxsize=256)
def team_zone(name: str) -> tzinfo:
    """The team's zone. Config validation rejects unknown names; UTC is a last resort."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)
