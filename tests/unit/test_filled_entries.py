"""A 1:1 marked as done (R6): counting the filled entries of a 1:1's focus slot.

The blocks come from the real renderer and the shipped templates, so a
reworded label in ``templates/agenda/strings`` breaks these tests instead of
silently turning every 1:1 into "not done".
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from feedback_agendas.agendas.block import (
    END_MARKER,
    START_MARKER,
    count_filled_entries,
    count_filled_praise,
    merge_block,
)
from feedback_agendas.agendas.classify import MeetingKind
from feedback_agendas.agendas.model import TextFormat
from feedback_agendas.agendas.plan import AgendaPlan, SlotKind
from feedback_agendas.agendas.render import AgendaRenderer
from tests.support.descriptions import google_divs, html_to_text

TEXT, HTML = TextFormat.TEXT, TextFormat.HTML
LABELS = {
    "en": ("Situation", "Behaviour", "Impact", "What to do instead"),
    "sv": ("Situation", "Beteende", "Effekt", "Vad du kan göra i stället"),
}
# A goal that reads "Label: text", like the check-in and the norm sentence do.
GOAL = "Q3: ship the new onboarding"


@pytest.fixture(scope="module")
def renderer() -> AgendaRenderer:
    return AgendaRenderer()


def one_on_one(
    renderer: AgendaRenderer, fmt: TextFormat, locale: str, slot: SlotKind = SlotKind.BETTER
) -> str:
    """A description holding a freshly rendered 1:1 block with check-in, a goal and the norm."""
    plan = AgendaPlan(
        kind=MeetingKind.ONE_ON_ONE,
        slot=slot,
        team="analys",
        locale=locale,
        timezone="Europe/Stockholm",
        goals=(GOAL,),
        norm_enabled=True,
        norm_text=None,
        trust_checkin=True,
        positive_only=False,
        occurrence_start=datetime(2026, 3, 23, 9, 0, tzinfo=UTC),
    )
    body = renderer.render_block(plan, fmt)
    return merge_block("Mona / Sara\nagenda: roadmap", fmt, body, None).description


def fill(description: str, label: str, value: str) -> str:
    filled, n = re.subn(rf"({re.escape(label)}:\s*)___", rf"\g<1>{value}", description, count=1)
    assert n == 1, f"no {label!r} entry to fill"
    return filled


@pytest.mark.parametrize("fmt", [TEXT, HTML])
@pytest.mark.parametrize("locale", ["en", "sv"])
@pytest.mark.parametrize("slot", [SlotKind.WELL, SlotKind.BETTER, SlotKind.STOP])
def test_an_untouched_one_on_one_has_no_filled_entry(
    renderer: AgendaRenderer, fmt: TextFormat, locale: str, slot: SlotKind
) -> None:
    # The check-in, the goal "Q3: ..." and the norm ("...here: we give...") all
    # read "Label: text"; none of them is an entry.
    description = one_on_one(renderer, fmt, locale, slot)
    assert GOAL in description
    assert count_filled_entries(description) == 0


@pytest.mark.parametrize("fmt", [TEXT, HTML])
@pytest.mark.parametrize("locale", ["en", "sv"])
def test_each_filled_entry_counts_in_english_and_swedish(
    renderer: AgendaRenderer, fmt: TextFormat, locale: str
) -> None:
    description = one_on_one(renderer, fmt, locale)
    for n, label in enumerate(LABELS[locale], start=1):
        description = fill(description, label, "i veckomötet med kunden")
        assert count_filled_entries(description) == n
    assert count_filled_praise(description) == 0  # a 1:1 entry is not praise


def test_placeholders_dots_and_dashes_are_not_content() -> None:
    body = "- Situation: ...\n- Behaviour: — \n- Impact: …\n- What to do instead: ____"
    description = f"{START_MARKER}\n{body}\n{END_MARKER}"
    assert count_filled_entries(description) == 0
    assert count_filled_entries(description.replace("Impact: …", "Impact: - late")) == 1


def test_labels_are_found_bulleted_or_not_and_in_any_case() -> None:
    body = "situation: Monday stand-up\n• BEHAVIOUR: interrupted twice\n*   Effekt:  tystnad"
    assert count_filled_entries(f"{START_MARKER}\n{body}\n{END_MARKER}") == 3


def test_only_lines_inside_our_block_count() -> None:
    outside = "Situation: the user's own notes\n\n"
    description = f"{outside}{START_MARKER}\n- Situation: ___\n{END_MARKER}\nImpact: big"
    assert count_filled_entries(description) == 0
    assert count_filled_entries("Situation: written, but there is no block") == 0


@pytest.mark.parametrize("locale", ["en", "sv"])
def test_filled_entries_count_after_google_reformats_the_html(
    renderer: AgendaRenderer, locale: str
) -> None:
    situation, behaviour = LABELS[locale][:2]
    description = one_on_one(renderer, HTML, locale)
    description = fill(description, situation, "&nbsp;<b>kundmötet</b> i tisdags")
    description = fill(description, behaviour, "avbröt&nbsp;kunden två gånger")
    assert count_filled_entries(google_divs(description)) == 2
    assert count_filled_entries(html_to_text(description)) == 2
    crlf = html_to_text(description).replace("\n", "\r\n").replace(" ", "\u00a0")
    assert count_filled_entries(crlf) == 2
