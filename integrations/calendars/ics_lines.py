"""The raw content lines of one calendar object, and byte-exact edits of them.

Other programs write iCalendar in ways no library writes back the same:
parameter quoting, property order, folds at odd places, LF line ends, comma
lists, ``TZOFFSETTO:+010000``. Re-serialising a parsed calendar rewrites all of
it. So :mod:`feedback_agendas.integrations.calendars.ics` parses to *decide*, and writes through
here, by editing the original bytes:

- :func:`edit_description` replaces the DESCRIPTION line and adds, replaces or
  removes the ``X-FEEDBACK-AGENDAS-HASH`` line of one VEVENT; every other byte
  of the object stays. New lines are folded at 75 octets (never inside a UTF-8
  sequence) and end like the line next to them (LF or CRLF).
- :func:`edit_blocker` says why an edit would not be certain (a reason code
  from :class:`Blocker`); such an object is never rewritten.
- :func:`normalise_for_reading` rewrites, for the parser only, two forms that
  icalendar reads differently from other readers: a DATE with a TZID (all-day)
  and a DATE-TIME with both a TZID and a trailing ``Z`` (UTC).
- :func:`outside_written_lines` is the object without the lines a write may
  change: the read-back check compares it byte for byte.

A *logical line* is one content line, unfolded: a physical line plus the lines
after it that start with a space or a tab. Lines end with CRLF or LF; a lone
CR is not a line end (as for icalendar). Nothing here logs or quotes values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

HASH_NAME = b"X-FEEDBACK-AGENDAS-HASH"
DESCRIPTION_NAME = b"DESCRIPTION"
MAX_LINE_OCTETS = 75  # RFC 5545 3.1, without the line break
_SEGMENT_OCTETS = MAX_LINE_OCTETS - 1  # room for the space that starts a continuation

_PHYSICAL = re.compile(rb"([^\n]*?)(\r\n|\n|$)")
_NAME = re.compile(rb"[A-Za-z0-9-]+")
_DATE = re.compile(rb"\d{8}")
_UTC_DATE_TIME = re.compile(rb"\d{8}T\d{6}Z")
# Properties whose value is a date or a time that a TZID applies to.
# Parameters that change how a value is read (vCalendar 1.0's QUOTED-PRINTABLE, BASE64).
_VALUE_CHANGING_PARAMS = frozenset({b"ENCODING", b"CHARSET", b"VALUE"})
_TIME_PROPERTIES = frozenset({b"DTSTART", b"DTEND", b"DUE", b"RECURRENCE-ID", b"EXDATE", b"RDATE"})


class Blocker(StrEnum):
    """Why an object cannot be edited with certainty (the reason codes in logs and reports)."""

    NOT_UTF8 = "not_utf8"  # bytes that are not UTF-8: we could not write them back
    LINE_BREAKS = "line_breaks"  # a fold after a blank line, or a fold with nothing before it
    COMPONENT_NOT_FOUND = "component_not_found"  # the VEVENT is not where the parser saw it
    AMBIGUOUS_COMPONENT = "ambiguous_component"  # several VEVENTs could be the one
    SEVERAL_DESCRIPTIONS = "several_descriptions"
    UNPARSABLE_LINE = "unparsable_line"  # a DESCRIPTION or hash line we cannot split
    NO_DESCRIPTION_SLOT = "no_description_slot"  # nowhere certain to add a DESCRIPTION
    ENCODED_DESCRIPTION = "encoded_description"  # ENCODING=, CHARSET= or VALUE= on it


class EditBlocked(Exception):
    """An edit that would not be certain; ``reason`` is a :class:`Blocker`."""

    def __init__(self, reason: Blocker) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Line:
    """One logical line: its bytes ``data[start:end]`` and its unfolded content."""

    start: int
    end: int
    content: bytes  # unfolded, without line breaks
    ending: bytes  # the break of its last physical line: b"\r\n", b"\n" or b"" at the end
    name: bytes  # upper case; b"" for a blank line


@dataclass(slots=True)
class RawComponent:
    """One component in the raw text: its BEGIN and END lines and its own properties."""

    kind: bytes  # upper case, e.g. b"VEVENT"
    begin: int  # index of the BEGIN line
    end: int | None = None  # index of the END line
    properties: list[int] = field(default_factory=list)  # own lines, not a subcomponent's
    first_child: int | None = None  # index of the first subcomponent's BEGIN line


@dataclass(frozen=True, slots=True)
class RawObject:
    """A calendar object split into logical lines and components (in document order)."""

    data: bytes
    lines: tuple[Line, ...]
    components: tuple[RawComponent, ...]
    folds_ok: bool  # False when a fold follows a blank line or starts the object

    def events(self) -> list[RawComponent]:
        return [c for c in self.components if c.kind == b"VEVENT"]


def split_lines(data: bytes) -> RawObject:
    """Split ``data`` into logical lines and components; never raises."""
    lines: list[Line] = []
    folds_ok = True
    start = 0
    parts: list[bytes] = []
    ending = b""
    position = 0
    blank_before = False
    size = len(data)
    while position < size:
        match = _PHYSICAL.match(data, position)
        assert match is not None  # the pattern matches the empty string
        text, brk = match.group(1), match.group(2)
        position = match.end()
        if text[:1] in (b" ", b"\t"):
            if not parts or blank_before:
                folds_ok = False
                blank_before = False
                parts = parts or [b""]
            parts.append(text[1:])
            ending = brk
            continue
        if parts:
            lines.append(_line(start, match.start(), b"".join(parts), ending))
        blank_before = not text
        start, parts, ending = match.start(), [text], brk
        if not brk:
            break
    if parts:
        lines.append(_line(start, size, b"".join(parts), ending))
    return RawObject(data, tuple(lines), _components(lines), folds_ok)


def _line(start: int, end: int, content: bytes, ending: bytes) -> Line:
    match = _NAME.match(content)
    name = match.group(0).upper() if match else b""
    return Line(start, end, content, ending, name)


def _components(lines: Sequence[Line]) -> tuple[RawComponent, ...]:
    found: list[RawComponent] = []
    stack: list[RawComponent] = []
    for index, line in enumerate(lines):
        if (
            line.name in (b"BEGIN", b"END")
            and line.content[len(line.name) : len(line.name) + 1] == b":"
        ):
            kind = line.content[len(line.name) + 1 :].strip().upper()
            if line.name == b"BEGIN":
                if stack and stack[-1].first_child is None:
                    stack[-1].first_child = index
                component = RawComponent(kind, index)
                found.append(component)
                stack.append(component)
            elif stack and stack[-1].kind == kind:
                stack.pop().end = index
            continue
        if stack and line.name:
            stack[-1].properties.append(index)
    return tuple(found)


# -- splitting one content line ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContentLine:
    """A content line split at the first colon outside quotes."""

    name: bytes  # as written
    params: tuple[bytes, ...]  # each raw ``NAME=value`` as written
    value: bytes

    def head(self) -> bytes:
        return b";".join((self.name, *self.params))


def split_content_line(content: bytes) -> ContentLine | None:
    """``NAME;P=v;Q="a:b":value`` split into parts, or None when it is not well formed."""
    name_match = _NAME.match(content)
    if name_match is None:
        return None
    position = name_match.end()
    params: list[bytes] = []
    while position < len(content) and content[position : position + 1] == b";":
        begin = position + 1
        position = begin
        quoted = False
        while position < len(content):
            char = content[position : position + 1]
            if char == b'"':
                quoted = not quoted
            elif not quoted and char in (b";", b":"):
                break
            position += 1
        if quoted or position >= len(content):
            return None
        params.append(content[begin:position])
    if content[position : position + 1] != b":":
        return None
    return ContentLine(name_match.group(0), tuple(params), content[position + 1 :])


def _param_name(param: bytes) -> bytes:
    return param.split(b"=", 1)[0].strip().upper()


# -- reading: DATE with TZID, TZID with Z ------------------------------------------


def normalise_for_reading(data: bytes) -> bytes:
    """``data`` with the time forms other readers agree on spelt so icalendar agrees too.

    - ``DTSTART;TZID=Europe/Berlin:20261202`` is a DATE (all-day): the TZID is
      dropped and ``VALUE=DATE`` added;
    - ``DTSTART;TZID=America/New_York:20261222T170000Z`` is UTC: the TZID is
      dropped.

    Only for parsing: what is written is always the original bytes, edited.
    Returns ``data`` itself when nothing needed a change.
    """
    if b"TZID" not in data.upper():
        return data
    raw = split_lines(data)
    pieces: list[bytes] = []
    last = 0
    for line in raw.lines:
        if line.name not in _TIME_PROPERTIES:
            continue
        rewritten = _normalised_time_line(line.content)
        if rewritten is None:
            continue
        pieces.append(data[last : line.start])
        pieces.append(rewritten + (line.ending or b"\r\n"))
        last = line.end
    if not pieces:
        return data
    pieces.append(data[last:])
    return b"".join(pieces)


def _normalised_time_line(content: bytes) -> bytes | None:
    parsed = split_content_line(content)
    if parsed is None or not any(_param_name(p) == b"TZID" for p in parsed.params):
        return None
    values = parsed.value.split(b",")
    others = tuple(p for p in parsed.params if _param_name(p) != b"TZID")
    if all(_DATE.fullmatch(v.strip()) for v in values):
        kept = tuple(p for p in others if _param_name(p) != b"VALUE")
        return ContentLine(parsed.name, (*kept, b"VALUE=DATE"), parsed.value).head() + (
            b":" + parsed.value
        )
    if all(_UTC_DATE_TIME.fullmatch(v.strip()) for v in values):
        return ContentLine(parsed.name, others, parsed.value).head() + b":" + parsed.value
    return None


# -- writing ------------------------------------------------------------------------


def edit_blocker(data: bytes) -> Blocker | None:
    """Why no edit of ``data`` can be certain, whichever VEVENT it targets; None if one can."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return Blocker.NOT_UTF8
    if not split_lines(data).folds_ok:
        return Blocker.LINE_BREAKS
    return None


