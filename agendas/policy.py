"""The organisation and the admin's policy, as the core sees them.

``scheduler.config`` validates the YAML file and builds these frozen objects;
the core never reads a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo


class Focus(StrEnum):
    """The single focus of a 1:1 agenda (R5). ``rotate`` cycles well/better/stop."""

    WELL = "well"
    BETTER = "better"
    STOP = "stop"
    ROTATE = "rotate"


@dataclass(frozen=True, slots=True)
class Team:
    """A manager and their team. Addresses are lower case.

    The one shape of a team past the config: the core plans agendas with it
    and reminders go through it (``notify`` are the team's channels; a
    manager's own channels are the config's ``people``, by address).
    """

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

    @property
    def zone(self) -> tzinfo:
        """The team's time zone (the config validated its name)."""
        return ZoneInfo(self.timezone)

    def positive_only_on(self, day: date) -> bool:
        """True when ``day`` (in the team's zone) is in the positive-only period (R2)."""
        return self.positive_only_until is not None and day <= self.positive_only_until


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

    def with_opted_out_users(self, users: frozenset[str]) -> Rules:
        """These rules with ``users`` (lower case) opted out too; the same object if none is new."""
        added = users - self.opt_out.users
        if not added:
            return self
        return replace(self, opt_out=replace(self.opt_out, users=self.opt_out.users | added))
