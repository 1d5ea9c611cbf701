"""Bench: the Microsoft provider on ``--mailboxes`` mailboxes against the local Graph (issue 15).

The fake identity platform and Graph (``tests/fakes/graph_api.py``) serve
HTTPS on loopback and record every meeting update Outlook would send to an
attendee. Each mailbox's owner manages a team of four; their calendar holds a
weekly 1:1 series with one report, a weekly stand-up series with the team,
a one-off 1:1 with another report, and a 1:1 another person organizes (an
attendee's copy, never written). Printed, for the closing note:

1. ``first``: the first cycle in ``write_mode: body``: writes, updates sent
   (goal: at most one per meeting or series and attendee), requests by kind;
2. ``quiet``: the next cycle in the same process (goal: one delta call per
   mailbox, no update);
3. ``cron``: ``feedback-agendas sync`` as a new process with the same
   config and database, run for real (goal: one delta call per mailbox, plus
   one token for the process; no update);
4. ``same day``: a goal changes; the agendas' visible text changes, but each
   meeting was written today already: no update (held);
5. ``next day``: the changed goal is written: one more update per meeting
   and attendee; then a quiet cycle that day sends none;
6. ``reminder``: the same mailboxes in ``write_mode: reminder`` for a week
   of daily cycles: no PATCH, no update.

    .venv/bin/python -m bench.microsoft [--mailboxes 1000] [--workers 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.daemon import Daemon
from feedback_agendas.scheduler.sync.report import CycleReport
from tests.fakes.graph_api import FakeGraph
from tests.support.graph import SECRET, calendar_entry, start_graph

ZONE = "Europe/Stockholm"
GOAL, NEW_GOAL = "Ship the v2 importer", "Cut the p95 import time in half"


def owner(i: int) -> str:
    return f"manager{i:05d}@example.com"


def reports(i: int) -> list[str]:
    return [f"report{i:05d}.{k}@example.com" for k in range(4)]


def seed(graph: FakeGraph, mailboxes: int, now: datetime) -> None:
    store = graph.store
    start = (now + timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
    for i in range(mailboxes):
        me, team = owner(i), reports(i)
        store.add_event(
            me,
            subject="1:1",
            start=start,
            end=start + timedelta(minutes=30),
            body="<div>Teams join: https://teams.microsoft.com/l/meetup-join/x</div>",
            attendees=[(me, "required"), (team[0], "required")],
            weekly=True,
        )
        standup = start + timedelta(hours=1)
        store.add_event(
            me,
            subject="Team standup",
            start=standup,
            end=standup + timedelta(minutes=15),
            attendees=[(me, "required")] + [(p, "required") for p in team],
            weekly=True,
        )
        one_off = start + timedelta(days=2, hours=3)
        store.add_event(
            me,
            subject="Catch-up",
            start=one_off,
            end=one_off + timedelta(minutes=30),
            attendees=[(me, "required"), (team[1], "required")],
        )
        theirs = start + timedelta(days=3)
        store.add_event(
            me,
            subject="Skip-level",
            start=theirs,
            end=theirs + timedelta(minutes=30),
            organizer=f"director{i:05d}@example.com",
            attendees=[(f"director{i:05d}@example.com", "required"), (me, "required")],
        )


def config(
    graph: FakeGraph, mailboxes: int, db: Path, goal: str, write_mode: str
) -> dict[str, Any]:
    return {
        "storage": {"url": f"sqlite:///{db}"},
        "calendars": [
            calendar_entry(
                graph, owner(i), client_secret="${MS_CLIENT_SECRET}", write_mode=write_mode
            )
            for i in range(mailboxes)
        ],
        "org": {
            "internal_domains": ["example.com"],
            "teams": [
                {
                    "name": f"team{i:05d}",
                    "manager": owner(i),
                    "members": reports(i),
                    "timezone": ZONE,
                    "goals": [goal],
                }
                for i in range(mailboxes)
            ],
        },
    }


def write_config(folder: Path, data: dict[str, Any], name: str = "config.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


class Phase:
    """Counts the fake's requests and updates over one phase, and prints them."""

    def __init__(self, graph: FakeGraph, name: str, mailboxes: int) -> None:
        self.graph, self.name, self.mailboxes = graph, name, mailboxes
        self.requests = Counter(graph.requests)
        self.updates = len(graph.updates())
        self.started = time.perf_counter()

    def done(self, extra: str = "") -> dict[str, Any]:
        requests = Counter(self.graph.requests) - self.requests
        updates = self.graph.updates()[self.updates :]
        per_attendee = Counter(updates)
        graph_calls = sum(v for k, v in requests.items() if k not in ("token", "discovery"))
        row = {
            "phase": self.name,
            "seconds": round(time.perf_counter() - self.started, 2),
            "requests": dict(sorted(requests.items())),
            "graph_requests_per_mailbox": round(graph_calls / self.mailboxes, 3),
            "updates": len(updates),
            "max_updates_per_meeting_and_attendee": max(per_attendee.values(), default=0),
            "note": extra,
        }
        print(
            f"{self.name:>9}: {row['seconds']:>7}s  updates {row['updates']:>6}"
            f" (max {row['max_updates_per_meeting_and_attendee']} per meeting and attendee)"
            f"  Graph requests/mailbox {row['graph_requests_per_mailbox']:>6}"
            f"  {row['requests']}  {extra}"
        )
        return row


