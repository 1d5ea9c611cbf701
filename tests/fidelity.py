"""Helpers to tell whether a write changed an object only in its DESCRIPTION and hash lines.

Written apart from :mod:`feedback_agendas.integrations.calendars.ics_lines` on purpose: the
tests check the provider's byte edits with a second, simpler reading of the
text (a regular expression for logical lines and a depth counter for
components), not with the code under test.
"""

from __future__ import annotations

import re

WRITTEN_NAMES = (b"DESCRIPTION", b"X-FEEDBACK-AGENDAS-HASH")
_LOGICAL = re.compile(rb"[^\n]*(?:\n|$)(?:[ \t][^\n]*(?:\n|$))*")


def logical_lines(data: bytes) -> list[bytes]:
    """Each content line with its folds and its line break, exactly as in ``data``."""
    return [chunk for chunk in _LOGICAL.findall(data) if chunk]


def _unfolded(chunk: bytes) -> bytes:
    return re.sub(rb"\r?\n[ \t]", b"", chunk).rstrip(b"\r\n")


def _name(chunk: bytes) -> bytes:
    return re.split(rb"[;:]", _unfolded(chunk), maxsplit=1)[0].strip().upper()


def without_written_lines(data: bytes, event_index: int | None) -> list[bytes]:
    """``data``'s lines without the DESCRIPTION and hash lines of the ``event_index``-th VEVENT.

    Only that VEVENT's own lines are dropped (of every VEVENT when
    ``event_index`` is None): an alarm's DESCRIPTION inside it, and every
    other VEVENT, must stay.
    """
    kept = []
    stack: list[bytes] = []
    seen_events = -1
    target_depth = None
    for chunk in logical_lines(data):
        name = _name(chunk)
        value = _unfolded(chunk).split(b":", 1)[-1].strip().upper()
        if name == b"BEGIN":
            stack.append(value)
            if value == b"VEVENT":
                seen_events += 1
                if event_index is None or seen_events == event_index:
                    target_depth = len(stack)
        elif name == b"END":
            if target_depth == len(stack):
                target_depth = None
            if stack:
                stack.pop()
        elif target_depth == len(stack) and name in WRITTEN_NAMES:
            continue
        kept.append(chunk)
    return kept


def only_written_lines_differ(before: bytes, after: bytes, event_index: int = 0) -> bool:
    """True when ``after`` equals ``before`` byte for byte outside the two written lines."""
    return without_written_lines(before, event_index) == without_written_lines(after, event_index)


def calendar(*lines: str | bytes, ending: bytes = b"\r\n") -> bytes:
    """A calendar object from content lines (str as UTF-8, bytes as they are)."""
    raw = [line.encode() if isinstance(line, str) else line for line in lines]
    return ending.join(raw) + ending
