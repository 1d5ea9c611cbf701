"""The organisation and the admin's policy, as the core sees them.

``scheduler.config`` validates the YAML file and builds these frozen objects;
the core never reads a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum


class Focus(StrEnum):
    """The single focus of a 1:1 agenda (R5). ``rotate`` cycles well/better/stop."""

    WELL = "well"
    BETTER = "better"
    STOP = "stop"
    ROTATE = "rotate"


@dataclass(frozen=True, slots=True)
class Team:
    """A manager and their team. Addresses are lower case."""

    name: str
    manager: str
    members: frozenset[str]
    locale: str = "en"  # en | sv
    timezone: str = "UTC"
    goals: tuple[str, ...] = ()
    positive_only_until: date | None = None  # R2: praise only until this date (inclusive)
    notify: tuple[str, ...] = field(default=(), repr=False)  # URLs may hold tokens

    @property
    def people(self) -> frozenset[str]:
        return self.members | {self.manager}


@dataclass(frozen=True, slots=True)
class Org:
    internal_domains: frozenset[str]
    teams: tuple[Team, ...] = ()

    def is_internal(self, email: str) -> bool:
        domain = email.rpartition("@")[2].lower()
        return domain in self.internal_domains

    def team(self, name: str) -> Team | None:
        return next((t for t in self.teams if t.name == name), None)


@dataclass(frozen=True, slots=True)
class OptOut:
    users: frozenset[str] = frozenset()
    teams: frozenset[str] = frozenset()
    calendars: frozenset[str] = frozenset()
    marker: str = "#no-agenda"


@dataclass(frozen=True, slots=True)
class Policy:
    horizon_days: int = 14
    team_meeting_keywords: tuple[str, ...] = ("standup", "stand-up", "team", "retro", "veckomöte")
    one_on_one_focus: Focus = Focus.BETTER
    # R1/R7: the team-norm sentence closes every agenda unless turned off;
    # a locale -> text mapping here rewords it (missing locales keep ours).
    team_norm_enabled: bool = True
    team_norm_text: dict[str, str] = field(default_factory=dict)
    trust_checkin: bool = True


@dataclass(frozen=True, slots=True)
class Rules:
    """Everything the core needs besides the meeting and ``now``."""

    org: Org
    policy: Policy = field(default_factory=Policy)
    opt_out: OptOut = field(default_factory=OptOut)
