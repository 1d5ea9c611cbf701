"""The agenda carried in a reminder, for calendars whose events we never write.

A calendar whose provider says it must not change its events (Microsoft's
``write_mode: reminder``, where every write would send each attendee an
Outlook update) still gets its meetings classified and planned; the agenda
then travels in the reminder before the meeting instead of in the event:
a 1:1's to the manager alone, a team meeting's to the team's channel.

An outbox row keeps the plan's parameters (kind, slot, team, locale, goals,
the norm sentence), the same settings the config holds, and the text is
rendered at send time with the agenda templates, so the row never holds
message text. A team row that would carry a corrective slot renders
nothing: correction is given one to one only (R4).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from feedback_agendas.agendas.classify import MeetingKind
from feedback_agendas.agendas.model import TextFormat
from feedback_agendas.agendas.plan import AgendaPlan, SlotKind
from feedback_agendas.agendas.render import AgendaRenderer

# The reminder kinds that may carry an agenda, and the meeting kind each is about.
_KIND_OF = {"before_team": MeetingKind.TEAM, "before_one_on_one": MeetingKind.ONE_ON_ONE}


def plan_params(plan: AgendaPlan) -> dict[str, Any]:
    """What an outbox row keeps of ``plan`` to render its agenda at send time."""
    return {
        "kind": plan.kind.value,
        "slot": plan.slot.value,
        "team": plan.team,
        "locale": plan.locale,
        "timezone": plan.timezone,
        "goals": list(plan.goals),
        "norm_enabled": plan.norm_enabled,
        "norm_text": plan.norm_text,
        "trust_checkin": plan.trust_checkin,
        "positive_only": plan.positive_only,
        "start": plan.occurrence_start.isoformat(),
        "end": plan.occurrence_end.isoformat() if plan.occurrence_end else None,
    }


def reminder_agenda(reminder_kind: str, params: Mapping[str, Any], renderer: AgendaRenderer) -> str:
    """The plain-text agenda of a reminder row's ``agenda`` parameters, or "" when it has none.

    "" too when the parameters do not fit the reminder (a team reminder with
    a 1:1's plan, a corrective slot for a team): such a row says less, never
    more than its channel may read.
    """
    wanted = _KIND_OF.get(reminder_kind)
    if wanted is None or not params:
        return ""
    try:
        plan = AgendaPlan(
            kind=MeetingKind(params["kind"]),
            slot=SlotKind(params["slot"]),
            team=params.get("team"),
            locale=str(params["locale"]),
            timezone=str(params["timezone"]),
            goals=tuple(str(g) for g in params.get("goals", ())),
            norm_enabled=bool(params.get("norm_enabled", True)),
            norm_text=params.get("norm_text"),
            trust_checkin=bool(params.get("trust_checkin", False)),
            positive_only=bool(params.get("positive_only", False)),
            occurrence_start=datetime.fromisoformat(str(params["start"])),
            occurrence_end=(
                datetime.fromisoformat(str(params["end"])) if params.get("end") else None
            ),
        )
    except (KeyError, TypeError, ValueError):
        return ""
    if plan.kind is not wanted or (wanted is MeetingKind.TEAM and plan.slot.corrective):
        return ""
    try:
        return renderer.render_block(plan, TextFormat.TEXT).strip()
    except ValueError:
        return ""
