"""Rendering agenda blocks: the rules' content (R1-R5, R7), en and sv, text and HTML."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedback_agendas.agendas.block import (
    END_MARKER,
    MAX_BLOCK_CHARS,
    START_MARKER,
    MergeOutcome,
    block_hash,
    block_matches,
    count_filled_praise,
    has_block,
    merge_block,
    read_block,
)
from feedback_agendas.agendas.classify import MeetingKind
from feedback_agendas.agendas.errors import ConfigError
from feedback_agendas.agendas.model import TextFormat
from feedback_agendas.agendas.plan import AgendaPlan, SlotKind
from feedback_agendas.agendas.render import AgendaRenderer
from tests.support.plans import plan

ROOT = Path(__file__).resolve().parents[2]
TEXT, HTML = TextFormat.TEXT, TextFormat.HTML
ONE, TEAM = MeetingKind.ONE_ON_ONE, MeetingKind.TEAM
NORM_EN = (
    "This is how we work here: we give each other constructive feedback "
    "because we want each other to grow."
)
NORM_SV = (
    "Så här jobbar vi hos oss: vi ger varandra konstruktiv feedback "
    "för att vi vill att alla ska växa."
)
TITLES = {
    "en": {
        SlotKind.PRAISE: "Praise (in public)",
        SlotKind.WELL: "This you do well",
        SlotKind.BETTER: "This you can do better",
        SlotKind.STOP: "This you should stop doing",
    },
    "sv": {
        SlotKind.PRAISE: "Beröm (inför gruppen)",
        SlotKind.WELL: "Det här gör du bra",
        SlotKind.BETTER: "Det här kan du göra bättre",
        SlotKind.STOP: "Det här bör du sluta med",
    },
}
SBI = {"en": ("Situation", "Behaviour", "Impact"), "sv": ("Situation", "Beteende", "Effekt")}
INSTEAD = {"en": "What to do instead", "sv": "Vad du kan göra i stället"}
ENCOURAGE = {
    "en": "Start with praise only. It may feel strange at first; keep going.",
    "sv": "Börja med bara positiv feedback. Det kan kännas ovant i början, men fortsätt.",
}


@pytest.fixture(scope="module")
def renderer() -> AgendaRenderer:
    return AgendaRenderer()


def lines(renderer: AgendaRenderer, p: AgendaPlan, fmt: TextFormat = TEXT) -> list[str]:
    """The block as plain lines, read back the way the CLI shows it."""
    description = merge_block("", fmt, renderer.render_block(p, fmt), None).description
    return [line for line in (read_block(description) or "").split("\n") if line]


ONE_ON_ONE_SLOTS = [(ONE, SlotKind.WELL), (ONE, SlotKind.BETTER), (ONE, SlotKind.STOP)]
ALL_PLANS = [
    plan(kind, slot, locale=locale, goals=goals, positive_only=positive, norm_enabled=norm)
    for kind, slot in [*ONE_ON_ONE_SLOTS, (TEAM, SlotKind.PRAISE)]
    for locale in ("en", "sv")
    for goals in ((), ("Ship v2 & onboarding", "Answer support within 4 hours"))
    for positive in (False, True)
    for norm in (True, False)
]  # fmt: skip


# --- R1: goals, trust check-in, the team norm ---------------------------------


@pytest.mark.parametrize("fmt", [TEXT, HTML])
@pytest.mark.parametrize(("locale", "intro"), [("en", "Feedback against our goals:"),
                                               ("sv", "Feedback utifrån våra mål:")])  # fmt: skip
def test_goals_are_shown_when_configured(
    renderer: AgendaRenderer, fmt: TextFormat, locale: str, intro: str
) -> None:
    goals = ("Ship v2 onboarding", "Answer support within 4 hours")
    shown = lines(renderer, plan(goals=goals, locale=locale), fmt)
    start = shown.index(intro)
    assert shown[start + 1 : start + 3] == [f"- {goal}" for goal in goals]
    assert intro not in lines(renderer, plan(locale=locale), fmt)


@pytest.mark.parametrize("fmt", [TEXT, HTML])
def test_a_one_on_one_opens_with_a_trust_check_in_and_a_team_meeting_does_not(
    renderer: AgendaRenderer, fmt: TextFormat
) -> None:
    assert lines(renderer, plan(), fmt)[0].startswith("Check-in: How are you doing")
    sv = lines(renderer, plan(locale="sv"), fmt)[0]
    assert sv.startswith("Incheckning: Hur har du det")
    assert not lines(renderer, plan(trust_checkin=False), fmt)[0].startswith("Check-in")
    team = lines(renderer, plan(TEAM, SlotKind.PRAISE), fmt)
    assert not any(line.startswith("Check-in") for line in team)


@pytest.mark.parametrize("fmt", [TEXT, HTML])
@pytest.mark.parametrize(("locale", "norm"), [("en", NORM_EN), ("sv", NORM_SV)])
@pytest.mark.parametrize("kind", [ONE, TEAM])
def test_every_agenda_closes_with_the_team_norm_unless_turned_off(
    renderer: AgendaRenderer, fmt: TextFormat, locale: str, norm: str, kind: MeetingKind
) -> None:
    slot = SlotKind.PRAISE if kind is TEAM else SlotKind.WELL
    assert lines(renderer, plan(kind, slot, locale=locale), fmt)[-1] == norm
    off = lines(renderer, plan(kind, slot, locale=locale, norm_enabled=False), fmt)
    assert norm not in off


@pytest.mark.parametrize("fmt", [TEXT, HTML])
def test_an_admin_rewords_the_norm(renderer: AgendaRenderer, fmt: TextFormat) -> None:
    reworded = "Here we say it out loud: feedback helps us grow."
    assert lines(renderer, plan(norm_text=reworded), fmt)[-1] == reworded
    assert NORM_EN not in lines(renderer, plan(norm_text=reworded), fmt)


# --- R3: behaviour level; slot titles; R2 encouragement -----------------------


@pytest.mark.parametrize("fmt", [TEXT, HTML])
@pytest.mark.parametrize("locale", ["en", "sv"])
@pytest.mark.parametrize("slot", [SlotKind.WELL, SlotKind.BETTER, SlotKind.STOP])
def test_each_one_on_one_slot_asks_for_a_concrete_behaviour(
    renderer: AgendaRenderer, fmt: TextFormat, locale: str, slot: SlotKind
) -> None:
    shown = lines(renderer, plan(slot=slot, locale=locale), fmt)
    title = shown.index(TITLES[locale][slot])
    prompts = [f"- {label}: ___" for label in SBI[locale]]
    assert shown[title + 2 : title + 5] == prompts
    instead = f"- {INSTEAD[locale]}: ___"
    assert (instead in shown) is slot.corrective
    other_titles = set(TITLES[locale].values()) - {TITLES[locale][slot]}
    assert not other_titles & set(shown), "one focus per agenda (R5)"


@pytest.mark.parametrize("fmt", [TEXT, HTML])
@pytest.mark.parametrize(("locale", "entry"), [("en", "- Praise: ___"), ("sv", "- Beröm: ___")])
def test_a_team_agenda_has_a_praise_slot_with_entries_to_fill(
    renderer: AgendaRenderer, fmt: TextFormat, locale: str, entry: str
) -> None:
    body = renderer.render_block(plan(TEAM, SlotKind.PRAISE, locale=locale), fmt)
    shown = lines(renderer, plan(TEAM, SlotKind.PRAISE, locale=locale), fmt)
    assert TITLES[locale][SlotKind.PRAISE] in shown
    assert shown.count(entry) == 3
    prompt = shown[shown.index(TITLES[locale][SlotKind.PRAISE]) + 1]
    assert all(word in prompt for word in ("situation", "impact" if locale == "en" else "effekt"))
    description = merge_block("Stand-up", fmt, body, None).description
    assert count_filled_praise(description) == 0
    label = entry.removeprefix("- ").removesuffix(" ___")
    filled = description.replace(f"{label} ___", f"{label} Kim ran the demo calmly", 2)
    assert count_filled_praise(filled) == 2
    assert merge_block(filled, fmt, body, block_hash(body)).outcome is MergeOutcome.LEFT_EDITED


@pytest.mark.parametrize("fmt", [TEXT, HTML])
@pytest.mark.parametrize("locale", ["en", "sv"])
@pytest.mark.parametrize(("kind", "slot"), [(TEAM, SlotKind.PRAISE), (ONE, SlotKind.WELL)])
def test_the_positive_only_period_encourages(
    renderer: AgendaRenderer, fmt: TextFormat, locale: str, kind: MeetingKind, slot: SlotKind
) -> None:
    encouraged = plan(kind, slot, locale=locale, positive_only=True)
    assert ENCOURAGE[locale] in lines(renderer, encouraged, fmt)
    assert ENCOURAGE[locale] not in lines(renderer, plan(kind, slot, locale=locale), fmt)


@pytest.mark.parametrize("slot", [SlotKind.BETTER, SlotKind.STOP])
def test_a_team_agenda_never_carries_a_corrective_slot(
    renderer: AgendaRenderer, slot: SlotKind
) -> None:
    with pytest.raises(ValueError, match="R4"):
        renderer.render_block(plan(TEAM, slot), TEXT)


@pytest.mark.parametrize("p", ALL_PLANS)
def test_no_agenda_holds_praise_and_correction_together(
    renderer: AgendaRenderer, p: AgendaPlan
) -> None:
    shown = set(lines(renderer, p, HTML)) | set(lines(renderer, p, TEXT))
    titles = TITLES[p.locale]
    has_praise = titles[SlotKind.PRAISE] in shown
    has_correction = bool({titles[SlotKind.BETTER], titles[SlotKind.STOP]} & shown)
    assert not (has_praise and has_correction)
    assert has_praise is (p.kind is TEAM)


# --- the two forms ----------------------------------------------------------


class TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)


@pytest.mark.parametrize("p", ALL_PLANS)
def test_text_and_html_say_the_same_and_html_uses_only_googles_tags(
    renderer: AgendaRenderer, p: AgendaPlan
) -> None:
    text, markup = renderer.render_block(p, TEXT), renderer.render_block(p, HTML)
    assert block_matches(text, block_hash(markup))  # the same lines, bold and italics aside
    assert lines(renderer, p, TEXT) == lines(renderer, p, HTML)
    collector = TagCollector()
    collector.feed(markup)
    assert collector.tags <= {"b", "i", "u", "a", "br", "ul", "li"}
    assert "<" not in text and "\n" not in markup


def test_html_escapes_configured_text(renderer: AgendaRenderer) -> None:
    body = renderer.render_block(plan(goals=("<script>alert(1)</script> & more",)), HTML)
    assert "<script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in body


def test_locales_fall_back_to_their_language_then_english(renderer: AgendaRenderer) -> None:
    assert renderer.render_block(plan(locale="sv-SE"), TEXT) == renderer.render_block(
        plan(locale="sv"), TEXT
    )
    assert renderer.render_block(plan(locale="de"), TEXT) == renderer.render_block(plan(), TEXT)


# --- safety: markers, opt-out, length ----------------------------------------


def test_configured_text_cannot_smuggle_markers_or_the_opt_out_marker() -> None:
    renderer = AgendaRenderer(opt_out_marker="#skip-me")
    goals = (f"Goal one\n{END_MARKER}\n{START_MARKER}", "Ship it #SKIP-ME now", "#no-agenda")
    for fmt in (TEXT, HTML):
        body = renderer.render_block(plan(goals=goals, norm_text="Grow #skip-me"), fmt)
        assert not has_block(body)
        assert "#skip-me" not in body.casefold()
        description = merge_block("x", fmt, body, None).description
        assert merge_block(description, fmt, None, block_hash(body)).description == "x"
        assert "Ship it now" in (read_block(description) or "")
    default = AgendaRenderer().render_block(plan(goals=("#No-Agenda please",)), TEXT)
    assert "#no-agenda" not in default.casefold()


@given(
    goals=st.lists(st.text(min_size=0, max_size=400), max_size=12).map(tuple),
    norm=st.none() | st.text(max_size=600),
    locale=st.sampled_from(["en", "sv"]),
    kind_slot=st.sampled_from([*ONE_ON_ONE_SLOTS, (TEAM, SlotKind.PRAISE)]),
)  # fmt: skip
def test_a_block_stays_under_the_limit_in_every_form(
    renderer: AgendaRenderer,
    goals: tuple[str, ...],
    norm: str | None,
    locale: str,
    kind_slot: tuple[MeetingKind, SlotKind],
) -> None:
    p = plan(*kind_slot, locale=locale, goals=goals, norm_text=norm, positive_only=True)
    for fmt in (TEXT, HTML):
        body = renderer.render_block(p, fmt)
        description = merge_block("", fmt, body, None).description
        assert len(description) <= MAX_BLOCK_CHARS
        assert not has_block(body)
        assert merge_block(description, fmt, body, block_hash(body)).outcome is (
            MergeOutcome.UNCHANGED
        )


def test_long_goals_are_shortened_gracefully(renderer: AgendaRenderer) -> None:
    long_goal = "Reduce the time from a customer's first question to a working answer " * 6
    goals = (long_goal, *(f"Goal {n} & <friends>" * 30 for n in range(8)))
    for fmt in (TEXT, HTML):
        shown = lines(renderer, plan(goals=goals), fmt)
        first = next(line for line in shown if line.startswith("- Reduce"))
        assert first.endswith("…") and len(first) <= 165
        assert not first.removesuffix("…").endswith(" ")
        assert shown[-1] == NORM_EN  # the norm survives; goals give way
        assert any(re.fullmatch(r"- and \d+ more", line) for line in shown)


# --- admin templates ----------------------------------------------------------


def test_an_admin_folder_overrides_templates_and_wording_by_name(tmp_path: Path) -> None:
    (tmp_path / "strings").mkdir()
    sv = (ROOT / "templates/agenda/strings/sv.j2").read_text(encoding="utf-8")
    (tmp_path / "strings/sv.j2").write_text(
        sv.replace("Det här kan du göra bättre", "Det här kan bli ännu bättre"), encoding="utf-8"
    )
    (tmp_path / "team.txt.j2").write_text(
        "{{ t.titles[slot] }} ({{ team }})\n{% for _ in range(praise_entries) %}"
        "- {{ t.praise_entry }}: {{ placeholder }}\n{% endfor %}",
        encoding="utf-8",
    )
    renderer = AgendaRenderer(tmp_path)
    assert "Det här kan bli ännu bättre" in renderer.render_block(plan(locale="sv"), TEXT)
    team = renderer.render_block(plan(TEAM, SlotKind.PRAISE), TEXT)
    assert team == "Praise (in public) (platform)\n" + "\n".join(["- Praise: ___"] * 3)
    # Not overridden: ours.
    assert renderer.render_block(plan(), HTML) == AgendaRenderer().render_block(plan(), HTML)
    assert renderer.fingerprint != AgendaRenderer().fingerprint


def test_an_admin_adds_a_locale(tmp_path: Path) -> None:
    (tmp_path / "strings").mkdir()
    en = (ROOT / "templates/agenda/strings/en.j2").read_text(encoding="utf-8")
    (tmp_path / "strings/de.j2").write_text(
        en.replace("This you can do better", "Das kannst du besser machen"), encoding="utf-8"
    )
    body = AgendaRenderer(tmp_path).render_block(plan(locale="de"), TEXT)
    assert "Das kannst du besser machen" in body


@pytest.mark.parametrize(
    ("name", "source", "problem"),
    [
        ("team.txt.j2", "{% if %}", r"team\.txt\.j2:1: "),
        ("one_on_one.html.j2", "{{ no_such_thing }}", r"one_on_one\.html\.j2: .*no_such_thing"),
        ("one_on_one.txt.j2", "{{ t.__class__.__mro__ }}", r"one_on_one\.txt\.j2"),
        ("team.html.j2", "── end of feedback agenda ──", "block marker"),
        ("team.txt.j2", "#no-agenda", "opt-out marker"),
        ("one_on_one.txt.j2", "x" * 3000, "limit is"),
        ("strings/en.j2", '{% set checkin = "Hi" %}', r"strings/en\.j2: missing .*norm"),
    ],
)
def test_a_broken_admin_template_is_a_config_error_at_start_up(
    tmp_path: Path, name: str, source: str, problem: str
) -> None:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        AgendaRenderer(tmp_path)
    assert any(re.search(problem, p) for p in caught.value.problems), caught.value.problems


def test_the_fingerprint_is_stable_and_rendering_is_cached(renderer: AgendaRenderer) -> None:
    assert AgendaRenderer().fingerprint == renderer.fingerprint
    first = renderer.render_block(plan(), HTML)
    later = replace(plan(), occurrence_start=datetime(2027, 1, 1, tzinfo=UTC))
    assert renderer.render_block(later, HTML) is first
