"""Bench: calendars from Entra ID (``discover: microsoft_directory``) for a whole tenant.

The local identity platform and Graph over HTTPS (``tests/fakes/graph_api.py``
with ``tests/fakes/graph_directory.py``) serve ``--users`` enabled users with
a manager (plus 1% disabled); msal and requests list them through the
GraphSession. Printed:

1. ``first``: the first refresh: people found, ``/users`` pages (goal:
   ceil(users / 999)), manager ``$batch`` requests (goal: ceil(people / 20)),
   seconds;
2. ``calendars``: the stored list as calendar entries (seconds);
3. ``cron``: a new process within the day uses the stored list: 0 requests;
4. ``next day``: 30% gone is refused, nothing dropped.

    .venv/bin/python -m bench.microsoft_discovery [--users 5000]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from feedback_agendas.scheduler.config.schema import config_model
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.sync.discovery import (
    DiscoveredLists,
    discovered_calendars,
    refresh_sources,
    resolve_calendars,
)
from tests.fakes.graph_directory import GraphDirectory
from tests.support.graph import app_keys, start_graph

DOMAIN = "example.com"
NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


def run(users: int) -> dict[str, object]:
    results: dict[str, object] = {"users": users}
    graph = start_graph()
    directory = GraphDirectory(graph)
    try:
        directory.add_user(f"boss@{DOMAIN}")
        people = [f"u{i:06d}@{DOMAIN}" for i in range(users)]
        for address in people:
            directory.add_user(address, manager=f"boss@{DOMAIN}")
        for i in range(users // 100):
            directory.add_user(f"off{i:06d}@{DOMAIN}", enabled=False)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = config_model().model_validate(
                {
                    "storage": {"url": f"sqlite:///{Path(tmp) / 'fa.db'}"},
                    "calendars": [{"discover": "microsoft_directory", **app_keys(graph)}],
                    "org": {"internal_domains": [DOMAIN]},
                }
            )
            store = Store.open(cfg.storage.url)
            started = time.perf_counter()
            [first] = refresh_sources(cfg, store, NOW)
            total = users + 1 + users // 100
            results["first"] = {
                "found": len(first.people),
                "teams_from_managers": len(set(first.managers.values())),
                "user_pages": graph.requests["users"],
                "goal_pages": math.ceil(total / 999),
                "manager_batches": graph.requests["batch"],
                "goal_batches": math.ceil(len(first.people) / 20),
                "seconds": round(time.perf_counter() - started, 3),
            }
            started = time.perf_counter()
            stored = DiscoveredLists(store).load()
            calendars = discovered_calendars(cfg, {k: r.addresses for k, r in stored.items()})
            results["calendars"] = {
                "entries": len(calendars),
                "seconds": round(time.perf_counter() - started, 3),
            }
            store.close()

            before = sum(graph.requests.values())
            store = Store.open(cfg.storage.url)
            resolved = resolve_calendars(cfg, store, NOW + timedelta(hours=1))
            results["cron"] = {
                "calendars": len(resolved.calendars),
                "requests": sum(graph.requests.values()) - before,
            }
            for address in people[: users * 3 // 10]:
                directory.remove(address)
            [refused] = refresh_sources(cfg, store, NOW + timedelta(days=1, minutes=1))
            results["next_day_30pct_gone"] = {
                "state": refused.state,
                "would_remove": len(refused.pending_removed),
                "still_synced": len(refused.people),
            }
            store.close()
    finally:
        graph.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.users), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
