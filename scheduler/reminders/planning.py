"""Which reminders are due, to whom, and what they say.

Planning turns upcoming meetings and recorded wins into outbox rows
(:class:`~scheduler.reminders.outbox.NewReminder`); rendering turns a claimed row into a
message at send time, from template parameters and counts only.

The kinds, and where each one may go:

========================  ===========================  ==========================
kind                      recipient                    channels
========================  ===========================  ==========================
``before_team``           ``team:NAME``                the team's ``notify`` URLs
``before_one_on_one``     the manager's address        the manager's own URLs
                                                       (``people[]``), never a
                                                       team channel
``celebration``           ``team:NAME``                the team's URLs; one per
                                                       team per day (the key)
``digest_team``           ``team:NAME``                the team's URLs, weekly
``digest_manager``        the manager's address        the manager's own URLs
``privacy_conflict``      the manager's address        the manager's own URLs,
                                                       never a team channel
========================  ===========================  ==========================

A ``privacy_conflict`` row tells a manager, at once, that corrective words
(a 1:1 block they filled in, or one we cannot prove is ours) are left in a
meeting that is no longer a 1:1: which meeting (calendar, date and time) and
why (a third person, an outside guest, ...). It never quotes the block.

Misfire and catch-up policy (after downtime, or when the daemon was busy):

- a before-meeting reminder that is late is still sent until its meeting
  starts, and expires then (``expires_at`` = the meeting's start);
- a celebration may be sent up to 24 hours late, then it expires;
- a weekly digest may be sent up to 24 hours after its time, then it expires;
- a row that falls in quiet hours waits for their end (if it would then be
  expired, a before-meeting reminder is moved to just before the quiet hours
  start instead, when that is still ahead);
- nothing is ever sent twice to catch up, so a restart after a long downtime
  sends at most the rows that are still useful, one per key, never a burst of
  stale ones.

The module is longer than most (about 460 lines): planning and the texts a
row is rendered with at send time (the practice tips, the focus labels,
:class:`ReminderRenderer`) share the kinds above and the tips' count per
locale, which a row's ``tip`` indexes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

import feedback_agendas
from feedback_agendas.agendas.classify import MeetingKind
from feedback_agendas.agendas.plan import SlotKind
from feedback_agendas.agendas.policy import Team
from feedback_agendas.integrations.notify.base import Message, channel_id
from feedback_agendas.scheduler.reminders.outbox import NewReminder, OutboxItem

TEMPLATES = Path(feedback_agendas.__file__).resolve().parent / "templates" / "reminders"

BEFORE_TEAM = "before_team"
BEFORE_ONE_ON_ONE = "before_one_on_one"
CELEBRATION = "celebration"
DIGEST_TEAM = "digest_team"
DIGEST_MANAGER = "digest_manager"
PRIVACY_CONFLICT = "privacy_conflict"
PRIVACY_CONFLICT_GRACE = timedelta(days=7)
MEETING_KINDS = (BEFORE_TEAM, BEFORE_ONE_ON_ONE)
# Messages that go to one person (the recipient is an address, never ``team:NAME``):
# they carry that person's link to opt out of agendas, or back in.
PERSONAL_KINDS = frozenset({BEFORE_ONE_ON_ONE, DIGEST_MANAGER, PRIVACY_CONFLICT})

CELEBRATION_GRACE = timedelta(hours=24)
DIGEST_GRACE = timedelta(hours=24)

PRACTICE_TIPS = {
    "en": (
        "Say what you saw, not what you think of the person: 'you summed up the decision "
        "before we left' instead of 'you are so structured'.",
        "Add the impact: what did the behaviour lead to for the team or the customer?",
        "Be quick: feedback given the same day lands better than feedback saved for later.",
        "Say it out loud in the meeting. Written praise is good; spoken praise is better.",
        "Link the praise to one of the team's goals, so everyone sees why it matters.",
    ),
    "sv": (
        "Beskriv vad du såg, inte vad du tycker om personen: 'du sammanfattade beslutet innan "
        "vi gick' i stället för 'du är så strukturerad'.",
        "Lägg till effekten: vad ledde beteendet till för teamet eller kunden?",
        "Var snabb: feedback samma dag landar bättre än feedback som sparas till senare.",
        "Säg det högt på mötet. Skrivet beröm är bra, sagt beröm är bättre.",
        "Koppla berömmet till ett av teamets mål, så att alla ser varför det spelar roll.",
    ),
}

# Keyed by the slot code a row keeps in its "focus" parameter.
FOCUS_LABELS = {
    "en": {
        "well": "this you do well",
        "better": "this you can do better",
        "stop": "this you should stop doing",
    },
    "sv": {
        "well": "det här gör du bra",
        "better": "det här kan du göra bättre",
        "stop": "det här bör du sluta med",
    },
}


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window (in the team's zone) without messages; may cross midnight."""

    start: time
    end: time

    def contains(self, local: datetime) -> bool:
        moment = local.time().replace(tzinfo=None)
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def end_after(self, local: datetime) -> datetime:
        """The first moment after ``local`` at which the quiet hours are over."""
        candidate = local.replace(
            hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0
        )
        if candidate <= local:
            candidate += timedelta(days=1)
        return _normalise(candidate)

    def start_before(self, local: datetime) -> datetime:
        """The last start of the quiet hours at or before ``local``."""
        candidate = local.replace(
            hour=self.start.hour, minute=self.start.minute, second=0, microsecond=0
        )
        if candidate > local:
            candidate -= timedelta(days=1)
        return _normalise(candidate)