def event_blocker(raw: RawObject, index: int, uid: str) -> Blocker | None:
    """Why the ``index``-th VEVENT (in document order, named ``uid``) cannot be edited."""
    events = raw.events()
    if index >= len(events):
        return Blocker.COMPONENT_NOT_FOUND
    component = events[index]
    if component.end is None:
        return Blocker.COMPONENT_NOT_FOUND
    uids = [raw.lines[i] for i in component.properties if raw.lines[i].name == b"UID"]
    if len(uids) != 1:
        return Blocker.AMBIGUOUS_COMPONENT
    parsed_uid = split_content_line(uids[0].content)
    if parsed_uid is None or unescape_text(parsed_uid.value) != uid:
        return Blocker.COMPONENT_NOT_FOUND
    descriptions = _own(raw, component, DESCRIPTION_NAME)
    if len(descriptions) > 1:
        return Blocker.SEVERAL_DESCRIPTIONS
    for line_index in descriptions + _own(raw, component, HASH_NAME):
        parsed = split_content_line(raw.lines[line_index].content)
        if parsed is None:
            return Blocker.UNPARSABLE_LINE
        if any(_param_name(p) in _VALUE_CHANGING_PARAMS for p in parsed.params):
            return Blocker.ENCODED_DESCRIPTION
    if not descriptions and _insertion_point(raw, component) is None:
        return Blocker.NO_DESCRIPTION_SLOT
    return None


