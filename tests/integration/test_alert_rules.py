"""The alert rules of docs/operations.md against the /metrics of a healthy and a broken daemon.

Real parts: the daemon with its endpoints over HTTP on loopback, vdir folders
of the sample week, SQLite, apprise posting to a webhook receiver (healthy) or
to a port nobody listens on (broken). The rules are read from the docs and
evaluated by :mod:`tests.promql` over two scrapes, before and after.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.commands import demo_week_start
from feedback_agendas.scheduler.service.daemon import Daemon, housekeeping_job, register, send_job
from feedback_agendas.scheduler.service.http_server import EndpointServer
from feedback_agendas.scheduler.service.sample_week import write_sample_week
from tests.promql import Evaluator, parse_scrape
from tests.support.clock import Clock
from tests.support.http import get
from tests.support.receivers import WebhookReceiver

ROOT = Path(__file__).resolve().parents[2]
OWNER = "mona@example.com"
INTERVAL = timedelta(seconds=300)  # the interval the docs' rules are written for


def alert_rules() -> dict[str, str]:
    """Alert name -> expression, from the YAML block in docs/operations.md."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(groups:.*?)```", text, re.S)
    assert block is not None, "docs/operations.md has no rule group"
    groups = yaml.safe_load(block.group(1))["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def write_config(tmp: Path, calendars: list[str], notify: str, **server: Any) -> Path:
    data = yaml.safe_load((ROOT / "config.example.yaml").read_text(encoding="utf-8"))
    data["storage"] = {"url": f"sqlite:///{tmp / 'fa.db'}"}
    week = demo_week_start(datetime.now(UTC), "Europe/Stockholm")
    data["calendars"] = []
    for name in calendars:
        folder = tmp / "calendars" / name
        write_sample_week(folder, week)
        data["calendars"].append(
            {
                "name": name,
                "provider": "vdir",
                "path": str(folder),
                "owner": OWNER,
                "timezone": "Europe/Stockholm",
            }
        )
    data["org"]["teams"][0]["notify"] = [notify]
    data["reminders"] = {**data.get("reminders", {}), "max_attempts": 1, "quiet_hours": None}
    data["server"] = {**data["server"], "port": 0, **server}
    data["sync"] = {**data["sync"], "interval_seconds": int(INTERVAL.total_seconds())}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


class Run:
    """A daemon with its endpoints, driven by an injected clock through sync intervals."""

    def __init__(self, config: Path) -> None:
        cfg = load_config(config)
        week = demo_week_start(datetime.now(UTC), "Europe/Stockholm")
        self.clock = Clock(datetime.combine(week, time(8, 0), tzinfo=UTC))
        self.daemon = Daemon(cfg, clock=self.clock)
        self.daemon_id = register(self.daemon)
        self.server = EndpointServer(
            "127.0.0.1", 0, ready=self.daemon.readiness, metrics=self.daemon.metrics_text
        )
        self.server.start()

    def scrape(self) -> dict[Any, float]:
        housekeeping_job(self.daemon_id)
        status, text = get(self.server.url + "/metrics")
        assert status == 200
        return parse_scrape(text)

    def intervals(self, count: int) -> None:
        """``count`` sync intervals: every calendar synced, a praise win, reminders sent."""
        for _ in range(count):
            self.clock.now += INTERVAL
            for name in self.daemon.calendars:
                self.daemon.sync_calendar(name)
            self.daemon.log_win("platform", "praise")
            self.daemon.send_due()

    def fired(self, before: dict[Any, float], after: dict[Any, float]) -> dict[str, list[Any]]:
        evaluator = Evaluator(before, after, now=self.clock.now.timestamp())
        return {name: evaluator.fires(expr) for name, expr in alert_rules().items()}

    def close(self) -> None:
        self.server.stop()
        self.daemon.shutdown()
        self.daemon.store.close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as hook:
        yield hook


def test_the_docs_rules_are_quiet_on_a_healthy_daemon(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    run = Run(write_config(tmp_path, ["mona", "lena"], receiver.url("/platform")))
    try:
        run.intervals(1)
        before = run.scrape()
        run.intervals(4)
        after = run.scrape()
        assert get(run.server.url + "/readyz")[0] == 200
        assert run.fired(before, after) == {name: [] for name in alert_rules()}
        assert receiver.posts  # the reminders went out: the channel rule had work to watch
    finally:
        run.close()


def test_each_docs_rule_fires_on_a_broken_daemon(tmp_path: Path) -> None:
    # A notify URL nobody listens on, one calendar folder gone of three.
    config = write_config(
        tmp_path,
        ["mona", "lena", "gone"],
        "json://127.0.0.1:9/platform",
        ready_max_failing_share=0.2,
    )
    run = Run(config)
    try:
        before = run.scrape()
        shutil.rmtree(tmp_path / "calendars" / "gone")
        run.intervals(4)
        broken = run.scrape()
        fired = run.fired(before, broken)
        by_calendar = ("FeedbackAgendasCalendarFailing", "FeedbackAgendasCalendarStale")
        for name in by_calendar:
            assert [dict(labels)["calendar"] for labels, _ in fired[name]] == ["gone"], name
        needs_admin = fired["FeedbackAgendasCalendarNeedsAnAdmin"]
        assert [dict(labels) for labels, _ in needs_admin] == [
            {"calendar": "gone", "kind": "not_found"}
        ]
        assert fired["FeedbackAgendasNotReady"]
        assert fired["FeedbackAgendasReminderChannelFailing"]
        assert fired["FeedbackAgendasReminderDeadLettered"]
        status, body = get(run.server.url + "/readyz")
        assert status == 503
        answer = json.loads(body)
        assert [c["calendar"] for c in answer["failing_calendars"]] == ["gone"]
        assert answer["failing_calendars"][0]["error_kind"] == "not_found"
        # Then every replica stops: no cycle for three intervals; and the outbox
        # table is gone under the sender.
        run.clock.now += 4 * INTERVAL
        with sqlite3.connect(tmp_path / "fa.db") as db:
            db.execute("DROP TABLE reminder_outbox")
        send_job(run.daemon_id)
        fired = run.fired(before, run.scrape())
        assert fired["FeedbackAgendasNoCycles"]
        assert all(fired.values()), [name for name, series in fired.items() if not series]
    finally:
        run.close()
