"""Mutated config files, for the loader's fuzz test and ``bench/config_fuzz.py``.

The seeds are real configs: ``config.example.yaml`` as shipped and with its
commented Google, CalDAV, directory and quiet-hours examples turned on, and
small configs like those in the unit tests. A mutation is a few edits of the
text an admin could make by mistake, or that a hostile file holds: a character
anywhere (control characters, YAML indicators, non-ASCII), a line removed,
repeated, moved or re-indented, and a value replaced by a mapping, a list, a
300-character name, a huge number, an alias, a tag, ``${UNSET}``...

:func:`outcome` loads one file and says how it went: ``"config"``,
``"problems"`` (every one in ``FILE:LINE: ...`` form), or a crash described as
``"crash: <cause>"``, where the cause is the exception type and the place in
our code it came from (the last frame under this repository), so that causes
can be counted.
"""

from __future__ import annotations

import random
import re
import textwrap
import traceback
from pathlib import Path

from feedback_agendas.agendas.errors import ConfigError
from feedback_agendas.scheduler.config.checks import check_config, check_located
from feedback_agendas.scheduler.config.source import (
    UNFORESEEN,
    LocatedConfig,
    _load_config,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config.example.yaml"
ENVIRON = {"CALDAV_PASSWORD": "pw-from-env", "PGPASSWORD": "pg-secret"}


def _uncomment(text: str, first_line: str) -> str:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if first_line in line)
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    i = start
    while i < len(lines) and lines[i].startswith(indent + "# "):
        lines[i] = indent + lines[i][len(indent) + 2 :]
        i += 1
    return "\n".join(lines) + "\n"


def seeds() -> list[str]:
    """The configs mutations start from."""
    example = EXAMPLE.read_text(encoding="utf-8")
    full = example
    for first_line in ("- name: mona-google", "- name: mona-caldav", "# directory:",
                       "# quiet_hours:", "# text:"):  # fmt: skip
        full = _uncomment(full, first_line)
    small = textwrap.dedent(
        """\
        storage:
          url: sqlite:///fa.db
        calendars:
          - name: mona
            provider: memory
            owner: mona@example.com
          - name: dav
            provider: caldav
            url: http://user:${CALDAV_PASSWORD}@127.0.0.1:5232/
            calendar: work
            owner: mona@example.com
            verify_tls: false
            timezone: Europe/Stockholm
        org:
          internal_domains: [example.com]
          teams:
            - name: platform
              manager: mona@example.com
              members: [alice@example.com]
              positive_only_until: 2026-12-31
              notify: ["json://127.0.0.1:9/hook"]
        opt_out:
          teams: [platform]
          calendars: [mona]
          users: [alice@example.com]
        people:
          - email: alice@example.com
            notify: ["mailto://127.0.0.1:25?to=alice@example.com"]
        reminders:
          quiet_hours: {start: "20:00", end: "07:00"}
          weekly_digest: {weekday: fri, time: "15:00"}
        sync: {interval_seconds: 60, jitter: 0.1}
        server: {host: 127.0.0.1, port: 0}
        """
    )
    return [example, full, small]


HOSTILE_VALUES = (
    "{a: 1}", "[x, y]", "[]", "{}", "~", "''", '""', "-1", "0", "1e999", ".nan", ".inf",
    "yes", "no", "2026-13-45", "2026-02-30 25:61", "20:00", "0x1F", "0o17", "9" * 5000,
    "A" * 300, "Europe/" + "x" * 300, "/" * 300, "a/" * 200, "~nobody-here/x", "../../etc",
    '"\\0"', '"\\x01"', '"\\ud800"', "${UNSET}", "$${LITERAL}", "*undefined", "&anchor x",
    "!!binary eA==", "!!python/object:os.system x", "!!set {a, b}", "!!str", "!!int x",
    "!!timestamp x", "!!float x", "|\n  block", ">-\n  folded", "'unterminated", '"bad \\q"',
    "? complex\n: key", "<<: {a: 1}", "- item", "a: b: c", "@at", "`tick`", "%directive",
    "mona@example.com", "anonymous", "sqlite://", "sqlite:///:memory:",
    "postgresql://u:p@h/db", "mysql://x", "http://user:pw@h/", "ftp://x", "en", "sv", "xx",
    "Europe/Stockholm", "mon", "fri", "better", "well", "stop", "praise",
)  # fmt: skip
CHARACTERS = (
    "\x00", "\x01", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\u2028", "\ufeff",
    "\ud800", "\t", "\r", "\n", " ", ":", "-", "?", "[", "]", "{", "}", ",", "#", "&", "*",
    "!", "|", ">", "'", '"', "%", "@", "`", "\\", "$", "é", "ö", "ß", "€", "💥", "0", "a",
)  # fmt: skip
_VALUE = re.compile(r"^(\s*(?:- )?[A-Za-z_][\w-]*:) (.*)$")


