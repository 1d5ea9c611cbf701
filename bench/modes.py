"""The deployment modes the sync benches measure a quiet cycle in.

- ``inprocess``: one long-lived process runs every cycle (the bench's own loop);
- ``process``: ``feedback-agendas sync`` as a new process per cycle, as from cron;
- ``restart``: the daemon stopped and started between cycles: a new process
  builds the :class:`~scheduler.service.daemon.Daemon` from the config, runs one cycle
  of every calendar through it (4 threads, as the ticker would) and shuts down;
- ``replicas``: three ``feedback-agendas run`` processes on one PostgreSQL for
  at least ten cycles of every calendar.

The real command line runs in each subprocess mode, with the config a bench
writes. What a quiet cycle costs is counted at the server (requests and bytes)
and divided by the cycles the daemons logged in ``run_log`` while they ran.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select

from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.storage.tables import run_log

MODES = ("inprocess", "process", "restart", "replicas")
REPLICAS = 3
REPLICA_CYCLES = 10
EXECUTABLE = str(Path(sys.executable).with_name("feedback-agendas"))
REPO = Path(__file__).resolve().parent.parent


def parse_modes(text: str) -> list[str]:
    """``inprocess,process`` or ``all`` -> the modes, in the canonical order."""
    wanted = set(MODES) if text == "all" else {m.strip() for m in text.split(",") if m.strip()}
    unknown = wanted - set(MODES)
    if unknown:
        raise SystemExit(f"unknown mode(s): {', '.join(sorted(unknown))}; known: {MODES}")
    return [m for m in MODES if m in wanted]


def write_config(path: Path, storage_url: str, calendars: list[dict[str, Any]], org: Any) -> Path:
    """A config file for the command line: storage, the calendars, the org of ``org`` (Rules)."""
    data = {
        "storage": {"url": storage_url},
        "calendars": calendars,
        "org": {
            "internal_domains": sorted(org.internal_domains),
            "teams": [
                {
                    "name": t.name,
                    "manager": t.manager,
                    "members": sorted(t.members),
                    "locale": t.locale,
                    "timezone": t.timezone,
                }
                for t in org.teams
            ],
        },
        "server": {"host": "127.0.0.1", "port": 0},
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def environment() -> dict[str, str]:
    # Leave the hash seed random, as it is for any process an operator starts.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def run_sync(config: Path) -> None:
    """One ``feedback-agendas sync`` in a new process."""
    _run_child([EXECUTABLE, "sync", "--config", str(config), "--json"], "sync")


def run_daemon_round(config: Path) -> None:
    """A daemon started in a new process: one cycle of every calendar, then shut down."""
    _run_child(
        [sys.executable, "-m", "bench.modes", "daemon-round", str(config)], "the daemon round"
    )


def _run_child(argv: list[str], what: str) -> None:
    done = subprocess.run(
        argv, env=environment(), cwd=REPO, capture_output=True, text=True, timeout=3600
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} exited {done.returncode}: {done.stderr[-2000:]}")


def daemon_round(config: Path) -> None:
    """In the child: build the daemon, sync every calendar once, give everything back."""
    from concurrent.futures import ThreadPoolExecutor

    from feedback_agendas.scheduler.config.source import load_config
    from feedback_agendas.scheduler.service.daemon import Daemon

    daemon = Daemon(load_config(config))
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            reports = list(pool.map(daemon.sync_calendar, sorted(daemon.calendars)))
        if any(r is None for r in reports):
            raise RuntimeError("a calendar's lease was held by someone else")
    finally:
        daemon.shutdown()
        daemon.store.close()


def logged_runs(url: str) -> int:
    store = Store.open(url)
    try:
        with store.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(run_log)) or 0)
    finally:
        store.close()


@contextmanager
def daemons(config: Path, count: int, interval: float) -> Iterator[list[subprocess.Popen[str]]]:
    """``count`` ``feedback-agendas run`` processes; SIGTERM and wait for each at the end."""
    started = [
        subprocess.Popen(
            [EXECUTABLE, "run", "--config", str(config), "--interval", str(interval)],
            env=environment(),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def fewest_runs(url: str, calendars: int) -> int:
    """The fewest cycles any of the ``calendars`` calendars has in the run log."""
    store = Store.open(url)
    try:
        with store.engine.connect() as conn:
            per_calendar = list(
                conn.scalars(select(func.count()).select_from(run_log).group_by(run_log.c.calendar))
            )
    finally:
        store.close()
    return min(per_calendar) if len(per_calendar) >= calendars else 0


def run_daemons_until(
    config: Path,
    url: str,
    count: int,
    interval: float,
    cycles: int,
    deadline: float = 1800,
    done: Callable[[], bool] | None = None,
) -> int:
    """Run ``count`` daemons until they logged ``cycles`` more cycles (and ``done()``, if
    given, is true); return how many cycles they logged."""
    before = logged_runs(url)
    began = time.monotonic()
    with daemons(config, count, interval) as running:
        while logged_runs(url) - before < cycles or (done is not None and not done()):
            for process in running:
                if process.poll() is not None:
                    err = process.stderr.read() if process.stderr else ""
                    raise RuntimeError(f"a daemon exited {process.returncode}: {err[-2000:]}")
            if time.monotonic() - began > deadline:
                raise RuntimeError("the daemons did not finish their cycles in time")
            time.sleep(0.2)
    return logged_runs(url) - before


def measure_mode(
    mode: str,
    config: Path,
    url: str,
    calendars: int,
    counts: Callable[[], dict[str, Any]],
    interval: float,
) -> tuple[dict[str, Any], int]:
    """Settle (first cycle, then the echo of our writes) and measure quiet cycles in ``mode``.

    Returns the server's counts over the measured cycles and how many calendar
    cycles they were.
    """
    if mode == "process":
        run_sync(config)  # first: full listing and writes
        run_sync(config)  # the echo of our writes
        counts()
        run_sync(config)
        return counts(), calendars
    if mode == "restart":
        run_daemon_round(config)
        run_daemon_round(config)
        counts()
        run_daemon_round(config)
        return counts(), calendars
    if mode == "replicas":
        # Settled: every calendar had its first cycle and the echo of its writes.
        run_daemons_until(
            config, url, REPLICAS, interval, 0, done=lambda: fewest_runs(url, calendars) >= 2
        )
        counts()
        cycles = run_daemons_until(config, url, REPLICAS, interval, REPLICA_CYCLES * calendars)
        return counts(), cycles
    raise ValueError(mode)


def measure_deployed(
    mode: str,
    tmp: Path,
    entries: list[dict[str, Any]],
    org: Any,
    counts: Callable[[], dict[str, Any]],
    interval: float,
) -> dict[str, Any]:
    """A quiet cycle per calendar in ``mode`` for the calendar ``entries``, on a fresh store
    (SQLite; a fresh PostgreSQL schema for replicas). A failure is reported in the row, so
    a bench goes on with the other modes."""
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    try:
        if mode == "replicas":
            url, cleanup = postgres_url()
        else:
            url = f"sqlite:///{tmp / (mode + '.db')}"
        config = write_config(tmp / f"{mode}.yaml", url, entries, org)
        measured, cycles = measure_mode(mode, config, url, len(entries), counts, interval)
        return per_cycle(measured, cycles)
    except Exception as exc:  # a bench: report and go on with the other modes
        return {"error": f"{type(exc).__name__}: {str(exc)[-300:]}"}
    finally:
        cleanup()


def per_cycle(counts: dict[str, Any], cycles: int) -> dict[str, Any]:
    """Requests (by kind) and bytes per calendar cycle."""
    n = max(cycles, 1)
    requests = counts.get("requests", {})
    http = sum(v for k, v in requests.items() if not k.endswith(" in batch"))
    return {
        "cycles": cycles,
        "requests": round(http / n, 3),
        "by_kind": {k: round(v / n, 3) for k, v in sorted(requests.items())},
        "bytes": round(counts.get("bytes", 0) / n),
    }


def postgres_url() -> tuple[str, Callable[[], None]]:
    """A fresh schema on the test PostgreSQL (``FA_TEST_POSTGRES_URL``) and its cleanup."""
    from tests.integration.pg import postgres_url as fresh_schema

    return fresh_schema()


def print_table(title: str, rows: dict[str, dict[str, Any]], baseline: dict[str, Any]) -> None:
    """One line per mode: requests and bytes per calendar for a quiet cycle, and the naive one."""
    print(f"\n{title}: a quiet cycle, per calendar")
    print(f"  {'mode':<10} {'cycles':>7} {'requests':>9} {'bytes':>9}  by kind")
    for mode, row in rows.items():
        if "error" in row:
            print(f"  {mode:<10} {row['error']}")
            continue
        print(
            f"  {mode:<10} {row['cycles']:>7} {row['requests']:>9.2f} {row['bytes']:>9}  "
            f"{row['by_kind']}"
        )
    if baseline:
        print(
            f"  {'naive':<10} {baseline['cycles']:>7} {baseline['requests']:>9.2f} "
            f"{baseline['bytes']:>9}  {baseline['by_kind']}"
        )


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) == 3 and sys.argv[1] == "daemon-round":
        daemon_round(Path(sys.argv[2]))
    else:
        sys.exit("usage: python -m bench.modes daemon-round CONFIG (the benches call it)")
