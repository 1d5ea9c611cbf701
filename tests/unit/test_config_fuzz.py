"""The config loader never crashes: any text gives a config or FILE:LINE: problems.

Mutated copies of real configs (see ``tests/config_mutations.py``); the
Hypothesis profile sets how many (``bench/config_fuzz.py`` runs 10,000).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.config_mutations import mutate, outcome, seeds

SEEDS = seeds()


@given(seed=st.sampled_from(SEEDS), rnd=st.randoms(use_true_random=False))
def test_a_mutated_config_gives_a_config_or_located_problems(
    tmp_path_factory: pytest.TempPathFactory, seed: str, rnd: random.Random
) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    result = outcome(folder / "config.yaml", mutate(seed, rnd))

    assert not result.startswith("crash"), result


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        # Found by fuzzing: each crashed with a traceback before.
        ("org:\n  internal_domains: [example.com]\n# a \x01 in a comment\n", 3, "#x0001"),
        ("calendars: []\norg:\n  teams:\n    - name: {a: 1}\nopt_out:\n  teams: [{a: 1}]\n",
         4, "org.teams[0].name: Input should be a valid string"),
        ("org:\n  teams:\n    - timezone: " + "A" * 300 + "\n", 3, "unknown time zone"),
        ("policy:\n  templates: " + "t" * 300 + "\n", 2, "policy.templates: folder not found"),
        ("calendars:\n  - provider: vdir\n    path: ~nobody-here/x\n", 3, "no such user"),
        ("sync:\n  interval_seconds: " + "9" * 5000 + "\n", 2, "sync.interval_seconds"),
        ('org:\n  teams:\n    - name: "\\ud800"\n', 3, "lone surrogate"),
        ("sync:\n  jitter: !!float x\n", 2, "cannot be read as !!float"),
        ("x: " + "[" * 3000 + "]" * 3000 + "\n", 1, "nest"),
        ("x:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 60)), 42, "nested more than"),
    ],
    ids=["control-character", "mapping-as-name", "long-timezone", "long-template-folder",
         "unknown-home", "huge-integer", "surrogate", "bad-explicit-tag",
         "deep-flow", "deep-block"],
)  # fmt: skip
def test_inputs_that_crashed_the_loader_are_located_problems(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    path = tmp_path / "config.yaml"
    assert outcome(path, text) == "problems"
    from feedback_agendas.scheduler.config.checks import check_config

    problems = check_config(path, environ={})
    assert any(p.startswith(f"{path}:{line}: ") and words in p for p in problems), problems


def test_a_credentials_name_too_long_for_the_file_system_is_a_located_problem(
    tmp_path: Path,
) -> None:
    """Found by fuzzing (ENAMETOOLONG). The loader takes it (a missing file fails only
    its calendar at run time); check-config names the key and line."""
    from feedback_agendas.scheduler.config.checks import check_config
    from feedback_agendas.scheduler.config.source import load_config

    path = tmp_path / "config.yaml"
    text = (
        "calendars:\n  - {name: g, provider: google, owner: mona@example.com, credentials: "
        + "c" * 300
        + "}\norg:\n  internal_domains: [example.com]\n"
    )
    assert outcome(path, text) == "problems"  # not a crash
    assert load_config(path, environ={}).calendars[0].name == "g"
    problems = check_config(path, environ={})
    assert any(
        p.startswith(f"{path}:2: calendars[0].credentials: cannot read credentials file")
        for p in problems
    ), problems
