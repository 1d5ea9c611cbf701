"""Find, read and rewrite the one agenda block inside an event description.

The block is the text between two visible marker lines::

    ── feedback agenda ──
    ...body...
    ── end of feedback agenda ──

The markers do not depend on the locale. They are found again after calendar
apps rewrite the description: plain text turned into HTML and back, ``<br>``
spelled differently, CRLF line ends, ``&nbsp;`` and other entities, lines
wrapped in ``<div>``/``<p>``/``<span>``. A marker counts only when it stands
on a line of its own, so a user quoting it in a sentence is not a block.

Edits are detected with :func:`block_hash`, which hashes the *normalised*
words of a block (tags stripped, entities unescaped, whitespace collapsed,
list bullets dropped). A provider normalising our HTML is therefore not an
edit, while a changed word is.

The rules (invariants I1 and I3):

* text outside the block is kept byte for byte; insert-then-remove gives the
  original description back exactly;
* a block whose hash differs from the hash we wrote is the user's: never
  overwritten, never removed (``LEFT_EDITED``);
* a broken block (a start marker without its end, or the reverse) counts as
  edited;
* at most one block: extra copies that are still ours are removed, edited
  copies are left alone.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from agendas.model import TextFormat

START_MARKER = "── feedback agenda ──"
END_MARKER = "── end of feedback agenda ──"

# The whole block, markers included, stays under this many characters so it
# fits well inside Google's ~8 KB description limit next to the user's text.
MAX_BLOCK_CHARS = 2000

_SEPARATOR = {TextFormat.TEXT: "\n\n", TextFormat.HTML: "<br><br>"}
_LINE_BREAK = {TextFormat.TEXT: "\n", TextFormat.HTML: "<br>"}

# Labels of the praise entries the team templates render (en, sv). A filled
# entry keeps the label and replaces the placeholder after the colon.
PRAISE_ENTRY_LABELS = ("praise", "beröm")
# Labels of the entries in a 1:1's focus slot (en, sv; "Situation" is both).
# Only these lines are entries: other lines of our block also read
# "Label: text" (the check-in, the team norm, a goal such as "Q3: ship v2"),
# and they must never make an untouched 1:1 look done.
ONE_ON_ONE_ENTRY_LABELS = (
    "situation",
    "behaviour",
    "impact",
    "what to do instead",
    "beteende",
    "effekt",
    "vad du kan göra i stället",
)
PLACEHOLDER = "___"


class MergeOutcome(StrEnum):
    INSERTED = "inserted"
    UPDATED = "updated"
    REMOVED = "removed"
    UNCHANGED = "unchanged"
    LEFT_EDITED = "left_edited"


@dataclass(frozen=True, slots=True)
class MergeResult:
    """What :func:`merge_block` decided.

    ``description`` is the text to write (equal to the input unless the
    outcome is ``INSERTED``, ``UPDATED`` or ``REMOVED``). ``block_hash`` is
    the hash of our unedited block as it stands afterwards: the new body's
    hash after an insert or update, the current one when unchanged, ``None``
    when no block of ours is left, and the caller's ``known_hash`` when the
    block was left alone because the user edited it (it stays the reference
    for "unedited").
    """

    outcome: MergeOutcome
    description: str
    block_hash: str | None


def max_body_chars(fmt: TextFormat) -> int:
    """The longest body that keeps the whole block within :data:`MAX_BLOCK_CHARS`."""
    wrapper = len(START_MARKER) + len(END_MARKER) + 2 * len(_LINE_BREAK[fmt])
    return MAX_BLOCK_CHARS - wrapper


# --- finding markers -------------------------------------------------------

_DASH = r"(?:─|&#9472;|&#x0*2500;|&boxh;)"
# Inside a marker line: spaces, non-breaking spaces and inline tags only, so
# a marker never spans two lines.
_GAP = (
    r"(?:[ \t\u00a0\u202f]|&nbsp;|&#160;|&#x0*a0;"
    r"|</?(?:b|i|u|span|font|strong|em)\b[^<>]*>)"
)


def _marker_pattern(*words: str) -> str:
    return rf"{_DASH}+{_GAP}*{(_GAP + '+').join(words)}{_GAP}*{_DASH}+"


_MARKER_RE = re.compile(
    rf"(?P<end>{_marker_pattern('end', 'of', 'feedback', 'agenda')})"
    rf"|(?P<start>{_marker_pattern('feedback', 'agenda')})",
    re.IGNORECASE,
)
_PAD_CHARS = " \t\u00a0\u202f"
_PAD_ENTITIES = ("&nbsp;", "&#160;")
# ">" ends a tag such as <br> or <div>, "<" starts one: line ends in HTML.
_LINE_START_CHARS = "\n\r>"
_LINE_END_CHARS = "\n\r<"


def _starts_line(text: str, pos: int) -> bool:
    """True when only padding stands between a line start and ``pos``."""
    while pos > 0:
        char = text[pos - 1]
        if char in _LINE_START_CHARS:
            return True
        if char in _PAD_CHARS:
            pos -= 1
        elif char == ";" and text[max(0, pos - 6) : pos].lower() in _PAD_ENTITIES:
            pos -= 6
        else:
            return False
    return True


def _ends_line(text: str, pos: int) -> bool:
    """True when only padding stands between ``pos`` and a line end."""
    size = len(text)
    while pos < size:
        char = text[pos]
        if char in _LINE_END_CHARS:
            return True
        if char in _PAD_CHARS:
            pos += 1
        elif char == "&" and text[pos : pos + 6].lower() in _PAD_ENTITIES:
            pos += 6
        else:
            return False
    return True


@dataclass(frozen=True, slots=True)
class _Marker:
    is_start: bool
    begin: int
    end: int


# Where a marker can begin: a dash, spelled as itself or as an entity. The
# scan jumps between these instead of trying the full pattern everywhere.
_DASH_RE = re.compile(_DASH, re.IGNORECASE)


def _find_markers(text: str) -> list[_Marker]:
    has_entities = "&" in text
    if not has_entities and "─" not in text:  # fast path: most descriptions
        return []
    found: list[_Marker] = []
    pos = 0
    while True:
        if has_entities:
            dash = _DASH_RE.search(text, pos)
            if dash is None:
                break
            begin, after = dash.start(), dash.end()
        else:
            begin = text.find("─", pos)
            if begin < 0:
                break
            after = begin + 1
        match = _MARKER_RE.match(text, begin)
        if match and _starts_line(text, begin) and _ends_line(text, match.end()):
            found.append(_Marker(match.lastgroup == "start", begin, match.end()))
            pos = match.end()
        else:
            # Not a marker on a line of its own; a real one may start further on.
            pos = after
    return found


def contains_marker(text: str) -> bool:
    """True when ``text`` holds anything that reads as a block marker line."""
    return bool(_find_markers(text))


def strip_markers(text: str) -> str:
    """Remove marker-like text from a configured string (a goal, a norm).

    Applied to admin-provided text before it enters a block, so that no block
    ever contains a second marker. Marker text is removed wherever it stands,
    on its own line or not.
    """
    return _MARKER_RE.sub("", text)


@dataclass(frozen=True, slots=True)
class _Block:
    begin: int  # first character of the start marker
    content_begin: int
    content_end: int
    end: int  # just past the end marker


def _parse(text: str) -> tuple[list[_Block], bool]:
    """All complete blocks in order, and whether any marker is left unpaired."""
    blocks: list[_Block] = []
    broken = False
    open_start: _Marker | None = None
    for marker in _find_markers(text):
        if marker.is_start:
            broken = broken or open_start is not None
            open_start = marker
        elif open_start is None:
            broken = True
        else:
            blocks.append(_Block(open_start.begin, open_start.end, marker.begin, marker.end))
            open_start = None
    return blocks, broken or open_start is not None


# --- normalising a block's content -----------------------------------------

_KNOWN_TAGS = (
    "a|abbr|b|big|blockquote|body|br|center|code|del|div|em|font|h[1-6]|head|hr|html"
    "|html-blob|i|img|ins|li|mark|ol|p|pre|s|small|span|strike|strong|sub|sup|table"
    "|tbody|td|th|thead|tr|u|ul|wbr"
)
_ITEM_TAG = re.compile(r"<li\b[^<>]*>", re.IGNORECASE)
_LINE_BREAK_TAG = re.compile(r"<br\b[^<>]*>", re.IGNORECASE)
# Block-level tags end a line but do not add an empty one: "</li><li>" is one break.
_BLOCK_TAG = re.compile(
    r"</?(?:div|p|ul|ol|li|tr|h[1-6]|blockquote|pre|table|hr)\b[^<>]*>", re.IGNORECASE
)
_OTHER_TAG = re.compile(rf"<!--.*?-->|</?(?:{_KNOWN_TAGS})\b[^<>]*>", re.IGNORECASE | re.DOTALL)
_SOFT_BREAK = "\x1e"
_BULLET = re.compile(r"^[•*·◦▪–—-](?:\s+|$)")
_BULLET_TOKENS = frozenset("-*•·◦▪–—")


def _soft_breaks_to_lines(text: str) -> str:
    """Turn each run of soft breaks into at most one line end."""
    out: list[str] = []
    at_line_start = True
    for index, part in enumerate(text.split(_SOFT_BREAK)):
        if index and not at_line_start:
            out.append("\n")
            at_line_start = True
        out.append(part)
        if part.strip():
            at_line_start = part.rstrip(" \t\u00a0").endswith("\n")
    return "".join(out)


@lru_cache(maxsize=4096)
def _readable(raw: str) -> str:
    """Block content as plain lines: tags gone, entities decoded, spaces collapsed."""
    text = raw.replace(_SOFT_BREAK, " ")
    text = html.unescape(text) if "&" in text else text
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "<" in text:
        text = _ITEM_TAG.sub(f"{_SOFT_BREAK}- ", text)
        text = _LINE_BREAK_TAG.sub("\n", text)
        text = _BLOCK_TAG.sub(_SOFT_BREAK, text)
        text = _OTHER_TAG.sub("", text)
        text = _soft_breaks_to_lines(text)
    lines: list[str] = []
    for line in text.split("\n"):
        words = line.split()
        if not words:
            if lines and lines[-1]:
                lines.append("")
            continue
        tidy = " ".join(words)
        lines.append(_BULLET.sub("- ", tidy, count=1))
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


@lru_cache(maxsize=4096)
def block_hash(body: str) -> str:
    """Hash of a block's normalised words (hex SHA-256).

    Tags are stripped, entities unescaped, whitespace collapsed and list
    bullets dropped first, so the text and HTML renderings of one plan, and
    a provider's reformatting of either, hash the same; any changed word
    does not.
    """
    words = [w for w in _readable(body).split() if w not in _BULLET_TOKENS]
    return hashlib.sha256(" ".join(words).encode("utf-8")).hexdigest()


# --- reading ---------------------------------------------------------------


def has_block(description: str) -> bool:
    """True when the description holds a block marker, complete or broken."""
    return contains_marker(description)


def read_block(description: str) -> str | None:
    """The body of the first complete block as normalised plain text, else ``None``."""
    blocks, _ = _parse(description)
    if not blocks:
        return None
    first = blocks[0]
    return _readable(description[first.content_begin : first.content_end])


def _entry_pattern(labels: tuple[str, ...]) -> re.Pattern[str]:
    """A line ``Label: rest`` (optionally bulleted) for one of ``labels``, any case."""
    names = "|".join(r"\s+".join(map(re.escape, label.split())) for label in labels)
    return re.compile(rf"^(?:- )?(?:{names})\s*:(?P<rest>.*)$", re.IGNORECASE)


_PRAISE_ENTRY = _entry_pattern(PRAISE_ENTRY_LABELS)
_ONE_ON_ONE_ENTRY = _entry_pattern(ONE_ON_ONE_ENTRY_LABELS)
_NOT_CONTENT = "_.…-–— "


def _count_filled(description: str, entry: re.Pattern[str]) -> int:
    """How many ``entry`` lines of our block hold more than a placeholder after the colon."""
    body = read_block(description)
    if body is None:
        return 0
    filled = 0
    for line in body.split("\n"):
        match = entry.match(line)
        if match and match["rest"].strip(_NOT_CONTENT):
            filled += 1
    return filled


def count_filled_praise(description: str) -> int:
    """How many praise entries in the block were filled in (for R6 wins).

    An entry is a line ``Praise: ...`` (``Beröm: ...``); it is filled when
    anything other than the ``___`` placeholder, dots or dashes follows the
    colon. Works on any rendering of the block (text, HTML, reformatted).
    """
    return _count_filled(description, _PRAISE_ENTRY)


def count_filled_entries(description: str) -> int:
    """How many entries of a 1:1's focus slot were filled in (R6: a 1:1 marked as done).

    An entry is a line ``Situation: ...``, ``Behaviour: ...``, ``Impact: ...``
    or ``What to do instead: ...`` (Swedish: ``Situation``, ``Beteende``,
    ``Effekt``, ``Vad du kan göra i stället``), bulleted or not; it is filled
    when anything other than the ``___`` placeholder, dots or dashes follows
    the colon. Only lines inside our block count. Works on any rendering of
    the block (text, HTML, reformatted). The caller gets a number only: what
    was written is feedback content and never leaves this function.
    """
    return _count_filled(description, _ONE_ON_ONE_ENTRY)


# --- writing ---------------------------------------------------------------


def _marked(body: str, fmt: TextFormat) -> str:
    br = _LINE_BREAK[fmt]
    return f"{START_MARKER}{br}{body}{br}{END_MARKER}"


_OPENING_WRAPPER = re.compile(r"<(div|p|span)(?:\s[^<>]*)?>\Z", re.IGNORECASE)
# Our separator after a calendar app rewrote it: two line breaks spelled
# differently, or one empty <div>/<p> line. Exactly that much, so a line
# break the user typed before the block stays.
_LOOSE_SEPARATOR = re.compile(
    r"(?:(?:\r\n|\r|\n)[ \t]*){2}\Z|(?:<br\s*/?>\s*){2}\Z"
    r"|<(?:div|p)>\s*(?:<br\s*/?>|&nbsp;|\u00a0)?\s*</(?:div|p)>\s*\Z",
    re.IGNORECASE,
)
_WINDOW = 200


def _removal_span(text: str, block: _Block, fmt: TextFormat) -> tuple[int, int]:
    """The span to cut so that no trace of the block is left.

    That is the block, the wrapper tags a provider put around it (only
    opening/closing pairs), and the separator we added before it. After our
    own insert the separator is exactly ours, so removal restores the
    original text byte for byte.
    """
    begin, end = block.begin, block.end
    while match := _OPENING_WRAPPER.search(text, max(0, begin - _WINDOW), begin):
        closing = f"</{match.group(1).lower()}>"
        if text[end : end + len(closing)].lower() != closing:
            break
        begin, end = match.start(), end + len(closing)
    separator = _SEPARATOR[fmt]
    if text.endswith(separator, 0, begin):
        return begin - len(separator), end
    loose = _LOOSE_SEPARATOR.search(text, max(0, begin - _WINDOW), begin)
    if loose:
        return loose.start(), end
    return begin, end


def _cut(text: str, spans: list[tuple[int, int]]) -> str:
    for begin, end in sorted(spans, reverse=True):
        text = text[:begin] + text[end:]
    return text


def merge_block(
    description: str, fmt: TextFormat, body: str | None, known_hash: str | None
) -> MergeResult:
    """Put ``body`` into the description's block, or take the block out (``body=None``).

    ``fmt`` is the description's format and the format ``body`` was rendered
    in. ``known_hash`` is the hash of the block we last wrote (``None`` if we
    do not know). A block that no longer hashes to ``known_hash`` was edited
    by someone and is left exactly as it is. With no ``known_hash``, an
    existing block is ours only if it already says what we would write.
    """
    blocks, broken = _parse(description)
    if broken:
        return MergeResult(MergeOutcome.LEFT_EDITED, description, known_hash)
    if not blocks:
        if body is None:
            return MergeResult(MergeOutcome.UNCHANGED, description, None)
        marked = _marked(body, fmt)
        merged = f"{description}{_SEPARATOR[fmt]}{marked}" if description else marked
        return MergeResult(MergeOutcome.INSERTED, merged, block_hash(body))

    first = blocks[0]
    current = block_hash(description[first.content_begin : first.content_end])
    new = None if body is None else block_hash(body)
    ours = current == known_hash if known_hash is not None else current == new
    if not ours:
        return MergeResult(MergeOutcome.LEFT_EDITED, description, known_hash)

    # I1: copies of our unedited block go; a copy someone edited stays.
    copies = [
        _removal_span(description, block, fmt)
        for block in blocks[1:]
        if block_hash(description[block.content_begin : block.content_end]) == current
    ]
    if body is None:
        merged = _cut(description, [*copies, _removal_span(description, first, fmt)])
        return MergeResult(MergeOutcome.REMOVED, merged, None)
    if new == current:
        if not copies:
            return MergeResult(MergeOutcome.UNCHANGED, description, current)
        return MergeResult(MergeOutcome.UPDATED, _cut(description, copies), current)
    # Only the marker-to-marker span changes; wrappers and separators stay.
    without_copies = _cut(description, copies)
    merged = without_copies[: first.begin] + _marked(body, fmt) + without_copies[first.end :]
    return MergeResult(MergeOutcome.UPDATED, merged, new)
