"""Self-service opt-outs from the admin's side: ``opt-out list|add|remove`` and ``status``.

The example config and its sample week, through click's runner and the real
SQLite store; a sync after each change shows what the choice does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from feedback_agendas.scheduler.service.cli import main
from feedback_agendas.scheduler.storage.opt_outs import (
    VIA_LINK,
    add_opt_out,
    is_opted_out,
    list_opt_outs,
    remove_opt_out,
)
from feedback_agendas.scheduler.storage.store import Store

BOB = "bob@example.com"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def sync(config: Path) -> dict:
    code, out = run("sync", "--config", str(config), "--json")
    assert code == 0, out
    return json.loads(out)


def event(summary: dict, prefix: str) -> dict:
    return next(e for e in summary["events"] if e["event_id"].startswith(prefix))


def test_an_admin_opts_a_person_out_and_back_in(example: Path) -> None:
    config = str(example)
    assert event(sync(example), "bob-1on1")["action"] == "inserted"

    assert run("opt-out", "add", "Bob@Example.com", "--config", config) == (
        0,
        f"{BOB} opted out: the next cycle of each calendar removes our unedited blocks "
        "from their 1:1s and the meetings they organize\n",
    )
    assert run("opt-out", "add", BOB, "--config", config)[1] == f"{BOB} had already opted out\n"
    code, out = run("opt-out", "list", "--config", config, "--json")
    assert code == 0, out
    listed = json.loads(out)
    assert [e["address"] for e in listed["self_service"]] == [BOB]
    assert listed["self_service"][0]["via"] == "cli"
    assert listed["config"] == ["erik@example.com"]
    code, out = run("status", "--config", config)
    assert code == 0, out
    assert out.splitlines()[-1] == (
        "opted out: 1 by themselves (feedback-agendas opt-out list), "
        "1 in the config (opt_out.users)"
    )

    after = sync(example)
    bob = event(after, "bob-1on1")
    assert (bob["action"], bob["reason"]) == ("removed", "opted_out_user")
    # Bob's opt-out is his: the stand-up with him, organized by Mona, keeps its praise slot.
    assert event(after, "platform-standup")["action"] == "unchanged"
    assert after["writes"] == 1

    code, out = run("opt-out", "remove", BOB, "--config", config)
    assert (code, out) == (
        0,
        f"{BOB} opted back in: the next cycle of each calendar writes their agendas\n",
    )
    assert event(sync(example), "bob-1on1")["action"] == "inserted"


def test_removing_a_config_opt_out_says_it_stays_in_the_config(example: Path) -> None:
    result = CliRunner().invoke(
        main, ["opt-out", "remove", "erik@example.com", "--config", str(example)]
    )
    assert result.exit_code == 0
    assert result.stdout == "erik@example.com had not opted out themselves\n"
    assert "still opted out in the config (opt_out.users)" in result.stderr


def test_a_bad_address_is_refused_without_a_traceback(example: Path) -> None:
    code, out = run("opt-out", "add", "not-an-address", "--config", str(example))
    assert code == 2
    assert out == "error: not an email address: 'not-an-address'\n"


def test_the_store_api_the_dashboard_uses(tmp_path: Path) -> None:
    now = datetime(2026, 3, 23, 7, 0, tzinfo=UTC)
    with Store.open(f"sqlite:///{tmp_path / 'fa.db'}") as store:
        engine = store.engine
        assert list_opt_outs(engine) == [] and not is_opted_out(engine, BOB)
        assert add_opt_out(engine, " BOB@example.com ", now, via=VIA_LINK) is True
        assert add_opt_out(engine, BOB, now, via="cli") is False  # the first choice stays
        assert is_opted_out(engine, "Bob@Example.COM")
        [entry] = list_opt_outs(engine)
        assert (entry.address, entry.via, entry.opted_out_at) == (BOB, VIA_LINK, now)
        assert remove_opt_out(engine, BOB) is True
        assert remove_opt_out(engine, BOB) is False
        assert list_opt_outs(engine) == []
