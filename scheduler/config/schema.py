"""The config file's schema: every section as a frozen pydantic model.

:class:`AppConfig` is the whole validated file; :meth:`AppConfig.rules` gives
the core's frozen policy objects. :func:`cross_reference_problems` checks
references between sections (a duplicate name, an opt-out naming no team).
Reading the file, ``${VAR}`` substitution and turning every problem into
``FILE:LINE: key.path: message`` is :mod:`.source`
(:func:`~feedback_agendas.scheduler.config.source.load_config`); the value
types and the base model are :mod:`feedback_agendas.integrations.config_types`,
shared with the providers' own models (a ``calendars[]`` entry is its
provider's model, joined by :func:`config_model` from the registry).

Relative paths (a vdir folder, a credentials file, the template folder, a
relative SQLite file) are resolved against the folder of the config file, so
the daemon behaves the same whatever its working directory.

It is longer than most modules (about 650 lines) because it is the whole file's
shape in one place: every section and the cross-checks between sections, which
read several sections at once. The value types are in
``integrations.config_types``, each provider's entry in its own module, and
reading the YAML in :mod:`.source`.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
import re
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from feedback_agendas.agendas.policy import Focus, OptOut, Org, Policy, Rules, Team
from feedback_agendas.integrations.calendars.base import CalendarConfig as CalendarEntry
from feedback_agendas.integrations.calendars.registry import provider_specs
from feedback_agendas.integrations.config_types import (
    LOOPBACK_HOSTS,
    AgendaText,
    Domain,
    Email,
    EntryLabel,
    FrozenModel,
    HttpUrl,
    Loc,
    Locale,
    Name,
    NonEmptyStr,
    ProblemAt,
    RelativePath,
    TimeZoneName,
    Weekday,
    existing_dir,
    format_key_path,
    resolve_path,
)
from feedback_agendas.integrations.directory.base import DirectoryConfig
from feedback_agendas.integrations.directory.discovery import SourceConfig, source_configs
from feedback_agendas.integrations.directory.registry import directory_specs

_SQLITE = re.compile(r"^(?P<scheme>sqlite(?:\+\w+)?):///(?P<path>[^?]*)(?P<query>\?.*)?$")


class StorageConfig(FrozenModel):
    """Where we keep hashes, ids, cursors and the reminder outbox."""

    # Validated even when omitted, so the default file lands next to the config file.
    url: str = Field(default="sqlite:///feedback-agendas.db", validate_default=True)

    @field_validator("url")
    @classmethod
    def _known_database(cls, url: str, info: ValidationInfo) -> str:
        sqlite = _SQLITE.match(url)
        if sqlite:
            file = sqlite["path"]
            if file and file != ":memory:" and not file.startswith("/"):
                file = str(resolve_path(Path(file), info))
            return f"{sqlite['scheme']}:///{file}{sqlite['query'] or ''}"
        if url in ("sqlite://", "sqlite:///"):
            return url
        scheme, sep, rest = url.partition("://")
        if sep and scheme in ("postgresql", "postgres"):
            # We ship psycopg 3; a bare scheme would make SQLAlchemy look for psycopg2.
            return f"postgresql+psycopg://{rest}"
        if sep and scheme == "postgresql+psycopg":
            return url
        raise ValueError("use sqlite:///FILE or postgresql+psycopg://USER@HOST/DB")


# One ``calendars[]`` entry. Each provider's module declares its own model
# (integrations/calendars/<provider>.py); :func:`config_model` joins them.
CalendarConfig = CalendarEntry


# One ``discover:`` entry of ``calendars``. Each source's module declares its
# own model (integrations/directory/<source>.py); :func:`config_model` joins them.
CalendarDiscovery = SourceConfig


def calendar_entry_positions(calendars: object) -> tuple[list[int], list[int]]:
    """(indices of plain calendars, of ``discover:`` sources) in a raw ``calendars`` list."""
    plain: list[int] = []
    sources: list[int] = []
    if isinstance(calendars, list | tuple):
        for index, entry in enumerate(calendars):
            (sources if isinstance(entry, dict) and "discover" in entry else plain).append(index)
    return plain, sources


def place_in_file(loc: Loc, plain: list[int], sources: list[int]) -> Loc:
    """A validated entry's loc at its place in the file's one ``calendars`` list."""
    if not sources or len(loc) < 2 or not isinstance(loc[1], int):
        return loc
    if loc[0] == "calendars" and loc[1] < len(plain):
        return ("calendars", plain[loc[1]], *loc[2:])
    if loc[0] == "calendar_sources" and loc[1] < len(sources):
        return ("calendars", sources[loc[1]], *loc[2:])
    return loc


class TeamConfig(FrozenModel):
    """A team; an entry that names only its manager (no name, no members) sets the
    settings of the team the directory finds for that manager."""

    name: Name | None = None
    manager: Email
    members: tuple[Email, ...] = ()
    locale: Locale = "en"
    timezone: TimeZoneName = "UTC"
    goals: tuple[AgendaText, ...] = ()
    positive_only_until: date | None = None
    # Apprise URLs often embed tokens or passwords.
    notify: tuple[SecretStr, ...] = ()

    @model_validator(mode="after")
    def _members_need_a_name(self) -> TeamConfig:
        if self.name is None and self.members:
            raise ProblemAt(
                "name",
                "a team with members needs a name (an entry with only a manager sets the "
                "settings of that manager's team from org.directory)",
            )
        return self

    def team(self) -> Team:
        """The core's :class:`~feedback_agendas.agendas.policy.Team`, addresses in lower case."""
        return Team(
            name=self.name or "",
            manager=self.manager.lower(),
            members=frozenset(member.lower() for member in self.members),
            locale=self.locale,
            timezone=self.timezone,
            goals=self.goals,
            positive_only_until=self.positive_only_until,
            notify=tuple(url.get_secret_value() for url in self.notify),
        )