def _normalise(local: datetime) -> datetime:
    # Wall-clock arithmetic across a DST change: resolve through UTC and back.
    zone = local.tzinfo
    assert zone is not None
    return local.astimezone(UTC).astimezone(zone)


# A person's own notification URLs by lower-case address (the config's
# ``people``): where a manager's private reminders go, never a team channel.
PersonalChannels = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class ReminderSettings:
    before_team_minutes: int = 60
    before_one_on_one_minutes: int = 60
    quiet_hours: QuietHours | None = None
    celebrations: bool = True
    digest_weekday: int | None = 4  # Monday = 0; None = no digest
    digest_time: time = time(15, 0)


# The slots a 1:1's agenda may hold ("do well" and the corrective ones); a team
# meeting's is SlotKind.PRAISE.
ONE_ON_ONE_SLOTS = frozenset({SlotKind.WELL, SlotKind.BETTER, SlotKind.STOP})


@dataclass(frozen=True, slots=True)
class MeetingSlot:
    """One upcoming meeting occurrence with its agenda slot, as the store records it."""

    occurrence: str  # a stable id of the occurrence (calendar, event, original start)
    kind: MeetingKind
    slot: SlotKind
    team: str | None
    start: datetime
    end: datetime
    # The plan's parameters when the agenda travels in the reminder instead of
    # the event (a calendar we never write), else None.
    agenda: Mapping[str, object] | None = None


def schedule_outside_quiet_hours(
    due: datetime, expires: datetime, zone: tzinfo, quiet: QuietHours | None, *, pull_forward: bool
) -> datetime | None:
    """When a row due at ``due`` may be sent; None if there is no moment before ``expires``."""
    if quiet is None:
        return due if due < expires else None
    local = due.astimezone(zone)
    if not quiet.contains(local):
        return due if due < expires else None
    after = quiet.end_after(local)
    if after < expires:
        return after
    if pull_forward:
        before = quiet.start_before(local) - timedelta(minutes=1)
        if before < expires:
            return before
    return None


def plan_meeting_reminders(
    meetings: Iterable[MeetingSlot],
    teams: Mapping[str, Team],
    personal: PersonalChannels,
    settings: ReminderSettings,
    now: datetime,
) -> list[NewReminder]:
    """Rows for the reminders before team meetings and 1:1s that have not started yet."""
    rows: list[NewReminder] = []
    for meeting in meetings:
        team = teams.get(meeting.team or "")
        if team is None or meeting.start <= now:
            continue
        if meeting.kind is MeetingKind.TEAM and meeting.slot is SlotKind.PRAISE:
            kind, recipient, urls = BEFORE_TEAM, f"team:{team.name}", team.notify
            lead = settings.before_team_minutes
        elif meeting.kind is MeetingKind.ONE_ON_ONE and meeting.slot in ONE_ON_ONE_SLOTS:
            # private: the manager's own channels only, never the team's
            kind, recipient = BEFORE_ONE_ON_ONE, team.manager
            urls = personal.get(team.manager, ())
            lead = settings.before_one_on_one_minutes
        else:
            continue
        due = schedule_outside_quiet_hours(
            meeting.start - timedelta(minutes=lead),
            meeting.start,
            team.zone,
            settings.quiet_hours,
            pull_forward=True,
        )
        if due is None:
            continue
        local_start = meeting.start.astimezone(team.zone)
        params: dict[str, Any] = {
            "locale": team.locale,
            "start": meeting.start.isoformat(),
            "focus": meeting.slot.value,
            "tip": _tip_index(meeting.occurrence, team.locale),
            "positive_only": team.positive_only_on(local_start.date()),
        }
        if meeting.agenda is not None:
            params["agenda"] = dict(meeting.agenda)
        rows += [
            NewReminder(
                kind=kind,
                occurrence=meeting.occurrence,
                recipient=recipient,
                channel=channel_id(url),
                due_at=due,
                expires_at=meeting.start,
                team=team.name,
                params=params,
            )
            for url in urls
        ]
    return rows


