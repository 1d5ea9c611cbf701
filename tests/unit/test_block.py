"""The agenda block inside a description: find, hash, merge (invariants I1, I3)."""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Callable

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from feedback_agendas.agendas import block as block_module
from feedback_agendas.agendas.block import (
    END_MARKER,
    START_MARKER,
    MergeOutcome,
    block_hash,
    block_matches,
    count_filled_praise,
    has_block,
    merge_block,
    read_block,
)
from feedback_agendas.agendas.model import TextFormat
from tests.support.descriptions import google_divs, html_to_text

TEXT, HTML = TextFormat.TEXT, TextFormat.HTML

BODY_TEXT = (
    "Feedback against our goals:\n- Ship v2 & onboarding\n\n"
    "This you can do better\nPick one concrete behaviour that can improve:\n"
    "- Situation: ___\n- Behaviour: ___\n- Impact: ___\n- What to do instead: ___\n\n"
    "This is how we work here."
)
BODY_HTML = (
    "Feedback against our goals:<ul><li>Ship v2 &amp; onboarding</li></ul><br>"
    "<b>This you can do better</b><br>Pick one concrete behaviour that can improve:"
    "<ul><li>Situation: ___</li><li>Behaviour: ___</li><li>Impact: ___</li>"
    "<li>What to do instead: ___</li></ul><br><i>This is how we work here.</i>"
)
OTHER_TEXT = "This you do well\n- Situation: ___\n- Behaviour: ___\n- Impact: ___"
OTHER_HTML = (
    "<b>This you do well</b><br><ul><li>Situation: ___</li><li>Behaviour: ___</li>"
    "<li>Impact: ___</li></ul>"
)
TEAM_TEXT = (
    "Praise (in public)\nName what someone did.\n- Praise: ___\n- Praise: ___\n- Praise: ___"
)
TEAM_HTML = (
    "<b>Praise (in public)</b><br>Name what someone did.<ul><li>Praise: ___</li>"
    "<li>Praise: ___</li><li>Praise: ___</li></ul>"
)
BODIES = {TEXT: (BODY_TEXT, OTHER_TEXT, TEAM_TEXT), HTML: (BODY_HTML, OTHER_HTML, TEAM_HTML)}

# Text a user might write, including pieces that look like our markers.
FRAGMENTS = [
    "── feedback agenda", "feedback agenda ──", "── end of feedback", "end of feedback agenda",
    "─", "──", "see ── feedback agenda ── above", "x ── end of feedback agenda ──", "\n", "\r\n",
    "\r", "<br>", "<br/>", "<div>", "</div>", "<p>", "<b>", "&nbsp;", "&amp;", "&#9472;", "&",
    "<", ">", " ", "\u00a0", "Praise: ___", "#no-agenda", "- ", "Agenda: roadmap",
]  # fmt: skip
user_texts = st.lists(st.one_of(st.text(max_size=12), st.sampled_from(FRAGMENTS)), max_size=10).map(
    "".join
)
formats = st.sampled_from([TEXT, HTML])


def marker_count(description: str) -> int:
    return len(re.findall("feedback agenda ──", description))


def insert(description: str, fmt: TextFormat, body: str) -> str:
    result = merge_block(description, fmt, body, None)
    assert result.outcome is MergeOutcome.INSERTED
    return result.description


# --- insert, update, remove --------------------------------------------------


def test_insert_appends_the_block_after_the_users_text() -> None:
    result = merge_block("Bring the numbers.", TEXT, BODY_TEXT, None)
    assert result.outcome is MergeOutcome.INSERTED
    assert result.description == f"Bring the numbers.\n\n{START_MARKER}\n{BODY_TEXT}\n{END_MARKER}"
    assert result.block_hash == block_hash(BODY_TEXT)


def test_insert_into_html_uses_br_separators() -> None:
    result = merge_block("<b>Bring</b> the numbers.", HTML, BODY_HTML, None)
    expected = f"<b>Bring</b> the numbers.<br><br>{START_MARKER}<br>{BODY_HTML}<br>{END_MARKER}"
    assert result.description == expected


def test_empty_description_gets_just_the_block() -> None:
    result = merge_block("", TEXT, BODY_TEXT, None)
    assert result.description == f"{START_MARKER}\n{BODY_TEXT}\n{END_MARKER}"


