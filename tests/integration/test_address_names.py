"""A calendar named by its person's address, through sync, status, revert and the daemon."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from feedback_agendas.agendas.errors import ConfigError
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.cli import main
from feedback_agendas.scheduler.service.commands import demo_week_start
from feedback_agendas.scheduler.service.loop import run_forever
from feedback_agendas.scheduler.service.sample_week import write_sample_week
from tests.support.receivers import free_port

ROOT = Path(__file__).resolve().parents[2]
MONA = "mona@example.com"


def address_config(tmp: Path, port: int = 0) -> Path:
    """config.example.yaml with Mona's calendar named by her address, beside a plain-named one."""
    data = yaml.safe_load((ROOT / "config.example.yaml").read_text(encoding="utf-8"))
    mona_dir = tmp / "cal-mona"
    mona_dir.mkdir()
    write_sample_week(mona_dir, demo_week_start(datetime.now(UTC), "Europe/Stockholm"))
    (tmp / "cal-team").mkdir()
    data["calendars"] = [
        {**data["calendars"][0], "name": MONA, "path": str(mona_dir)},
        {"name": "team-room", "provider": "vdir", "path": str(tmp / "cal-team"), "owner": MONA},
    ]
    data["storage"] = {"url": f"sqlite:///{tmp / 'fa.db'}"}
    data["opt_out"]["calendars"] = []
    data["server"] = {"host": "127.0.0.1", "port": port}
    data["sync"] = {"interval_seconds": 1}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_sync_status_and_revert_by_address(tmp_path: Path) -> None:
    config = address_config(tmp_path)
    ics = sorted((tmp_path / "cal-mona").glob("*.ics"))
    originals = {p: p.read_bytes() for p in ics}

    code, out = cli("sync", "--config", str(config), "--json", "--calendar", MONA)
    assert code == 0, out
    report = json.loads(out)
    assert report["writes"] == 7
    assert {e["calendar"] for e in report["events"]} == {MONA}

    code, out = cli("status", "--config", str(config), "--json")
    assert code == 0, out
    status = json.loads(out)
    assert set(status) == {MONA}  # only the calendar we asked for ran
    assert status[MONA]["records"] == 13 and status[MONA]["cursor"] is True

    # Names match regardless of case, as the config keeps them unique regardless of case.
    code, out = cli("revert", "--config", str(config), "--calendar", "Mona@Example.com")
    assert code == 0, out
    assert out.splitlines()[0] == f"{MONA}: removed 7 block(s)"
    assert {p: p.read_bytes() for p in ics} == originals

    code, out = cli("sync", "--config", str(config), "--calendar", "erik@example.com")
    assert code == 2
    assert "no calendar named 'erik@example.com'" in out
    assert "known: mona@example.com, team-room" in out


def test_the_daemon_syncs_an_address_named_calendar_and_labels_its_metrics(
    tmp_path: Path,
) -> None:
    port = free_port()
    cfg = load_config(address_config(tmp_path, port))
    ics = sorted((tmp_path / "cal-mona").glob("*.ics"))
    originals = {p: p.read_bytes() for p in ics}
    stop = threading.Event()
    runner = threading.Thread(
        target=run_forever, args=(cfg,), kwargs={"echo": lambda _s: None, "stop": stop}
    )
    runner.start()

    def metrics() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                return str(r.read().decode())
        except OSError:
            return ""

    def synced(text: str) -> bool:
        prefix = f'feedback_agendas_calendar_last_success_timestamp_seconds{{calendar="{MONA}"}} '
        return any(
            line.startswith(prefix) and float(line.removeprefix(prefix)) > 0
            for line in text.splitlines()
        )

    try:
        deadline = time.monotonic() + 30
        while not synced(text := metrics()):
            assert time.monotonic() < deadline, "no successful cycle of the calendar"
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join(15)
    assert not runner.is_alive()
    assert f'feedback_agendas_calendar_consecutive_failures{{calendar="{MONA}"}} 0.0' in text
    # seven blocks in six files: one file holds a series and its moved occurrence
    assert sum(p.read_bytes() != originals[p] for p in ics) == 6


@pytest.mark.parametrize(
    "name",
    [
        "a/b@example.com",
        "mona@example.com/..",
        "mona@",
        "@example.com",
        "mo na@example.com",
        "mona:1@example.com",
        "x" * 190 + "@example.com",
    ],
)
def test_names_that_are_not_safe_in_a_path_or_id_are_refused(tmp_path: Path, name: str) -> None:
    data = {
        "storage": {"url": f"sqlite:///{tmp_path / 'fa.db'}"},
        "calendars": [{"name": name, "provider": "memory", "owner": MONA}],
        "org": {"internal_domains": ["example.com"]},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"calendars\[0\]\.name"):
        load_config(path)
