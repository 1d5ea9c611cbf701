"""What a sync cycle leaves for the reminders: meeting reminders, privacy alerts, read-backs.

A cycle decides every meeting it saw; from those decisions, for the next
occurrence of each meeting:

- the reminders before the meeting are queued in the outbox (and cancelled
  when the meeting is skipped now);
- the meetings whose slot can give a win are watched for a read-back
  (:mod:`feedback_agendas.scheduler.reminders.readback`);
- a privacy conflict queues its manager's private alert.

Also the reminder side of the config: the reminder settings and the entry
labels of the read-back.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from feedback_agendas.agendas.block import EntryLabels
from feedback_agendas.agendas.decide import ActionKind
from feedback_agendas.agendas.model import EventRef, Meeting
from feedback_agendas.agendas.policy import Team
from feedback_agendas.agendas.recurrence import RecurrenceError, next_occurrence
from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.reminders.agenda_text import plan_params
from feedback_agendas.scheduler.reminders.outbox import Outbox
from feedback_agendas.scheduler.reminders.planning import (
    MEETING_KINDS,
    MeetingSlot,
    PersonalChannels,
    PrivacyConflict,
    QuietHours,
    ReminderSettings,
    plan_meeting_reminders,
    plan_privacy_alerts,
)
from feedback_agendas.scheduler.reminders.readback import (
    READBACK_WINDOW,
    ReadBacks,
    Watched,
    is_read_back,
)
from feedback_agendas.scheduler.storage.tables import MAX_OCCURRENCE_KEY
from feedback_agendas.scheduler.sync.report import CycleReport

log = logging.getLogger(__name__)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def occurrence_key(ref: EventRef, start: datetime) -> str:
    """A stable id of one meeting occurrence: calendar, event and original start.

    A key longer than its columns (an event id of 1,000 characters) keeps its
    head and ends in a digest of the whole key: the same in every process,
    and still unique.
    """
    key = f"{ref.calendar}/{ref.event_id}/{ref.recurrence_id or start.astimezone(UTC).isoformat()}"
    if len(key) <= MAX_OCCURRENCE_KEY:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{key[: MAX_OCCURRENCE_KEY - len(digest) - 1]}#{digest}"


def next_span(meeting: Meeting, now: datetime) -> tuple[datetime, datetime] | None:
    """The occurrence reminders are about: the next one of a series, else the event itself."""
    if meeting.is_series:
        try:
            return next_occurrence(meeting, now - READBACK_WINDOW)
        except RecurrenceError:  # an unreadable rule: no reminders, the engine logs the event
            return None
    return meeting.start, meeting.end


def queue_after_cycle(
    report: CycleReport,
    now: datetime,
    *,
    outbox: Outbox,
    teams: Mapping[str, Team],
    personal: PersonalChannels,
    settings: ReminderSettings,
    readbacks: ReadBacks,
    agenda_in_reminder: bool = False,
) -> None:
    """Turn a cycle's decisions into reminder rows, privacy alerts and meetings to read back.

    ``agenda_in_reminder``: the calendar's events are never written (its
    provider's ``writes_events`` is False), so each reminder before a meeting
    carries the agenda instead, and nothing is read back (no block to read).
    """
    slots: list[MeetingSlot] = []
    watch: list[Watched] = []
    for decision in report.decisions:
        meeting = decision.meeting
        span = next_span(meeting, now)
        if span is None:
            continue
        start, end = span
        key = occurrence_key(meeting.ref, start)
        plan = decision.plan
        if decision.action is ActionKind.SKIPPED or not decision.slots or plan is None:
            outbox.cancel(key, MEETING_KINDS, now)
            continue
        slot = MeetingSlot(
            occurrence=key,
            kind=decision.classification.kind,
            slot=plan.slot,
            team=decision.classification.team,
            start=start,
            end=end,
            agenda=plan_params(plan) if agenda_in_reminder else None,
        )
        slots.append(slot)
        if slot.team and is_read_back(slot.kind, slot.slot) and not agenda_in_reminder:
            watch.append(Watched(key, meeting.ref, slot.team, end, slot.slot))
    outbox.enqueue(plan_meeting_reminders(slots, teams, personal, settings, now), now)
    enqueue_privacy_alerts(outbox, teams, personal, [report], now)
    readbacks.watch(watch)


def enqueue_privacy_alerts(
    outbox: Outbox,
    teams: Mapping[str, Team],
    personal: PersonalChannels,
    reports: list[CycleReport],
    now: datetime,
) -> int:
    """Queue, due now, the managers' private messages about the cycles' privacy conflicts."""
    conflicts = [c for report in reports for c in _conflicts(report, now)]
    if not conflicts:
        return 0
    rows = plan_privacy_alerts(conflicts, teams, personal, now)
    for conflict in conflicts:
        owner = conflict.owner.strip().lower()
        if not any(t.manager == owner and personal.get(t.manager) for t in teams.values()):
            log.warning(
                "calendar %s: privacy conflict in event %s (%s): its manager has no private"
                " channel (people[].notify) to be told through",
                conflict.calendar,
                conflict.event_id,
                conflict.reason,
            )
    return outbox.enqueue(rows, now)


def _conflicts(report: CycleReport, now: datetime) -> list[PrivacyConflict]:
    """The cycle's privacy conflicts, as the manager's alert needs them: ids and codes."""
    conflicts = []
    for decision in report.privacy_conflicts():
        meeting = decision.meeting
        span = next_span(meeting, now)
        conflicts.append(
            PrivacyConflict(
                calendar=meeting.ref.calendar,
                event_id=meeting.ref.event_id,
                recurrence_id=meeting.ref.recurrence_id,
                owner=meeting.owner,
                team=decision.classification.team,
                reason=str(decision.privacy_conflict),
                start=span[0] if span else meeting.start,
            )
        )
    return conflicts


# -- the reminder side of the config ------------------------------------------


def reminder_settings(cfg: AppConfig) -> ReminderSettings:
    """The reminder settings of the config (``reminders``)."""
    r = cfg.reminders
    quiet = QuietHours(r.quiet_hours.start, r.quiet_hours.end) if r.quiet_hours else None
    digest = r.weekly_digest
    return ReminderSettings(
        before_team_minutes=r.before_team_meeting_minutes,
        before_one_on_one_minutes=r.before_one_on_one_minutes,
        quiet_hours=quiet,
        celebrations=r.celebrations,
        digest_weekday=WEEKDAYS.index(digest.weekday) if digest else None,
        digest_time=digest.time if digest else ReminderSettings().digest_time,
    )


def entry_labels(cfg: AppConfig) -> EntryLabels:
    """Our entry labels plus the admin's (``policy.entry_labels``), for the read-back."""
    extra = cfg.policy.entry_labels
    return EntryLabels().adding(praise=extra.praise, one_on_one=extra.one_on_one)
