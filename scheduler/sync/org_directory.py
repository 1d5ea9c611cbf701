"""The org's teams: the config's, plus the managers the directory knows.

With ``org.directory`` set, each calendar owner who does not already manage
a configured team is looked up (``directManager``) and, if they have reports,
becomes the manager of a team ``directory:<address>``. The config wins where
both name a team for a manager. A directory team's settings (locale, time
zone, goals, team channels, positive-only period) come from
``org.team_defaults``, overridden by an ``org.teams`` entry that names only
its manager. The directory may lag by up to 36 hours, so the daemon
asks at most once a day (:class:`RulesCache`).

A directory that cannot be reached (or refuses us) is not fatal: we log a
warning with the error's kind only (messages may quote URLs or credentials
files) and go on with the config's teams.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from feedback_agendas.agendas.errors import FeedbackAgendasError
from feedback_agendas.agendas.policy import Rules, Team
from feedback_agendas.integrations.directory.base import (
    DirectoryConfig,
    DirectoryReader,
    ManagerReports,
    merge_teams,
)
from feedback_agendas.integrations.directory.registry import directory_spec
from feedback_agendas.scheduler.config.schema import AppConfig

log = logging.getLogger(__name__)

REFRESH_EVERY = timedelta(days=1)
# After a failed refresh, keep the last good answer and try again sooner.
RETRY_AFTER_FAILURE = timedelta(hours=1)


DirectoryFactory = Callable[[DirectoryConfig], DirectoryReader]


def build_directory(config: DirectoryConfig) -> DirectoryReader:
    """The reader of ``org.directory``, from the directory registry."""
    return directory_spec(config.provider).build(config)


def managers_to_ask(cfg: AppConfig) -> list[str]:
    """Calendar owners who manage no configured team, lower case, sorted."""
    configured = {team.manager.lower() for team in cfg.org.configured_teams}
    return sorted({c.owner.lower() for c in cfg.calendars} - configured)


def resolve_rules(cfg: AppConfig, directory_factory: DirectoryFactory | None = None) -> Rules:
    """The config's rules, with the directory's teams merged in when ``org.directory`` is set.

    Never raises for a directory failure: it logs a warning and returns
    ``cfg.rules()``.
    """
    return _resolve(cfg, directory_factory)[0]


def _resolve(cfg: AppConfig, directory_factory: DirectoryFactory | None) -> tuple[Rules, bool]:
    """(rules, whether the directory answered); no directory configured counts as answered."""
    rules = cfg.rules()
    settings = cfg.org.directory
    if settings is None:
        return rules, True
    factory = directory_factory or build_directory
    found: list[ManagerReports] = []
    try:
        directory = factory(settings)
        try:
            for manager in managers_to_ask(cfg):
                found.append(directory.reports_of(manager))
        finally:
            directory.close()
    except (FeedbackAgendasError, OSError) as exc:
        log.warning(
            "the org directory could not be read (%s); using the teams in the config",
            type(exc).__name__,
        )
        return rules, False
    configured = {team.name for team in rules.org.teams}
    teams = tuple(
        team if team.name in configured else with_directory_settings(cfg, team)
        for team in merge_teams(rules.org.teams, found)
    )
    return dataclasses.replace(rules, org=dataclasses.replace(rules.org, teams=teams)), True


def with_directory_settings(cfg: AppConfig, team: Team) -> Team:
    """A team the directory found, with ``org.team_defaults`` and its manager's entry applied."""
    return dataclasses.replace(team, **cfg.org.directory_team_settings(team.manager))


class RulesCache:
    """The daemon's rules, with the directory asked at most once a day.

    After a failure the last good rules stay in use (teams do not flicker
    away during an outage) and the directory is asked again an hour later.
    """

    def __init__(
        self,
        cfg: AppConfig,
        directory_factory: DirectoryFactory | None = None,
        *,
        refresh_every: timedelta = REFRESH_EVERY,
    ) -> None:
        self.cfg = cfg
        self.directory_factory = directory_factory
        self.refresh_every = refresh_every
        self._rules: Rules | None = None
        self._next_refresh: datetime | None = None

    def rules(self, now: datetime) -> Rules:
        """The current rules; asks the directory when a refresh is due."""
        if self._rules is None or (self._next_refresh is not None and now >= self._next_refresh):
            self.refresh(now)
        assert self._rules is not None
        return self._rules

    def refresh(self, now: datetime) -> Rules:
        """Ask the directory now (a config without ``org.directory`` is never asked again)."""
        rules, answered = _resolve(self.cfg, self.directory_factory)
        if answered or self._rules is None:
            self._rules = rules
        if self.cfg.org.directory is None:
            self._next_refresh = None
        else:
            self._next_refresh = now + (self.refresh_every if answered else RETRY_AFTER_FAILURE)
        return self._rules
