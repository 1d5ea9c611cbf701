"""Reloading the config in a running daemon (issue 12 item 4).

- The real daemon as a subprocess (``feedback-agendas run``) on a vdir folder
  of .ics files and SQLite: an edited goal and opt-out count from the next
  cycle; an invalid edit is rejected with FILE:LINE: key and the old config
  keeps running; SIGHUP reloads; ``/metrics``, the dashboard and the opt-out
  page follow.
- In process (memory calendars, real SQLite, the real leases and ticker): a
  removed calendar loses its job, its provider and its lease (after the
  cycle in flight), and keeps its records; an added one gets a job; settings
  that need a restart keep their running values.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from feedback_agendas.agendas.block import START_MARKER
from feedback_agendas.agendas.model import Attendee, ChangeSet, EventRef, Meeting
from feedback_agendas.integrations.calendars.memory import MemoryProvider
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.daemon import CALENDAR_LEASE, Daemon
from feedback_agendas.scheduler.service.loop import build_ticker
from feedback_agendas.scheduler.service.web.security import Signer
from feedback_agendas.scheduler.service.web.self_service import LINK_TTL, PURPOSE
from tests.support.clock import Clock
from tests.support.http import get
from tests.support.receivers import free_port

ROOT = Path(__file__).resolve().parents[2]
MONA, SARA, ERIK = "mona@example.com", "sara@example.com", "erik@example.com"
NILS = "nils@example.com"
SECRET = "s3cret-for-the-reload-test-0123456789"
T0 = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


# -- the real daemon, as a subprocess ---------------------------------------------------


def ics(uid: str, title: str, start: datetime, people: list[str]) -> bytes:
    def stamp(moment: datetime) -> str:
        return moment.strftime("%Y%m%dT%H%M%SZ")

    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//test//EN",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        "DTSTAMP:20261101T000000Z",
        f"DTSTART:{stamp(start)}",
        f"DTEND:{stamp(start + timedelta(minutes=30))}",
        f"SUMMARY:{title}",
        "DESCRIPTION:Our own notes.",
        f"ORGANIZER:mailto:{MONA}",
        *(f"ATTENDEE:mailto:{person}" for person in people),
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
    return "\r\n".join(lines).encode()


def unfolded(path: Path) -> str:
    return path.read_bytes().decode().replace("\r\n ", "").replace("\\n", "\n")


def wait_for(what: str, check: Callable[[], Any], seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)  # polling a running daemon's files and endpoints


def daemon_config(tmp: Path, port: int, goal: str, opted_out: list[str]) -> dict[str, Any]:
    return {
        "storage": {"url": f"sqlite:///{tmp / 'fa.db'}"},
        "calendars": [
            {"name": "mona", "provider": "vdir", "path": str(tmp / "cal"), "owner": MONA}
        ],
        "org": {
            "internal_domains": ["example.com"],
            "teams": [
                {"name": "analys", "manager": MONA, "members": [SARA, ERIK], "goals": [goal]}
            ],
        },
        "opt_out": {"users": opted_out},
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "public_url": f"http://127.0.0.1:{port}",
            "secret": SECRET,
        },
        "sync": {"interval_seconds": 1, "jitter": 0},
        "reminders": {"weekly_digest": None},
    }


def write_config(path: Path, data: dict[str, Any]) -> None:
    """Write as editors and config management do: a new file renamed over the old one.

    (The reloader never sees half a file then; writes in place are in tests/unit/test_reload.py.)
    """
    new = path.with_name(path.name + ".new")
    new.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    os.replace(new, path)


def metric(url: str, name: str, **labels: str) -> float | None:
    """One sample of ``/metrics`` (labels in any order), or None."""
    status, text = get(url + "/metrics")
    assert status == 200
    for line in text.splitlines():
        found = re.match(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$", line)
        if not found or found[1] != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', found[2] or ""))
        if have == labels:
            return float(found[3])
    return None


@pytest.fixture
def running(tmp_path: Path) -> Iterator[dict[str, Any]]:
    cal = tmp_path / "cal"
    cal.mkdir()
    soon = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=1)
    (cal / "standup.ics").write_bytes(ics("standup", "Team standup", soon, [MONA, SARA, ERIK]))
    (cal / "sara.ics").write_bytes(
        ics("sara", "Mona / Sara", soon + timedelta(days=1), [MONA, SARA])
    )
    port = free_port()
    path = tmp_path / "config.yaml"
    write_config(path, daemon_config(tmp_path, port, "Ship the beta", []))
    log_path = tmp_path / "daemon.log"
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "feedback_agendas", "-v", "run", "--config", str(path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("endpoints on http://127.0.0.1:"), log_path.read_text()
            yield {
                "process": process,
                "url": line.split()[2],
                "config": path,
                "port": port,
                "cal": cal,
                "log": log_path,
                "soon": soon,
            }
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
            process.communicate()


def test_the_running_daemon_follows_an_edit_rejects_a_broken_one_and_reloads_on_sighup(
    running: dict[str, Any], tmp_path: Path
) -> None:
    process, url, path, port = (
        running["process"],
        running["url"],
        running["config"],
        running["port"],
    )
    standup, one_on_one = running["cal"] / "standup.ics", running["cal"] / "sara.ics"
    log_path: Path = running["log"]

    wait_for("the first cycle's agendas", lambda: START_MARKER in unfolded(one_on_one))
    wait_for("the goal in the team agenda", lambda: "Ship the beta" in unfolded(standup))
    assert metric(url, "feedback_agendas_config_generation") == 1

    # The edit: a new goal, and Sara opts out. The next cycle follows both.
    write_config(path, daemon_config(tmp_path, port, "Celebrate the launch", [SARA]))
    wait_for("the new goal", lambda: "Celebrate the launch" in unfolded(standup))
    assert "Ship the beta" not in unfolded(standup)
    wait_for("Sara's 1:1 without our block", lambda: START_MARKER not in unfolded(one_on_one))
    assert "Our own notes." in unfolded(one_on_one)
    assert metric(url, "feedback_agendas_config_generation") == 2
    assert metric(url, "feedback_agendas_config_reloads_total", result="applied") == 1
    # The dashboard and Sara's opt-out page see the new config.
    status, overview = get(url + "/admin/")
    assert status == 200 and "Generation 2" in overview
    token = Signer(SECRET).sign(PURPOSE, SARA, now=datetime.now(UTC), ttl=LINK_TTL)
    status, page = get(f"{url}/opt-out?t={token}")
    assert status == 200 and "Your admin has opted you out" in page

    # A broken edit: rejected at its line and key; the daemon runs on with generation 2.
    broken = daemon_config(tmp_path, port, "Broken goal", [])
    broken["org"]["teams"][0]["colour"] = "blue"
    write_config(path, broken)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "colour:" in text)
    place = f"config.yaml:{line}: org.teams[0].colour"
    wait_for(
        "the rejection in /metrics",
        lambda: metric(url, "feedback_agendas_config_last_reload_error", error=place) == 1,
    )
    assert metric(url, "feedback_agendas_config_reloads_total", result="rejected") == 1
    assert metric(url, "feedback_agendas_config_generation") == 2
    assert f"{path}:{line}: org.teams[0].colour: unknown key" in log_path.read_text()
    assert process.poll() is None
    # The old config keeps applying: a new team meeting gets the generation-2 goal.
    later = running["soon"] + timedelta(days=3)
    (running["cal"] / "retro.ics").write_bytes(
        ics("retro", "Team retro", later, [MONA, SARA, ERIK])
    )
    retro = running["cal"] / "retro.ics"
    wait_for("the new meeting's agenda", lambda: START_MARKER in unfolded(retro))
    assert "Celebrate the launch" in unfolded(retro) and "Broken goal" not in unfolded(retro)
    assert START_MARKER not in unfolded(one_on_one)  # Sara's opt-out still holds

    # Fixed: applied (the error cleared). Then SIGHUP alone reloads the same file.
    write_config(path, daemon_config(tmp_path, port, "Celebrate the launch", [SARA]))
    wait_for("generation 3", lambda: metric(url, "feedback_agendas_config_generation") == 3)
    assert metric(url, "feedback_agendas_config_last_reload_error", error="") == 0
    assert metric(url, "feedback_agendas_config_last_reload_error", error=place) is None
    time.sleep(2.5)  # a file watch tick: nothing changed, nothing reloaded
    assert metric(url, "feedback_agendas_config_generation") == 3
    process.send_signal(signal.SIGHUP)
    wait_for("generation 4", lambda: metric(url, "feedback_agendas_config_generation") == 4)
    assert process.poll() is None

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    log = log_path.read_text()
    assert "config reloaded from" in log and "generation 4" in log
    assert "Traceback" not in log
    assert SECRET not in log


# -- in process: calendars removed and added, settings that need a restart ---------------


class TrackedCalendar(MemoryProvider):
    """A memory calendar that can hold its next read at a gate, and knows when it was closed."""

    def __init__(self, name: str, owner: str) -> None:
        super().__init__(name, owner)
        self.closed = False
        self.reads = 0
        self.hold = False
        self.entered = threading.Event()
        self.gate = threading.Event()

    def read_changes(self, cursor: str | None) -> ChangeSet:
        self.reads += 1
        if self.hold:
            self.entered.set()
            assert self.gate.wait(10), "the test never opened the gate"
        return super().read_changes(cursor)

    def close(self) -> None:
        self.closed = True
        super().close()


def two_calendars(tmp: Path, names: tuple[str, ...] = ("mona", "nils"), **extra: Any) -> Path:
    data = {
        "storage": {"url": f"sqlite:///{tmp / 'fa.db'}"},
        "calendars": [
            {"name": name, "provider": "memory", "owner": f"{name}@example.com"} for name in names
        ],
        "org": {
            "internal_domains": ["example.com"],
            "teams": [
                {"name": "analys", "manager": MONA, "members": [SARA]},
                {"name": "drift", "manager": NILS, "members": [ERIK]},
            ],
        },
        **extra,
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
def calendars() -> dict[str, TrackedCalendar]:
    return {}


@pytest.fixture
def daemon(tmp_path: Path, calendars: dict[str, TrackedCalendar]) -> Iterator[Daemon]:
    def provider(entry: Any) -> TrackedCalendar:
        if entry.name not in calendars:
            calendars[entry.name] = TrackedCalendar(entry.name, entry.owner)
        return calendars[entry.name]

    built = Daemon(load_config(two_calendars(tmp_path)), clock=Clock(T0), provider_factory=provider)
    yield built
    for calendar in calendars.values():
        calendar.gate.set()
    built.shutdown()
    built.store.close()


def test_a_removed_calendar_stops_ticking_and_is_let_go_after_its_cycle_in_flight(
    daemon: Daemon, calendars: dict[str, TrackedCalendar], tmp_path: Path
) -> None:
    scheduler, _jobs = build_ticker(daemon, 60.0, 0.0)  # never started: its jobs are looked at
    assert scheduler.get_job("sync:nils") is not None
    daemon.sync_calendar("nils")  # builds nils' provider
    nils = calendars["nils"]
    nils.put(
        Meeting(
            ref=EventRef("nils", "n1"),
            title="Nils / Erik",
            description="",
            start=T0 + timedelta(days=1),
            end=T0 + timedelta(days=1, minutes=30),
            owner=NILS,
            etag="",
            organizer=NILS,
            attendees=(Attendee(NILS), Attendee(ERIK)),
            timezone="UTC",
        )
    )
    ref = EventRef("nils", "n1")
    assert daemon.sync_calendar("nils") is not None
    assert START_MARKER in nils.get(ref).description  # type: ignore[union-attr]
    assert ref in daemon.store.records("nils")

    # A cycle of nils is reading when the config without nils is applied.
    nils.hold = True
    cycle = threading.Thread(target=daemon.sync_calendar, args=("nils",))
    cycle.start()
    assert nils.entered.wait(10)
    lease = CALENDAR_LEASE + "nils"
    assert daemon.use_config(load_config(two_calendars(tmp_path, ("mona",)))) == ()
    assert scheduler.get_job("sync:nils") is None
    assert scheduler.get_job("sync:mona") is not None
    assert "nils" not in daemon.calendars
    # The cycle in flight is not cut off: it keeps its provider and its lease until it ends.
    assert not nils.closed
    assert daemon.leases.holders([lease]) == {lease: daemon.replica_id}

    nils.gate.set()
    cycle.join(10)
    assert not cycle.is_alive()
    assert nils.closed
    assert daemon.leases.holders([lease]) == {lease: None}
    reads = nils.reads
    assert daemon.sync_calendar("nils") is None  # a late tick or push does nothing
    assert nils.reads == reads
    assert ref in daemon.store.records("nils")  # its records stay (revert can still use them)
    assert daemon.sync_calendar("mona") is not None


def test_a_removed_idle_calendar_is_let_go_at_once_and_an_added_one_gets_a_job(
    daemon: Daemon, calendars: dict[str, TrackedCalendar], tmp_path: Path
) -> None:
    scheduler, _jobs = build_ticker(daemon, 60.0, 0.0)
    daemon.sync_calendar("nils")
    daemon.housekeeping()
    metrics = daemon.metrics.registry
    gauge = "feedback_agendas_calendar_consecutive_failures"
    assert metrics.get_sample_value(gauge, {"calendar": "nils"}) == 0
    daemon.use_config(load_config(two_calendars(tmp_path, ("mona", "olle"))))
    assert calendars["nils"].closed
    assert scheduler.get_job("sync:nils") is None
    assert metrics.get_sample_value(gauge, {"calendar": "nils"}) is None
    assert scheduler.get_job("sync:olle") is not None
    assert daemon.sync_calendar("olle") is not None


def test_settings_that_need_a_restart_keep_running_and_the_rest_applies(
    daemon: Daemon, tmp_path: Path
) -> None:
    old_url, old_port = daemon.cfg.storage.url, daemon.cfg.server.port
    path = two_calendars(
        tmp_path,
        storage={"url": f"sqlite:///{tmp_path / 'other.db'}"},
        server={"port": 9191},
        opt_out={"users": [SARA]},
        reminders={"before_team_meeting_minutes": 15},
    )
    assert daemon.use_config(load_config(path)) == ("storage.url", "server.port")
    assert (daemon.cfg.storage.url, daemon.cfg.server.port) == (old_url, old_port)
    assert SARA in daemon.rules.opt_out.users
    assert daemon.settings.before_team_minutes == 15
    assert daemon.sender.settings is daemon.settings
    assert daemon.readbacks.settings is daemon.settings


def test_a_new_sync_interval_retimes_every_calendars_job(daemon: Daemon) -> None:
    scheduler, jobs = build_ticker(daemon, 60.0, 0.0)
    scheduler.start(paused=True)  # as in the service, where a reload comes after the start
    try:
        jobs.retime(5.0, 0.0)
        for name in ("mona", "nils"):
            assert scheduler.get_job(f"sync:{name}").trigger.interval == timedelta(seconds=5)
        assert len([job for job in scheduler.get_jobs() if job.id.startswith("sync:")]) == 2
        assert scheduler.get_job("send").trigger.interval == timedelta(seconds=15)
    finally:
        scheduler.shutdown(wait=False)