def plan_celebration(
    team: Team, day: date, settings: ReminderSettings, now: datetime
) -> list[NewReminder]:
    """Rows for today's celebration of ``team``; the key makes it one per team per day."""
    if not settings.celebrations:
        return []
    expires = now + CELEBRATION_GRACE
    due = schedule_outside_quiet_hours(
        now, expires, team.zone, settings.quiet_hours, pull_forward=False
    )
    if due is None:
        return []
    return [
        NewReminder(
            kind=CELEBRATION,
            occurrence=f"{team.name}:{day.isoformat()}",
            recipient=f"team:{team.name}",
            channel=channel_id(url),
            due_at=due,
            expires_at=expires,
            team=team.name,
            params={"locale": team.locale, "day": day.isoformat()},
        )
        for url in team.notify
    ]


def plan_digests(
    teams: Iterable[Team], personal: PersonalChannels, settings: ReminderSettings, now: datetime
) -> list[NewReminder]:
    """Rows for this week's digests whose time has come (and is less than a day ago)."""
    if settings.digest_weekday is None:
        return []
    rows: list[NewReminder] = []
    for team in teams:
        local = now.astimezone(team.zone)
        monday = local.date() - timedelta(days=local.weekday())
        day = monday + timedelta(days=settings.digest_weekday)
        moment = datetime.combine(day, settings.digest_time, tzinfo=team.zone)
        moment = _normalise(moment).astimezone(now.tzinfo)
        if not moment <= now < moment + DIGEST_GRACE:
            continue
        expires = moment + DIGEST_GRACE
        due = schedule_outside_quiet_hours(
            moment, expires, team.zone, settings.quiet_hours, pull_forward=False
        )
        if due is None:
            continue
        iso_year, iso_week, _ = day.isocalendar()
        week = f"{iso_year}-W{iso_week:02d}"
        params = {"locale": team.locale, "week_start": monday.isoformat(), "week": week}
        occurrence = f"{team.name}:{week}"
        rows += [
            NewReminder(
                kind=DIGEST_TEAM,
                occurrence=occurrence,
                recipient=f"team:{team.name}",
                channel=channel_id(url),
                due_at=due,
                expires_at=expires,
                team=team.name,
                params=params,
            )
            for url in team.notify
        ]
        rows += [
            NewReminder(
                kind=DIGEST_MANAGER,
                occurrence=occurrence,
                recipient=team.manager,
                channel=channel_id(url),
                due_at=due,
                expires_at=expires,
                team=team.name,
                params=params,
            )
            for url in personal.get(team.manager, ())
        ]
    return rows


@dataclass(frozen=True, slots=True)
class PrivacyConflict:
    """Corrective words left in a meeting that is no longer a 1:1: ids and codes only."""

    calendar: str
    event_id: str
    recurrence_id: str | None
    owner: str  # the calendar's owner: the manager whose words they are
    team: str | None  # the team the meeting was classified into, if any
    reason: str  # an AudienceProblem code
    start: datetime  # the meeting (its next occurrence, or its start)


