"""What ``check-config`` checks beyond the file itself: this machine, without the network.

:func:`~feedback_agendas.scheduler.config.source.load_config` validates the file. A valid file can
still name a folder that is not there or a key file anyone may read; ``sync``
and the daemon then fail that calendar on every cycle. Before they run,
:func:`check_located` looks at what they will meet, using the same functions
they use wherever there is one, so that ``check-config`` never says ok for a
config that ``sync`` then rejects:

* what each calendar entry, calendar source and ``org.directory`` names here, as its provider
  checks it (``problems_here``): a vdir folder exists and can be read and
  written; a credentials file is readable by us, private (no permissions for
  group or others), and loadable the way the provider loads it;
* SQLite storage: the database's folder exists and is writable, and an
  existing database is a writable SQLite file at a revision this version
  knows (PostgreSQL needs the network: not checked);
* notification channels: apprise can use each ``notify`` URL (parsed only; a
  message names the channel by its place in the file, never by its URL);
* teams: a manager is not also listed as a member of the same team; a config
  without teams and without ``org.directory`` gives no 1:1 an agenda;
* templates: every agenda template (the admin's folder, or ours) compiles and
  renders with sample data within the sandbox's limits, with the configured
  opt-out marker, exactly as at start-up.

Each problem is ``FILE:LINE: key.path: message``, the line being the key's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from feedback_agendas.agendas.errors import ConfigError
from feedback_agendas.integrations.config_types import Loc, path_kind
from feedback_agendas.integrations.config_types import folder_problem as _folder_problem
from feedback_agendas.integrations.directory.base import DirectoryConfig
from feedback_agendas.scheduler.config.schema import _SQLITE, AppConfig
from feedback_agendas.scheduler.config.source import UNFORESEEN, LocatedConfig, load_config_located

Problem = tuple[Loc, str]


def check_config(path: Path, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every problem in the config file at ``path``, and in what it names on this machine.

    An empty list means valid. Beyond what loading the file finds
    (:func:`~feedback_agendas.scheduler.config.source.load_config`), this checks
    folders, files, permissions, teams and templates without the network
    (:func:`check_located`).
    """
    try:
        located = load_config_located(path, environ)
    except ConfigError as exc:
        return exc.problems
    try:
        return check_located(located)
    except Exception as exc:  # as in load_config: a bug here is a message, not a traceback
        return [f"{path}: {UNFORESEEN} ({type(exc).__name__})"]


def check_located(located: LocatedConfig) -> list[str]:
    """Every problem of ``located``'s config on this machine, in file order."""
    cfg = located.config
    found = [
        *_calendar_problems(cfg),
        *_source_problems(cfg),
        *_directory_problems(cfg),
        *_storage_problems(cfg),
        *_team_problems(cfg),
        *_channel_problems(cfg),
        *_template_problems(cfg),
    ]
    problems = [located.problem(loc, message) for loc, message in found]
    return [text for _line, text in sorted(dict.fromkeys(problems), key=lambda p: p[0])]


def _calendar_problems(cfg: AppConfig) -> list[Problem]:
    """What each entry names on this machine and cannot use (its provider checks)."""
    return [
        (("calendars", index, key), message)
        for index, calendar in enumerate(cfg.calendars)
        for key, message in calendar.problems_here()
    ]


def _source_problems(cfg: AppConfig) -> list[Problem]:
    """What each ``discover:`` entry names here (placed at its entry in ``calendars``)."""
    return [
        (("calendar_sources", index, key), message)
        for index, source in enumerate(cfg.calendar_sources)
        for key, message in source.problems_here()
    ]


def _directory_problems(cfg: AppConfig) -> list[Problem]:
    directory: DirectoryConfig | None = cfg.org.directory
    if directory is None:
        return []
    return [(("org", "directory", key), message) for key, message in directory.problems_here()]


