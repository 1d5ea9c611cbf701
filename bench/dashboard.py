"""Bench: the time to render the dashboard's overview for 100 and for 10,000 calendars.

For each size, a config of that many calendars (memory provider: nothing to
read) and an SQLite store under a temporary folder, filled as a running
daemon leaves it: each calendar's health (one in 50 failing), one run in the
run log with its counts, a cursor. Then the real ``Dashboard`` answers
``GET /admin/`` (data from the store, HTML from the templates, first page of
50) ``--repeat`` times; printed: the median and the slowest, and the ratio of
the medians. With pagination the page shows 50 rows whatever the size, so
the second should stay within 2x of the first.

    .venv/bin/python -m bench.dashboard [--sizes 100 10000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.daemon import Daemon
from feedback_agendas.scheduler.service.http_server import Request
from feedback_agendas.scheduler.service.web.dashboard import Dashboard
from feedback_agendas.scheduler.storage.db import write_transaction
from feedback_agendas.scheduler.storage.tables import (
    calendar_cursors,
    calendar_health,
    run_log,
    run_log_counts,
)


def prepare(folder: Path, size: int, now: datetime) -> Daemon:
    """A daemon (not started) over a store that looks like ``size`` calendars after a while."""
    names = [f"person{i:05d}@example.com" for i in range(size)]
    data = {
        "storage": {"url": f"sqlite:///{folder / 'fa.db'}"},
        "calendars": [{"name": n, "provider": "memory", "owner": n} for n in names],
        "org": {"internal_domains": ["example.com"]},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    daemon = Daemon(load_config(path, environ={}), clock=lambda: now)
    failing = {name for i, name in enumerate(names) if i % 50 == 7}
    with write_transaction(daemon.engine) as conn:
        conn.execute(
            calendar_health.insert(),
            [
                {
                    "calendar": n,
                    "last_success_at": now - timedelta(minutes=2 if n not in failing else 90),
                    "last_failure_at": now - timedelta(minutes=1) if n in failing else None,
                    "consecutive_failures": 3 if n in failing else 0,
                    "last_error_kind": "auth" if n in failing else None,
                }
                for n in names
            ],
        )
        conn.execute(
            run_log.insert(),
            [
                {
                    "id": i + 1,
                    "calendar": n,
                    "started_at": now - timedelta(minutes=2),
                    "finished_at": now - timedelta(minutes=2) + timedelta(seconds=1),
                    "ok": n not in failing,
                    "error_kind": "auth" if n in failing else None,
                    "writes": i % 3,
                }
                for i, n in enumerate(names)
            ],
        )
        conn.execute(
            run_log_counts.insert(),
            [
                {"run_id": i + 1, "code": code, "count": 1 + i % 4}
                for i in range(size)
                for code in ("action.unchanged", "skipped.all_day", "skipped.not_organizer")
            ],
        )
        conn.execute(
            calendar_cursors.insert(),
            [{"calendar": n, "cursor": "token", "updated_at": now} for n in names],
        )
    return daemon


def measure(size: int, repeat: int) -> tuple[float, float, int]:
    """(median seconds, slowest seconds, page bytes) of ``GET /admin/`` over ``size`` calendars."""
    now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        daemon = prepare(Path(tmp), size, now)
        try:
            dashboard = Dashboard(daemon, clock=lambda: now)
            request = Request("GET", "/admin/", "", {"Host": "127.0.0.1:8787"}, b"", "127.0.0.1")
            times = []
            body = b""
            for _ in range(repeat + 2):
                start = time.perf_counter()
                response = dashboard.handle(request)
                times.append(time.perf_counter() - start)
                assert response.status == 200
                body = response.body
            times = times[2:]  # the first renders compile templates and warm the caches
            return statistics.median(times), max(times), len(body)
        finally:
            daemon.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 10_000])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    results = []
    for size in args.sizes:
        median, slowest, size_bytes = measure(size, args.repeat)
        results.append(median)
        print(
            f"{size:>6} calendars: overview in {median * 1000:7.1f} ms median, "
            f"{slowest * 1000:7.1f} ms slowest ({size_bytes / 1024:.0f} KiB page)"
        )
    if len(results) > 1:
        ratio = results[-1] / results[0]
        verdict = "within" if ratio <= 2 else "NOT within"
        print(f"ratio {args.sizes[-1]} / {args.sizes[0]}: {ratio:.2f}x ({verdict} 2x)")


if __name__ == "__main__":
    main()
