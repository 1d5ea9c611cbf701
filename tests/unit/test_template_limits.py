"""Admin templates are bounded: no hang, no memory blow-up, no traceback; the sandbox holds.

Every hostile template below used to hang, fill memory or crash start-up with
a traceback; each is now a :class:`ConfigError` that names the template file,
at start-up (and so in ``check-config``). A template that fails only for one
event's input fails at run time with :class:`TemplateFailed`, for that agenda.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from feedback_agendas.agendas.errors import ConfigError, TemplateFailed, UserError
from feedback_agendas.agendas.model import TextFormat
from feedback_agendas.agendas.plan import SlotKind
from feedback_agendas.agendas.render import AgendaRenderer
from feedback_agendas.agendas.template_sandbox import (
    MAX_LOOP_ITERATIONS,
    MAX_RENDER_SECONDS,
    MAX_STEPS,
)
from tests.support.hostile_templates import HOSTILE
from tests.support.plans import plan


@pytest.mark.parametrize("source", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_admin_template_is_a_config_error_naming_it(tmp_path: Path, source: str) -> None:
    (tmp_path / "team.txt.j2").write_text(source, encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        AgendaRenderer(tmp_path)

    assert caught.value.problems
    assert all(
        str(tmp_path / "team.txt.j2") in p or "team.txt.j2" in p for p in caught.value.problems
    )
    assert "Traceback" not in str(caught.value)


def test_limits_hold_in_the_strings_template_too(tmp_path: Path) -> None:
    (tmp_path / "strings").mkdir()
    (tmp_path / "strings" / "en.j2").write_text(
        "{% for i in range(9000) %}{% for j in range(9000) %}{% endfor %}{% endfor %}",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        AgendaRenderer(tmp_path)
    assert caught.value.problems == [
        f"strings/en.j2: over a limit: more than {MAX_LOOP_ITERATIONS} loop iterations"
    ]


def test_a_strings_table_of_the_wrong_type_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    en = (Path(__file__).resolve().parents[2] / "templates/agenda/strings/en.j2").read_text()
    (tmp_path / "strings").mkdir()
    (tmp_path / "strings" / "en.j2").write_text(en + "\n{% set titles = 7 %}", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        AgendaRenderer(tmp_path)
    assert "strings/en.j2: titles must be a mapping of slot names" in caught.value.problems


def test_problems_name_the_template_line(tmp_path: Path) -> None:
    (tmp_path / "one_on_one.txt.j2").write_text("ok\n\n{{ '{0.__class__}'.format_map(t) }}\n")
    with pytest.raises(ConfigError) as caught:
        AgendaRenderer(tmp_path)
    assert f"{tmp_path / 'one_on_one.txt.j2'}: line 3: IndexError: " in caught.value.problems[0]


def test_a_time_limit_stops_a_slow_render(tmp_path: Path) -> None:
    ticks = itertools.count()
    # A clock that moves 0.1 s per reading: the limit is reached after a few dozen steps.
    (tmp_path / "team.txt.j2").write_text(
        "{% for i in range(5000) %}{{ i }}{% endfor %}", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        AgendaRenderer(tmp_path, clock=lambda: next(ticks) / 10)
    assert f"took more than {MAX_RENDER_SECONDS:g} s" in str(caught.value)
    # The same template is fine with a clock that does not move: it is only slow.
    with pytest.raises(ConfigError) as caught:
        AgendaRenderer(tmp_path, clock=lambda: 0.0)
    assert "took more than" not in str(caught.value)  # too long an agenda, nothing else


def test_ordinary_admin_templates_stay_well_within_the_limits(tmp_path: Path) -> None:
    (tmp_path / "team.txt.j2").write_text(
        "{{ t.titles[slot] }}{% for g in goals %} {{ g | upper | truncate(20) }}{% endfor %}\n"
        "{% for _ in range(praise_entries) %}- {{ t.praise_entry }}: {{ placeholder }}\n"
        "{% endfor %}{{ ', '.join(['a', 'b']) }} {{ '%s/%d' % ('x', 3) }} {{ '{:>5}'.format(1) }}"
        " {{ 'ab' * 3 }} {{ 2 ** 10 }} {{ 'x' ~ 'y' }}",
        encoding="utf-8",
    )
    body = AgendaRenderer(tmp_path).render_block(plan(kind=plan().kind.TEAM, slot=SlotKind.PRAISE),
                                                 TextFormat.TEXT)  # fmt: skip
    assert body.endswith("a, b x/3     1 ababab 1024 xy")
    assert MAX_STEPS > 1000


def test_a_template_failing_on_one_events_input_fails_that_render_only(tmp_path: Path) -> None:
    # Start-up renders with team "team"; this template fails only for the team "platform".
    (tmp_path / "one_on_one.txt.j2").write_text(
        "{{ t.titles[slot] }}{% if team == 'platform' %}{{ 1 // 0 }}{% endif %}", encoding="utf-8"
    )
    renderer = AgendaRenderer(tmp_path)

    with pytest.raises(TemplateFailed) as caught:
        renderer.render_block(plan(), TextFormat.TEXT)

    assert isinstance(caught.value, UserError)  # printed without a traceback
    assert caught.value.template == str(tmp_path / "one_on_one.txt.j2")
    assert caught.value.reason == "line 1: ZeroDivisionError: integer division or modulo by zero"
    assert renderer.render_block(plan(), TextFormat.HTML)  # the other template still renders


@pytest.mark.parametrize(
    "escape",
    [
        "{{ t.__class__.__mro__ }}",
        "{{ ''.__class__.__base__.__subclasses__() }}",
        "{{ range.__globals__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ (t | attr('__class__')) }}",
    ],
)
def test_the_sandbox_still_holds(tmp_path: Path, escape: str) -> None:
    (tmp_path / "team.txt.j2").write_text(escape, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        AgendaRenderer(tmp_path)
    assert "SecurityError" in str(caught.value) or "unsafe" in str(caught.value)
