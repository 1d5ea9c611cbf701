"""The rules fingerprint stored with each cursor: the same config gives the same value in
every process, and any change to what we would write changes it."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from feedback_agendas.agendas.policy import Rules
from feedback_agendas.agendas.render import AgendaRenderer
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.commands import make_renderer
from feedback_agendas.scheduler.sync.fingerprint import rules_fingerprint

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.yaml"

IN_A_NEW_PROCESS = """
import sys
from feedback_agendas.scheduler.service.commands import make_renderer
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.sync.fingerprint import rules_fingerprint
cfg = load_config(sys.argv[1], environ={})
print(rules_fingerprint(cfg.rules(), make_renderer(cfg)))
"""


def example_rules() -> tuple[Rules, AgendaRenderer]:
    cfg = load_config(EXAMPLE, environ={})
    return cfg.rules(), make_renderer(cfg)


def test_every_process_computes_the_same_fingerprint_whatever_its_hash_seed() -> None:
    rules, renderer = example_rules()
    # The example holds sets that Python orders by the per-process hash seed.
    assert any(len(team.members) > 2 for team in rules.org.teams)
    assert len(rules.opt_out.users | rules.org.internal_domains) >= 2
    seen = set()
    for seed in ("0", "1", "2", "3", "4", "5"):
        done = subprocess.run(
            [sys.executable, "-c", IN_A_NEW_PROCESS, str(EXAMPLE)],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        seen.add(done.stdout.strip())
    assert seen == {rules_fingerprint(rules, renderer)}


def _team(rules: Rules, index: int, **changes: object) -> Rules:
    teams = list(rules.org.teams)
    teams[index] = dataclasses.replace(teams[index], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(rules, org=dataclasses.replace(rules.org, teams=tuple(teams)))


def test_each_key_that_changes_what_we_write_changes_the_fingerprint(tmp_path: Path) -> None:
    rules, renderer = example_rules()
    before = rules_fingerprint(rules, renderer)
    team = rules.org.teams[0]
    changed = {
        "a member joins": _team(rules, 0, members=team.members | {"new@example.com"}),
        "a member leaves": _team(rules, 0, members=team.members - {sorted(team.members)[0]}),
        "a goal is reworded": _team(rules, 0, goals=(*team.goals[:-1], "Ship it sooner")),
        "a user opts out": dataclasses.replace(
            rules,
            opt_out=dataclasses.replace(
                rules.opt_out, users=rules.opt_out.users | {"alice@example.com"}
            ),
        ),
        "a team opts out": dataclasses.replace(
            rules,
            opt_out=dataclasses.replace(rules.opt_out, teams=rules.opt_out.teams | {team.name}),
        ),
        "the norm is reworded": dataclasses.replace(
            rules,
            policy=dataclasses.replace(rules.policy, team_norm_text={"en": "We grow together."}),
        ),
        "the positive-only period moves": _team(rules, 0, positive_only_until=None)
        if team.positive_only_until
        else _team(rules, 0, positive_only_until=date(2027, 1, 1)),
    }
    fingerprints = {what: rules_fingerprint(r, renderer) for what, r in changed.items()}
    for what, fingerprint in fingerprints.items():
        assert fingerprint != before, what
    assert len(set(fingerprints.values())) == len(changed)

    # An admin's template changes what we write too.
    (tmp_path / "strings").mkdir()
    en = (ROOT / "templates/agenda/strings/en.j2").read_text(encoding="utf-8")
    (tmp_path / "strings/en.j2").write_text(
        en.replace("This you do well", "This you do really well"), "utf-8"
    )
    assert rules_fingerprint(rules, AgendaRenderer(tmp_path)) != before


def test_what_does_not_change_what_we_write_keeps_the_fingerprint() -> None:
    rules, renderer = example_rules()
    before = rules_fingerprint(rules, renderer)
    # Notification URLs (they may hold tokens) and the order of a mapping's keys.
    assert rules_fingerprint(_team(rules, 0, notify=("json://x/y",)), renderer) == before
    norm = {"sv": "Så jobbar vi.", "en": "This is how we work."}
    one = dataclasses.replace(rules, policy=dataclasses.replace(rules.policy, team_norm_text=norm))
    other = dataclasses.replace(
        rules, policy=dataclasses.replace(rules.policy, team_norm_text=dict(reversed(norm.items())))
    )
    assert rules_fingerprint(one, renderer) == rules_fingerprint(other, renderer)
    # A fresh copy of the same config (new objects, new sets) gives the same value.
    assert rules_fingerprint(*example_rules()) == before


def test_something_without_a_canonical_form_is_refused() -> None:
    rules, renderer = example_rules()
    odd = dataclasses.replace(
        rules, policy=dataclasses.replace(rules.policy, horizon_days=object())
    )  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="no canonical form"):
        rules_fingerprint(odd, renderer)
