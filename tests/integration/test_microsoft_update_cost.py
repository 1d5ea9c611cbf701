"""The Outlook updates a Microsoft calendar costs are shown before the first write (issue 15).

Through the CLI (click's runner), the real provider, msal and the local Graph
over HTTPS: ``preview`` and ``sync --dry-run`` say how many meeting updates a
sync would send and write nothing; the real ``sync`` then sends exactly that
many, as the fake counts them; ``write_mode: reminder`` costs none.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from feedback_agendas.scheduler.service.cli import main
from tests.fakes.graph_api import FakeGraph
from tests.support.graph import SECRET, calendar_entry, start_graph

MONA, ALICE, BOB = "mona@example.com", "alice@example.com", "bob@example.com"
CAROL, DAVE, ROOM = "carol@example.com", "dave@example.com", "room-4@example.com"


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with start_graph() as fake:
        start = (datetime.now(UTC) + timedelta(days=1)).replace(
            hour=8, minute=0, second=0, microsecond=0
        )
        fake.store.add_event(
            MONA,
            subject="Alice / Mona",
            start=start,
            end=start + timedelta(minutes=30),
            attendees=[(MONA, "required"), (ALICE, "required")],
            weekly=True,
        )
        fake.store.add_event(
            MONA,
            subject="Team standup",
            start=start + timedelta(hours=1),
            end=start + timedelta(hours=1, minutes=15),
            attendees=[(MONA, "required")] + [(p, "required") for p in (ALICE, BOB, CAROL, DAVE)],
            weekly=True,
        )
        fake.store.add_event(
            MONA,
            subject="Bob / Mona",
            start=start + timedelta(days=1),
            end=start + timedelta(days=1, minutes=30),
            attendees=[(MONA, "required"), (BOB, "required"), (ROOM, "resource")],
        )
        yield fake
    assert fake.violations == []


def config(tmp_path: Path, graph: FakeGraph, write_mode: str = "body") -> Path:
    data = {
        "storage": {"url": f"sqlite:///{tmp_path / 'fa.db'}"},
        "calendars": [
            calendar_entry(graph, MONA, client_secret="${MS_CLIENT_SECRET}", write_mode=write_mode)
        ],
        "org": {
            "internal_domains": ["example.com"],
            "teams": [{"name": "platform", "manager": MONA, "members": [ALICE, BOB, CAROL, DAVE]}],
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def run(*args: str) -> tuple[int, str]:
    """The exit code and what went to stdout (the JSON); stderr has the config's warnings."""
    result = CliRunner(env={"MS_CLIENT_SECRET": SECRET}).invoke(main, list(args))
    return result.exit_code, result.stdout if "--json" in args else result.output


def test_preview_and_dry_run_show_the_updates_the_first_sync_then_sends(
    tmp_path: Path, graph: FakeGraph
) -> None:
    path = config(tmp_path, graph)
    # 1 (Alice) + 4 (the team) + 2 (Bob and the room): the attendees but Mona.
    code, out = run("preview", "--config", str(path), "--user", MONA)
    assert code == 0, out
    assert "A sync now would send 7 meeting update(s) to attendees" in out
    assert "writing it sends 4 attendee(s) a meeting update" in out
    code, out = run("preview", "--config", str(path), "--user", MONA, "--json")
    assert json.loads(out)["notices"] == 7

    code, out = run("sync", "--config", str(path), "--dry-run", "--json")
    assert code == 0, out
    assert json.loads(out)["notices"] == 7
    assert graph.requests["patch"] == 0 and graph.updates() == []
    code, out = run("sync", "--config", str(path), "--dry-run")
    assert "these writes would send 7 meeting update(s) to attendees" in out

    code, out = run("sync", "--config", str(path), "--json")
    assert code == 0, out
    summary = json.loads(out)
    assert summary["writes"] == 3 and summary["notices"] == 7
    assert len(graph.updates()) == 7  # what was shown is what Outlook sent

    code, out = run("sync", "--config", str(path), "--json")
    assert json.loads(out)["notices"] == 0 and len(graph.updates()) == 7


def test_reminder_mode_costs_no_update_and_says_where_the_agenda_goes(
    tmp_path: Path, graph: FakeGraph
) -> None:
    path = config(tmp_path, graph, write_mode="reminder")
    code, out = run("preview", "--config", str(path), "--user", MONA, "--json")
    assert code == 0, out
    result = json.loads(out)
    assert result["notices"] == 0
    agendas = [m for m in result["meetings"] if m["agenda"]]
    assert len(agendas) == 3
    assert all(m["action"] == "in_reminder" and "reminder" in m["why"] for m in agendas)
    code, out = run("sync", "--config", str(path), "--json")
    assert code == 0, out
    assert json.loads(out)["notices"] == 0
    assert graph.requests["patch"] == 0 and graph.updates() == []
