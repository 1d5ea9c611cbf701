"""Is this meeting a 1:1, a team meeting, or something we leave alone?

Classification fails closed: whatever is uncertain is skipped, and nothing
uncertain is ever called a 1:1 (R4). The checks run in a fixed order, so the
reason given is the most fundamental one:

1. facts that forbid any write (I6): cancelled, all-day, private, locked,
   not a plain meeting, not ours, not editable;
2. opt-outs: calendar, marker in the event, the organizer, the other person of a
   pair (a person's opt-out never removes a team meeting someone else organizes);
3. structure: who takes part, which decides 1:1, team meeting or neither.

Time plays no part here; :mod:`feedback_agendas.agendas.decide` handles past and far-future
occurrences.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from feedback_agendas.agendas.model import Attendee, EventType, Meeting, Status, Visibility
from feedback_agendas.agendas.policy import Org, Rules, Team


class MeetingKind(StrEnum):
    ONE_ON_ONE = "one_on_one"
    TEAM = "team"
    SKIP = "skip"


class SkipReason(StrEnum):
    """Why a meeting gets no agenda. The values are the codes in reports and records."""

    CANCELLED = "cancelled"
    ALL_DAY = "all_day"
    PRIVATE = "private"
    LOCKED = "locked"
    OUT_OF_OFFICE = "out_of_office"
    FOCUS_TIME = "focus_time"
    EVENT_TYPE = "event_type"  # any other non-default event type
    NOT_ORGANIZER = "not_organizer"
    NOT_EDITABLE = "not_editable"
    OPTED_OUT_CALENDAR = "opted_out_calendar"
    OPTED_OUT_MARKER = "opted_out_marker"
    OPTED_OUT_USER = "opted_out_user"
    OPTED_OUT_TEAM = "opted_out_team"
    EXTERNAL_GUEST = "external_guest"
    ATTENDEES_OMITTED = "attendees_omitted"
    GROUP_ADDRESS = "group_address"
    NOT_A_MEETING = "not_a_meeting"  # fewer than two people
    NOT_MANAGER_AND_REPORT = "not_manager_and_report"
    NOT_A_TEAM_MEETING = "not_a_team_meeting"
    BAD_RECURRENCE = "bad_recurrence"  # the series cannot be expanded: we cannot tell when
    PAST = "past"
    OUTSIDE_HORIZON = "outside_horizon"

    @property
    def write_forbidden(self) -> bool:
        """True when nothing may be written to the event at all, not even a removal (I6)."""
        return self in _WRITE_FORBIDDEN


_WRITE_FORBIDDEN = frozenset(
    {
        SkipReason.CANCELLED,
        SkipReason.ALL_DAY,
        SkipReason.PRIVATE,
        SkipReason.LOCKED,
        SkipReason.OUT_OF_OFFICE,
        SkipReason.FOCUS_TIME,
        SkipReason.EVENT_TYPE,
        SkipReason.NOT_ORGANIZER,
        SkipReason.NOT_EDITABLE,
    }
)


class AudienceProblem(StrEnum):
    """Why corrective words may not stay in a meeting: someone besides the pair can read them."""

    THIRD_PERSON = "third_person"
    EXTERNAL_GUEST = "external_guest"
    ATTENDEES_OMITTED = "attendees_omitted"
    GROUP_ADDRESS = "group_address"
    NOT_MANAGER_AND_REPORT = "not_manager_and_report"


@dataclass(frozen=True, slots=True)
class Classification:
    """The kind of a meeting; ``reason`` is set for skips.

    ``team`` is the team the agenda belongs to (its goals, locale, time zone);
    ``counterpart`` is the report in a 1:1.
    """

    kind: MeetingKind
    reason: SkipReason | None = None
    team: str | None = None
    counterpart: str | None = None


def skip(reason: SkipReason) -> Classification:
    """A skip classification with ``reason``."""
    return Classification(kind=MeetingKind.SKIP, reason=reason)


def classify_meeting(meeting: Meeting, rules: Rules) -> Classification:
    """Classify ``meeting`` as a 1:1, a team meeting, or a skip with a reason."""
    forbidden = _write_forbidden_reason(meeting)
    if forbidden is not None:
        return skip(forbidden)

    organizer = _organizer(meeting)
    people = _people(meeting.attendees)
    humans = set(people) | {organizer}

    opted_out = _opt_out_reason(meeting, rules, humans)
    if opted_out is not None:
        return skip(opted_out)

    if any(not rules.org.is_internal(email) for email in humans):
        return skip(SkipReason.EXTERNAL_GUEST)
    if meeting.attendees_omitted:
        return skip(SkipReason.ATTENDEES_OMITTED)
    if any(a.group and not a.resource for a in meeting.attendees):
        return skip(SkipReason.GROUP_ADDRESS)
    if len(humans) < 2:
        return skip(SkipReason.NOT_A_MEETING)
    if len(humans) == 2:
        return _classify_pair(humans, rules)
    return _classify_group(meeting.title, humans, rules)


def audience_problem(meeting: Meeting, rules: Rules) -> AudienceProblem | None:
    """Who can read the meeting, as far as a corrective slot is concerned (R4).

    None when only a manager and one report of theirs can (or fewer people:
    a meeting of one). Unlike :func:`classify_meeting`, opt-outs and facts
    that forbid writes play no part: a corrective slot in a meeting that is
    opted out, private or cancelled is still read by everyone invited.
    """
    organizer = _organizer(meeting)
    humans = set(_people(meeting.attendees)) | ({organizer} if organizer else set())
    if any(not rules.org.is_internal(email) for email in humans):
        return AudienceProblem.EXTERNAL_GUEST
    if meeting.attendees_omitted:
        return AudienceProblem.ATTENDEES_OMITTED
    if any(a.group and not a.resource for a in meeting.attendees):
        return AudienceProblem.GROUP_ADDRESS
    if len(humans) > 2:
        return AudienceProblem.THIRD_PERSON
    if (
        len(humans) == 2
        and _classify_pair(humans, rules).reason is SkipReason.NOT_MANAGER_AND_REPORT
    ):
        return AudienceProblem.NOT_MANAGER_AND_REPORT
    return None


def _write_forbidden_reason(meeting: Meeting) -> SkipReason | None:
    if meeting.status is Status.CANCELLED:
        return SkipReason.CANCELLED
    if meeting.all_day:
        return SkipReason.ALL_DAY
    if meeting.visibility in (Visibility.PRIVATE, Visibility.CONFIDENTIAL):
        return SkipReason.PRIVATE
    if meeting.locked:
        return SkipReason.LOCKED
    if meeting.event_type is not EventType.DEFAULT:
        return _EVENT_TYPE_REASONS.get(meeting.event_type, SkipReason.EVENT_TYPE)
    if _organizer(meeting) != meeting.owner.strip().lower():
        return SkipReason.NOT_ORGANIZER
    if not meeting.editable:
        return SkipReason.NOT_EDITABLE
    return None


_EVENT_TYPE_REASONS = {
    EventType.OUT_OF_OFFICE: SkipReason.OUT_OF_OFFICE,
    EventType.FOCUS_TIME: SkipReason.FOCUS_TIME,
}


def _organizer(meeting: Meeting) -> str:
    # Providers name the owner as organizer where that is certain (an ICS
    # entry without ORGANIZER and without attendees is the owner's own). An
    # unknown organizer is not the owner: fail closed.
    return (meeting.organizer or "").strip().lower()


def _people(attendees: Iterable[Attendee]) -> list[str]:
    """Invited people: every attendee that is not a room, equipment or group.

    Declined attendees still count: they were invited, and failing closed
    means a 1:1 with a third person who declined is not a 1:1.
    """
    return [a.email.strip().lower() for a in attendees if not a.resource and not a.group]


def _opt_out_reason(meeting: Meeting, rules: Rules, humans: set[str]) -> SkipReason | None:
    opt_out = rules.opt_out
    if meeting.ref.calendar in opt_out.calendars:
        return SkipReason.OPTED_OUT_CALENDAR
    marker = opt_out.marker.strip().casefold()
    if marker and (marker in meeting.title.casefold() or marker in meeting.description.casefold()):
        return SkipReason.OPTED_OUT_MARKER
    # A person's opt-out covers their 1:1s and the meetings they organize, never
    # a team meeting someone else organizes: one click in a reminder must not
    # switch off a whole team's praise slot (the marker and a team opt-out do that).
    opted = {u.strip().lower() for u in opt_out.users}
    if _organizer(meeting) in opted:
        return SkipReason.OPTED_OUT_USER
    everyone = humans | {a.email.strip().lower() for a in meeting.attendees if not a.resource}
    if len(everyone) <= 2 and everyone & opted:
        return SkipReason.OPTED_OUT_USER
    return None


def _classify_pair(humans: set[str], rules: Rules) -> Classification:
    """Two people: a 1:1 only when one manages a team the other is a member of."""
    index = team_index(rules.org)
    first, second = sorted(humans)
    matches = [
        (position, team, other)
        for manager, other in ((first, second), (second, first))
        for position, team in index.managed_by.get(manager, ())
        if other in team.members
    ]
    if not matches:
        return skip(SkipReason.NOT_MANAGER_AND_REPORT)
    # The same pair in several teams: if any of them opted out, so does the 1:1.
    if any(team.name in rules.opt_out.teams for _, team, _ in matches):
        return skip(SkipReason.OPTED_OUT_TEAM)
    _, team, report = min(matches, key=lambda match: match[0])  # config order
    return Classification(kind=MeetingKind.ONE_ON_ONE, team=team.name, counterpart=report)


def _classify_group(title: str, humans: set[str], rules: Rules) -> Classification:
    """Three or more people: a team meeting by majority or by a title keyword."""
    index = team_index(rules.org)
    present: dict[int, int] = {}
    for email in humans:
        for position in index.teams_of.get(email, ()):
            present[position] = present.get(position, 0) + 1
    best: Team | None = None
    best_present = 0
    if present:
        # Most people present; ties go to the team listed first in the config.
        position, best_present = min(present.items(), key=lambda item: (-item[1], item[0]))
        best = rules.org.teams[position]
    majority = best_present * 2 > len(humans)
    if not majority and not _title_has_keyword(title, rules.policy.team_meeting_keywords):
        return skip(SkipReason.NOT_A_TEAM_MEETING)
    if best is not None and best.name in rules.opt_out.teams:
        return skip(SkipReason.OPTED_OUT_TEAM)
    return Classification(kind=MeetingKind.TEAM, team=best.name if best else None)


@dataclass(frozen=True, slots=True)
class TeamIndex:
    """The org's teams by address and name, so classifying costs the same for 2 or 2,000 teams.

    Positions are indexes into ``Org.teams`` (config order breaks ties).
    """

    managed_by: dict[str, tuple[tuple[int, Team], ...]]
    teams_of: dict[str, tuple[int, ...]]
    by_name: dict[str, Team]


# Keyed by id() with the Org kept alive beside its index, so an id is never
# reused while cached; an Org is frozen, so its index never goes stale.
_INDEXES: dict[int, tuple[Org, TeamIndex]] = {}
_MAX_INDEXES = 8


def team_index(org: Org) -> TeamIndex:
    """The (cached) :class:`TeamIndex` of ``org``."""
    cached = _INDEXES.get(id(org))
    if cached is not None and cached[0] is org:
        return cached[1]
    managed: dict[str, list[tuple[int, Team]]] = {}
    teams_of: dict[str, list[int]] = {}
    by_name: dict[str, Team] = {}
    for position, team in enumerate(org.teams):
        managed.setdefault(team.manager.lower(), []).append((position, team))
        for email in team.people:
            teams_of.setdefault(email.lower(), []).append(position)
        by_name.setdefault(team.name, team)
    index = TeamIndex(
        managed_by={k: tuple(v) for k, v in managed.items()},
        teams_of={k: tuple(v) for k, v in teams_of.items()},
        by_name=by_name,
    )
    if len(_INDEXES) >= _MAX_INDEXES:
        _INDEXES.clear()
    _INDEXES[id(org)] = (org, index)
    return index


def _title_has_keyword(title: str, keywords: tuple[str, ...]) -> bool:
    pattern = _keyword_pattern(keywords)
    return pattern is not None and pattern.search(title) is not None


@lru_cache(maxsize=64)
def _keyword_pattern(keywords: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex matching any keyword as a whole word ("stand-up", not "standupish")."""
    words = [re.escape(k.strip()) for k in keywords if k.strip()]
    if not words:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(words) + r")(?!\w)", re.IGNORECASE)
