"""The command line, through click's runner, on the example config and sample week."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from feedback_agendas.scheduler.service.cli import main

ROOT = Path(__file__).resolve().parents[2]


def sync_json(config: Path, *extra: str) -> dict:
    result = CliRunner().invoke(main, ["sync", "--config", str(config), "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_sync_twice_writes_then_makes_zero_writes(example: Path) -> None:
    first = sync_json(example)
    assert first["writes"] == 7
    assert first["actions"] == {"inserted": 7, "skipped": 6}
    assert first["skipped"] == {
        "all_day": 1,
        "external_guest": 1,
        "not_a_team_meeting": 1,
        "not_organizer": 1,
        "opted_out_user": 1,
        "out_of_office": 1,
    }
    assert first["requests"]["write"] >= 1
    entry = next(e for e in first["events"] if e["event_id"].startswith("bob-1on1"))
    assert entry == {
        "calendar": "mona",
        "event_id": entry["event_id"],
        "recurrence_id": None,
        "kind": "one_on_one",
        "slots": ["better"],
        "action": "inserted",
        "reason": None,
    }
    second = sync_json(example)
    assert second["writes"] == 0
    # Only our own writes come back as changes; the skipped events are not re-read.
    assert second["actions"] == {"unchanged": 7}


def test_dry_run_reports_but_writes_nothing(example: Path) -> None:
    before = {p: p.read_bytes() for p in example.parent.rglob("*.ics")}
    report = sync_json(example, "--dry-run")
    assert report["dry_run"] is True and report["actions"]["inserted"] == 7
    assert report["writes"] == 0
    assert {p: p.read_bytes() for p in example.parent.rglob("*.ics")} == before


def test_revert_removes_unedited_blocks_and_lists_edited_ones(example: Path) -> None:
    originals = {p: p.read_bytes() for p in example.parent.rglob("*.ics")}
    sync_json(example)
    bob = next(p for p in originals if p.name.startswith("bob-1on1"))
    bob.write_bytes(bob.read_bytes().replace(b"Situation: ___", b"Situation: the demo", 1))
    result = CliRunner().invoke(main, ["revert", "--config", str(example)])
    assert result.exit_code == 0, result.output
    assert "mona: removed 6 block(s)" in result.output
    assert "left edited: bob-1on1" in result.output
    untouched = {p for p, data in originals.items() if p.read_bytes() == data}
    assert len(untouched) == len(originals) - 1


def test_check_config_exits_0_when_valid_and_2_with_every_problem(tmp_path: Path) -> None:
    ok = CliRunner().invoke(main, ["check-config", "--config", str(ROOT / "config.example.yaml")])
    assert ok.exit_code == 0, ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "storage: {url: 'sqlite:///x.db'}\n"
        "calendars:\n"
        "  - name: mona\n"
        "    provider: vdir\n"
        "    path: cal\n"
        "    owner: mona@example.com\n"
        "    colour: blue\n"
        "org:\n"
        "  internal_domains: [example.com]\n"
        "  teams:\n"
        "    - {name: t, manager: mona@example.com, members: [], locale: fi}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["check-config", "--config", str(bad)])
    assert result.exit_code == 2
    assert "bad.yaml:7: calendars[0].colour" in result.output
    assert "bad.yaml:11: org.teams[0].locale" in result.output


def test_a_bad_config_stops_sync_with_a_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("calendars: [\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["sync", "--config", str(bad)])
    assert result.exit_code == 2
    assert "bad.yaml" in result.output and "Traceback" not in result.output


def test_status_shows_the_last_run(example: Path) -> None:
    sync_json(example)
    result = CliRunner().invoke(main, ["status", "--config", str(example), "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["mona"]["last_run"]["ok"] is True
    assert status["mona"]["records"] == 13


def test_demo_shows_both_kinds_of_agenda_and_the_skip_reasons() -> None:
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "This you can do better" in out and "What to do instead" in out
    assert "Praise (in public)" in out
    assert "Det här gör du bra" in out  # the Swedish team's positive-only 1:1 (R2)
    for reason in ("external_guest", "opted_out_user", "all_day", "out_of_office"):
        assert reason in out
    assert "A second cycle with no changes: 0 write(s)." in out


def test_db_upgrade_reports_the_head_revision(example: Path) -> None:
    from feedback_agendas.scheduler.storage.migrations import head_revision

    result = CliRunner().invoke(main, ["db", "upgrade", "--config", str(example)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"database at revision {head_revision()}"


def test_google_auth_refuses_a_client_file_others_can_read(tmp_path: Path) -> None:
    secrets = tmp_path / "client.json"
    secrets.write_text("{}", encoding="utf-8")
    secrets.chmod(0o644)
    token = tmp_path / "token.json"
    result = CliRunner().invoke(
        main, ["google-auth", "--client-secrets", str(secrets), "--token-out", str(token)]
    )
    assert result.exit_code == 2
    assert "readable by other users" in result.output and "chmod 600" in result.output
    assert not token.exists()


def test_sync_shows_control_characters_in_titles_as_escapes(example: Path) -> None:
    """An outsider's invitation must not send escape sequences to the admin's terminal."""
    folder = example.parent / "examples" / "calendars" / "mona"
    invitation = next(folder.glob("billing-api-acme*.ics"))
    text = invitation.read_text(encoding="utf-8")
    title = next(line for line in text.splitlines() if line.startswith("SUMMARY"))
    hostile = "SUMMARY:Hi\x1b]0;pwned\x07\x1b[2Kthere"
    invitation.write_text(text.replace(title, hostile), encoding="utf-8")
    result = CliRunner().invoke(main, ["sync", "--config", str(example)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "Hi\\x1b]0;pwned\\x07\\x1b[2Kthere" in result.output


@pytest.mark.parametrize(
    ("delegate", "reason"),
    [("eve@outside.example", "external_guest"), ("erik@example.com", None)],
)
def test_a_1on1_delegated_to_a_third_person_gets_no_corrective_slot(
    example: Path, delegate: str, reason: str | None
) -> None:
    """DELEGATED-TO names someone who may come in bob's place or beside him (I4)."""
    one_on_one = example.parent / "examples" / "calendars" / "mona" / "bob-1on1.ics"
    text = one_on_one.read_text(encoding="utf-8")
    bob = "ATTENDEE;PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT:mailto:bob@example.com"
    assert bob in text
    delegated = (
        f'ATTENDEE;PARTSTAT=DELEGATED;DELEGATED-TO="mailto:{delegate}":mailto:bob@example.com'
    )
    one_on_one.write_text(text.replace(bob, delegated), encoding="utf-8")
    entry = next(e for e in sync_json(example)["events"] if e["event_id"].startswith("bob-1on1"))
    assert entry["kind"] != "one_on_one"
    assert "better" not in entry["slots"]
    if reason is not None:
        assert entry["reason"] == reason
