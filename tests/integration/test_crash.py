"""``kill -9`` the real daemon at random points of its cycles and sends (bench/crash.py).

The CI-sized run kills it 50 times (``FA_CRASH_KILLS`` to change); the bench
run is ``.venv/bin/python -m bench.crash --kills 500``. Run with ``-s`` for
the figures. The kill test is marked ``slow``: ``make test`` runs it,
``make test-fast`` does not.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from bench.crash import run_crash
from feedback_agendas.integrations.notify.base import channel_id
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.reminders.outbox import NewReminder
from feedback_agendas.scheduler.service.daemon import CALENDAR_LEASE, Daemon
from tests.support.receivers import WebhookReceiver

KILLS = int(os.environ.get("FA_CRASH_KILLS", "50"))


@pytest.mark.slow  # `make test-fast` leaves it out
def test_kill_9_loses_no_edit_duplicates_no_block_and_resends_only_inside_the_window(
    tmp_path: Path,
) -> None:
    with WebhookReceiver() as receiver, open(tmp_path / "daemon.log", "w") as log_file:
        figures = run_crash(tmp_path / "run", receiver, kills=KILLS, seed=KILLS, log_file=log_file)
    print("\n" + figures.report())
    assert figures.kills >= KILLS
    assert figures.duplicate_blocks == 0  # I1
    assert figures.lost_outside_edits == 0  # I3, outside the block
    assert figures.overwritten_inside_edits == 0  # I3, an edited block is the user's
    assert figures.missing_blocks == 0  # and it still converged
    assert figures.undelivered == 0
    assert figures.unexplained_duplicates == 0  # I9: only the send-then-record window
    assert figures.duplicates <= figures.window_rows
    assert figures.shutdown_code == 0
    log = (tmp_path / "daemon.log").read_text()
    assert "Traceback" not in log


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_restarted_daemon_takes_back_the_leases_of_its_dead_predecessor_at_once(
    tmp_path: Path,
) -> None:
    config = {
        "storage": {"url": f"sqlite:///{tmp_path / 'fa.db'}"},
        "calendars": [
            {"name": n, "provider": "memory", "owner": "m@example.com"} for n in ("a", "b")
        ],
        "org": {
            "internal_domains": ["example.com"],
            "teams": [
                {"name": "t", "manager": "m@example.com", "notify": ["json://127.0.0.1:9/x"]}
            ],
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    daemon = Daemon(load_config(tmp_path / "config.yaml"))
    try:
        now = datetime.now(UTC)
        host = socket.gethostname()
        dead = f"{host}-{_dead_pid()}-abcdef"
        alive = f"{host}-{os.getppid()}-abcdef"  # our parent is still running
        ttl = timedelta(seconds=60)
        assert daemon.leases.claim([CALENDAR_LEASE + "a"], dead, ttl, now, 1)
        assert daemon.leases.claim([CALENDAR_LEASE + "b"], alive, ttl, now, 1)
        daemon.outbox.enqueue(
            [
                NewReminder(
                    kind="celebration",
                    occurrence=f"t:{i}",
                    recipient="team:t",
                    channel=channel_id("json://127.0.0.1:9/x"),
                    due_at=now,
                    expires_at=now + timedelta(hours=1),
                    team="t",
                )
                for i in range(4)
            ],
            now,
        )
        [first, second, *_] = daemon.outbox.claim(dead, now, limit=2)
        daemon.outbox.begin_send(first, dead, now)  # killed while sending this one
        assert len(daemon.outbox.claim(alive, now, limit=2)) == 2

        assert daemon.reclaim_dead_local_leases() == 3  # a calendar and two outbox rows

        holders = daemon.leases.holders(CALENDAR_LEASE)
        assert holders == {CALENDAR_LEASE + "a": None, CALENDAR_LEASE + "b": alive}
        assert daemon.sync_calendar("a") is not None  # no wait for the lease to expire
        assert daemon.sync_calendar("b") is None
        resent = daemon.outbox.claim(daemon.replica_id, now, limit=10)
        assert sorted(item.id for item in resent) == sorted([first.id, second.id])
        assert [item.maybe_sent for item in resent if item.id == first.id] == [True]
    finally:
        daemon.shutdown()
        daemon.store.close()
