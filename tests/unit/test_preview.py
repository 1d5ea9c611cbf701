"""``feedback-agendas preview``: what we would write into a person's meetings and why, writing
nothing. Through click's runner, on the example config and sample week (vdir)."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from feedback_agendas.agendas.classify import AudienceProblem, SkipReason
from feedback_agendas.agendas.decide import ActionKind
from feedback_agendas.agendas.reasons import (
    ACTION_TEXT,
    AUDIENCE_PROBLEM_TEXT,
    SKIP_REASON_TEXT,
    explain_reason,
)
from feedback_agendas.scheduler.service.cli import main

MONA = "mona@example.com"


def snapshot(folder: Path) -> dict[Path, bytes]:
    """Every file under ``folder``, byte for byte."""
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def table_rows(db: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables
        }


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def preview_json(config: Path, *extra: str) -> dict:
    code, out, err = invoke("preview", "--config", str(config), "--user", MONA, "--json", *extra)
    assert code == 0, out + err
    return json.loads(out)


def test_preview_before_any_sync_explains_every_meeting_and_writes_nothing(
    example: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = snapshot(example.parent)
    caplog.set_level(logging.DEBUG)
    code, out, err = invoke("preview", "--config", str(example), "--user", MONA)
    assert code == 0, out + err
    # byte-identical files, and no database left behind by a preview before the first sync
    assert snapshot(example.parent) == before

    bob = out.split("=== ")[1:]
    bob_section = next(s for s in bob if s.startswith("Bob 1:1"))
    assert "one_on_one" in bob_section and "better" in bob_section
    assert "It is a 1:1 between a manager and their report. We would add an agenda." in bob_section
    assert "Situation: ___" in bob_section  # the agenda text we would write
    erik = next(s for s in bob if s.startswith("1:1 Mona / Erik"))
    assert "skip (opted_out_user)" in erik
    assert SKIP_REASON_TEXT[SkipReason.OPTED_OUT_USER] in erik
    assert "Situation" not in erik
    acme = next(s for s in bob if s.startswith("Billing API sync with Acme"))
    assert SKIP_REASON_TEXT[SkipReason.EXTERNAL_GUEST] in acme
    # titles and agenda text are shown to the admin, never logged
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Bob 1:1" not in logged and "Situation" not in logged


def test_preview_after_a_sync_changes_no_file_and_no_row_and_has_a_json_shape(
    example: Path,
) -> None:
    code, out, err = invoke("sync", "--config", str(example))
    assert code == 0, out + err
    db = example.parent / "feedback-agendas.db"
    files, rows = snapshot(example.parent), table_rows(db)

    report = preview_json(example, "--days", "14")

    assert snapshot(example.parent) == files  # the calendar and the database file
    assert table_rows(db) == rows
    assert set(report) == {
        "user",
        "calendars",
        "from",
        "until",
        "meetings",
        "unreadable",
        "notices",
    }
    assert report["notices"] == 0  # files are written silently
    assert report["user"] == MONA and report["calendars"] == ["mona"]
    assert report["unreadable"] == []
    meetings = report["meetings"]
    assert [m["start"] for m in meetings] == sorted(m["start"] for m in meetings)
    assert all(report["from"] <= m["end"] and m["start"] < report["until"] for m in meetings)
    bob = next(m for m in meetings if m["event_id"].startswith("bob-1on1"))
    assert set(bob) == {
        "calendar", "event_id", "recurrence_id", "start", "end", "timezone", "series",
        "title", "kind", "action", "slots", "reason", "why", "agenda", "notices",
    }  # fmt: skip
    assert bob["title"] == "Bob 1:1" and bob["kind"] == "one_on_one"
    assert bob["slots"] == ["better"] and bob["reason"] is None
    # synced already: the block is ours and current, so nothing would be written
    assert bob["action"] == "unchanged"
    assert bob["why"].endswith(ACTION_TEXT[ActionKind.UNCHANGED])
    assert "Situation: ___" in bob["agenda"]
    skipped = {m["reason"] for m in meetings if m["kind"] == "skip"}
    assert {"opted_out_user", "external_guest", "not_organizer", "out_of_office"} <= skipped
    for m in meetings:
        if m["reason"]:
            assert m["why"].startswith(explain_reason(m["reason"]))
            assert m["agenda"] is None

    # a shorter window holds fewer meetings, all of them within it
    one_day = preview_json(example, "--days", "1")["meetings"]
    assert len(one_day) < len(meetings)


def test_an_edited_block_is_shown_as_left_alone(example: Path) -> None:
    invoke("sync", "--config", str(example))
    bob = next(example.parent.rglob("bob-1on1*.ics"))
    bob.write_bytes(bob.read_bytes().replace(b"Situation: ___", b"Situation: the demo", 1))
    meeting = next(
        m for m in preview_json(example)["meetings"] if m["event_id"].startswith("bob-1on1")
    )
    assert meeting["action"] == "left_edited"
    assert "Situation: the demo" in meeting["agenda"]


def test_an_unknown_user_is_a_clear_error_with_exit_2(example: Path) -> None:
    code, out, err = invoke("preview", "--config", str(example), "--user", "nobody@example.com")
    assert code == 2
    assert "no calendar in the config has 'nobody@example.com' as its owner or name" in err
    assert out == ""


def test_every_reason_code_and_action_has_a_sentence() -> None:
    assert set(SKIP_REASON_TEXT) == set(SkipReason)
    assert set(AUDIENCE_PROBLEM_TEXT) == set(AudienceProblem)
    assert set(ACTION_TEXT) == set(ActionKind)
    for code in [*SkipReason, "malformed", "unstorable_id", "unreadable"]:
        assert not explain_reason(code).startswith("Reason code")
    assert "internal" in explain_reason("error_internal")
    assert explain_reason("something_new") == "Reason code something_new."


def test_control_characters_in_a_title_reach_the_terminal_escaped(example: Path) -> None:
    bob = next(example.parent.rglob("bob-1on1*.ics"))
    bob.write_bytes(
        bob.read_bytes().replace(b"SUMMARY:Bob 1:1", b"SUMMARY:Bob\x1b]0;pwned\x07 1:1")
    )
    code, out, err = invoke("preview", "--config", str(example), "--user", MONA)
    assert code == 0, out + err
    assert "\x1b" not in out and "\x07" not in out
    assert "=== Bob\\x1b]0;pwned\\x07 1:1" in out


def test_a_calendar_that_cannot_be_read_is_a_clear_error_with_exit_2(example: Path) -> None:
    shutil.rmtree(example.parent / "examples" / "calendars" / "mona")
    code, out, err = invoke("preview", "--config", str(example), "--user", MONA)
    assert code == 2, out + err
    assert err.startswith("error: cannot read calendar mona: not_found")
    assert "Traceback" not in out + err
