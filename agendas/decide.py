"""What should happen to one event: the core's whole decision, with no side effects.

``decide`` classifies the meeting, picks the occurrence the agenda is for,
plans and renders the block and merges it into the description. It returns
an immutable :class:`Decision`; the runtime carries it out (write, or not).

Fail-closed rules applied here:

- a write-forbidden skip (I6) never produces a write, not even a removal;
- any other skip removes our block if it is still unedited (I4: a 1:1 that
  gained a third person or an outside guest loses its corrective slot), and
  leaves a block the user edited alone (I3);
- past and far-future occurrences are left as they are;
- corrective words never stay unnoticed in a meeting that is no longer a
  1:1 (R4, issue 9): our unedited block is removed (or replaced) as above,
  and a block with a corrective slot that is not ours to remove (the
  manager filled it in, or we cannot tell it is ours) becomes a
  ``PRIVACY_CONFLICT``: left as it is, with the reason the audience is
  wrong, for the runtime to tell the manager privately.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from enum import StrEnum

from feedback_agendas.agendas.block import (
    KnownHashes,
    MergeOutcome,
    has_block,
    holds_corrective_slot,
    known_hashes,
    merge_block,
)
from feedback_agendas.agendas.classify import (
    Classification,
    MeetingKind,
    SkipReason,
    audience_problem,
    classify_meeting,
    skip,
    team_index,
)
from feedback_agendas.agendas.model import Meeting
from feedback_agendas.agendas.plan import AgendaPlan, plan_agenda, team_zone
from feedback_agendas.agendas.policy import Rules
from feedback_agendas.agendas.recurrence import RecurrenceError, next_occurrence
from feedback_agendas.agendas.render import AgendaRenderer


class ActionKind(StrEnum):
    INSERTED = "inserted"
    UPDATED = "updated"
    REMOVED = "removed"
    UNCHANGED = "unchanged"
    LEFT_EDITED = "left_edited"
    SKIPPED = "skipped"
    # A corrective slot we may not remove sits in a meeting others can read.
    PRIVACY_CONFLICT = "privacy_conflict"


_WRITES = frozenset({ActionKind.INSERTED, ActionKind.UPDATED, ActionKind.REMOVED})
_NO_AGENDA = frozenset({ActionKind.SKIPPED, ActionKind.PRIVACY_CONFLICT})
# We are not the organizer or may not write: the event is someone else's to fix.
_NOT_OURS = frozenset({SkipReason.NOT_ORGANIZER, SkipReason.NOT_EDITABLE})


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one event.

    ``reason`` is the skip code (also set when a block was removed because the
    meeting no longer qualifies). ``description`` is the new description when
    a write is needed, else None. ``block_hash`` is the hash of our block in
    the event after this decision (None: no block of ours). ``revisit_at`` is
    when the decision may change without any edit to the event (None: never).
    ``privacy_conflict`` is the audience problem (an
    :class:`~feedback_agendas.agendas.classify.AudienceProblem` code) when corrective words
    are left in a meeting that is no longer a 1:1, else None.
    """

    meeting: Meeting
    classification: Classification
    plan: AgendaPlan | None
    action: ActionKind
    reason: str | None
    description: str | None
    block_hash: str | None
    revisit_at: datetime | None
    privacy_conflict: str | None = None

    @property
    def needs_write(self) -> bool:
        """True when the event's description must be written."""
        return self.action in _WRITES and self.description is not None

    @property
    def slots(self) -> tuple[str, ...]:
        """The slot codes of the agenda this decision keeps or puts in the event."""
        if self.plan is None or self.action in _NO_AGENDA:
            return ()
        return self.plan.slots


def decide(
    meeting: Meeting,
    rules: Rules,
    now: datetime,
    renderer: AgendaRenderer,
    known_hash: KnownHashes = None,
) -> Decision:
    """Decide what ``meeting`` should look like at ``now``.

    ``known_hash`` is the hash of the block we wrote last time, or several
    (our record of the event, our record of its series);
    ``meeting.stored_hash`` counts too. A block matching none of them is
    the user's, even when it reads exactly like ours.
    """
    known = known_hashes(known_hash, meeting.stored_hash)
    classification = classify_meeting(meeting, rules)
    decision = _decide(meeting, classification, rules, now, renderer, known)
    return _guard_privacy(decision, rules)