def plan_privacy_alerts(
    conflicts: Iterable[PrivacyConflict],
    teams: Mapping[str, Team],
    personal: PersonalChannels,
    now: datetime,
) -> list[NewReminder]:
    """One private message per conflict to the manager's own channels, due now.

    The manager is the calendar's owner; the message goes through a team they
    manage (the meeting's team first), to the manager's own channels only.
    The key holds the event and the reason, so a conflict is told once, and
    again only when its reason changes.
    """
    rows: list[NewReminder] = []
    for conflict in conflicts:
        owner = conflict.owner.strip().lower()
        managed = [t for t in teams.values() if t.manager == owner and personal.get(t.manager)]
        managed.sort(key=lambda t: t.name != conflict.team)
        if not managed:
            continue
        team = managed[0]
        ident = "\x1f".join(
            (conflict.calendar, conflict.event_id, conflict.recurrence_id or "", conflict.reason)
        )
        occurrence = "privacy:" + hashlib.sha256(ident.encode("utf-8")).hexdigest()[:40]
        params = {
            "locale": team.locale,
            "start": conflict.start.isoformat(),
            "reason": conflict.reason,
            "calendar": conflict.calendar,
        }
        rows += [
            NewReminder(
                kind=PRIVACY_CONFLICT,
                occurrence=occurrence,
                recipient=team.manager,
                channel=channel_id(url),
                due_at=now,
                expires_at=now + PRIVACY_CONFLICT_GRACE,
                team=team.name,
                params=params,
            )
            for url in personal.get(team.manager, ())
        ]
    return rows


def _tip_index(occurrence: str, locale: str) -> int:
    digest = hashlib.sha256(occurrence.encode("utf-8")).digest()
    return digest[0] % len(PRACTICE_TIPS.get(locale, PRACTICE_TIPS["en"]))


@dataclass
class ReminderRenderer:
    """Renders claimed rows with the Jinja templates in ``templates/reminders/<locale>/``.

    One sandboxed environment with ``StrictUndefined``, built once and reused.
    """

    folder: Path = TEMPLATES
    env: SandboxedEnvironment = field(init=False)

    def __post_init__(self) -> None:
        self.env = SandboxedEnvironment(
            loader=FileSystemLoader(str(self.folder)),
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
        )

    def render(
        self,
        item: OutboxItem,
        team: Team,
        counts: Mapping[str, int],
        *,
        opt_out_url: str = "",
        agenda: str = "",
    ) -> Message:
        """The message for ``item``: the first line is the subject, the rest the body.

        ``counts`` are the numbers a celebration or digest shows (praise,
        corrective, vague, streak, one_on_one_praise); nothing else reaches a
        template. Corrective and 1:1 numbers are given for the manager's
        digest only. ``opt_out_url`` is the recipient's own signed link to
        opt out of agendas (or back in); only messages to one person
        (:data:`PERSONAL_KINDS`) show it. ``agenda`` is the meeting's agenda
        as plain text, for a calendar whose events we never write
        (:mod:`feedback_agendas.scheduler.reminders.agenda_text`).
        """
        locale = item.params.get("locale", team.locale)
        if locale not in PRACTICE_TIPS:
            locale = "en"
        zone = team.zone
        context: dict[str, object] = {
            "team": team.name,
            "timezone": team.timezone,
            "positive_only": bool(item.params.get("positive_only", False)),
            "praise": counts.get("praise", 0),
            "corrective": counts.get("corrective", 0),
            "one_on_one_praise": counts.get("one_on_one_praise", 0),
            "vague": counts.get("vague", 0),
            "streak": counts.get("streak", 0),
            "week": item.params.get("week", ""),
            "focus": item.params.get("focus", ""),
            "focus_label": FOCUS_LABELS[locale].get(str(item.params.get("focus", "")), ""),
            "tip": PRACTICE_TIPS[locale][
                int(item.params.get("tip", 0)) % len(PRACTICE_TIPS[locale])
            ],
            "start_local": "",
            "start_date": "",
            "calendar": str(item.params.get("calendar", "")),
            "reason": str(item.params.get("reason", "")),
            "opt_out_url": opt_out_url if item.kind in PERSONAL_KINDS else "",
            "agenda": agenda if item.kind in (BEFORE_TEAM, BEFORE_ONE_ON_ONE) else "",
        }
        if "start" in item.params:
            start = datetime.fromisoformat(str(item.params["start"])).astimezone(zone)
            context["start_local"] = start.strftime("%H:%M")
            context["start_date"] = start.date().isoformat()
        if (
            item.kind in (CELEBRATION, DIGEST_TEAM, DIGEST_MANAGER)
            and "positive_only" not in item.params
        ):
            context["positive_only"] = team.positive_only_on(item.due_at.astimezone(zone).date())
        text = self.env.get_template(f"{locale}/{item.kind}.txt.j2").render(context)
        subject, _, body = text.partition("\n")
        return Message(subject=subject.strip(), body=body.strip() + "\n")
