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

Edits are detected with :func:`block_hash`, which covers everything a user
can add inside a block: words, lines (a bullet-only line too), list items,
formatting (bold, italics, headings, rules), links with their targets,
images and HTML comments. Only what providers change on their own is
ignored: whitespace, entities, how a line break is spelled, wrapper tags
(``div``, ``p``, ``span``, ``font``) and the bullet character. The hash has
two parts: the *rich* form (with formatting) and the *plain* form (the
lines). A block with no formatting left is compared by its plain form, so a
provider turning our HTML into plain text is not an edit; a block with any
formatting is compared by its rich form, so formatting a user adds is one.

A block is ours only when it matches a hash we wrote to that event (the
caller passes those it knows: the event's hash property, our record of the
event, our record of its series). With none, the block is the user's, even
when it reads exactly like our template: a pasted copy is never ours.

The rules (invariants I1 and I3):

* text outside the block is kept byte for byte; insert-then-remove gives the
  original description back exactly;
* a block that matches none of the hashes we wrote is the user's: never
  overwritten, never removed (``LEFT_EDITED``);
* a broken block (a start marker without its end, or the reverse) counts as
  edited;
* at most one block: extra copies that are still ours are removed, edited
  copies are left alone.

Everything here runs in time linear in the description's length, whatever
it holds (issue 11): patterns are possessive and tried once per dash run or
tag, so no character is scanned more than a fixed number of times
(``bench/block.py`` measures it).
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from feedback_agendas.agendas.model import TextFormat
from feedback_agendas.agendas.praise import is_vague_praise

START_MARKER = "── feedback agenda ──"
END_MARKER = "── end of feedback agenda ──"

# The whole block, markers included, stays under this many characters so it
# fits well inside Google's ~8 KB description limit next to the user's text.
MAX_BLOCK_CHARS = 2000

_SEPARATOR = {TextFormat.TEXT: "\n\n", TextFormat.HTML: "<br><br>"}
_LINE_BREAK = {TextFormat.TEXT: "\n", TextFormat.HTML: "<br>"}

# Labels of the praise entries the team templates render (en, sv). A filled
# entry keeps the label and replaces the placeholder after the colon. Admins
# whose own templates use other labels add them in the config
# (``policy.entry_labels``), see :class:`EntryLabels`.
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

_DASH = r"(?:─|&#9472;|&#x0*+2500;|&boxh;)"
# Inside a marker line: spaces, non-breaking spaces and inline tags only, so
# a marker never spans two lines.
_GAP = (
    r"(?:[ \t\u00a0\u202f]|&nbsp;|&#160;|&#x0*+a0;"
    r"|</?(?:b|i|u|span|font|strong|em)\b[^<>]*+>)"
)


def _marker_pattern(*words: str) -> str:
    # Possessive quantifiers only: a failed attempt never backtracks, so one
    # attempt costs the length it read, and each dash run gets one attempt.
    return rf"{_DASH}++{_GAP}*+{(_GAP + '++').join(words)}{_GAP}*+{_DASH}++"


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
# scan jumps from one run of dashes to the next and tries the marker pattern
# once at the start of each run: a marker that starts inside a run would
# also match from the run's start, and the pattern never backtracks.
_DASH_RE = re.compile(_DASH, re.IGNORECASE)
_DASH_RUN_RE = re.compile(rf"{_DASH}++", re.IGNORECASE)


def _marker_matches(text: str) -> Iterator[re.Match[str]]:
    """Every marker-like text, on its own line or not, left to right, without overlaps.

    Linear in ``len(text)``: each dash run is read by one run match and one
    marker attempt, and the scan only moves forward.
    """
    has_entities = "&" in text
    if not has_entities and "─" not in text:  # fast path: most descriptions
        return
    pos = 0
    size = len(text)
    while pos < size:
        if has_entities:
            dash = _DASH_RE.search(text, pos)
            if dash is None:
                return
            begin = dash.start()
        else:
            begin = text.find("─", pos)
            if begin < 0:
                return
        run = _DASH_RUN_RE.match(text, begin)
        assert run is not None
        match = _MARKER_RE.match(text, begin)
        if match:
            yield match
            pos = match.end()
        else:
            pos = run.end()


