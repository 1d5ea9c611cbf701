"""Entry labels: ours count by default, an admin adds the labels of their own templates.

Counting lives in ``agendas.block`` only: the daemon's read-back asks it for
numbers (filled entries, vague praise) with the labels the config adds.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from feedback_agendas.agendas.block import (
    EntryLabels,
    PraiseCount,
    count_filled_entries,
    count_filled_praise,
    count_praise,
    merge_block,
)
from feedback_agendas.agendas.errors import ConfigError
from feedback_agendas.agendas.model import TextFormat
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.reminders.after_sync import entry_labels

ADMIN_TEAM = "Shout-outs\n- Shout-out: ___\n- Shout-out: ___\n- Shout-out: ___"
ADMIN_ONE_ON_ONE = "Check-in\n- Next step: ___\n- Context: ___"


def block(body: str) -> str:
    return merge_block("Weekly sync", TextFormat.TEXT, body, None).description


def test_an_admin_label_is_counted_only_once_added() -> None:
    filled = block(ADMIN_TEAM).replace(
        "Shout-out: ___", "Shout-out: Kim walked the new hire through the deploy", 1
    )
    assert count_filled_praise(filled) == 0  # not one of our labels
    labels = EntryLabels().adding(praise=["Shout-out"])
    assert count_filled_praise(filled, labels.praise) == 1
    assert count_filled_praise(block("- Praise: Anna wrote the runbook"), labels.praise) == 1


def test_an_admin_one_on_one_label_is_counted_once_added() -> None:
    filled = block(ADMIN_ONE_ON_ONE).replace("Next step: ___", "Next step: pair on reviews")
    assert count_filled_entries(filled) == 0
    labels = EntryLabels().adding(one_on_one=["next step", "Context"])
    assert count_filled_entries(filled, labels.one_on_one) == 1


def test_vague_praise_is_counted_with_the_same_labels() -> None:
    body = "- Shout-out: good job!\n- Shout-out: Bo answered every customer ticket by noon\n"
    labels = EntryLabels().adding(praise=["Shout-out"]).praise
    assert count_praise(block(body + "- Shout-out: ___"), labels) == PraiseCount(2, 1)
    assert count_praise(block("- Beröm: bra jobbat :)\n- Beröm: ___")) == PraiseCount(1, 1)
    assert count_praise("no block: Praise: good job") == PraiseCount(0, 0)


def test_adding_a_label_we_have_already_changes_nothing() -> None:
    assert EntryLabels().adding(praise=["PRAISE", "Beröm"]) == EntryLabels()


def write_config(tmp_path: Path, labels: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        "calendars:\n"
        "  - name: mona\n"
        "    provider: memory\n"
        "    owner: mona@example.com\n"
        "org:\n"
        "  internal_domains: [example.com]\n"
        "policy:\n"
        "  entry_labels:\n" + textwrap.indent(labels, "    ") + "\n",
        encoding="utf-8",
    )
    return path


def test_the_config_adds_the_admins_labels(tmp_path: Path) -> None:
    cfg = load_config(
        write_config(tmp_path, "praise: [Shout-out, Kudos to]\none_on_one: [Next step]")
    )
    labels = entry_labels(cfg)
    assert labels.praise[-2:] == ("Shout-out", "Kudos to")
    assert "praise" in labels.praise and "situation" in labels.one_on_one
    assert labels.one_on_one[-1] == "Next step"


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        ('praise: ["Shout-out:"]', "leave the colon out"),
        ('praise: ["   "]', "cannot be blank"),
        ('one_on_one: ["Next\\u0007step"]', "control character"),
        (f"praise: [{'x' * 61}]", "at most 60 characters"),
    ],
)
def test_a_bad_label_is_a_config_problem_at_its_line(
    tmp_path: Path, labels: str, problem: str
) -> None:
    path = write_config(tmp_path, labels)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    [found] = caught.value.problems
    assert found.startswith(f"{path}:9: policy.entry_labels.")
    assert problem in found