def test_update_replaces_only_the_block() -> None:
    before = "Before.\r\n  keep   this\n"
    after = "\n\nTyped below the block."
    description = insert(before, TEXT, BODY_TEXT) + after
    result = merge_block(description, TEXT, OTHER_TEXT, block_hash(BODY_TEXT))
    assert result.outcome is MergeOutcome.UPDATED
    assert result.block_hash == block_hash(OTHER_TEXT)
    assert result.description == insert(before, TEXT, OTHER_TEXT) + after
    assert read_block(result.description) == OTHER_TEXT


def test_remove_restores_the_original_and_keeps_text_typed_after_the_block() -> None:
    description = insert("Before.", HTML, BODY_HTML) + "<br>After."
    result = merge_block(description, HTML, None, block_hash(BODY_HTML))
    assert result.outcome is MergeOutcome.REMOVED
    assert result.block_hash is None
    assert result.description == "Before.<br>After."


def test_same_block_again_is_unchanged_and_no_block_with_nothing_to_write_is_unchanged() -> None:
    description = insert("x", TEXT, BODY_TEXT)
    again = merge_block(description, TEXT, BODY_TEXT, block_hash(BODY_TEXT))
    assert (again.outcome, again.description) == (MergeOutcome.UNCHANGED, description)
    assert again.block_hash == block_hash(BODY_TEXT)
    nothing = merge_block("x", TEXT, None, None)
    assert (nothing.outcome, nothing.description, nothing.block_hash) == (
        MergeOutcome.UNCHANGED, "x", None,
    )  # fmt: skip


# --- edits -----------------------------------------------------------------


def test_an_edited_block_is_never_overwritten_nor_removed() -> None:
    description = insert("x", TEXT, BODY_TEXT).replace("Situation: ___", "Situation: the demo")
    known = block_hash(BODY_TEXT)
    for body in (OTHER_TEXT, BODY_TEXT, None):
        result = merge_block(description, TEXT, body, known)
        assert result.outcome is MergeOutcome.LEFT_EDITED
        assert result.description == description
        assert result.block_hash == known


@pytest.mark.parametrize("fmt", [TEXT, HTML])
def test_a_pasted_copy_of_our_template_is_the_users(fmt: TextFormat) -> None:
    # Word for word what we would write, but we never wrote it to this event.
    body, other, _ = BODIES[fmt]
    description = insert("x", fmt, body)
    for new in (body, other, None):
        result = merge_block(description, fmt, new, None)
        assert (result.outcome, result.description) == (MergeOutcome.LEFT_EDITED, description)
    # The hash of another rendering is not this one's either.
    result = merge_block(description, fmt, None, block_hash(other))
    assert result.outcome is MergeOutcome.LEFT_EDITED


def test_any_of_several_known_hashes_makes_the_block_ours() -> None:
    # The event's hash property, our record of it, our record of its series.
    description = insert("x", TEXT, BODY_TEXT)
    knowns = [block_hash(OTHER_TEXT), block_hash(BODY_TEXT)]
    removed = merge_block(description, TEXT, None, knowns)
    assert (removed.outcome, removed.description) == (MergeOutcome.REMOVED, "x")
    edited = description.replace("Impact: ___", "Impact: late")
    kept = merge_block(edited, TEXT, None, knowns)
    assert (kept.outcome, kept.block_hash) == (MergeOutcome.LEFT_EDITED, knowns[0])


@pytest.mark.parametrize("cut", [END_MARKER, START_MARKER])
def test_a_marker_without_its_partner_counts_as_edited(cut: str) -> None:
    description = insert("x", TEXT, BODY_TEXT).replace(cut, "")
    assert has_block(description)
    for body in (BODY_TEXT, None):
        result = merge_block(description, TEXT, body, block_hash(BODY_TEXT))
        assert (result.outcome, result.description) == (MergeOutcome.LEFT_EDITED, description)


def test_a_marker_quoted_inside_a_sentence_is_not_a_block() -> None:
    description = f"Please do not edit {START_MARKER} blocks by hand. {END_MARKER} thanks"
    assert not has_block(description)
    result = merge_block(description, TEXT, BODY_TEXT, None)
    assert result.outcome is MergeOutcome.INSERTED
    assert merge_block(result.description, TEXT, None, block_hash(BODY_TEXT)).description == (
        description
    )


