"""Three replicas on one PostgreSQL database, one of them killed with SIGKILL mid-way.

Real parts: three separate daemon processes (``python -m
tests.integration.test_replicas worker ...``), the real PostgreSQL (a private
schema via :mod:`tests.integration.pg`), 500 vdir calendars in a tmp folder,
and apprise delivering 2,000 due reminders to a JSON webhook receiver on
loopback.

What it proves (issue 4):

- every reminder is delivered;
- no calendar is processed by two replicas at once: each worker's providers
  append ``start``/``end`` lines around every call (monotonic clock, shared by
  all processes of this machine) to its own file, and the intervals of one
  calendar never overlap; a killed replica's open interval ends at the kill;
- no idempotency key is delivered twice, except a key whose row was being
  sent when its replica died (``attempts >= 2``: the send-then-record
  window); those are counted and printed.

Run it alone with ``-s`` to see the figures:
``.venv/bin/pytest -s tests/integration/test_replicas.py``.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from feedback_agendas.agendas.model import Attendee, EventRef, Meeting
from feedback_agendas.integrations.calendars.base import CalendarProvider
from feedback_agendas.integrations.calendars.ics import calendar_from_meetings, serialise
from feedback_agendas.integrations.notify.base import channel_id
from feedback_agendas.scheduler.reminders.outbox import SENT, NewReminder, Outbox, outbox_table
from feedback_agendas.scheduler.reminders.planning import BEFORE_TEAM
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.storage.tables import calendar_cursors
from tests.integration.pg import postgres_schema
from tests.support.receivers import WebhookReceiver

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # `make test-fast` leaves it out

REPO = Path(__file__).resolve().parents[2]
CALENDARS = 500
TEAMS = 20
REMINDERS_PER_TEAM = 100  # 2,000 in all
REPLICAS = 3
LEASE_SECONDS = 3.0
KILL_AFTER_DELIVERIES = 600
DEADLINE_SECONDS = 170.0  # generous: a loaded 2-core CI box; about 40 s when idle


# -- the world -------------------------------------------------------------------


def team_path(team: int) -> str:
    return f"/team-{team}"


def write_world(tmp: Path, storage_url: str, hook: WebhookReceiver) -> Path:
    """500 vdir calendars (a team meeting and a 1:1 each) and the config naming them."""
    start = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    start += timedelta(days=3)
    calendars = []
    for i in range(CALENDARS):
        team = i % TEAMS
        manager, member, other = (f"{p}{team}@example.com" for p in ("m", "a", "b"))
        folder = tmp / "calendars" / f"cal{i}"
        folder.mkdir(parents=True)
        when = start + timedelta(hours=i % 8)
        for event_id, title, people in (
            (f"standup-{i}", "Team standup", [manager, member, other]),
            (f"one-{i}", "1:1", [manager, member]),
        ):
            meeting = Meeting(
                ref=EventRef(f"cal{i}", event_id),
                title=title,
                description="Notes from last time.",
                start=when,
                end=when + timedelta(minutes=30),
                owner=manager,
                etag="",
                organizer=manager,
                attendees=tuple(Attendee(p) for p in people),
                timezone="UTC",
            )
            data = serialise(calendar_from_meetings([meeting]))
            (folder / f"{event_id}.ics").write_bytes(data)
            when += timedelta(hours=1)
        calendars.append(
            {"name": f"cal{i}", "provider": "vdir", "path": str(folder), "owner": manager}
        )
    config = {
        "storage": {"url": storage_url},
        "calendars": calendars,
        "org": {
            "internal_domains": ["example.com"],
            "teams": [
                {
                    "name": f"t{t}",
                    "manager": f"m{t}@example.com",
                    "members": [f"a{t}@example.com", f"b{t}@example.com"],
                    "notify": [hook.url(team_path(t))],
                }
                for t in range(TEAMS)
            ],
        },
        "reminders": {"weekly_digest": None},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def seed_reminders(
    store: Store, hook: WebhookReceiver, now: datetime
) -> dict[tuple[str, str], str]:
    """2,000 before-meeting reminders due now; returns (path, title) -> occurrence.

    Each team's meetings start on distinct minutes, so the title a receiver gets
    ("Team meeting at HH:MM ...") names exactly one key.
    """
    rows, titles = [], {}
    for team in range(TEAMS):
        for k in range(REMINDERS_PER_TEAM):
            start = (now + timedelta(minutes=10 + k)).replace(second=0, microsecond=0)
            occurrence = f"seed/t{team}/{k}"
            rows.append(
                NewReminder(
                    kind=BEFORE_TEAM,
                    occurrence=occurrence,
                    recipient=f"team:t{team}",
                    channel=channel_id(hook.url(team_path(team))),
                    due_at=now - timedelta(minutes=1),
                    expires_at=start,
                    team=f"t{team}",
                    params={
                        "locale": "en",
                        "start": start.isoformat(),
                        "focus": "praise",
                        "tip": k % 5,
                        "positive_only": False,
                    },
                )
            )
            title = f"Team meeting at {start:%H:%M}: prepare one concrete praise"
            titles[(team_path(team), title)] = occurrence
    assert Outbox(store.engine).enqueue(rows, now) == TEAMS * REMINDERS_PER_TEAM
    return titles


# -- the worker process ------------------------------------------------------------


class RecordingFactory:
    """Builds the real provider and records when each of its calls starts and ends.

    The daemon keeps one provider per calendar for the life of the process and
    calls it only while it holds the calendar's lease, so every recorded
    interval (a read of changes, a read of one event, a write) lies inside a lease.
    """

    def __init__(self, record_path: Path, replica: str) -> None:
        from feedback_agendas.scheduler.sync.providers import build_provider

        self._build = build_provider
        self._replica = replica
        self._fd = os.open(record_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def _note(self, what: str, calendar: str) -> None:
        # One unbuffered write per line: a SIGKILL loses nothing already noted.
        os.write(self._fd, f"{what} {self._replica} {calendar} {time.monotonic_ns()}\n".encode())

    def __call__(self, calendar_cfg: Any) -> CalendarProvider:
        provider = self._build(calendar_cfg)
        for method in ("read_changes", "get", "write"):
            setattr(provider, method, self._recorded(getattr(provider, method), calendar_cfg.name))
        return provider

    def _recorded(self, call: Any, calendar: str) -> Any:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            self._note("S", calendar)
            try:
                return call(*args, **kwargs)
            finally:
                self._note("E", calendar)

        return recorded


def worker(config_path: Path, replica: str, record_path: Path, stop_path: Path) -> None:
    """One replica: cycle through every calendar and send what is due, until told to stop."""
    from feedback_agendas.scheduler.config.source import load_config
    from feedback_agendas.scheduler.service.daemon import Daemon

    cfg = load_config(config_path)
    daemon = Daemon(
        cfg,
        replica_id=replica,
        lease_ttl=timedelta(seconds=LEASE_SECONDS),
        provider_factory=RecordingFactory(record_path, replica),
    )
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(LEASE_SECONDS / 6):
            daemon.housekeeping()

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    names = sorted(daemon.calendars)
    random.Random(replica).shuffle(names)
    print(f"{replica} ready", flush=True)
    while not stop_path.exists():
        for index, name in enumerate(names):
            if index % 10 == 0 and stop_path.exists():
                break
            daemon.sync_calendar(name)
            if index % 50 == 49:
                daemon.send_due(limit=20)
        daemon.send_due(limit=20)
    stop.set()
    beat.join()
    daemon.shutdown()
    daemon.store.close()


# -- the test --------------------------------------------------------------------------


def start_worker(config: Path, replica: str, tmp: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.test_replicas",
            "worker",
            str(config),
            replica,
            str(tmp / f"cycles-{replica}.log"),
            str(tmp / "stop"),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )


def read_intervals(tmp: Path, killed: dict[str, int]) -> dict[str, list[tuple[int, int, str]]]:
    """calendar -> [(start, end, replica)]; an open interval ends when its replica died."""
    by_calendar: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for log_file in tmp.glob("cycles-*.log"):
        open_: dict[str, int] = {}
        for line in log_file.read_text().splitlines():
            what, replica, calendar, stamp = line.split()
            if what == "S":
                assert calendar not in open_, f"{replica} started {calendar} twice"
                open_[calendar] = int(stamp)
            else:
                by_calendar[calendar].append((open_.pop(calendar), int(stamp), replica))
        for calendar, started in open_.items():
            assert replica in killed, f"{replica} left {calendar} open without being killed"
            by_calendar[calendar].append((started, killed[replica], replica))
    return by_calendar


def overlaps(intervals: dict[str, list[tuple[int, int, str]]]) -> list[str]:
    found = []
    for calendar, spans in intervals.items():
        spans.sort()
        for (_s1, e1, r1), (s2, _e2, r2) in itertools.pairwise(spans):
            if s2 < e1:
                found.append(f"{calendar}: {r1} until {e1}, {r2} from {s2}")
    return found


def without_commit_flush(url: str) -> str:
    """The URL with ``synchronous_commit=off``: commits do not wait for the disk flush.

    Durability across a *server* crash is not what this test is about, and
    the flush would dominate its run time; locking and visibility are unchanged.
    """
    parsed = make_url(url)
    options = f"{parsed.query.get('options', '')} -csynchronous_commit=off".strip()
    return parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)


def test_three_replicas_one_killed_deliver_everything_once_and_never_share_a_calendar(
    tmp_path: Path,
) -> None:
    with postgres_schema() as schema_url, WebhookReceiver() as hook:
        url = without_commit_flush(schema_url)
        config = write_world(tmp_path, url, hook)
        store = Store.open(url)
        try:
            titles = seed_reminders(store, hook, datetime.now(UTC))
            began = time.monotonic()
            workers = {
                f"replica-{n}": start_worker(config, f"replica-{n}", tmp_path)
                for n in range(REPLICAS)
            }
            killed: dict[str, int] = {}
            victim = "replica-0"
            try:
                for process in workers.values():
                    assert process.stdout is not None
                    assert process.stdout.readline().endswith("ready\n")
                while len(hook.posts) < KILL_AFTER_DELIVERIES:
                    assert time.monotonic() - began < DEADLINE_SECONDS, "too slow before the kill"
                    time.sleep(0.01)
                workers[victim].send_signal(signal.SIGKILL)
                workers[victim].wait()
                killed[victim] = time.monotonic_ns()
                killed_at = time.monotonic() - began
                with store.engine.connect() as conn:
                    orphaned = conn.scalar(
                        select(func.count()).where(outbox_table.c.lease_owner == victim)
                    )
                while True:
                    with store.engine.connect() as conn:
                        sent = conn.scalar(select(func.count()).where(outbox_table.c.state == SENT))
                        synced = conn.scalar(select(func.count()).select_from(calendar_cursors))
                    if sent == len(titles) and synced == CALENDARS:
                        break
                    assert time.monotonic() - began < DEADLINE_SECONDS, (
                        f"not done: {sent} sent, {synced} calendars synced"
                    )
                    time.sleep(0.1)
                done_at = time.monotonic() - began
            finally:
                (tmp_path / "stop").touch()
                for name, process in workers.items():
                    try:
                        if name not in killed:
                            assert process.wait(timeout=30) == 0, f"{name} failed"
                    finally:
                        process.kill()
                        process.wait()
                        assert process.stdout is not None
                        process.stdout.close()
            with store.engine.connect() as conn:
                attempts = dict(
                    conn.execute(select(outbox_table.c.occurrence, outbox_table.c.attempts)).all()
                )
        finally:
            store.close()

        # Every reminder delivered; a second delivery only from the send-then-record window.
        received = Counter((path, payload.get("title", "")) for path, payload in hook.posts)
        assert set(received) == set(titles), "a delivery without a row, or a row never delivered"
        duplicates = {titles[key]: n - 1 for key, n in received.items() if n > 1}
        in_window = sorted(o for o, a in attempts.items() if a > 1)
        assert set(duplicates) <= set(in_window)
        assert sum(duplicates.values()) <= 1  # one replica died, sending one message at a time

        intervals = read_intervals(tmp_path, killed)
        assert len(intervals) == CALENDARS
        assert overlaps(intervals) == []
        cycles = Counter(r for spans in intervals.values() for _s, _e, r in spans)
        print(
            f"\nreplicas: {REPLICAS} on PostgreSQL, {CALENDARS} calendars, {len(titles)} reminders;"
            f" {victim} SIGKILLed at {killed_at:.1f}s after {KILL_AFTER_DELIVERIES}+ deliveries,"
            f" holding {orphaned} outbox leases (lease {LEASE_SECONDS:g}s)\n"
            f"  all delivered and all calendars synced after {done_at:.1f}s;"
            f" deliveries {sum(received.values())}, duplicates {sum(duplicates.values())},"
            f" rows in the send-then-record window {len(in_window)}\n"
            f"  cycles per replica {dict(sorted(cycles.items()))},"
            f" overlapping cycles 0 over {sum(cycles.values())} cycles"
        )


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    _config, _replica, _record, _stop = sys.argv[2:6]
    worker(Path(_config), _replica, Path(_record), Path(_stop))
