"""Bench: calendars from the directory (``discover: google_directory``) for a whole domain.

The local Admin SDK Directory (``tests/fakes/google_api.py``) serves
``--users`` active users (plus 1% suspended) over real HTTP, with
``--latency`` added to every request; the real google-api-python-client
lists them. Printed, for the closing note:

1. ``first``: the first refresh (users found, ``users.list`` requests, seconds);
   goal: at most ceil(users / 500) requests;
2. ``calendars``: turning the stored list into calendar entries (seconds);
3. ``cron``: a new process within the day (a ``sync`` from cron): the stored
   list is used, 0 requests;
4. ``next day``: the daily refresh with 1% gone (applied) and with 30% gone
   (refused, nothing dropped).

    .venv/bin/python -m bench.discovery [--users 5000] [--latency 0]
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

from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.sync.discovery import (
    DiscoveredLists,
    discovered_calendars,
    refresh_sources,
    resolve_calendars,
)
from tests.fakes.google_api import FakeGoogleCalendarAPI

DOMAIN = "example.com"
NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


def _config(db: Path, endpoint: str) -> AppConfig:
    return AppConfig.model_validate(
        {
            "storage": {"url": f"sqlite:///{db}"},
            "calendars": [
                {
                    "discover": "google_directory",
                    "credentials": "anonymous",
                    "subject": f"admin@{DOMAIN}",
                    "domain": DOMAIN,
                    "api_endpoint": endpoint,
                }
            ],
            "org": {"internal_domains": [DOMAIN]},
        }
    )


def run(users: int, latency: float) -> dict[str, object]:
    results: dict[str, object] = {"users": users, "latency": latency}
    people = [f"u{i:06d}@{DOMAIN}" for i in range(users)]
    with FakeGoogleCalendarAPI(latency=latency) as api, tempfile.TemporaryDirectory() as tmp:
        api.record_calls = False
        api.users = dict.fromkeys(people, "/")
        api.suspended = {f"s{i:06d}@{DOMAIN}" for i in range(users // 100)}
        api.users.update(dict.fromkeys(api.suspended, "/"))
        cfg = _config(Path(tmp) / "fa.db", api.root)

        store = Store.open(cfg.storage.url)
        started = time.perf_counter()
        [first] = refresh_sources(cfg, store, NOW)
        results["first"] = {
            "found": len(first.people),
            "list_requests": api.requests["users.list"],
            "goal_requests": math.ceil((users + len(api.suspended)) / 500),
            "seconds": round(time.perf_counter() - started, 3),
        }
        started = time.perf_counter()
        stored = DiscoveredLists(store).load()
        calendars = discovered_calendars(cfg, {key: row.addresses for key, row in stored.items()})
        results["calendars"] = {
            "entries": len(calendars),
            "seconds": round(time.perf_counter() - started, 3),
        }
        store.close()

        # A new process an hour later (cron): a fresh store, the stored list.
        before = api.requests["users.list"]
        store = Store.open(cfg.storage.url)
        started = time.perf_counter()
        resolved = resolve_calendars(cfg, store, NOW + timedelta(hours=1))
        results["cron"] = {
            "calendars": len(resolved.calendars),
            "list_requests": api.requests["users.list"] - before,
            "seconds": round(time.perf_counter() - started, 3),
        }

        # The next day: 1% left (applied), then 30% more vanish (refused).
        for address in people[: users // 100]:
            del api.users[address]
        before = api.requests["users.list"]
        [daily] = refresh_sources(cfg, store, NOW + timedelta(days=1, minutes=1))
        for address in people[users // 100 : users // 100 + users * 3 // 10]:
            del api.users[address]
        [refused] = refresh_sources(cfg, store, NOW + timedelta(days=2, minutes=1))
        results["next_day"] = {
            "left_1pct": {"state": daily.state, "removed": len(daily.removed)},
            "vanished_30pct": {
                "state": refused.state,
                "would_remove": len(refused.pending_removed),
                "still_synced": len(refused.people),
            },
            "list_requests": api.requests["users.list"] - before,
        }
        store.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--json", action="store_true", help="one JSON object")
    args = parser.parse_args(argv)
    results = run(args.users, args.latency)
    if args.json:
        print(json.dumps(results, sort_keys=True))
        return 0
    first, cal, cron, day = (
        results["first"],
        results["calendars"],
        results["cron"],
        results["next_day"],
    )
    assert isinstance(first, dict) and isinstance(cal, dict)
    assert isinstance(cron, dict) and isinstance(day, dict)
    print(f"discovery of {args.users} users (+1% suspended), latency {args.latency}s/request")
    print(
        f"first refresh: {first['found']} users found, {first['list_requests']} users.list "
        f"request(s) (goal <= {first['goal_requests']}), {first['seconds']}s"
    )
    print(f"calendar entries from the stored list: {cal['entries']} in {cal['seconds']}s")
    print(
        f"cron sync an hour later (new store): {cron['calendars']} calendars, "
        f"{cron['list_requests']} list request(s), {cron['seconds']}s"
    )
    print(
        f"next day: 1% left -> {day['left_1pct']}; 30% vanished -> {day['vanished_30pct']}; "
        f"{day['list_requests']} list request(s) for both"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