# Everything a user can add inside the block (issue 9 item 4), as
# (format, what the block reads before the edit, what it reads after).
USER_ADDITIONS = {
    "a word": (TEXT, "Impact: ___", "Impact: ___ late"),
    "a bullet-only line": (TEXT, "- Impact: ___", "- Impact: ___\n-"),
    "a bullet-only line in html": (HTML, "<li>Impact: ___</li>", "<li>Impact: ___</li><li></li>"),
    "a list item": (HTML, "<li>Impact: ___</li>", "<li>Impact: ___</li><li>-</li>"),
    "an html comment": (HTML, "<li>Impact: ___</li>", "<li>Impact: ___<!-- Kim: ask HR --></li>"),
    "an image": (HTML, "<li>Impact: ___</li>", '<li>Impact: ___<img src="cid:chart"></li>'),
    "a link": (
        HTML, "<li>Impact: ___</li>", '<li>Impact: <a href="https://x.example/a">___</a></li>',
    ),
    "bold": (HTML, "<li>Impact: ___</li>", "<li><b>Impact</b>: ___</li>"),
    "underline": (HTML, "<li>Impact: ___</li>", "<li><u>Impact: ___</u></li>"),
    "a numbered list": (HTML, "</ul><br><i>", "</ol><br><i>"),
    "a rule": (HTML, "<br><i>", "<hr><i>"),
    "a heading": (HTML, "<b>This you", "<h3>This you"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(USER_ADDITIONS))
def test_whatever_a_user_adds_inside_the_block_makes_it_theirs(case: str) -> None:
    fmt, before, after = USER_ADDITIONS[case]
    body = BODIES[fmt][0]
    description = insert("x", fmt, body)
    assert before in description
    edited = description.replace(before, after, 1)
    for new in (BODIES[fmt][1], None):
        result = merge_block(edited, fmt, new, block_hash(body))
        assert (result.outcome, result.description) == (MergeOutcome.LEFT_EDITED, edited)


def test_a_links_target_is_part_of_the_block() -> None:
    linked = BODY_HTML.replace("Ship v2 &amp; onboarding", '<a href="https://a.example/">v2</a>')
    description = insert("x", HTML, linked)
    retargeted = description.replace("https://a.example/", "https://b.example/")
    result = merge_block(retargeted, HTML, None, block_hash(linked))
    assert result.outcome is MergeOutcome.LEFT_EDITED
    # A provider spelling the same link differently is not an edit.
    respelled = description.replace(
        '<a href="https://a.example/">', "<A HREF='https://a.example/'>"
    )
    assert merge_block(respelled, HTML, None, block_hash(linked)).outcome is MergeOutcome.REMOVED


def test_a_block_without_formatting_left_is_compared_by_its_lines() -> None:
    # A provider turning our HTML into plain text drops bold and italics: ours.
    description = html_to_text(insert("x", HTML, BODY_HTML))
    assert merge_block(description, TEXT, None, block_hash(BODY_HTML)).outcome is (
        MergeOutcome.REMOVED
    )
    # The same with one more line is an edit.
    edited = description.replace("Impact: ___", "Impact: ___\nAsk Kim", 1)
    assert merge_block(edited, TEXT, None, block_hash(BODY_HTML)).outcome is (
        MergeOutcome.LEFT_EDITED
    )


def test_a_hash_from_before_b2_still_recognises_a_plain_unedited_block() -> None:
    import hashlib

    words = " ".join(w for w in read_block(insert("", TEXT, BODY_TEXT)).split() if w != "-")
    legacy = hashlib.sha256(words.encode()).hexdigest()
    for fmt in (TEXT, HTML):
        description = insert("x", fmt, BODIES[fmt][0])
        result = merge_block(description, fmt, BODIES[fmt][1], legacy)
        assert result.outcome is MergeOutcome.UPDATED
        assert result.block_hash == block_hash(BODIES[fmt][1])
    # What the old hash could not see keeps the block the user's.
    commented = insert("x", HTML, BODY_HTML).replace("</ul>", "<!-- mine --></ul>", 1)
    assert merge_block(commented, HTML, None, legacy).outcome is MergeOutcome.LEFT_EDITED
    assert merge_block(commented, HTML, None, "not-a-hash").outcome is MergeOutcome.LEFT_EDITED


# --- I1: duplicates ----------------------------------------------------------


def test_unedited_copies_are_removed_and_the_first_block_kept() -> None:
    one = insert("Intro", TEXT, BODY_TEXT)
    block = one.removeprefix("Intro\n\n")
    description = f"{one}\n\nnotes\n\n{block}"
    result = merge_block(description, TEXT, BODY_TEXT, block_hash(BODY_TEXT))
    assert result.outcome is MergeOutcome.UPDATED
    assert result.description == f"{one}\n\nnotes"
    assert marker_count(result.description) == 2  # one start, one end


def test_an_edited_copy_is_left_alone() -> None:
    one = insert("Intro", TEXT, BODY_TEXT)
    edited = one.removeprefix("Intro\n\n").replace("Impact: ___", "Impact: big")
    description = f"{one}\n\n{edited}"
    result = merge_block(description, TEXT, OTHER_TEXT, block_hash(BODY_TEXT))
    assert result.outcome is MergeOutcome.UPDATED
    assert result.description == f"{insert('Intro', TEXT, OTHER_TEXT)}\n\n{edited}"


def test_copies_go_with_the_block_on_removal() -> None:
    one = insert("Intro", HTML, BODY_HTML)
    block = one.removeprefix("Intro<br><br>")
    result = merge_block(f"{one}<br><br>{block}", HTML, None, block_hash(BODY_HTML))
    assert (result.outcome, result.description) == (MergeOutcome.REMOVED, "Intro")


# --- hashing and reading -----------------------------------------------------


def test_hash_ignores_what_providers_change_but_not_words() -> None:
    assert block_matches(BODY_TEXT, block_hash(BODY_HTML))
    # Bold and italics where we wrote none are someone's formatting.
    assert not block_matches(BODY_HTML, block_hash(BODY_TEXT))
    assert block_hash("a\r\n\r\n- b") == block_hash("<div>a</div><ul><li>b</li></ul>")
    assert block_hash("a b") == block_hash("a&nbsp; <span>b</span>")
    assert block_hash("a b") != block_hash("a c")
    assert block_hash("Praise: ___") != block_hash("Praise: Anna for the demo")


def test_read_block_gives_the_same_plain_text_for_the_text_and_html_forms() -> None:
    text = read_block(insert("x", TEXT, BODY_TEXT))
    assert text == BODY_TEXT
    assert read_block(insert("x", HTML, BODY_HTML)) == text
    assert read_block("no block here") is None


def test_count_filled_praise_tells_filled_entries_from_placeholders() -> None:
    description = insert("x", TEXT, TEAM_TEXT)
    assert count_filled_praise(description) == 0
    filled = description.replace("Praise: ___", "Praise: Anna, for the clear demo", 1)
    assert count_filled_praise(filled) == 1
    more = filled.replace("- Praise: ___\n- Praise: ___", "- praise: Bo ___\n- Praise: ...")
    assert count_filled_praise(more) == 2
    swedish = insert("x", TEXT, "Beröm\n- Beröm: Kim, bra struktur\n- Beröm: ___")
    assert count_filled_praise(swedish) == 1
    assert count_filled_praise("Praise: Anna (no block)") == 0


def test_count_filled_praise_after_a_calendar_app_reformats_the_html() -> None:
    description = insert("x", HTML, TEAM_HTML).replace(
        "<li>Praise: ___</li>", "<li>Praise:&nbsp;<b>Kim</b> answered every customer</li>", 2
    )
    assert count_filled_praise(google_divs(description)) == 2
    assert count_filled_praise(html_to_text(description)) == 2


# --- calendar apps rewriting the description ------------------------------


def text_to_html(description: str) -> str:
    return html.escape(description, quote=False).replace("\n", "<br>")


def crlf(description: str) -> str:
    return description.replace("\r\n", "\n").replace("\n", "\r\n")


def self_closing_br(description: str) -> str:
    return description.replace("<br>", "<br />")


def upper_br(description: str) -> str:
    return description.replace("<br>", "<BR/>")


def nbsp_entities(description: str) -> str:
    return description.replace(" ", "&nbsp;")


def nbsp_chars(description: str) -> str:
    return description.replace(" ", "\u00a0")


def spaces_around_lines(description: str) -> str:
    return re.sub(r"(\r?\n|<br>)", r"  \1 ", description)


def numeric_dashes(description: str) -> str:
    return description.replace("─", "&#9472;")


def spans_with_br(description: str) -> str:
    return "<br>".join(f'<span style="x">{part}</span>' for part in description.split("<br>"))


def paragraphs(description: str) -> str:
    return "".join(f"<p>{part}</p>" for part in description.split("<br>"))


Conversion = Callable[[str], str]
CONVERSIONS: dict[TextFormat, list[Conversion]] = {
    TEXT: [
        crlf, spaces_around_lines, nbsp_chars,
        lambda d: google_divs(text_to_html(d)),
        lambda d: self_closing_br(text_to_html(d)),
        lambda d: numeric_dashes(text_to_html(d)),
        lambda d: html_to_text(text_to_html(d)),
        lambda d: crlf(html_to_text(text_to_html(d))),
    ],
    HTML: [
        html_to_text, google_divs, self_closing_br, upper_br, nbsp_entities,
        spans_with_br, paragraphs, spaces_around_lines, numeric_dashes,
        lambda d: google_divs(nbsp_entities(d)),
        lambda d: crlf(html_to_text(d)),
        lambda d: text_to_html(html_to_text(d)),
    ],
}  # fmt: skip
CASES = [(fmt, i) for fmt, conversions in CONVERSIONS.items() for i in range(len(conversions))]


@pytest.mark.parametrize(("fmt", "index"), CASES)
def test_the_block_survives_calendar_app_conversions(fmt: TextFormat, index: int) -> None:
    convert = CONVERSIONS[fmt][index]
    body, other, _ = BODIES[fmt]
    known = block_hash(body)
    converted = convert(insert("Agenda: roadmap & hiring", fmt, body))
    assert has_block(converted)
    assert block_matches(read_block(converted) or "", known)
    # The provider's reformatting is not a user edit: nothing to write.
    same = merge_block(converted, fmt, body, known)
    assert (same.outcome, same.description) == (MergeOutcome.UNCHANGED, converted)
    # A real change still updates the block in place, without a second block.
    updated = merge_block(converted, fmt, other, known)
    assert updated.outcome is MergeOutcome.UPDATED
    assert read_block(updated.description) == read_block(insert("", fmt, other))
    assert marker_count(updated.description) == 2
    assert "roadmap" in updated.description
    # Removal leaves no marker and no trace of the block's words.
    removed = merge_block(converted, fmt, None, known)
    assert removed.outcome is MergeOutcome.REMOVED
    assert not has_block(removed.description)
    assert "Situation" not in removed.description
    assert "roadmap" in removed.description


def paragraphs_with_nbsp(description: str) -> str:
    return "".join(f"<p>{part or '&nbsp;'}</p>" for part in description.split("<br>"))


@pytest.mark.parametrize(
    ("convert", "expected"),
    [(google_divs, "<div>Agenda</div>"), (paragraphs_with_nbsp, "<p>Agenda</p>")],
)
def test_wrapping_and_blank_lines_are_removed_with_the_block(
    convert: Conversion, expected: str
) -> None:
    converted = convert(insert("Agenda", HTML, BODY_HTML))
    removed = merge_block(converted, HTML, None, block_hash(BODY_HTML))
    assert removed.description == expected


@pytest.mark.parametrize("fmt", [TEXT, HTML])
@given(user=user_texts)
def test_an_edit_survives_conversion_as_an_edit(fmt: TextFormat, user: str) -> None:
    assume(not has_block(user))
    body = BODIES[fmt][0]
    edited = insert(user, fmt, body).replace("Impact: ___", "Impact: shipped early")
    for convert in CONVERSIONS[fmt]:
        result = merge_block(convert(edited), fmt, body, block_hash(body))
        assert result.outcome is MergeOutcome.LEFT_EDITED


# --- properties --------------------------------------------------------------


@given(user=user_texts, fmt=formats, which=st.integers(0, 2))
def test_merging_the_same_body_again_is_unchanged(user: str, fmt: TextFormat, which: int) -> None:
    assume(not has_block(user))
    body = BODIES[fmt][which]
    inserted = merge_block(user, fmt, body, None)
    assert inserted.outcome is MergeOutcome.INSERTED
    again = merge_block(inserted.description, fmt, body, inserted.block_hash)
    assert (again.outcome, again.description) == (MergeOutcome.UNCHANGED, inserted.description)


@given(user=user_texts, fmt=formats, which=st.integers(0, 2))
def test_insert_then_remove_restores_the_original_exactly(
    user: str, fmt: TextFormat, which: int
) -> None:
    assume(not has_block(user))
    body = BODIES[fmt][which]
    inserted = merge_block(user, fmt, body, None)
    assert read_block(inserted.description) == read_block(insert("", fmt, body))
    removed = merge_block(inserted.description, fmt, None, inserted.block_hash)
    assert (removed.outcome, removed.description) == (MergeOutcome.REMOVED, user)


@given(before=user_texts, after=user_texts, fmt=formats)
def test_update_keeps_the_text_on_both_sides_byte_for_byte(
    before: str, after: str, fmt: TextFormat
) -> None:
    tail = ("\n" if fmt is TEXT else "<br>") + after
    assume(not has_block(before) and not has_block(tail))
    body, other, _ = BODIES[fmt]
    description = insert(before, fmt, body) + tail
    updated = merge_block(description, fmt, other, block_hash(body))
    assert updated.outcome is MergeOutcome.UPDATED
    assert updated.description == insert(before, fmt, other) + tail


# Lines a user types above the block: never ending in a line break or blank
# space, because a blank line right before a block cannot be told from our
# separator once a calendar app has rewritten it.
line_texts = user_texts.map(
    lambda t: re.sub(r"(?:\s|<br\s*/?>|</?div>|</?p>|&nbsp;)+$", "", t, flags=re.IGNORECASE)
)


def markers(description: str) -> int:
    return len(block_module._find_markers(description))


class BlockInDescription(RuleBasedStateMachine):
    """Merges and user edits in any order; I1 and I3 hold after every step.

    The model: the user's text before the block, the separator we added,
    the user's text after the block, and whether the user edited the block.
    Every write must equal the model exactly, so text outside the block comes
    back byte for byte and there is never a second block.
    """

    @initialize(fmt=formats, start=user_texts)
    def start(self, fmt: TextFormat, start: str) -> None:
        assume(not has_block(start))
        self.fmt = fmt
        self.br = "\n" if fmt is TEXT else "<br>"
        self.description = start
        self.known: str | None = None
        self.edited = False
        self.block_present = False
        self.user_before, self.separator, self.after = start, "", ""

    def _model(self, body: str) -> str:
        return self.user_before + self.separator + insert("", self.fmt, body) + self.after

    @rule(which=st.integers(0, 2))
    def sync_with_a_body(self, which: int) -> None:
        body = BODIES[self.fmt][which]
        result = merge_block(self.description, self.fmt, body, self.known)
        if self.edited:
            assert (result.outcome, result.description) == (
                MergeOutcome.LEFT_EDITED, self.description,
            )  # fmt: skip
            return
        if not self.block_present:
            assert result.outcome is MergeOutcome.INSERTED
            self.separator = (
                ("\n\n" if self.fmt is TEXT else "<br><br>") if self.user_before else ""
            )
            self.block_present = True
        assert result.description == self._model(body)
        self.description, self.known = result.description, result.block_hash

    @rule()
    def sync_removing_the_block(self) -> None:
        result = merge_block(self.description, self.fmt, None, self.known)
        if self.edited:
            assert (result.outcome, result.description) == (
                MergeOutcome.LEFT_EDITED, self.description,
            )  # fmt: skip
            return
        assert result.description == self.user_before + self.after
        self.description, self.known, self.block_present = result.description, None, False
        self.user_before, self.separator, self.after = self.description, "", ""

    @rule(text=line_texts)
    def user_types_at_the_top(self, text: str) -> None:
        at_block = self.block_present and not self.user_before
        assume(text or not at_block)
        line = text + self.br if at_block else text
        new = line + self.description
        assume(not has_block(text) and markers(new) == markers(self.description))
        self.user_before = line + self.user_before
        self.description = new

    @rule(text=user_texts)
    def user_types_at_the_bottom(self, text: str) -> None:
        addition = self.br + text if self.block_present else text
        new = self.description + addition
        assume(not has_block(text) and markers(new) == markers(self.description))
        if self.block_present:
            self.after += addition
        else:
            self.user_before += addition
        self.description = new

    @rule(words=st.sampled_from(["Anna did great", "stop it", "Impact: big"]))
    def user_edits_inside_the_block(self, words: str) -> None:
        if not self.block_present:
            return
        blocks, _ = block_module._parse(self.description)
        marker_end = blocks[0].content_begin
        self.description = (
            self.description[:marker_end] + self.br + words + self.description[marker_end:]
        )
        self.edited = True

    @invariant()
    def at_most_one_block(self) -> None:
        blocks, _ = block_module._parse(self.description)
        assert len(blocks) <= 1


TestBlockInDescription = BlockInDescription.TestCase


# --- linear time on hostile text (issue 11 item 5) ---------------------------
#
# No timing here (bench/block.py measures): the scanner is linear by
# construction, and these tests pin the construction down. (1) None of its
# patterns can backtrack over more than one character: every unbounded
# repeat is possessive. (2) The scan only moves forward: each pattern is
# tried at increasing positions, the marker pattern once per run of dashes,
# the tag pattern once per tag, the comment end searched once per comment.

SCANNER_PATTERNS = ["_DASH_RE", "_DASH_RUN_RE", "_MARKER_RE", "_TAG_RE", "_COMMENT_END_RE"]


def backtracking_repeats(tree: object) -> list[object]:
    """Greedy or lazy repeats of more than one item anywhere in a parsed pattern."""
    from re import _parser as sre  # type: ignore[attr-defined]

    found: list[object] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (list, tuple, sre.SubPattern)):
            items = list(node)
            if len(items) == 2 and items[0] in (sre.MAX_REPEAT, sre.MIN_REPEAT):
                _low, high, _ = items[1]
                if high > 1:
                    found.append(node)
            stack.extend(items)
    return found


