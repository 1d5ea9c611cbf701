"""Reason codes and actions in words a person understands, in one place.

The codes (:class:`~feedback_agendas.agendas.classify.SkipReason`,
:class:`~feedback_agendas.agendas.classify.AudienceProblem`, and the runtime's codes for events
skipped before any decision) are what reports, records and metrics carry.
These sentences are what an admin reads in ``feedback-agendas preview`` (and
what a later dashboard can show): every code has one, a test makes sure of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from feedback_agendas.agendas.classify import AudienceProblem, MeetingKind, SkipReason
from feedback_agendas.agendas.decide import ActionKind

SKIP_REASON_TEXT: Mapping[SkipReason, str] = MappingProxyType(
    {
        SkipReason.CANCELLED: "The meeting is cancelled.",
        SkipReason.ALL_DAY: "It is an all-day event, not a meeting.",
        SkipReason.PRIVATE: "The event is marked private, so we never touch it.",
        SkipReason.LOCKED: "The event is locked against changes.",
        SkipReason.OUT_OF_OFFICE: "It is an out-of-office entry, not a meeting.",
        SkipReason.FOCUS_TIME: "It is focus time, not a meeting.",
        SkipReason.EVENT_TYPE: (
            "It is not a plain meeting (a working location, a birthday or an event from Gmail)."
        ),
        SkipReason.NOT_ORGANIZER: (
            "Someone else organizes this meeting; only the organizer's copy gets an agenda."
        ),
        SkipReason.NOT_EDITABLE: "The calendar does not let us change this event.",
        SkipReason.OPTED_OUT_CALENDAR: "This calendar is opted out of agendas in the config.",
        SkipReason.OPTED_OUT_MARKER: (
            "The title or description holds the opt-out marker (such as #no-agenda)."
        ),
        SkipReason.OPTED_OUT_USER: (
            "The organizer, or the other person in this meeting of two, has opted out of agendas."
        ),
        SkipReason.OPTED_OUT_TEAM: "The meeting's team has opted out of agendas.",
        SkipReason.EXTERNAL_GUEST: (
            "Someone outside the organisation's domains takes part, so there is no agenda."
        ),
        SkipReason.ATTENDEES_OMITTED: (
            "The guest list is hidden or cut short, so we cannot tell who would read the agenda."
        ),
        SkipReason.GROUP_ADDRESS: (
            "A group or mailing-list address is invited, so we cannot tell who would read "
            "the agenda."
        ),
        SkipReason.NOT_A_MEETING: "Fewer than two people take part.",
        SkipReason.NOT_MANAGER_AND_REPORT: (
            "Two people meet, but not a manager and one of their reports, so it is not a 1:1."
        ),
        SkipReason.NOT_A_TEAM_MEETING: (
            "It is neither a 1:1 nor a team meeting: the title has none of the team-meeting "
            "words, or the people are not one team."
        ),
        SkipReason.BAD_RECURRENCE: (
            "The repeat rule of this series cannot be read, so we cannot tell when it is."
        ),
        SkipReason.PAST: "The meeting is over.",
        SkipReason.OUTSIDE_HORIZON: (
            "The next meeting is further ahead than we prepare agendas for "
            "(policy.horizon_days); it gets one nearer the time."
        ),
    }
)

AUDIENCE_PROBLEM_TEXT: Mapping[AudienceProblem, str] = MappingProxyType(
    {
        AudienceProblem.THIRD_PERSON: "A third person now takes part.",
        AudienceProblem.EXTERNAL_GUEST: "Someone outside the organisation now takes part.",
        AudienceProblem.ATTENDEES_OMITTED: "The guest list is now hidden or cut short.",
        AudienceProblem.GROUP_ADDRESS: "A group address is now invited.",
        AudienceProblem.NOT_MANAGER_AND_REPORT: (
            "The two people are no longer a manager and their report."
        ),
    }
)

# Codes the runtime gives an event it skipped before any decision.
RUNTIME_REASON_TEXT: Mapping[str, str] = MappingProxyType(
    {
        "malformed": "The event could not be read (its calendar data is malformed).",
        "unstorable_id": "The event's id is too long or holds a control character.",
        "unreadable": "The event could not be read from the calendar just now.",
        "invalid_data": "The event holds data we cannot handle.",
        "reverted": "Our agenda was removed by `feedback-agendas revert`.",
    }
)

ACTION_TEXT: Mapping[ActionKind, str] = MappingProxyType(
    {
        ActionKind.INSERTED: "We would add an agenda.",
        ActionKind.UPDATED: "We would update our agenda.",
        ActionKind.REMOVED: "We would remove our agenda.",
        ActionKind.UNCHANGED: "Our agenda is there and up to date; nothing to write.",
        ActionKind.LEFT_EDITED: ("Someone edited the agenda, so we leave it exactly as it is."),
        ActionKind.SKIPPED: "We write nothing to it.",
        ActionKind.PRIVACY_CONFLICT: (
            "Corrective words are left in a meeting that is no longer a 1:1; we cannot remove "
            "them (they were edited), so the manager is told privately."
        ),
    }
)

KIND_TEXT: Mapping[MeetingKind, str] = MappingProxyType(
    {
        MeetingKind.ONE_ON_ONE: "a 1:1 between a manager and their report",
        MeetingKind.TEAM: "a team meeting",
        MeetingKind.SKIP: "not a meeting we prepare",
    }
)


_BY_CODE: Mapping[str, str] = MappingProxyType(
    {
        **{str(code): text for code, text in AUDIENCE_PROBLEM_TEXT.items()},
        **{str(code): text for code, text in SKIP_REASON_TEXT.items()},
        **RUNTIME_REASON_TEXT,
    }
)


def explain_reason(code: str) -> str:
    """The sentence for a reason code; an unknown code is named as it is, never hidden."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if code.startswith("error_"):
        return f"Deciding this event failed ({code.removeprefix('error_')} error); see the logs."
    return f"Reason code {code}."
