"""The one YAML config file, validated once into frozen typed objects.

``load_config`` reads the file, substitutes ``${VAR}`` from the environment,
validates everything with pydantic and cross-checks references between
sections. Every problem is collected first and raised together as one
:class:`~feedback_agendas.agendas.errors.ConfigError`, each as ``FILE:LINE: key.path: message``.
Lines come from PyYAML's composed node tree, so a pydantic ``loc`` such as
``("org", "teams", 0, "locale")`` points at the line an admin has to edit.

Relative paths (a vdir folder, a credentials file, the template folder, a
relative SQLite file) are resolved against the folder of the config file, so
the daemon behaves the same whatever its working directory.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import stat
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from feedback_agendas.agendas.errors import ConfigError
from feedback_agendas.agendas.policy import Focus, OptOut, Org, Policy, Rules, Team
from feedback_agendas.integrations.redact import mask_url

Loc = tuple[str | int, ...]

# ---------------------------------------------------------------------------
# Field types
# ---------------------------------------------------------------------------


class _ProblemAt(ValueError):
    """A model-level check that knows which key is wrong (pydantic would blame the model)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# A name may also be an address (a calendar named by its person). Stricter than
# _EMAIL: no '/', ':', spaces or control characters, so a name is always safe in
# a file name, a lease or job id (``sync:NAME``) and a metric label.
_ADDRESS_NAME = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
# The database keeps calendar names in String(200) columns.
MAX_NAME = 200
_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _check_email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("not an email address (name@domain)")
    return value


def _check_name(value: str) -> str:
    if not (_NAME.match(value) or _ADDRESS_NAME.match(value)):
        raise ValueError(
            "use letters, digits, '.', '_' or '-' (starting with a letter or digit), "
            "or an email address"
        )
    if len(value) > MAX_NAME:
        raise ValueError(f"at most {MAX_NAME} characters")
    return value


def _check_domain(value: str) -> str:
    domain = value.strip().lstrip("@").lower()
    if not _DOMAIN.match(domain):
        raise ValueError("not a domain name (example.com)")
    return domain


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    # A name too long for the file system (ENAMETOOLONG) is an OSError, not "not found".
    except (ZoneInfoNotFoundError, ValueError, OSError):
        shown = value if len(value) <= 60 else value[:60] + "…"
        raise ValueError(
            f"unknown time zone {shown!r} (use an IANA name such as Europe/Stockholm)"
        ) from None
    return value


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    return value


def _base_dir(info: ValidationInfo) -> Path | None:
    context = info.context or {}
    base = context.get("base_dir")
    return Path(base) if base is not None else None


def _resolve(path: Path, info: ValidationInfo) -> Path:
    try:
        path = path.expanduser()
    except RuntimeError:  # ~someone who has no home folder here
        raise ValueError(f"cannot expand {str(path).partition('/')[0]!r}: no such user") from None
    base = _base_dir(info)
    if not path.is_absolute() and base is not None:
        path = base / path
    return path


def path_kind(path: Path) -> str | None:
    """``"dir"``, ``"file"``, ``"other"``, or None when ``path`` cannot be reached.

    Unlike ``Path.is_dir``, never raises: a name too long for the file system
    (ENAMETOOLONG) or a folder we may not enter is just "not there".
    """
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else "other"


def _existing_dir(path: Path) -> Path:
    if path_kind(path) != "dir":
        raise ValueError(f"folder not found: {path}")
    return path


def _credentials(value: object, info: ValidationInfo) -> Path | Literal["anonymous"]:
    """A credentials file (service-account key or OAuth token), or ``anonymous``."""
    if value == "anonymous":
        return "anonymous"
    if not isinstance(value, str | Path) or not str(value).strip():
        raise ValueError("give the path of a credentials file, or 'anonymous'")
    path = _resolve(Path(value), info)
    # A file that is missing now belongs to one calendar's run time, not to the
    # whole config: sync and the daemon fail that calendar alone (kind config)
    # and go on with the others; check-config reports it as a problem.
    if path_kind(path) not in ("file", None):
        raise ValueError(f"not a file: {path}")
    return path


def is_loopback_url(url: str | None) -> bool:
    """True when ``url`` points at this machine (127.0.0.0/8, ::1, localhost)."""
    if not url:
        return False
    host = urlsplit(url).hostname or ""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