class TeamDefaults(FrozenModel):
    """The settings of every team found through ``org.directory``."""

    locale: Locale = "en"
    timezone: TimeZoneName = "UTC"
    goals: tuple[AgendaText, ...] = ()
    positive_only_until: date | None = None
    # Team channels: off until configured.
    notify: tuple[SecretStr, ...] = ()


class OrgConfig(FrozenModel):
    internal_domains: tuple[Domain, ...] = Field(min_length=1)
    teams: tuple[TeamConfig, ...] = ()
    team_defaults: TeamDefaults = TeamDefaults()
    directory: DirectoryConfig | None = None

    @property
    def configured_teams(self) -> tuple[TeamConfig, ...]:
        """The teams the config lists (not the entries that set a directory team's settings)."""
        return tuple(t for t in self.teams if t.name is not None)

    def directory_team_settings(self, manager: str) -> dict[str, Any]:
        """The settings of the directory's team of ``manager``: the defaults, then its entry's."""
        settings: dict[str, Any] = {
            key: getattr(self.team_defaults, key) for key in TeamDefaults.model_fields
        }
        for team in self.teams:
            if team.name is None and team.manager.lower() == manager.lower():
                settings.update(
                    {k: getattr(team, k) for k in team.model_fields_set if k in settings}
                )
        settings["notify"] = tuple(url.get_secret_value() for url in settings["notify"])
        return settings


class TeamNormConfig(FrozenModel):
    enabled: bool = True
    text: dict[Locale, AgendaText] = Field(default_factory=dict)


class EntryLabelsConfig(FrozenModel):
    """Labels of the entries in an admin's own templates, counted besides ours."""

    praise: tuple[EntryLabel, ...] = ()
    one_on_one: tuple[EntryLabel, ...] = ()


class PolicyConfig(FrozenModel):
    horizon_days: int = Field(default=14, ge=1, le=366)
    team_meeting_keywords: tuple[NonEmptyStr, ...] = (
        "standup",
        "stand-up",
        "team",
        "retro",
        "veckomöte",
    )
    one_on_one_focus: Focus = Focus.BETTER
    team_norm: TeamNormConfig = TeamNormConfig()
    trust_checkin: bool = True
    templates: Annotated[RelativePath, AfterValidator(existing_dir)] | None = None
    entry_labels: EntryLabelsConfig = EntryLabelsConfig()


class OptOutConfig(FrozenModel):
    users: tuple[Email, ...] = ()
    teams: tuple[str, ...] = ()
    calendars: tuple[str, ...] = ()
    marker: NonEmptyStr = "#no-agenda"


def _check_password_hash(value: SecretStr) -> SecretStr:
    from feedback_agendas.scheduler.service.web.passwords import check_hash_format

    check_hash_format(value.get_secret_value())
    return value