def edit_description(
    data: bytes, index: int, uid: str, description: str, block_hash: str | None
) -> bytes:
    """Set DESCRIPTION and our hash line of the ``index``-th VEVENT; every other byte stays.

    An empty ``description`` removes the DESCRIPTION line, ``block_hash=None``
    the hash line. Raises :class:`EditBlocked` when the edit is not certain.
    """
    blocker = edit_blocker(data)
    raw = split_lines(data)
    blocker = blocker or event_blocker(raw, index, uid)
    if blocker is not None:
        raise EditBlocked(blocker)
    component = raw.events()[index]
    descriptions = _own(raw, component, DESCRIPTION_NAME)
    hashes = _own(raw, component, HASH_NAME)

    # (start, end, replacement bytes) over data, applied back to front.
    edits: list[tuple[int, int, bytes]] = []
    inserted: list[bytes] = []  # new lines, all at ``insert_at``: DESCRIPTION, then the hash
    if descriptions:
        line = raw.lines[descriptions[0]]
        parsed = split_content_line(line.content)
        assert parsed is not None  # event_blocker checked it
        new_value = escape_text(description)
        if not description:
            edits.append((line.start, line.end, b""))
        elif new_value != parsed.value:
            replaced = fold(parsed.head() + b":" + new_value, line.ending)
            edits.append((line.start, line.end, replaced))
        insert_at, ending = line.end, line.ending or _ending_near(raw, descriptions[0])
    else:
        point = _insertion_point(raw, component)
        assert point is not None  # event_blocker checked it
        insert_at = raw.lines[point].start
        ending = raw.lines[point - 1].ending
        if description:
            inserted.append(fold(DESCRIPTION_NAME + b":" + escape_text(description), ending))
    new_hash_line = fold(HASH_NAME + b":" + escape_text(block_hash), ending) if block_hash else b""
    if hashes:
        first = raw.lines[hashes[0]]
        parsed_hash = split_content_line(first.content)
        same = parsed_hash is not None and unescape_text(parsed_hash.value) == block_hash
        if not same:
            edits.append((first.start, first.end, new_hash_line))
        for extra in hashes[1:]:  # our own property, written twice by someone: keep one
            edits.append((raw.lines[extra].start, raw.lines[extra].end, b""))
    elif new_hash_line:
        inserted.append(new_hash_line)
    if inserted:
        edits.append((insert_at, insert_at, b"".join(inserted)))
    out = data
    for start, end, replacement in sorted(edits, reverse=True):
        out = out[:start] + replacement + out[end:]
    return out