Email = Annotated[str, AfterValidator(_check_email)]
Name = Annotated[str, AfterValidator(_check_name)]
Domain = Annotated[str, AfterValidator(_check_domain)]
TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]
HttpUrl = Annotated[str, AfterValidator(_check_http_url)]
RelativePath = Annotated[Path, AfterValidator(_resolve)]
Credentials = Annotated[Path | Literal["anonymous"], PlainValidator(_credentials)]
Locale = Literal["en", "sv"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
NonEmptyStr = Annotated[str, Field(min_length=1)]


def _check_agenda_text(value: str) -> str:
    """Text we write into events (goals, the team norm): one line, no control characters.

    A YAML escape such as ``"\\0"`` or ``"\\x1b"`` would otherwise reach every
    calendar event and every attendee's terminal or client.
    """
    bad = next((ch for ch in value if unicodedata.category(ch) == "Cc"), None)
    if bad is not None:
        raise ValueError(
            f"control character {bad.encode('unicode_escape').decode('ascii')} is not allowed "
            "in text written into events"
        )
    return value


AgendaText = Annotated[str, Field(min_length=1), AfterValidator(_check_agenda_text)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # A database or CalDAV URL may carry a password; repr/str must never show it.
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if isinstance(value, str) else value


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------

_SQLITE = re.compile(r"^(?P<scheme>sqlite(?:\+\w+)?):///(?P<path>[^?]*)(?P<query>\?.*)?$")


class StorageConfig(_Frozen):
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
                file = str(_resolve(Path(file), info))
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


class _CalendarBase(_Frozen):
    name: Name
    owner: Email


class VdirCalendar(_CalendarBase):
    """A local folder of .ics files, one event (with its overrides) per file."""

    provider: Literal["vdir"]
    path: RelativePath
    timezone: TimeZoneName | None = None


class MemoryCalendar(_CalendarBase):
    """An in-memory calendar for tests and dry runs."""

    provider: Literal["memory"]


class GoogleCalendar(_CalendarBase):
    """A Google calendar through Calendar API v3."""

    provider: Literal["google"]
    credentials: Credentials
    subject: Email | None = None
    calendar_id: NonEmptyStr = "primary"
    api_endpoint: HttpUrl | None = None
    batch_size: int = Field(default=50, ge=1, le=1000)
    writes_per_minute: int = Field(default=60, ge=1)

    @model_validator(mode="after")
    def _anonymous_only_on_loopback(self) -> GoogleCalendar:
        if self.credentials == "anonymous" and not is_loopback_url(self.api_endpoint):
            raise _ProblemAt(
                "credentials",
                "'anonymous' is allowed only with an api_endpoint on this machine "
                "(127.0.0.1, ::1 or localhost)",
            )
        return self


class CaldavCalendar(_CalendarBase):
    """A calendar on a CalDAV server."""

    provider: Literal["caldav"]
    url: HttpUrl
    username: str | None = None
    password: SecretStr | None = None
    calendar: NonEmptyStr
    verify_tls: bool = True
    timezone: TimeZoneName | None = None


CalendarConfig = Annotated[
    VdirCalendar | MemoryCalendar | GoogleCalendar | CaldavCalendar,
    Field(discriminator="provider"),
]
CALENDAR_PROVIDERS = ("vdir", "google", "caldav", "memory")


class DirectoryConfig(_Frozen):
    """Where to learn who manages whom (the Admin SDK Directory)."""

    provider: Literal["google"]
    credentials: Credentials
    subject: Email | None = None
    domain: Domain | None = None
    api_endpoint: HttpUrl | None = None

    @model_validator(mode="after")
    def _anonymous_only_on_loopback(self) -> DirectoryConfig:
        if self.credentials == "anonymous" and not is_loopback_url(self.api_endpoint):
            raise _ProblemAt(
                "credentials", "'anonymous' is allowed only with an api_endpoint on this machine"
            )
        return self


class TeamConfig(_Frozen):
    name: Name
    manager: Email
    members: tuple[Email, ...] = ()
    locale: Locale = "en"
    timezone: TimeZoneName = "UTC"
    goals: tuple[AgendaText, ...] = ()
    positive_only_until: date | None = None
    # Apprise URLs often embed tokens or passwords.
    notify: tuple[SecretStr, ...] = ()


class OrgConfig(_Frozen):
    internal_domains: tuple[Domain, ...] = Field(min_length=1)
    teams: tuple[TeamConfig, ...] = ()
    directory: DirectoryConfig | None = None


class TeamNormConfig(_Frozen):
    enabled: bool = True
    text: dict[Locale, AgendaText] = Field(default_factory=dict)


class PolicyConfig(_Frozen):
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
    templates: Annotated[RelativePath, AfterValidator(_existing_dir)] | None = None


class OptOutConfig(_Frozen):
    users: tuple[Email, ...] = ()
    teams: tuple[str, ...] = ()
    calendars: tuple[str, ...] = ()
    marker: NonEmptyStr = "#no-agenda"


class ServerConfig(_Frozen):
    host: NonEmptyStr = "127.0.0.1"
    port: int = Field(default=8787, ge=0, le=65535)  # 0 = pick a free port
    public_url: HttpUrl | None = None
    # /readyz answers 503 when more than this share of the calendars has not
    # had a successful cycle within ready_after_intervals sync intervals.
    ready_max_failing_share: float = Field(default=0.5, ge=0, le=1)
    ready_after_intervals: int = Field(default=3, ge=1)


class SyncConfig(_Frozen):
    interval_seconds: int = Field(default=300, ge=1)
    jitter: float = Field(default=0.25, ge=0, le=1)
    # With a live push channel a calendar is synced when Google notifies us;
    # polling stays on as the fallback, but only this often.
    push_fallback_seconds: int = Field(default=3600, ge=1)


class QuietHours(_Frozen):
    start: dt.time
    end: dt.time


class WeeklyDigest(_Frozen):
    weekday: Weekday = "fri"
    time: dt.time = dt.time(15, 0)


class RemindersConfig(_Frozen):
    before_team_meeting_minutes: int = Field(default=60, ge=0)
    before_one_on_one_minutes: int = Field(default=60, ge=0)
    quiet_hours: QuietHours | None = None
    celebrations: bool = True
    weekly_digest: WeeklyDigest | None = WeeklyDigest()
    max_attempts: int = Field(default=5, ge=1)


class PersonConfig(_Frozen):
    email: Email
    notify: tuple[SecretStr, ...] = ()


class AppConfig(_Frozen):
    """The whole validated config. Build it with :func:`load_config`."""

    storage: StorageConfig = StorageConfig()
    calendars: tuple[CalendarConfig, ...] = Field(min_length=1)
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

    @property
    def warnings(self) -> tuple[str, ...]:
        """Things that are allowed but unsafe; the CLI prints them."""
        found = []
        for index, calendar in enumerate(self.calendars):
            if not isinstance(calendar, CaldavCalendar):
                continue
            where = f"calendars[{index}] ({calendar.name})"
            if not calendar.verify_tls:
                found.append(f"{where}: verify_tls is off; the server's certificate is not checked")
            if (
                calendar.password is not None
                and urlsplit(calendar.url).scheme == "http"
                and not is_loopback_url(calendar.url)
            ):
                found.append(f"{where}: the password is sent without TLS (http://)")
        return tuple(found)

    def rules(self) -> Rules:
        """The core's frozen policy objects, with every address in lower case."""
        org = Org(
            internal_domains=frozenset(self.org.internal_domains),
            teams=tuple(
                Team(
                    name=team.name,
                    manager=team.manager.lower(),
                    members=frozenset(member.lower() for member in team.members),
                    locale=team.locale,
                    timezone=team.timezone,
                    goals=team.goals,
                    positive_only_until=team.positive_only_until,
                    notify=tuple(url.get_secret_value() for url in team.notify),
                )
                for team in self.org.teams
            ),
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


# ---------------------------------------------------------------------------
# Reading the file
# ---------------------------------------------------------------------------


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1 base-60 integers, so ``start: 20:00`` stays a string.

    An impossible date (``2026-13-01``) stays a string too, so that validation
    reports it at its key instead of the whole file failing to load.
    """

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        # An explicit tag on a value it cannot read (``!!float x``, ``!!timestamp x``)
        # makes PyYAML's constructors raise plain ValueError/AttributeError/KeyError.
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, AttributeError, KeyError, OverflowError):
            tag = node.tag.rpartition(":")[2]
            raise yaml.constructor.ConstructorError(
                None, None, f"this value cannot be read as !!{tag}", node.start_mark
            ) from None

    def construct_yaml_timestamp(self, node: ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except (ValueError, AttributeError):
            return self.construct_scalar(node)

    def construct_yaml_int(self, node: ScalarNode) -> Any:
        # Past Python's 4,300-digit limit int() raises; validation then says "not an integer".
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            return self.construct_scalar(node)


_INT_TAG = "tag:yaml.org,2002:int"
_ConfigLoader.add_constructor("tag:yaml.org,2002:timestamp", _ConfigLoader.construct_yaml_timestamp)
_ConfigLoader.add_constructor(_INT_TAG, _ConfigLoader.construct_yaml_int)
_ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _INT_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ConfigLoader.add_implicit_resolver(
    _INT_TAG,
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)

_STR_TAG = "tag:yaml.org,2002:str"
_ENV_REFERENCE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")


def format_key_path(loc: Loc) -> str:
    """``("org", "teams", 0, "locale")`` -> ``org.teams[0].locale``."""
    text = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for "the key itself is wrong"
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _walk(node: Node, loc: Loc, seen: set[int]) -> Iterator[tuple[Loc, Node, Node | None]]:
    """Every node below ``node`` with its key path and, in a mapping, its key node."""
    if id(node) in seen:  # anchors and aliases share nodes; aliases may even recurse
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            part: str | int = key_node.value if isinstance(key_node, ScalarNode) else "?"
            yield (*loc, part), value_node, key_node
            yield from _walk(value_node, (*loc, part), seen)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            yield (*loc, index), item, None
            yield from _walk(item, (*loc, index), seen)


def _substitute_environment(root: Node, environ: Mapping[str, str]) -> list[tuple[Node, Loc, str]]:
    """Replace ``${VAR}`` in string values in place; ``$${`` stays a literal ``${``.

    Returns a problem per missing variable. The value itself is never put in a
    message: it is usually a secret.
    """
    problems: list[tuple[Node, Loc, str]] = []
    for loc, node, _key in _walk(root, (), set()):
        if not isinstance(node, ScalarNode) or node.tag != _STR_TAG or "${" not in node.value:
            continue

        def replace(match: re.Match[str], loc: Loc = loc, node: Node = node) -> str:
            escaped, name = match.group(1), match.group(2)
            if escaped:
                return "${" + name + "}"
            if name not in environ:
                problems.append((node, loc, f"environment variable {name} is not set"))
                return match.group(0)
            return environ[name]

        node.value = _ENV_REFERENCE.sub(replace, node.value)
    return problems


def _duplicate_keys(root: Node) -> list[tuple[Node, Loc, str]]:
    """PyYAML silently keeps the last of two equal keys; an admin wants to hear about it."""
    problems: list[tuple[Node, Loc, str]] = []
    mappings = [((), root)] + [(loc, node) for loc, node, _key in _walk(root, (), set())]
    for loc, node in mappings:
        if not isinstance(node, MappingNode):
            continue
        keys: set[str] = set()
        for key_node, _value in node.value:
            if not isinstance(key_node, ScalarNode):
                continue
            if key_node.value in keys:
                problems.append((key_node, (*loc, key_node.value), "duplicate key"))
            keys.add(key_node.value)
    return problems


_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogates(root: Node) -> list[tuple[Node, Loc, str]]:
    """A ``"\\ud800"`` escape makes a string no encoder accepts: refuse it at its line."""
    problems: list[tuple[Node, Loc, str]] = []
    for loc, node, key in [((), root, None), *_walk(root, (), set())]:
        for scalar in (key, node):
            if isinstance(scalar, ScalarNode) and _SURROGATE.search(scalar.value):
                problems.append(
                    (scalar, loc, "an escape of a lone surrogate (\\ud800) is not text")
                )
    return problems


def line_of(root: Node, loc: Loc) -> int:
    """The 1-based line an admin has to edit for ``loc`` (already without union tags).

    A key that is there points at its own line; a missing key at the line of
    the mapping it is missing from.
    """
    node: Node = root
    line = node.start_mark.line
    for part in loc:
        if isinstance(node, MappingNode):
            if part == "[key]":
                continue
            found = next(
                (
                    (key, value)
                    for key, value in node.value
                    if isinstance(key, ScalarNode) and key.value == part
                ),
                None,
            )
            if found is None:
                break
            line = found[0].start_mark.line
            node = found[1]
        elif isinstance(node, SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line
        else:
            break
    return line + 1


def _is_union_tag(node: MappingNode, part: str | int) -> bool:
    return any(
        isinstance(key, ScalarNode)
        and key.value == "provider"
        and isinstance(value, ScalarNode)
        and value.value == part
        for key, value in node.value
    )


def _strip_union_tags(root: Node, loc: Loc) -> Loc:
    """Drop the discriminator values pydantic inserts (``calendars[0].vdir.path``)."""
    kept: list[str | int] = []
    node: Node | None = root
    for part in loc:
        if isinstance(node, MappingNode):
            found = next(
                (v for k, v in node.value if isinstance(k, ScalarNode) and k.value == part), None
            )
            if found is None and _is_union_tag(node, part):
                continue
            node = found
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
        kept.append(part)
    return tuple(kept)


def _describe_error(error: Mapping[str, Any]) -> tuple[Loc, str]:
    """A pydantic error as (loc, message), in words an admin understands."""
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return loc, "unknown key"
    if kind == "missing":
        return loc, "missing required key"
    if kind == "union_tag_not_found":
        return (*loc, "provider"), "missing required key"
    if kind == "union_tag_invalid":
        choices = ", ".join(CALENDAR_PROVIDERS)
        return (*loc, "provider"), f"should be one of: {choices}"
    if kind == "value_error":
        cause = ctx.get("error")
        if isinstance(cause, _ProblemAt):
            return (*loc, cause.key), str(cause)
        if cause is not None:
            return loc, str(cause)
    return loc, str(error["msg"])


def _without_consequential_errors(errors: list[Any]) -> list[Any]:
    """Drop "too short" for a list whose items failed: pydantic counts only the valid ones."""

    def has_failed_items(loc: tuple[Any, ...]) -> bool:
        return any(
            len(other["loc"]) > len(loc) and tuple(other["loc"][: len(loc)]) == loc
            for other in errors
        )

    return [
        error
        for error in errors
        if not (error["type"] == "too_short" and has_failed_items(tuple(error["loc"])))
    ]


def _string_values(items: list[tuple[int, dict[str, Any]]], key: str) -> set[str]:
    return {value for _index, item in items if isinstance(value := item.get(key), str)}


def _cross_reference_problems(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
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
        for key, (names, what) in known.items():
            listed = opt_out.get(key)
            if not isinstance(listed, list):
                continue
            for index, name in enumerate(listed):
                if isinstance(name, str) and name not in names:
                    problems.append(((("opt_out", key, index)), f"no {what} named {name!r}"))
    return problems


Problem = tuple[int, str]  # (line, message); line 0 = the whole file


# Far deeper than any real config; PyYAML, our tree walks and pydantic all recurse.
MAX_NESTING = 40


def _too_deep(root: Node) -> Node | None:
    """The first node nested deeper than :data:`MAX_NESTING`, found without recursion."""
    stack: list[tuple[Node, int]] = [(root, 0)]
    seen: set[int] = set()
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if depth > MAX_NESTING:
            return node
        if isinstance(node, MappingNode):
            stack.extend((child, depth + 1) for pair in node.value for child in pair)
        elif isinstance(node, SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
    return None


def _yaml_problem(source: str, text: str, exc: yaml.YAMLError) -> Problem:
    """A PyYAML error as ``FILE:LINE: YAML syntax error: ...``."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        reason = exc.problem or exc.context or "invalid YAML"
    elif isinstance(exc, yaml.reader.ReaderError):
        # A control character, even inside a comment: YAML forbids it anywhere.
        line = text.count("\n", 0, max(0, exc.position)) + 1
        reason = f"character #x{exc.character:04x} is not allowed in YAML, even in a comment"
        if isinstance(exc.character, bytes):  # pragma: no cover - only for byte input
            reason = "the file is not UTF-8 text"
    else:  # pragma: no cover - PyYAML raises only the two kinds above
        line, reason = 0, "invalid YAML"
    where = f"{source}:{line}" if line else source
    return line, f"{where}: YAML syntax error: {reason}"


def _read_yaml(path: Path, environ: Mapping[str, str]) -> tuple[Node | None, Any, list[Problem]]:
    """Parse the file into (node tree, data, problems with their lines)."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, None, [(0, f"{source}: cannot read the file: {exc.strerror or exc}")]
    except (UnicodeDecodeError, ValueError):
        return None, None, [(0, f"{source}: the file is not UTF-8 text")]
    try:
        # The reader checks every character as it is built: a control character fails here.
        loader = _ConfigLoader(text)
    except yaml.YAMLError as exc:
        return None, None, [_yaml_problem(source, text, exc)]
    try:
        try:
            root = loader.get_single_node()
        except RecursionError:
            line = loader.get_mark().line + 1
            return None, None, [(line, f"{source}:{line}: YAML nests too deeply")]
        if root is None:
            return None, None, [(1, f"{source}:1: the file is empty")]
        deep = _too_deep(root)
        if deep is not None:
            line = deep.start_mark.line + 1
            return None, None, [(line, f"{source}:{line}: nested more than {MAX_NESTING} deep")]
        surrogates = _lone_surrogates(root)
        if surrogates:
            return None, None, [_located(source, node, loc, msg) for node, loc, msg in surrogates]
        located = _duplicate_keys(root) + _substitute_environment(root, environ)
        data = loader.construct_document(root)
    except yaml.YAMLError as exc:
        return None, None, [_yaml_problem(source, text, exc)]
    finally:
        loader.dispose()
    return root, data, [_located(source, node, loc, message) for node, loc, message in located]


def _located(source: str, node: Node, loc: Loc, message: str) -> Problem:
    line = node.start_mark.line + 1
    return line, f"{source}:{line}: {format_key_path(loc)}: {message}"


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> AppConfig:
    """Read, substitute and validate the config file at ``path``.

    ``environ`` supplies ``${VAR}`` values (default: ``os.environ``).
    Raises :class:`~feedback_agendas.agendas.errors.ConfigError` listing every problem, in file
    order, as ``FILE:LINE: key.path: message``, and never anything else: an
    input no check foresaw still gives a ConfigError (naming the file and the
    kind of failure, never a value, which may be a secret), not a traceback.
    """
    return load_config_located(path, environ).config


@dataclass(frozen=True)
class LocatedConfig:
    """A valid config with its file and YAML node tree, to point later checks at lines."""

    config: AppConfig
    source: Path
    root: Node

    def problem(self, loc: Loc, message: str) -> tuple[int, str]:
        """(line, ``FILE:LINE: key.path: message``) for a problem at ``loc``."""
        line = line_of(self.root, loc)
        key = format_key_path(loc)
        where = f"{self.source}:{line}"
        return line, f"{where}: {key}: {message}" if key else f"{where}: {message}"


def load_config_located(path: Path, environ: Mapping[str, str] | None = None) -> LocatedConfig:
    """:func:`load_config`, keeping the file's node tree for checks that come later."""
    path = Path(path)
    try:
        config, root = _load_config(path, environ)
        return LocatedConfig(config=config, source=path, root=root)
    except ConfigError:
        raise
    except Exception as exc:  # the last line of defence; the fuzz test keeps it unused
        raise ConfigError([f"{path}: {UNFORESEEN} ({type(exc).__name__})"]) from exc


UNFORESEEN = "this file could not be checked; please report it as a bug"


def _load_config(path: Path, environ: Mapping[str, str] | None) -> tuple[AppConfig, Node]:
    source = str(path)
    root, data, problems = _read_yaml(path, os.environ if environ is None else environ)
    if root is None:
        raise ConfigError([text for _line, text in problems])
    if not isinstance(data, dict):
        problems.append((1, f"{source}:1: the file must be a mapping of sections"))
        raise ConfigError([text for _line, text in problems])

    found: list[tuple[Loc, str]] = []
    config: AppConfig | None = None
    try:
        config = AppConfig.model_validate(data, context={"base_dir": path.resolve().parent})
    except ValidationError as exc:
        errors = _without_consequential_errors(exc.errors(include_url=False, include_input=False))
        for error in errors:
            loc, message = _describe_error(error)
            found.append((_strip_union_tags(root, loc), message))
    found += _cross_reference_problems(data)

    for loc, message in found:
        line = line_of(root, loc)
        key = format_key_path(loc)
        problems.append(
            (line, f"{source}:{line}: {key}: {message}" if key else f"{source}:{line}: {message}")
        )
    if problems or config is None:
        # sorted() is stable, so problems on one line keep the order they were found in.
        ordered = sorted(dict.fromkeys(problems), key=lambda problem: problem[0])
        raise ConfigError([text for _line, text in ordered])
    return config, root


def check_config(path: Path, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every problem in the config file at ``path``, and in what it names on this machine.

    An empty list means valid. Beyond :func:`load_config`, this checks
    folders, files, permissions, teams and templates without the network
    (:mod:`feedback_agendas.scheduler.config.checks`).
    """
    from feedback_agendas.scheduler.config.checks import check_located

    try:
        located = load_config_located(path, environ)
    except ConfigError as exc:
        return exc.problems
    try:
        return check_located(located)
    except Exception as exc:  # as in load_config: a bug here is a message, not a traceback
        return [f"{path}: {UNFORESEEN} ({type(exc).__name__})"]
