"""What we would write into one person's meetings, and why, without writing anything.

``feedback-agendas preview`` answers an admin's "why did my meeting get (or
not get) an agenda?". It reads the person's calendars in full, makes the same
decision a sync cycle makes (with our records of what we wrote, so an edited
block is recognised as edited), and returns it as data. It never writes:
no provider writes, no cursor, no records, no outbox rows, no run log. Titles
and agenda text are returned for the admin's screen only; nothing here logs
or stores them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from feedback_agendas.agendas.classify import AudienceProblem
from feedback_agendas.agendas.decide import ActionKind, Decision
from feedback_agendas.agendas.errors import UserError
from feedback_agendas.agendas.model import ChangeSet, EventRef, Meeting
from feedback_agendas.agendas.reasons import (
    ACTION_TEXT,
    AUDIENCE_PROBLEM_TEXT,
    KIND_TEXT,
    explain_reason,
)
from feedback_agendas.agendas.recurrence import RecurrenceError, next_occurrence
from feedback_agendas.integrations.calendars.base import (
    CalendarProvider,
    write_notices,
    writes_events,
)
from feedback_agendas.scheduler.config.schema import AppConfig, CalendarConfig
from feedback_agendas.scheduler.service.commands import agenda_text, make_renderer
from feedback_agendas.scheduler.storage.opt_outs import opted_out_addresses
from feedback_agendas.scheduler.storage.store import EventRecord, Store
from feedback_agendas.scheduler.sync.cycle import IN_REMINDER, decide_event
from feedback_agendas.scheduler.sync.failures import describe_failure
from feedback_agendas.scheduler.sync.org_directory import resolve_rules
from feedback_agendas.scheduler.sync.providers import build_provider

IN_REMINDER_TEXT = (
    "This calendar is never written (write_mode reminder): the agenda goes into the"
    " reminder before the meeting instead."
)


@dataclass(frozen=True)
class PreviewItem:
    """One meeting (its next occurrence within the window) and what we would do with it.

    ``reason`` is the code (as in ``sync --json``), ``why`` the sentences a
    person reads; ``agenda`` is the block's text after the cycle (None: no
    agenda of ours would be there).
    """

    calendar: str
    event_id: str
    recurrence_id: str | None
    start: datetime
    end: datetime
    timezone: str
    series: bool
    title: str
    kind: str
    action: str
    slots: tuple[str, ...]
    reason: str | None
    why: str
    agenda: str | None
    # People a write of this meeting would notify (Outlook meeting updates); 0: silent.
    notices: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "calendar": self.calendar,
            "event_id": self.event_id,
            "recurrence_id": self.recurrence_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "timezone": self.timezone,
            "series": self.series,
            "title": self.title,
            "kind": self.kind,
            "action": self.action,
            "slots": list(self.slots),
            "reason": self.reason,
            "why": self.why,
            "agenda": self.agenda,
            "notices": self.notices,
        }


@dataclass(frozen=True)
class Preview:
    user: str
    calendars: tuple[str, ...]
    window_start: datetime
    window_end: datetime
    items: tuple[PreviewItem, ...]
    # Events that could not be read, so get no agenda: (calendar, event id, why).
    unreadable: tuple[tuple[str, str, str], ...] = ()

    @property
    def notices(self) -> int:
        """The meeting updates a sync now would send to attendees (0 where writes are silent)."""
        return sum(item.notices for item in self.items)

    def as_json(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "calendars": list(self.calendars),
            "from": self.window_start.isoformat(),
            "until": self.window_end.isoformat(),
            "meetings": [item.as_json() for item in self.items],
            "unreadable": [
                {"calendar": c, "event_id": e, "why": why} for c, e, why in self.unreadable
            ],
            "notices": self.notices,
        }


def calendars_of(cfg: AppConfig, address: str) -> list[CalendarConfig]:
    """The calendars whose owner or name is ``address`` (case-insensitive)."""
    wanted = address.strip().lower()
    return [c for c in cfg.calendars if wanted in (c.owner.lower(), c.name.lower())]


def preview_user(cfg: AppConfig, address: str, now: datetime, days: int = 14) -> Preview:
    """What a sync at ``now`` would do to ``address``'s meetings in the next ``days`` days.

    Raises :class:`UserError` when no calendar of the config belongs to
    ``address`` or one of them cannot be read (nothing was written either way).
    """
    calendars = calendars_of(cfg, address)
    if not calendars:
        raise UserError(
            f"no calendar in the config has {address!r} as its owner or name "
            f"(calendars: {', '.join(c.name for c in cfg.calendars) or 'none'})"
        )
    if days < 1:
        raise UserError("--days must be at least 1")
    until = now + timedelta(days=days)
    rules = resolve_rules(cfg).with_opted_out_users(_self_opt_outs(cfg))
    renderer = make_renderer(cfg)
    items: list[PreviewItem] = []
    unreadable: list[tuple[str, str, str]] = []
    for calendar in calendars:
        records = _records(cfg, calendar.name)
        changes, provider = _read_all(calendar)
        unreadable += [
            (calendar.name, bad.ref.event_id, explain_reason("malformed"))
            for bad in changes.unreadable
        ]
        for meeting in sorted(changes.meetings, key=lambda m: (m.start, m.ref)):
            decision = decide_event(meeting, rules, now, renderer, records)
            span = _when(meeting, decision, now)
            if span is None or span[0] >= until:
                continue
            notices = write_notices(provider, meeting) if decision.needs_write else 0
            item = _item(calendar.name, meeting, decision, span, notices)
            if decision.needs_write and not writes_events(provider):
                item = replace(
                    item,
                    action=IN_REMINDER,
                    why=f"{item.why} {IN_REMINDER_TEXT}",
                )
            items.append(item)
    items.sort(key=lambda i: (i.start, i.calendar, i.event_id, i.recurrence_id or ""))
    return Preview(
        user=address,
        calendars=tuple(c.name for c in calendars),
        window_start=now,
        window_end=until,
        items=tuple(items),
        unreadable=tuple(unreadable),
    )


def _read_all(calendar: CalendarConfig) -> tuple[ChangeSet, CalendarProvider]:
    """Every event of ``calendar``, and its provider (closed, to ask what a write costs).

    A calendar that cannot be read is a UserError saying why.
    """
    try:
        # No store: a CalDAV provider then finds its collection again rather
        # than remembering it, so the preview stores nothing.
        provider = build_provider(calendar)
        try:
            return provider.read_changes(None), provider
        finally:
            provider.close()
    except Exception as exc:
        failure = describe_failure(exc, calendar=calendar.name)
        if not failure.expected:
            raise
        raise UserError(f"cannot read {failure.message}") from exc


def _records(cfg: AppConfig, calendar: str) -> dict[EventRef, EventRecord]:
    """Our records of ``calendar``; none when the SQLite file does not exist yet.

    Opening a missing SQLite file would create it: a preview before the
    first sync must leave no database behind.
    """
    if not _database_exists(cfg.storage.url):
        return {}
    store = Store.open(cfg.storage.url)
    try:
        return store.records(calendar)
    finally:
        store.close()


def _self_opt_outs(cfg: AppConfig) -> frozenset[str]:
    """The self-service opt-outs, which apply as ``opt_out.users`` does; none without a database."""
    if not _database_exists(cfg.storage.url):
        return frozenset()
    store = Store.open(cfg.storage.url)
    try:
        return opted_out_addresses(store.engine)
    finally:
        store.close()


def _database_exists(url: str) -> bool:
    if url.startswith("sqlite") and ":///" in url:
        file = url.split(":///", 1)[1].split("?", 1)[0]
        return bool(file) and file != ":memory:" and Path(file).exists()
    return True


def _when(meeting: Meeting, decision: Decision, now: datetime) -> tuple[datetime, datetime] | None:
    """The occurrence the decision is about: the next one not yet over; None if none is left."""
    if decision.plan is not None:
        start = decision.plan.occurrence_start
        return start, start + (meeting.end - meeting.start)
    try:
        return next_occurrence(meeting, now)
    except RecurrenceError:  # the reason says so; show it at its first start
        return (meeting.start, meeting.end) if meeting.end > now else None


def _item(
    calendar: str,
    meeting: Meeting,
    decision: Decision,
    span: tuple[datetime, datetime],
    notices: int = 0,
) -> PreviewItem:
    kind = decision.classification.kind
    action = decision.action
    if action is ActionKind.PRIVACY_CONFLICT and decision.privacy_conflict:
        why = [AUDIENCE_PROBLEM_TEXT[AudienceProblem(decision.privacy_conflict)]]
    elif decision.reason is not None:
        why = [explain_reason(decision.reason)]
    else:
        why = [f"It is {KIND_TEXT[kind]}."]
    why.append(ACTION_TEXT[action])
    return PreviewItem(
        calendar=calendar,
        event_id=meeting.ref.event_id,
        recurrence_id=meeting.ref.recurrence_id,
        start=span[0],
        end=span[1],
        timezone=meeting.timezone or "UTC",
        series=meeting.is_series,
        title=meeting.title,
        kind=kind.value,
        action=action.value,
        slots=decision.slots,
        reason=decision.reason,
        why=" ".join(why),
        agenda=agenda_text(decision),
        notices=notices,
    )
