"""The building blocks of every config model: the scheduler's schema and each provider's.

- value types that validate one value: :data:`Email`, :data:`Name`,
  :data:`TimeZoneName`, :data:`RelativePath` (resolved against the config
  file's folder, ``base_dir`` in the validation context),
  :data:`Credentials`, :data:`AgendaText`, ...;
- :class:`FrozenModel`, the base of every section: frozen, unknown keys
  refused, URLs masked in its repr;
- :class:`ProblemAt`, for a model-level check that knows which key is wrong;
- key paths: :data:`Loc` and :func:`format_key_path` (``org.teams[0].locale``),
  the way every problem names its place;
- :func:`folder_problem`, the check of a folder we read and write.

They live here, below the scheduler, so that a provider module
(``integrations/calendars/<name>.py``) declares its own config model with the
same types and messages as the rest of the file.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
)

from feedback_agendas.integrations.redact import mask_url

Loc = tuple[str | int, ...]


def format_key_path(loc: Loc) -> str:
    """``("org", "teams", 0, "locale")`` -> ``org.teams[0].locale``."""
    text = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for "the key itself is wrong"
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class ProblemAt(ValueError):
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


def resolve_path(path: Path, info: ValidationInfo) -> Path:
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


def existing_dir(path: Path) -> Path:
    if path_kind(path) != "dir":
        raise ValueError(f"folder not found: {path}")
    return path


def _credentials(value: object, info: ValidationInfo) -> Path | Literal["anonymous"]:
    """A credentials file (service-account key or OAuth token), or ``anonymous``."""
    if value == "anonymous":
        return "anonymous"
    if not isinstance(value, str | Path) or not str(value).strip():
        raise ValueError("give the path of a credentials file, or 'anonymous'")
    path = resolve_path(Path(value), info)
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
RelativePath = Annotated[Path, AfterValidator(resolve_path)]
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


def _check_entry_label(value: str) -> str:
    """A label as a template writes it before the colon: words, no colon, one line."""
    if not value.strip():
        raise ValueError("an entry label cannot be blank")
    if ":" in value:
        raise ValueError("an entry label is the text before the colon: leave the colon out")
    return _check_agenda_text(value.strip())


EntryLabel = Annotated[str, Field(max_length=60), AfterValidator(_check_entry_label)]


class FrozenModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # A database or CalDAV URL may carry a password; repr/str must never show it.
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if isinstance(value, str) else value


def folder_problem(path: Path) -> str | None:
    """Why we cannot use ``path`` as a folder we read and write; None when we can."""
    kind = path_kind(path)
    if kind is None:
        return f"folder not found: {path}"
    if kind != "dir":
        return f"not a folder: {path}"
    if not os.access(path, os.R_OK | os.X_OK):
        return f"cannot read the folder {path}"
    if not os.access(path, os.W_OK):
        return f"cannot write to the folder {path} (read-only, or no permission)"
    return None