def _storage_problems(cfg: AppConfig) -> list[Problem]:
    sqlite = _SQLITE.match(cfg.storage.url)
    if sqlite is None or not sqlite["path"] or sqlite["path"] == ":memory:":
        return []  # PostgreSQL (needs the network) or an in-memory database
    file = Path(sqlite["path"])
    where: Loc = ("storage", "url")
    folder = _folder_problem(file.parent)
    if folder:
        return [(where, f"the database's {folder}")]
    kind = path_kind(file)
    if kind is not None and kind != "file":
        return [(where, f"the database {file} is not a file")]
    if kind == "file" and not os.access(file, os.R_OK | os.W_OK):
        return [(where, f"cannot write to the database {file}")]
    if kind == "file":
        problem = _sqlite_problem(file)
        if problem:
            return [(where, problem)]
    return []


def _sqlite_problem(file: Path) -> str | None:
    """Open read-only: a file that is no database, or one a newer version migrated."""
    import sqlite3

    from alembic.script import ScriptDirectory

    from feedback_agendas.scheduler.storage.migrations import alembic_config

    try:
        connection = sqlite3.connect(f"{file.as_uri()}?mode=ro", uri=True)
        try:
            connection.execute("PRAGMA schema_version").fetchone()  # an empty file is fine too
            versioned = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
            ).fetchone()
            row = (
                connection.execute("SELECT version_num FROM alembic_version").fetchone()
                if versioned
                else None
            )
        finally:
            connection.close()
    except sqlite3.Error:
        return f"{file} is not a SQLite database"
    script = ScriptDirectory.from_config(alembic_config())
    if row is not None and row[0] not in {rev.revision for rev in script.walk_revisions()}:
        # As Store.open would say, before it refuses to start.
        return (
            f"the database is at revision {row[0]}, which this version of feedback-agendas "
            f"does not know (newest known: {script.get_current_head()}); upgrade feedback-agendas"
        )
    return None


def _channel_problems(cfg: AppConfig) -> list[Problem]:
    from feedback_agendas.integrations.notify.apprise_notifier import is_usable_channel

    places: list[tuple[Loc, str]] = (
        [
            (("org", "teams", t, "notify", n), url.get_secret_value())
            for t, team in enumerate(cfg.org.teams)
            for n, url in enumerate(team.notify)
        ]
        + [
            (("people", p, "notify", n), url.get_secret_value())
            for p, person in enumerate(cfg.people)
            for n, url in enumerate(person.notify)
        ]
        + [
            (("org", "team_defaults", "notify", n), url.get_secret_value())
            for n, url in enumerate(cfg.org.team_defaults.notify)
        ]
    )
    if cfg.reminders.email is not None:
        # As it is used: with someone's address in it.
        sample = cfg.reminders.email.get_secret_value().replace("{address}", "someone@example.com")
        places.append((("reminders", "email"), sample))
    return [
        (loc, "apprise cannot use this URL (check its scheme and parts)")
        for loc, url in places
        if not is_usable_channel(url)
    ]


def _team_problems(cfg: AppConfig) -> list[Problem]:
    problems: list[Problem] = []
    # A calendar source (discover:) brings each person's manager: teams come with it.
    if not cfg.org.configured_teams and cfg.org.directory is None and not cfg.calendar_sources:
        problems.append(
            (
                ("org", "teams"),
                "no teams and no org.directory: no 1:1 would ever get an agenda "
                "(list a team, or set org.directory)",
            )
        )
    for index, team in enumerate(cfg.org.teams):
        manager = team.manager.lower()
        for position, member in enumerate(team.members):
            if member.lower() == manager:
                problems.append(
                    (
                        ("org", "teams", index, "members", position),
                        f"{member} is this team's manager; list the manager only as manager",
                    )
                )
    return problems


def _template_problems(cfg: AppConfig) -> list[Problem]:
    from feedback_agendas.scheduler.service.commands import make_renderer

    where: Loc = ("policy", "templates") if cfg.policy.templates else ("opt_out", "marker")
    try:
        make_renderer(cfg)  # what sync and the daemon build first: it renders every template
    except ConfigError as exc:
        return [(where, problem) for problem in exc.problems]
    return []
