"""The org directory protocol: who reports to whom, whatever the source.

A directory reader answers one question per manager (their direct reports)
and is closed after use. :func:`merge_teams` folds its answers into the teams
from the config; it knows nothing about where the answers came from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from feedback_agendas.agendas.policy import Team
from feedback_agendas.integrations.config_types import FrozenModel


@dataclass(frozen=True, slots=True)
class ManagerReports:
    """One manager and the addresses of their direct reports (lower case)."""

    manager: str
    reports: frozenset[str]


class DirectoryReader(Protocol):
    """Who reports to whom.

    ``reports_of`` raises :class:`~feedback_agendas.agendas.errors.FeedbackAgendasError`
    subclasses (or ``OSError``) when the directory cannot be read; the caller
    then keeps the config's teams.
    """

    def reports_of(self, manager: str) -> ManagerReports:
        """The active direct reports of ``manager`` (all pages)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class DirectoryConfig(FrozenModel):
    """The ``org.directory`` section; each directory's model extends it.

    A subclass declares ``provider: Literal["<its name>"]`` and its own keys.
    """

    provider: str

    def problems_here(self) -> list[tuple[str, str]]:
        """(key, message) for what this section names on this machine and cannot use."""
        return []


@dataclass(frozen=True, slots=True)
class DirectorySpec:
    """What one directory module tells the runtime (exported as ``DIRECTORY``)."""

    name: str
    config: type[DirectoryConfig]
    build: Callable[[Any], DirectoryReader]


def merge_teams(config_teams: Iterable[Team], found: Iterable[ManagerReports]) -> tuple[Team, ...]:
    """Config teams, plus one team per manager the config does not already cover.

    The config wins: a manager with a configured team keeps exactly that team.
    A manager the directory names without reports adds nothing.
    """
    teams = list(config_teams)
    configured = {t.manager for t in teams}
    names = {t.name for t in teams}
    for entry in sorted(found, key=lambda e: e.manager):
        if entry.manager in configured or not entry.reports:
            continue
        name = f"directory:{entry.manager}"
        if name in names:
            continue
        teams.append(Team(name=name, manager=entry.manager, members=entry.reports))
        names.add(name)
    return tuple(teams)