def _own(raw: RawObject, component: RawComponent, name: bytes) -> list[int]:
    return [i for i in component.properties if raw.lines[i].name == name]


def _insertion_point(raw: RawObject, component: RawComponent) -> int | None:
    """Index of the line a new property goes before: the first subcomponent, else END."""
    point = component.first_child if component.first_child is not None else component.end
    if point is None or point <= component.begin:
        return None
    before = raw.lines[point - 1]
    if not before.ending:
        return None
    return point


def _ending_near(raw: RawObject, index: int) -> bytes:
    for line in raw.lines[index:]:
        if line.ending:
            return line.ending
    return b"\r\n"


def fold(content: bytes, ending: bytes) -> bytes:
    """``content`` as physical lines of at most 75 octets, never splitting a UTF-8 sequence.

    Each segment holds at most 74 octets (a continuation line adds its
    leading space), and none ends in a backslash or a caret, so that an
    escape is never split: icalendar folds the same way, so a description it
    wrote and that we write back unchanged keeps its bytes.
    """
    out: list[bytes] = []
    position = 0
    while True:
        cut = min(position + _SEGMENT_OCTETS, len(content))
        if cut < len(content):
            while cut > position + 1 and (content[cut] & 0xC0) == 0x80:
                cut -= 1  # a continuation byte: cut before its sequence
            if cut > position + 1 and content[cut - 1 : cut] in (b"\\", b"^"):
                cut -= 1  # keep an escape and what it escapes together
        out.append(content[position:cut])
        position = cut
        if position >= len(content):
            break
    return (ending + b" ").join(out) + ending


def escape_text(value: str) -> bytes:
    """An RFC 5545 TEXT value: backslash, semicolon, comma and newline escaped."""
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")
    return text.encode("utf-8")


def unescape_text(value: bytes) -> str:
    """The text of an escaped TEXT value (lenient: an unknown escape keeps its character)."""
    text = value.decode("utf-8", "replace")
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), text)


def outside_written_lines(data: bytes, events: Sequence[int]) -> bytes:
    """``data`` without the DESCRIPTION and hash lines of the VEVENTs at ``events`` (indices)."""
    raw = split_lines(data)
    components = raw.events()
    drop = {
        i
        for index in events
        if index < len(components)
        for i in components[index].properties
        if raw.lines[i].name in (DESCRIPTION_NAME, HASH_NAME)
    }
    kept: list[bytes] = []
    last = 0
    for i in sorted(drop):
        kept.append(data[last : raw.lines[i].start])
        last = raw.lines[i].end
    kept.append(data[last:])
    return b"".join(kept)