class AdminLogin(FrozenModel):
    """Who may log in to the dashboard: one user, a slow hash of the password."""

    username: NonEmptyStr
    password_hash: Annotated[SecretStr, AfterValidator(_check_password_hash)]


class ServerConfig(FrozenModel):
    host: NonEmptyStr = "127.0.0.1"
    port: int = Field(default=8787, ge=0, le=65535)  # 0 = pick a free port
    public_url: HttpUrl | None = None
    # /readyz answers 503 when more than this share of the calendars has not
    # had a successful cycle within ready_after_intervals sync intervals.
    ready_max_failing_share: float = Field(default=0.5, ge=0, le=1)
    ready_after_intervals: int = Field(default=3, ge=1)
    # Signs links and sessions (HMAC); the same in every replica. None: a random
    # one per process (sessions end with it; no signed links in messages).
    secret: SecretStr | None = Field(default=None)
    # The web dashboard under /admin/.
    dashboard: bool = True
    admin: AdminLogin | None = None
    # A reverse proxy that authenticates people and names them in this header;
    # trusted only from these peer addresses.
    trusted_proxy_header: NonEmptyStr | None = None
    trusted_proxy_addresses: tuple[NonEmptyStr, ...] = ("127.0.0.1", "::1")

    @field_validator("secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 16:
            raise ValueError("use at least 16 characters (for example: openssl rand -hex 32)")
        return value

    @model_validator(mode="after")
    def _dashboard_needs_a_login_off_loopback(self) -> ServerConfig:
        if (
            self.dashboard
            and self.host not in LOOPBACK_HOSTS
            and self.admin is None
            and self.trusted_proxy_header is None
        ):
            raise ProblemAt(
                "host",
                f"the dashboard on {self.host} (not this machine only) needs server.admin "
                "(username and password_hash from `feedback-agendas admin-password`) or "
                "server.trusted_proxy_header; or set server.dashboard: false",
            )
        return self


class SyncConfig(FrozenModel):
    interval_seconds: int = Field(default=300, ge=1)
    jitter: float = Field(default=0.25, ge=0, le=1)
    # With a live push channel a calendar is synced when its backend notifies us;
    # polling stays on as the fallback, but only this often.
    push_fallback_seconds: int = Field(default=3600, ge=1)


class QuietHours(FrozenModel):
    start: dt.time
    end: dt.time


class WeeklyDigest(FrozenModel):
    weekday: Weekday = "fri"
    time: dt.time = dt.time(15, 0)


def _check_email_channel(value: SecretStr) -> SecretStr:
    if "{address}" not in value.get_secret_value():
        raise ValueError("put {address} where the person's address goes (…?to={address})")
    return value


class RemindersConfig(FrozenModel):
    # The private channel of anyone without notify URLs in people: an apprise
    # URL with {address} in it, such as mailtos://bot:${PW}@smtp.example.com?to={address}
    email: Annotated[SecretStr, AfterValidator(_check_email_channel)] | None = None
    before_team_meeting_minutes: int = Field(default=60, ge=0)
    before_one_on_one_minutes: int = Field(default=60, ge=0)
    quiet_hours: QuietHours | None = None
    celebrations: bool = True
    weekly_digest: WeeklyDigest | None = WeeklyDigest()
    max_attempts: int = Field(default=5, ge=1)


class PersonConfig(FrozenModel):
    email: Email
    notify: tuple[SecretStr, ...] = ()


class AppConfig(FrozenModel):
    """The whole validated config. Build it with :func:`load_config`.

    ``calendars`` holds each entry as its provider's model; this class names
    only their common base, and :func:`config_model` validates with the union
    of every registered provider's model (``org.directory`` likewise).
    """

    storage: StorageConfig = StorageConfig()
    # Plain calendars; ``discover:`` entries of the file's ``calendars`` list are
    # moved to ``calendar_sources`` (load_config reports their problems at
    # their place in the file).
    calendars: tuple[CalendarConfig, ...] = ()
    calendar_sources: tuple[CalendarDiscovery, ...] = ()
    org: OrgConfig
    policy: PolicyConfig = PolicyConfig()
    opt_out: OptOutConfig = OptOutConfig()
    server: ServerConfig = ServerConfig()
    sync: SyncConfig = SyncConfig()
    reminders: RemindersConfig = RemindersConfig()
    people: tuple[PersonConfig, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _default_storage_is_relative_too(cls, data: Any) -> Any:
        # A default instance would skip validation; an empty section gets the config's folder.
        if isinstance(data, dict) and "storage" not in data:
            return {**data, "storage": {}}
        return data

    @model_validator(mode="before")
    @classmethod
    def _sources_apart_from_calendars(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "calendar_sources" in data:
            return data
        listed = data.get("calendars")
        plain, sources = calendar_entry_positions(listed)
        if not sources or not isinstance(listed, list | tuple):
            return data
        return {
            **data,
            "calendars": [listed[i] for i in plain],
            "calendar_sources": [listed[i] for i in sources],
        }

    @model_validator(mode="after")
    def _some_calendar(self) -> AppConfig:
        if not self.calendars and not self.calendar_sources:
            raise ProblemAt("calendars", "list at least one calendar, or a source (discover: ...)")
        return self

    @property
    def warnings(self) -> tuple[str, ...]:
        """Things that are allowed but unsafe; the CLI prints them."""
        return tuple(
            f"calendars[{index}] ({calendar.name}): {warning}"
            for index, calendar in enumerate(self.calendars)
            for warning in calendar.warnings()
        )

    def teams(self) -> dict[str, Team]:
        """The configured teams by name (the daemon adds the directory's: see its rules)."""
        return {team.name: team.team() for team in self.org.configured_teams if team.name}

    def personal_channels(self) -> PrivateChannels:
        """Where messages for one person go, by lower-case address: their ``people``
        URLs, else ``reminders.email`` with their address in it."""
        email = self.reminders.email
        return PrivateChannels(
            {
                person.email.lower(): tuple(url.get_secret_value() for url in person.notify)
                for person in self.people
                if person.notify
            },
            email.get_secret_value() if email is not None else None,
        )

    def rules(self) -> Rules:
        """The core's frozen policy objects, with every address in lower case."""
        org = Org(
            internal_domains=frozenset(self.org.internal_domains),
            teams=tuple(team.team() for team in self.org.configured_teams),
        )
        policy = Policy(
            horizon_days=self.policy.horizon_days,
            team_meeting_keywords=tuple(k.lower() for k in self.policy.team_meeting_keywords),
            one_on_one_focus=self.policy.one_on_one_focus,
            team_norm_enabled=self.policy.team_norm.enabled,
            team_norm_text={str(k): v for k, v in self.policy.team_norm.text.items()},
            trust_checkin=self.policy.trust_checkin,
        )
        opt_out = OptOut(
            users=frozenset(user.lower() for user in self.opt_out.users),
            teams=frozenset(self.opt_out.teams),
            calendars=frozenset(self.opt_out.calendars),
            marker=self.opt_out.marker,
        )
        return Rules(org=org, policy=policy, opt_out=opt_out)


_MODELS: dict[tuple[tuple[type[FrozenModel], ...], ...], type[AppConfig]] = {}


def config_model() -> type[AppConfig]:
    """:class:`AppConfig` whose ``calendars`` accept every registered provider's entry.

    Derived from the registries (a provider registered later gets its own
    model), with ``provider`` as the discriminator; ``org.directory`` the same
    way from the directory registry.
    """
    entries = tuple(spec.config for spec in provider_specs())
    directories = tuple(spec.config for spec in directory_specs())
    sources = source_configs()
    model = _MODELS.get((entries, directories, sources))
    if model is None:
        org = create_model(
            "OrgConfig",
            __base__=OrgConfig,
            __module__=OrgConfig.__module__,
            directory=(_one_of(directories) | None, OrgConfig.model_fields["directory"]),
        )
        # The same fields (defaults, bounds), with the registered models as their types.
        entry = _one_of(entries)
        model = create_model(
            "AppConfig",
            __base__=AppConfig,
            __module__=AppConfig.__module__,
            calendars=(tuple[entry, ...], AppConfig.model_fields["calendars"]),  # type: ignore[valid-type]
            calendar_sources=(
                tuple[_one_of(sources, "discover"), ...],  # type: ignore[misc]
                AppConfig.model_fields["calendar_sources"],
            ),
            org=(org, AppConfig.model_fields["org"]),
        )
        _MODELS[entries, directories, sources] = model
    return model


def calendar_entry_type() -> Any:
    """The type of one ``calendars[]`` entry: the registered providers' models, by ``provider``."""
    return _one_of(tuple(spec.config for spec in provider_specs()))


@functools.cache
def _one_of(models: tuple[type[FrozenModel], ...], tag: str = "provider") -> Any:
    """X | Y | ... told apart by ``tag`` (one model stands alone)."""
    if len(models) == 1:
        return models[0]
    any_model: Any = functools.reduce(operator.or_, models)
    return Annotated[any_model, Field(discriminator=tag)]


def _string_values(items: list[tuple[int, dict[str, Any]]], key: str) -> set[str]:
    return {value for _index, item in items if isinstance(value := item.get(key), str)}


def cross_reference_problems(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Checks between entries and sections, on the raw data so they run even beside other errors."""
    problems: list[tuple[Loc, str]] = []

    def entries(section: object, key: str) -> list[tuple[int, dict[str, Any]]]:
        if not isinstance(section, Mapping):
            return []
        items = section.get(key)
        if not isinstance(items, list):
            return []
        return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)]

    def unique(where: Loc, items: list[tuple[int, dict[str, Any]]], key: str, what: str) -> None:
        first: dict[str, int] = {}
        for index, item in items:
            value = item.get(key)
            if not isinstance(value, str):
                continue
            folded = value.lower()
            if folded in first:
                problems.append(
                    (
                        (*where, index, key),
                        f"duplicate {what} (also {format_key_path((*where, first[folded]))})",
                    )
                )
            else:
                first[folded] = index

    calendars = entries(data, "calendars")
    unique(("calendars",), calendars, "name", "calendar name")
    org = data.get("org")
    teams = entries(org, "teams")
    unique(("org", "teams"), teams, "name", "team name")
    unique(("people",), entries(data, "people"), "email", "person")

    domains = org.get("internal_domains") if isinstance(org, Mapping) else None
    if isinstance(domains, list):
        internal = {str(d).strip().lstrip("@").lower() for d in domains}
        for index, team in teams:
            addresses: list[tuple[Loc, object]] = [(("manager",), team.get("manager"))]
            members = team.get("members")
            if isinstance(members, list):
                addresses += [(("members", i), m) for i, m in enumerate(members)]
            for sub_loc, address in addresses:
                if (
                    isinstance(address, str)
                    and "@" in address
                    and address.rpartition("@")[2].lower() not in internal
                ):
                    problems.append(
                        (
                            ("org", "teams", index, *sub_loc),
                            f"{address} is not in org.internal_domains",
                        )
                    )

    opt_out = data.get("opt_out")
    if isinstance(opt_out, Mapping):
        # Only string names: anything else is a type error pydantic reports at its key.
        known = {
            "teams": (_string_values(teams, "name"), "team"),
            "calendars": (_string_values(calendars, "name"), "calendar"),
        }
        # A calendar a directory finds is named by its person's address.
        discovering = any("discover" in item for _index, item in calendars)
        for key, (names, what) in known.items():
            listed = opt_out.get(key)
            if not isinstance(listed, list):
                continue
            for index, name in enumerate(listed):
                if discovering and key == "calendars" and isinstance(name, str) and "@" in name:
                    continue
                if isinstance(name, str) and name not in names:
                    problems.append(((("opt_out", key, index)), f"no {what} named {name!r}"))
    return problems


class PrivateChannels(Mapping[str, tuple[str, ...]]):
    """Each person's private channels: their ``people`` URLs, else the config-wide
    ``reminders.email`` URL with ``{address}`` replaced by their address.

    A Mapping, so reminder planning looks people up as before; anyone without
    ``people`` URLs is found too when ``reminders.email`` is set.
    """

    def __init__(self, people: Mapping[str, tuple[str, ...]], email: str | None) -> None:
        self._people = dict(people)
        self._email = email

    def __getitem__(self, address: str) -> tuple[str, ...]:
        wanted = address.lower()
        if wanted in self._people:
            return self._people[wanted]
        if self._email is None or "@" not in wanted:
            raise KeyError(address)
        return (self._email.replace("{address}", wanted),)

    def __iter__(self) -> Iterator[str]:
        return iter(self._people)

    def __len__(self) -> int:
        return len(self._people)