def _guard_privacy(decision: Decision, rules: Rules) -> Decision:
    """Flag corrective words left in a meeting that is no longer a verified 1:1."""
    classification = decision.classification
    if classification.kind is MeetingKind.ONE_ON_ONE or classification.reason in _NOT_OURS:
        return decision
    after = decision.description if decision.needs_write else decision.meeting.description
    if after is None or not holds_corrective_slot(after):
        return decision
    problem = audience_problem(decision.meeting, rules)
    if problem is None:
        return decision
    if decision.needs_write:  # ours goes, but an edited copy stays
        return replace(decision, privacy_conflict=problem.value)
    return replace(
        decision,
        action=ActionKind.PRIVACY_CONFLICT,
        reason=problem.value,
        privacy_conflict=problem.value,
    )


def _decide(
    meeting: Meeting,
    classification: Classification,
    rules: Rules,
    now: datetime,
    renderer: AgendaRenderer,
    known: tuple[str, ...],
) -> Decision:
    if classification.kind is MeetingKind.SKIP:
        assert classification.reason is not None
        return _decide_skip(meeting, classification, classification.reason, known)

    try:
        occurrence = next_occurrence(meeting, now)
    except RecurrenceError:
        # We cannot tell when it happens: leave it as it is.
        return _leave_alone(meeting, skip(SkipReason.BAD_RECURRENCE), known)
    if occurrence is None:
        return _leave_alone(meeting, classification, known, SkipReason.PAST)
    start, end = occurrence
    horizon = timedelta(days=rules.policy.horizon_days)
    if start > now + horizon:
        return _leave_alone(
            meeting, classification, known, SkipReason.OUTSIDE_HORIZON, revisit_at=start - horizon
        )

    plan = plan_agenda(meeting, classification, rules, start, end)
    body = renderer.render_block(plan, meeting.description_format)
    merged = merge_block(meeting.description, meeting.description_format, body, known)
    action = ActionKind(merged.outcome.value)
    return Decision(
        meeting=meeting,
        classification=classification,
        plan=plan,
        action=action,
        reason=None,
        description=merged.description if action in _WRITES else None,
        block_hash=merged.block_hash,
        revisit_at=_revisit_at(meeting, plan, rules, end),
    )


def _decide_skip(
    meeting: Meeting,
    classification: Classification,
    reason: SkipReason,
    known: tuple[str, ...],
) -> Decision:
    if reason.write_forbidden:
        return _leave_alone(meeting, classification, known)
    merged = merge_block(meeting.description, meeting.description_format, None, known)
    if merged.outcome is MergeOutcome.REMOVED:
        action, description, block_hash = ActionKind.REMOVED, merged.description, None
    elif merged.outcome is MergeOutcome.LEFT_EDITED:
        action, description, block_hash = ActionKind.LEFT_EDITED, None, merged.block_hash
    else:
        action, description, block_hash = ActionKind.SKIPPED, None, None
    return Decision(
        meeting=meeting,
        classification=classification,
        plan=None,
        action=action,
        reason=reason.value,
        description=description,
        block_hash=block_hash,
        revisit_at=None,
    )


def _leave_alone(
    meeting: Meeting,
    classification: Classification,
    known: tuple[str, ...],
    reason: SkipReason | None = None,
    revisit_at: datetime | None = None,
) -> Decision:
    """A skip without any write; a block already in the event stays as it is."""
    code = reason or classification.reason
    return Decision(
        meeting=meeting,
        classification=classification,
        plan=None,
        action=ActionKind.SKIPPED,
        reason=code.value if code else None,
        description=None,
        block_hash=known[0] if known and has_block(meeting.description) else None,
        revisit_at=revisit_at,
    )


def _revisit_at(
    meeting: Meeting, plan: AgendaPlan, rules: Rules, occurrence_end: datetime
) -> datetime | None:
    """When the agenda may change with no edit to the event.

    A series' block is for its next occurrence: once that ends, the next one
    (another focus when rotating, maybe outside the positive-only period) is
    due. A single event's agenda never changes by itself.
    """
    if not meeting.is_series:
        return None
    candidates = [occurrence_end]
    team = team_index(rules.org).by_name.get(plan.team or "")
    if plan.positive_only and team is not None and team.positive_only_until is not None:
        day_after = team.positive_only_until + timedelta(days=1)
        candidates.append(datetime.combine(day_after, time(0), tzinfo=team_zone(team.timezone)))
    return min(candidates)