def sync_all(daemon: Daemon, names: list[str], workers: int) -> list[CycleReport]:
    """One cycle of every calendar through the daemon (its leases, store and providers)."""
    with ThreadPoolExecutor(workers) as pool:
        done = [r for r in pool.map(daemon.sync_calendar, names) if r is not None]
    failed = [r for r in done if r.error is not None]
    if failed or len(done) != len(names):
        raise SystemExit(f"{len(failed)} failed, {len(names) - len(done)} did not run")
    return done


def cron_sync(config_path: Path) -> dict[str, Any]:
    """``feedback-agendas sync`` in a new process, for real; returns its JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "feedback_agendas", "sync", "--config", str(config_path), "--json"],
        env=dict(os.environ, MS_CLIENT_SECRET=SECRET),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"sync exited {done.returncode}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--skip-cron", action="store_true", help="no `sync` child process")
    args = parser.parse_args(argv)
    n = args.mailboxes
    names = [owner(i) for i in range(n)]
    os.environ["MS_CLIENT_SECRET"] = SECRET
    # The cron run uses the real clock: the in-process days start today.
    today = datetime.now(UTC).replace(hour=5, minute=0, second=0, microsecond=0)
    clock = {"now": today}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = folder / "fa.db"
        with start_graph() as graph:
            seed(graph, n, today)
            print(
                f"{n} mailboxes, {4 * n} meetings ({n} of them attendee copies),"
                f" {args.workers} workers, Graph over HTTPS on loopback, write_mode body"
            )
            path = write_config(folder, config(graph, n, db, GOAL, "body"))
            daemon = Daemon(load_config(path), clock=lambda: clock["now"])
            phase = Phase(graph, "first", n)
            first = sync_all(daemon, names, args.workers)
            rows.append(phase.done(f"writes {sum(r.writes for r in first)}"))
            phase = Phase(graph, "quiet", n)
            sync_all(daemon, names, args.workers)
            rows.append(phase.done("same process"))
            daemon.shutdown()
            daemon.store.close()
            if not args.skip_cron:
                phase = Phase(graph, "cron", n)
                out = cron_sync(path)
                rows.append(phase.done(f"a new process: {len(out['calendars'])} calendars"))
            # The admin changes the goal, the daemon starts again with it.
            path = write_config(folder, config(graph, n, db, NEW_GOAL, "body"))
            daemon = Daemon(load_config(path), clock=lambda: clock["now"])
            phase = Phase(graph, "same day", n)
            same = sync_all(daemon, names, args.workers)
            held = sum(Counter(r.outcomes.values())["held"] for r in same)
            rows.append(phase.done(f"goal changed: {held} writes held until tomorrow"))
            clock["now"] = today + timedelta(days=1)
            phase = Phase(graph, "next day", n)
            nxt = sync_all(daemon, names, args.workers)
            rows.append(phase.done(f"writes {sum(r.writes for r in nxt)}"))
            phase = Phase(graph, "quiet 2", n)
            sync_all(daemon, names, args.workers)
            rows.append(phase.done("the next cycle that day"))
            daemon.shutdown()
            daemon.store.close()
        # Reminder mode: the same mailboxes on a fresh Graph and database, a week of days.
        with start_graph() as graph:
            clock["now"] = today
            seed(graph, n, today)
            path = write_config(
                folder, config(graph, n, folder / "reminder.db", GOAL, "reminder"), "reminder.yaml"
            )
            daemon = Daemon(load_config(path), clock=lambda: clock["now"])
            phase = Phase(graph, "reminder", n)
            for day in range(7):
                clock["now"] = today + timedelta(days=day)
                sync_all(daemon, names, args.workers)
            rows.append(phase.done("write_mode reminder, 7 daily cycles"))
            daemon.shutdown()
            daemon.store.close()
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
