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
    return merge_directory_teams(cfg, ask_directory(cfg, directory_factory) or [])


def ask_directory(
    cfg: AppConfig, directory_factory: DirectoryFactory | None = None
) -> list[ManagerReports] | None:
    """The reports of every manager to ask (:func:`managers_to_ask`); None when it failed.

    A config without ``org.directory`` asks nothing and gets ``[]``.
    """
    settings = cfg.org.directory
    if settings is None:
        return []
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
        return None
    return found


def merge_directory_teams(cfg: AppConfig, found: list[ManagerReports]) -> Rules:
    """``cfg``'s rules plus a team for each manager in ``found`` the config does not cover.

    Pure: the directory's answer may be an earlier one, so that a new config
    (a reload) applies at once without asking the directory again.
    """
    rules = cfg.rules()
    if cfg.org.directory is None or not found:
        return rules
    configured = {team.name for team in rules.org.teams}
    teams = tuple(
        team if team.name in configured else with_directory_settings(cfg, team)
        for team in merge_teams(rules.org.teams, found)
    )
    return dataclasses.replace(rules, org=dataclasses.replace(rules.org, teams=teams))


def with_directory_settings(cfg: AppConfig, team: Team) -> Team:
    """A team the directory found, with ``org.team_defaults`` and its manager's entry applied."""
    return dataclasses.replace(team, **cfg.org.directory_team_settings(team.manager))


class RulesCache:
    """The daemon's rules, with the directory asked at most once a day.

    After a failure the directory's last good answer stays in use (teams do
    not flicker away during an outage), merged into the current config, and
    the directory is asked again an hour later.
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
        self._found: list[ManagerReports] | None = None  # the last good answer
        self._asked: tuple[object, list[str]] | None = None  # what it answered
        self._next_refresh: datetime | None = None

    def rules(self, now: datetime) -> Rules:
        """The current rules; asks the directory when a refresh is due."""
        if self._rules is None or (self._next_refresh is not None and now >= self._next_refresh):
            self.refresh(now)
        assert self._rules is not None
        return self._rules

    def refresh(self, now: datetime) -> Rules:
        """Ask the directory now (a config without ``org.directory`` is never asked again)."""
        found = ask_directory(self.cfg, self.directory_factory)
        if found is not None:
            self._found = found
            self._asked = _question(self.cfg)
        rules = self._keep(merge_directory_teams(self.cfg, self._found or []))
        if self.cfg.org.directory is None:
            self._next_refresh = None
        else:
            answered = found is not None
            self._next_refresh = now + (self.refresh_every if answered else RETRY_AFTER_FAILURE)
        return rules

    def use_config(self, cfg: AppConfig, now: datetime) -> Rules:
        """The rules of ``cfg`` (a reload, or calendars found or lost).

        The directory is asked again only when the question changed (its
        settings, or the calendar owners to ask about); otherwise its last
        answer is merged into ``cfg`` at once.
        """
        self.cfg = cfg
        if self._found is not None and self._asked == _question(cfg):
            return self._keep(merge_directory_teams(cfg, self._found))
        return self.refresh(now)

    def _keep(self, rules: Rules) -> Rules:
        # The same object while nothing changed: the daemon recomputes its fingerprint only then.
        if rules != self._rules:
            self._rules = rules
        assert self._rules is not None
        return self._rules


def _question(cfg: AppConfig) -> tuple[object, list[str]]:
    """What the directory is asked for ``cfg``: its settings and the managers."""
    return cfg.org.directory, managers_to_ask(cfg)