def mutate(text: str, rnd: random.Random) -> str:
    """``text`` after one to four random edits."""
    for _ in range(rnd.randint(1, 4)):
        lines = text.split("\n")
        kind = rnd.randrange(9)
        at = rnd.randrange(len(lines))
        if kind <= 2:  # replace a value: the most common way a config goes wrong
            candidates = [i for i, line in enumerate(lines) if _VALUE.match(line)]
            if candidates:
                at = rnd.choice(candidates)
                match = _VALUE.match(lines[at])
                assert match is not None
                lines[at] = f"{match[1]} {rnd.choice(HOSTILE_VALUES)}"
        elif kind == 3:
            pos = rnd.randrange(len(text) + 1)
            text = text[:pos] + rnd.choice(CHARACTERS) * rnd.choice((1, 1, 2, 50)) + text[pos:]
            continue
        elif kind == 4:
            pos = rnd.randrange(len(text) + 1)
            text = text[:pos] + text[pos + rnd.randint(1, 40) :]
            continue
        elif kind == 5:
            del lines[at]
        elif kind == 6:
            lines.insert(rnd.randrange(len(lines) + 1), lines[at])
        elif kind == 7:
            other = rnd.randrange(len(lines))
            lines[at], lines[other] = lines[other], lines[at]
        else:
            lines[at] = lines[at][2:] if rnd.random() < 0.5 else "  " + lines[at]
        text = "\n".join(lines)
    return text


_PROBLEM = re.compile(r"^(?P<file>.+?)(?::(?P<line>\d+))?: (?P<message>.+)", re.DOTALL)


def outcome(path: Path, text: str) -> str:
    """Write ``text`` to ``path`` and check it: ``config``, ``problems`` or ``crash: cause``."""
    # What the seeds name, so that a mutated config can also pass check-config's checks.
    (path.parent / "examples" / "calendars" / "mona").mkdir(parents=True, exist_ok=True)
    try:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    except ValueError:  # pragma: no cover - surrogatepass writes anything
        return "unwritable"
    try:
        problems = check_config(path, environ=ENVIRON)
    except Exception as exc:
        return f"crash: {_cause(exc)}"
    for problem in problems:
        match = _PROBLEM.match(problem)
        if match is None or match["file"] != str(path):
            return f"crash: a problem without its file: {problem[:80]!r}"
        if UNFORESEEN in problem:
            # Caught by the last line of defence: load once more without it, to find where.
            try:
                config, root = _load_config(path, ENVIRON)
                check_located(LocatedConfig(config=config, source=path, root=root))
            except ConfigError:
                pass
            except Exception as exc:
                return f"crash: {_cause(exc)} (caught as {UNFORESEEN!r})"
            return f"crash: {problem[len(str(path)) + 2 :]}"
    return "problems" if problems else "config"


def _cause(exc: BaseException) -> str:
    ours = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename.startswith(str(ROOT)) and "/.venv/" not in frame.filename
    ]
    where = f" at {Path(ours[-1].filename).relative_to(ROOT)}:{ours[-1].lineno}" if ours else ""
    return f"{type(exc).__name__}{where}"
