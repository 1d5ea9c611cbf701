"""The org directory protocol: who reports to whom, whatever the source.

A directory reader answers one question per manager (their direct reports)
and is closed after use. :func:`merge_teams` folds its answers into the teams
from the config; it knows nothing about where the answers came from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from feedback_agendas.agendas.policy import Team


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