@pytest.mark.parametrize("name", [*SCANNER_PATTERNS, "_ATTRIBUTE_RE"])
def test_no_scanner_pattern_can_backtrack(name: str) -> None:
    from re import _parser as sre  # type: ignore[attr-defined]

    value = getattr(block_module, name)
    patterns = list(value.values()) if isinstance(value, dict) else [value]
    for pattern in patterns:
        assert backtracking_repeats(sre.parse(pattern.pattern, pattern.flags)) == []


class CountingPattern:
    """A compiled pattern that records where each search or match began."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.starts: list[int] = []

    def search(self, text: str, pos: int = 0, *args: int) -> re.Match[str] | None:
        self.starts.append(pos)
        return self.pattern.search(text, pos, *args)

    def match(self, text: str, pos: int = 0, *args: int) -> re.Match[str] | None:
        self.starts.append(pos)
        return self.pattern.match(text, pos, *args)


def hostile(n: int) -> dict[str, tuple[str, TextFormat]]:
    def fill(unit: str) -> str:
        return (unit * (n // len(unit) + 1))[:n]

    def in_block(unit: str) -> str:
        return f"{START_MARKER}\n{fill(unit)}\n{END_MARKER}"

    return {
        "dash run": (fill("─"), TEXT),
        "entity dashes": (fill("&#9472;&boxh;&#x2500;"), HTML),
        "marker without end dash": (fill("── feedback agenda \n"), TEXT),
        "dashes and gaps": (fill("─ &nbsp;<b>─"), HTML),
        "open comments in a block": (in_block("<!--"), HTML),
        "comments in a block": (in_block("<!--<!---->"), HTML),
        "unclosed tags in a block": (in_block("<b <a href='"), HTML),
        "copies of a block": (fill(f"{START_MARKER}\n{OTHER_TEXT}\n{END_MARKER}\n"), TEXT),
    }


@pytest.mark.parametrize("case", sorted(hostile(10)))
def test_the_scan_only_moves_forward_and_tries_each_place_once(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    description, fmt = hostile(200_000)[case]
    counters = {}
    for name in SCANNER_PATTERNS:
        counters[name] = CountingPattern(getattr(block_module, name))
        monkeypatch.setattr(block_module, name, counters[name])
    block_module._read.cache_clear()
    block_module.block_hash.cache_clear()
    merge_block(description, fmt, OTHER_TEXT, block_hash(OTHER_TEXT))
    block_module.strip_markers(description)

    # Per call of merge_block and of strip_markers, each pattern's starts only
    # move forward (a new pass begins at a lower position).
    for name, counter in counters.items():
        passes = 1 + sum(1 for a, b in itertools.pairwise(counter.starts) if b <= a)
        assert passes <= 4 * (description.count(START_MARKER) + 2), name
    # The marker pattern: at most one try per run of dashes, twice over
    # (markers found, then markers stripped).
    runs = len(re.findall(r"(?:─|&#9472;|&#x0*2500;|&boxh;)+", description))
    assert len(counters["_MARKER_RE"].starts) <= 2 * runs
    assert len(counters["_DASH_RUN_RE"].starts) <= 2 * runs
    # The tag pattern: once per "<"; the comment end: once per "-->" and per block.
    assert len(counters["_TAG_RE"].starts) <= description.count("<") + 2 * runs
    assert len(counters["_COMMENT_END_RE"].starts) <= description.count("-->") + runs + 1