def _find_markers(text: str) -> list[_Marker]:
    found: list[_Marker] = []
    for match in _marker_matches(text):
        begin, end = match.span()
        if _starts_line(text, begin) and _ends_line(text, end):
            found.append(_Marker(match.lastgroup == "start", begin, end))
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
    pieces: list[str] = []
    pos = 0
    for match in _marker_matches(text):
        pieces.append(text[pos : match.start()])
        pos = match.end()
    pieces.append(text[pos:])
    return "".join(pieces)


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


# --- reading a block's content ---------------------------------------------
#
# One forward pass turns the content into lines of words. Tags become line
# breaks (br), soft breaks (block tags: a run of them is one line end),
# nothing (wrappers providers add) or tokens of the rich form (formatting,
# links, images, comments). Entities are decoded in the text between tags
# only, so "&lt;b&gt;" stays text. The plain form is the rich form without
# its tokens.

_TAG_RE = re.compile(r"<!--|<(/?)([a-zA-Z][a-zA-Z0-9-]*+)(?![a-zA-Z0-9-])([^<>]*+)>")
_COMMENT_END_RE = re.compile("-->")
_LINE_BREAK_TAGS = frozenset({"br"})
_BLOCK_TAGS = frozenset({"div", "p", "ul", "li"})
# Wrappers and cells a provider adds or removes; they carry nothing a user wrote.
_TRANSPARENT_TAGS = frozenset(
    {"span", "font", "html", "head", "body", "html-blob", "tbody", "thead", "wbr", "center"}
)
# Formatting: a token in the rich form. Some also end a line.
_SAME_FORMAT = {"strong": "b", "em": "i", "strike": "s"}
_FORMAT_TAGS = frozenset(
    {"b", "i", "u", "s", "del", "ins", "code", "mark", "sub", "sup", "big", "small", "abbr"}
    | set(_SAME_FORMAT)
)
_FORMAT_BLOCK_TAGS = frozenset(
    {"ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "tr", "td", "th", "hr"}
)
_ATTRIBUTE_TAGS = {"a": ("href",), "img": ("src", "alt")}
_ATTRIBUTE_RE = {
    name: re.compile(rf"""(?<![a-zA-Z0-9_-]){name}\s*+=\s*+("[^"]*+"|'[^']*+'|[^\s"'>]++)""", re.I)
    for name in ("href", "src", "alt")
}
_TOKEN = "\x00"
_SOFT_BREAK = "\x1e"
_BULLET_TOKENS = frozenset("-*•·◦▪–—")


def _attribute(attrs: str, name: str) -> str:
    match = _ATTRIBUTE_RE[name].search(attrs)
    if match is None:
        return ""
    value = match.group(1).strip("'\"")
    return "".join(html.unescape(value).split())


def _tag_token(closing: str, name: str, attrs: str) -> str:
    """The rich form's token for a formatting tag, e.g. ``b``, ``/b``, ``a=https://x``."""
    name = _SAME_FORMAT.get(name, name)
    if closing or name not in _ATTRIBUTE_TAGS:
        return f" {_TOKEN}{closing}{name} "
    values = "|".join(_attribute(attrs, key) for key in _ATTRIBUTE_TAGS[name])
    return f" {_TOKEN}{name}={values} "


def _decode(text: str) -> str:
    if _TOKEN in text:  # our token mark never comes from the user's text
        text = text.replace(_TOKEN, "\ufffd")
    return html.unescape(text) if "&" in text else text


def _tokenise(raw: str) -> str:
    """The content with tags turned into line ends, soft breaks and rich tokens.

    Linear: the tag pattern is possessive and the scan only moves forward;
    a comment's end is searched once, from where the last search ended (an
    unclosed ``<!--`` and everything after it is text).
    """
    raw = raw.replace(_SOFT_BREAK, " ").replace("\r\n", "\n").replace("\r", "\n")
    if "<" not in raw:
        return _decode(raw)
    out: list[str] = []
    pos = 0
    comment_end = 0  # where the next "-->" is, or -1 when there is none
    while True:
        tag = _TAG_RE.search(raw, pos)
        if tag is None:
            break
        out.append(_decode(raw[pos : tag.start()]))
        pos = tag.end()
        closing, name, attrs = tag.groups()
        if name is None:  # "<!--"
            if 0 <= comment_end < pos:
                close = _COMMENT_END_RE.search(raw, pos)
                comment_end = close.start() if close else -1
            if comment_end < 0:
                out.append(raw[tag.start() : pos])
                continue
            words = " ".join(raw[pos:comment_end].split())
            out.append(f" {_TOKEN}!--{words.replace(' ', _TOKEN)} ")
            pos = comment_end + 3  # len("-->")
            continue
        name = name.lower()
        if name in _LINE_BREAK_TAGS:
            out.append("\n")
        elif name in _BLOCK_TAGS:
            out.append(_SOFT_BREAK)
            if name == "li" and not closing:
                out.append("- ")
        elif name in _TRANSPARENT_TAGS:
            continue
        elif name in _FORMAT_TAGS or name in _ATTRIBUTE_TAGS:
            out.append(_tag_token(closing, name, attrs))
        elif name in _FORMAT_BLOCK_TAGS:
            out.append(_SOFT_BREAK + _tag_token(closing, name, attrs) + _SOFT_BREAK)
        else:  # not HTML we know: the user's text, as it stands
            out.append(_decode(tag.group(0)))
    out.append(_decode(raw[pos:]))
    return _soft_breaks_to_lines("".join(out))


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


def _tidy_lines(lines: Iterable[list[str]]) -> str:
    """Lines of words joined; runs of empty lines made one, none at either end."""
    out: list[str] = []
    for words in lines:
        if not words:
            if out and out[-1]:
                out.append("")
            continue
        out.append(" ".join(words))
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


@dataclass(frozen=True, slots=True)
class _Reading:
    """A block's content in its two forms; ``rich`` equals ``plain`` when unformatted."""

    rich: str
    plain: str

    @property
    def formatted(self) -> bool:
        return self.rich != self.plain


@lru_cache(maxsize=4096)
def _read(raw: str) -> _Reading:
    text = _tokenise(raw)
    rich_lines: list[list[str]] = []
    plain_lines: list[list[str]] = []
    for line in text.split("\n"):
        words = line.split()
        plain = [w for w in words if not w.startswith(_TOKEN)]
        if plain and plain[0] in _BULLET_TOKENS:
            first = words.index(plain[0])
            words[first] = plain[0] = "-"
        rich_lines.append(words)
        plain_lines.append(plain)
    return _Reading(_tidy_lines(rich_lines), _tidy_lines(plain_lines))


def _readable(raw: str) -> str:
    """Block content as plain lines: tags gone, entities decoded, spaces collapsed."""
    return _read(raw).plain


_HASH_PREFIX = "b2-"
_HALF = 32  # hex digits of each form's SHA-256 in the hash


def _digest(text: str) -> str:
    # Empty lines do not count: providers add and drop them (a list's end, a
    # paragraph), and an empty line carries nothing a user wrote.
    lines = "\n".join(line for line in text.split("\n") if line)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()[:_HALF]


@lru_cache(maxsize=4096)
def block_hash(body: str) -> str:
    """The hash we store for a block body we write: ``b2-`` + rich digest + plain digest.

    The rich form keeps formatting, links (with their targets), images and
    comments as tokens; the plain form is its lines alone. Both keep every
    word, every line (bullet-only ones too) and every list item.
    """
    reading = _read(body)
    return f"{_HASH_PREFIX}{_digest(reading.rich)}{_digest(reading.plain)}"


# The hash of releases before "b2-": SHA-256 of the words alone. It cannot
# see links, images, comments, formatting or bullet-only lines, so a block
# is taken as ours by it only when it holds none of those.
_LEGACY_HASH = re.compile(r"[0-9a-f]{64}")
_LEGACY_TOKENS = frozenset({f"{_TOKEN}b", f"{_TOKEN}/b", f"{_TOKEN}i", f"{_TOKEN}/i"})


def _legacy_match(reading: _Reading, known: str) -> bool:
    words = [w for w in reading.plain.split() if w not in _BULLET_TOKENS]
    if hashlib.sha256(" ".join(words).encode("utf-8")).hexdigest() != known:
        return False
    tokens = {w for w in reading.rich.split() if w.startswith(_TOKEN)}
    bullet_only = any(line == "-" for line in reading.plain.split("\n"))
    return tokens <= _LEGACY_TOKENS and not bullet_only


def _matches(reading: _Reading, known: str) -> bool:
    """True when content read as ``reading`` is a block that hashed to ``known``."""
    if known.startswith(_HASH_PREFIX) and len(known) == len(_HASH_PREFIX) + 2 * _HALF:
        rich, plain = known[len(_HASH_PREFIX) :][:_HALF], known[len(_HASH_PREFIX) + _HALF :]
        if reading.formatted:
            return _digest(reading.rich) == rich
        return _digest(reading.plain) == plain
    if _LEGACY_HASH.fullmatch(known):
        return _legacy_match(reading, known)
    return False


def block_matches(content: str, known: str) -> bool:
    """True when ``content`` (a block body, any rendering) is the block hashed to ``known``."""
    return _matches(_read(content), known)


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


def block_content(description: str) -> str | None:
    """The raw content of the first complete block (between the markers), else ``None``.

    For a provider that must learn how its backend rendered a block it wrote
    (Exchange rewrites HTML): :func:`block_hash` of this is the hash to keep.
    """
    blocks, _ = _parse(description)
    if not blocks:
        return None
    return description[blocks[0].content_begin : blocks[0].content_end]


@dataclass(frozen=True, slots=True)
class EntryLabels:
    """The labels of the entries people fill in: ours (en, sv) and any an admin adds.

    Only a line ``Label: ...`` with one of these labels, inside our block, is
    an entry; matched without regard to case.
    """

    praise: tuple[str, ...] = PRAISE_ENTRY_LABELS
    one_on_one: tuple[str, ...] = ONE_ON_ONE_ENTRY_LABELS

    def adding(self, *, praise: Iterable[str] = (), one_on_one: Iterable[str] = ()) -> EntryLabels:
        """These labels plus ``praise`` and ``one_on_one`` (an admin's own templates)."""
        return EntryLabels(
            praise=_merged(self.praise, praise), one_on_one=_merged(self.one_on_one, one_on_one)
        )


def _merged(ours: tuple[str, ...], extra: Iterable[str]) -> tuple[str, ...]:
    known = {label.casefold() for label in ours}
    added = [label for label in extra if label.casefold() not in known]
    return ours + tuple(dict.fromkeys(added))


OUR_ENTRY_LABELS = EntryLabels()


@lru_cache(maxsize=32)
def _entry_pattern(labels: tuple[str, ...]) -> re.Pattern[str]:
    """A line ``Label: rest`` (optionally bulleted) for one of ``labels``, any case."""
    names = "|".join(r"\s+".join(map(re.escape, label.split())) for label in labels)
    return re.compile(rf"^(?:- )?(?:{names})\s*:(?P<rest>.*)$", re.IGNORECASE)


_NOT_CONTENT = "_.…-–— "


def _filled_entries(description: str, labels: tuple[str, ...]) -> list[str]:
    """The ``labels`` lines of our block that hold more than a placeholder after the colon."""
    body = read_block(description)
    if body is None:
        return []
    entry = _entry_pattern(labels)
    filled = []
    for line in body.split("\n"):
        match = entry.match(line)
        if match and match["rest"].strip(_NOT_CONTENT):
            filled.append(match["rest"].strip(_NOT_CONTENT))
    return filled


def count_filled_praise(description: str, labels: tuple[str, ...] = PRAISE_ENTRY_LABELS) -> int:
    """How many praise entries in the block were filled in (for R6 wins).

    An entry is a line ``Praise: ...`` (``Beröm: ...``, or another of
    ``labels``); it is filled when anything other than the ``___``
    placeholder, dots or dashes follows the colon. Works on any rendering of
    the block (text, HTML, reformatted).
    """
    return len(_filled_entries(description, labels))


@dataclass(frozen=True, slots=True)
class PraiseCount:
    """The filled praise entries of a block, and how many of them are vague. Numbers only."""

    filled: int = 0
    vague: int = 0


def count_praise(description: str, labels: tuple[str, ...] = PRAISE_ENTRY_LABELS) -> PraiseCount:
    """:func:`count_filled_praise`, and how many of those entries are vague praise.

    What was written is feedback content and never leaves this function.
    """
    entries = _filled_entries(description, labels)
    return PraiseCount(len(entries), sum(1 for entry in entries if is_vague_praise(entry)))


def count_filled_entries(
    description: str, labels: tuple[str, ...] = ONE_ON_ONE_ENTRY_LABELS
) -> int:
    """How many entries of a 1:1's focus slot were filled in (R6: a 1:1 marked as done).

    An entry is a line ``Situation: ...``, ``Behaviour: ...``, ``Impact: ...``
    or ``What to do instead: ...`` (Swedish: ``Situation``, ``Beteende``,
    ``Effekt``, ``Vad du kan göra i stället``; or another of ``labels``),
    bulleted or not; it is filled when anything other than the ``___``
    placeholder, dots or dashes follows the colon. Only lines inside our
    block count. Works on any rendering of the block (text, HTML,
    reformatted). The caller gets a number only: what was written is
    feedback content and never leaves this function.
    """
    return len(_filled_entries(description, labels))


# Headings and the entry that only a corrective slot has, in the shipped
# wording (en, sv), compared in lower case without bullets or formatting.
CORRECTIVE_LINES = (
    "this you can do better",
    "this you should stop doing",
    "det här kan du göra bättre",
    "det här bör du sluta med",
)
CORRECTIVE_ENTRY_LABELS = ("what to do instead", "vad du kan göra i stället")
_CORRECTIVE_ENTRY = _entry_pattern(CORRECTIVE_ENTRY_LABELS)


def holds_corrective_slot(description: str) -> bool:
    """True when any block in the description (complete, ours or not) holds a corrective slot.

    Recognised by the slot's heading ("This you can do better", "This you
    should stop doing") or its "What to do instead" entry, in English or
    Swedish, in any rendering. Used to keep corrective words out of a meeting
    that is no longer a 1:1 (R4), so a block the user edited counts too.
    """
    blocks, _ = _parse(description)
    for block in blocks:
        for line in _readable(description[block.content_begin : block.content_end]).split("\n"):
            words = line.removeprefix("- ").strip().rstrip(":").casefold()
            if words in CORRECTIVE_LINES or _CORRECTIVE_ENTRY.match(line):
                return True
    return False


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
    """``text`` without ``spans`` (disjoint), in one pass however many there are."""
    pieces: list[str] = []
    pos = 0
    for begin, end in sorted(spans):
        pieces.append(text[pos:begin])
        pos = max(pos, end)
    pieces.append(text[pos:])
    return "".join(pieces)


KnownHashes = str | Sequence[str] | None


def known_hashes(*sources: KnownHashes) -> tuple[str, ...]:
    """The hashes from ``sources`` (each one, several or None), in order, once each."""
    found: list[str] = []
    for source in sources:
        if source is None:
            continue
        found += [source] if isinstance(source, str) else list(source)
    return tuple(dict.fromkeys(k for k in found if k))


def merge_block(
    description: str, fmt: TextFormat, body: str | None, known_hash: KnownHashes
) -> MergeResult:
    """Put ``body`` into the description's block, or take the block out (``body=None``).

    ``fmt`` is the description's format and the format ``body`` was rendered
    in. ``known_hash`` is the hash of the block we last wrote to this event,
    or several (the event's hash property, our record of the event, our
    record of its series), or ``None`` when we never wrote one. A block that
    matches none of them is the user's and is left exactly as it is, even
    when it reads exactly like what we would write.
    """
    knowns = known_hashes(known_hash)
    primary = knowns[0] if knowns else None
    blocks, broken = _parse(description)
    if broken:
        return MergeResult(MergeOutcome.LEFT_EDITED, description, primary)
    if not blocks:
        if body is None:
            return MergeResult(MergeOutcome.UNCHANGED, description, None)
        marked = _marked(body, fmt)
        merged = f"{description}{_SEPARATOR[fmt]}{marked}" if description else marked
        return MergeResult(MergeOutcome.INSERTED, merged, block_hash(body))

    def ours(block: _Block) -> bool:
        reading = _read(description[block.content_begin : block.content_end])
        return any(_matches(reading, known) for known in knowns)

    first = blocks[0]
    if not ours(first):
        return MergeResult(MergeOutcome.LEFT_EDITED, description, primary)

    # I1: copies of our unedited block go; a copy someone edited stays.
    copies = [_removal_span(description, block, fmt) for block in blocks[1:] if ours(block)]
    if body is None:
        merged = _cut(description, [*copies, _removal_span(description, first, fmt)])
        return MergeResult(MergeOutcome.REMOVED, merged, None)
    new = block_hash(body)
    if block_matches(description[first.content_begin : first.content_end], new):
        if not copies:
            return MergeResult(MergeOutcome.UNCHANGED, description, new)
        return MergeResult(MergeOutcome.UPDATED, _cut(description, copies), new)
    # Only the marker-to-marker span changes; wrappers and separators stay.
    merged = _cut(description, copies)
    shift = sum(end - begin for begin, end in copies if end <= first.begin)
    begin, end = first.begin - shift, first.end - shift
    merged = merged[:begin] + _marked(body, fmt) + merged[end:]
    return MergeResult(MergeOutcome.UPDATED, merged, new)
