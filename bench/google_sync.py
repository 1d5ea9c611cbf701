"""Bench: the Google provider and the engine on a synthetic org, against a naive baseline.

The local Calendar API (``tests/fakes/google_api.py``) runs in a child process
(so its CPU is not ours) with ``--latency`` added to every HTTP request. It is
seeded with ``--calendars`` x ``--events`` events of the synthetic org in
``tests/fakes/google_org.py`` (recurring 1:1s and stand-ups with exceptions,
rooms, outside guests, all-day, out-of-office, focus-time, private events and
attendee copies). Calendars are synced by ``--workers`` threads.

Phases, each printed with requests by kind, writes, wall and CPU time and
peak RSS:

1. ``first``: full listing, one block per eligible meeting, batched writes;
2. ``echo``: our own writes come back once through the sync token;
3. ``steady``: nothing changed (goal: exactly 1 list per calendar, 0 writes);
4. ``changed``: ``--changed`` (5%) of the events edited by users (text,
   time, an added attendee);
5. ``push``: after a push notification only the notified calendars sync, so a
   quiet calendar costs 0 requests.

The naive baseline is a cron-style script: every cycle it lists the horizon
window with ``timeMin``/``timeMax`` and patches every matching event, one
request each. It runs the same first/steady/changed cycles; the summary
prints our figures against the baseline's as ratios.

``--mode`` (``inprocess``, ``process``, ``restart``, ``replicas``, a comma
list, or ``all``; see :mod:`bench.modes`) also measures a quiet cycle as
operators deploy it: ``sync`` from cron, the daemon restarted between cycles,
three daemon replicas on PostgreSQL for ten cycles. Each prints requests
(by kind; lists with a ``syncToken`` are ``list+token``) and bytes per
calendar beside the naive baseline's quiet cycle. Goal: 1.00 request per
calendar, a list with a ``syncToken``, in every mode.

CPU of a quiet cycle (in process): one cycle of every calendar, run serially,
against a bare ``events.list`` with the calendar's sync token made with the
same client against the same fake; the bench prints both and the ratio
(goal: at most 1.5).

    .venv/bin/python -m bench.google_sync [--calendars 1000] [--events 40] [--latency 0.02]
    .venv/bin/python -m bench.google_sync --calendars 200 --latency 0 --mode all
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import multiprocessing
import random
import resource
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httplib2

from bench.modes import (
    measure_deployed,
    parse_modes,
    per_cycle,
    print_table,
)
from feedback_agendas.agendas.classify import MeetingKind, classify_meeting
from feedback_agendas.agendas.decide import decide
from feedback_agendas.agendas.model import Unreadable
from feedback_agendas.agendas.render import AgendaRenderer
from feedback_agendas.integrations.calendars.google import GoogleProvider
from feedback_agendas.integrations.calendars.google_client import _shared_resources
from feedback_agendas.integrations.calendars.google_map import patch_body, to_meeting_or_unreadable
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.sync.cycle import run_cycle
from feedback_agendas.scheduler.sync.fingerprint import rules_fingerprint
from tests.fakes.google_api import FakeGoogleCalendarAPI
from tests.fakes.google_org import NOW, rules_for, seed_org


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the server process -------------------------------------------------------------------


def serve(conn: Any, calendars: int, events: int, latency: float, seed: int) -> None:
    """Child process: seed the org, serve it, and answer control messages over ``conn``."""
    api = FakeGoogleCalendarAPI(latency=0.0, validate_responses=False)
    api.record_calls = False
    moved = Counter[str]()
    count_traffic(api, moved)
    api.start()
    started = time.perf_counter()
    org = seed_org(api, calendars, events, seed=seed)
    api.latency = latency
    conn.send({"endpoint": api.endpoint, "seed_seconds": time.perf_counter() - started})
    rng = random.Random(seed)
    while True:
        message = conn.recv()
        if message[0] == "counts":
            with api._lock:
                counts = {"requests": dict(moved), "bytes": moved.pop("bytes", 0)}
                counts["requests"].pop("bytes", None)
                moved.clear()
                api.requests.clear()
            conn.send(counts)
        elif message[0] == "change":
            fraction = float(message[1])
            keys = list(org.kinds)
            chosen = rng.sample(keys, max(1, int(len(keys) * fraction)))
            touched: set[str] = set()
            for n, (calendar, event_id) in enumerate(chosen):
                event = api.event(calendar, event_id)
                if event.get("status") == "cancelled":
                    continue
                change: dict[str, Any]
                if n % 3 == 0:
                    change = {"description": str(event.get("description", "")) + " (edited)"}
                elif n % 3 == 1 and "dateTime" in event.get("start", {}):
                    change = {"summary": str(event.get("summary", "")) + " (renamed)"}
                else:
                    attendees = list(event.get("attendees") or [])
                    change = {"attendees": [*attendees, {"email": f"extra{n}@example.com"}]}
                api.user_edit(calendar, event_id, change)
                touched.add(calendar)
            conn.send(sorted(touched))
        elif message[0] == "quit":
            api.stop()
            conn.send("bye")
            return


def count_traffic(api: FakeGoogleCalendarAPI, moved: Counter[str]) -> None:
    """Count every call by kind (a list with a sync token as ``list+token``) and body bytes."""
    handle = api.handle

    def counted(
        method: str, target: str, headers: dict[str, str], raw: bytes, **kw: Any
    ) -> tuple[int, dict[str, str], bytes]:
        status, out_headers, body = handle(method, target, headers, raw, **kw)
        kind, _ = api._route(method, target.split("?")[0])
        if kind == "list" and "syncToken=" in target:
            kind = "list+token"
        with api._lock:
            if kw.get("in_batch"):
                moved[f"{kind} in batch"] += 1  # its bytes are the batch's
            else:
                moved[kind] += 1
                moved["bytes"] += len(raw) + len(body)
        return status, out_headers, body

    handle_batch = api.handle_batch

    def counted_batch(content_type: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        status, out_headers, body = handle_batch(content_type, raw)
        with api._lock:
            moved["batch"] += 1
            moved["bytes"] += len(raw) + len(body)
        return status, out_headers, body

    api.handle = counted  # type: ignore[method-assign]
    api.handle_batch = counted_batch  # type: ignore[method-assign]


# -- measuring ------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    calendars: int
    wall: float = 0.0
    cpu: float = 0.0
    writes: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    server_requests: dict[str, int] = field(default_factory=dict)
    server_bytes: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    peak_rss_mb: float = 0.0
    batch_bound: int = 0  # sum over calendars of ceil(writes / batch size)

    def row(self) -> dict[str, Any]:
        return {
            "phase": self.name,
            "calendars": self.calendars,
            "wall_s": round(self.wall, 2),
            "cpu_s": round(self.cpu, 2),
            "writes": self.writes,
            "requests": dict(sorted(self.requests.items())),
            "requests_total": sum(self.requests.values()),
            "server_saw": dict(sorted(self.server_requests.items())),
            "server_bytes": self.server_bytes,
            "errors": dict(self.errors),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
        }


def measure(
    name: str,
    conn: Any,
    items: list[Any],
    work: Callable[[Any], tuple[int, Counter[str], str | None]],
    workers: int,
    batch_size: int = 50,
) -> Phase:
    phase = Phase(name, len(items))
    conn.send(("counts",))
    conn.recv()  # reset the server's counters
    wall, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for writes, requests, error in pool.map(work, items):
            phase.writes += writes
            phase.batch_bound += math.ceil(writes / batch_size)
            phase.requests.update(requests)
            if error:
                phase.errors[error] += 1
    phase.wall = time.perf_counter() - wall
    phase.cpu = time.process_time() - cpu
    conn.send(("counts",))
    counts = conn.recv()
    phase.server_requests, phase.server_bytes = counts["requests"], counts["bytes"]
    phase.peak_rss_mb = peak_rss_mb()
    return phase


class SerialStore:
    """The store behind one lock: SQLite takes one writer at a time, and with dozens of
    sync threads a commit can outwait SQLite's busy timeout ("database is locked").
    A single-process deployment on SQLite needs the same serialisation."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._store, name)
        if not callable(target):
            return target

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return target(*args, **kwargs)

        return locked


# -- the naive baseline --------------------------------------------------------------------------


class NaiveCron:
    """List the horizon window and patch every matching event, every cycle, one call each."""

    def __init__(
        self, endpoint: str, renderer: AgendaRenderer, rules: Any, horizon_days: int
    ) -> None:
        self.events, _ = _shared_resources(endpoint)
        self.renderer = renderer
        self.rules = rules
        self.horizon = timedelta(days=horizon_days)

    def sync(self, calendar: str) -> tuple[int, Counter[str], str | None]:
        http = httplib2.Http(timeout=30)
        requests: Counter[str] = Counter()
        writes = 0
        page: str | None = None
        items: list[dict[str, Any]] = []
        try:
            while True:
                requests["list"] += 1
                answer = self.events.list(
                    calendarId=calendar,
                    timeMin=NOW.isoformat(),
                    timeMax=(NOW + self.horizon).isoformat(),
                    pageToken=page,
                    quotaUser=calendar,
                ).execute(http=http)
                items += answer.get("items", [])
                page = answer.get("nextPageToken")
                if not page:
                    break
            for item in items:
                meeting = to_meeting_or_unreadable(calendar, calendar, item)
                if isinstance(meeting, Unreadable):
                    continue
                kind = classify_meeting(meeting, self.rules).kind
                if kind is MeetingKind.SKIP:
                    continue
                decision = decide(meeting, self.rules, NOW, self.renderer)
                # Naive: write the agenda whether or not anything changed.
                description = decision.description or meeting.description
                request = self.events.patch(
                    calendarId=calendar,
                    eventId=str(item["id"]),
                    body=patch_body(description, decision.block_hash),
                    sendUpdates="none",
                    quotaUser=calendar,
                )
                request.headers["If-Match"] = item["etag"]  # the fake insists on it
                requests["patch"] += 1
                request.execute(http=http)
                writes += 1
        except Exception as exc:  # a bench: count and go on
            return writes, requests, type(exc).__name__
        finally:
            http.close()
        return writes, requests, None


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calendars", type=int, default=1000)
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument(
        "--latency", type=float, default=0.02, help="seconds added per HTTP request"
    )
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--changed", type=float, default=0.05, help="fraction of events users edit")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--database", help="store URL (default: a fresh SQLite file); e.g. a PostgreSQL URL"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--mode",
        default="inprocess",
        help="deployment modes to measure a quiet cycle in: "
        "inprocess,process,restart,replicas (a comma list) or all",
    )
    parser.add_argument(
        "--interval", type=float, help="replicas: seconds between cycles (default: N/20, >= 5)"
    )
    args = parser.parse_args(argv)
    modes = parse_modes(args.mode)

    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    server = ctx.Process(
        target=serve,
        args=(child, args.calendars, args.events, args.latency, args.seed),
        daemon=True,  # never outlive the bench, even when it fails
    )
    server.start()
    hello = parent.recv()
    endpoint = hello["endpoint"]
    calendars = [f"m{i:05d}@example.com" for i in range(args.calendars)]
    rules = rules_for(args.calendars)
    renderer = AgendaRenderer()
    phases: list[Phase] = []
    baseline: list[Phase] = []
    with tempfile.TemporaryDirectory(
        prefix="fa-bench-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None
    ) as tmp:
        url = args.database or f"sqlite:///{tmp}/bench.db"
        opened = Store.open(url)
        store: Any = SerialStore(opened) if url.startswith("sqlite") else opened
        providers = {
            c: GoogleProvider(
                name=c,
                owner=c,
                calendar_id=c,
                api_endpoint=endpoint,
                batch_size=args.batch_size,
                writes_per_minute=10_000,  # pacing is tested elsewhere; here we measure work
            )
            for c in calendars
        }

        fingerprint = rules_fingerprint(rules, renderer)  # once, as the daemon does

        def ours(calendar: str) -> tuple[int, Counter[str], str | None]:
            report = run_cycle(
                providers[calendar], store, rules, renderer, NOW, fingerprint=fingerprint
            )
            return report.writes, report.requests, report.error

        phases.append(measure("first", parent, calendars, ours, args.workers, args.batch_size))
        phases.append(measure("echo", parent, calendars, ours, args.workers))
        phases.append(measure("steady", parent, calendars, ours, args.workers))
        parent.send(("change", args.changed))
        touched = parent.recv()
        phases.append(measure("changed", parent, calendars, ours, args.workers))
        parent.send(("change", args.changed))
        touched = parent.recv()
        push = measure("push", parent, touched, ours, args.workers)
        push.name = (
            f"push ({len(touched)} notified, {len(calendars) - len(touched)} quiet: 0 requests)"
        )
        phases.append(push)
        cpu = quiet_cpu(providers, opened, rules, renderer, fingerprint, calendars)
        for p in providers.values():
            p.close()
        opened.close()

        steady = phases[2]
        quiet: dict[str, dict[str, Any]] = {}
        if "inprocess" in modes:
            counts = {"requests": steady.server_requests, "bytes": steady.server_bytes}
            quiet["inprocess"] = per_cycle(counts, len(calendars))
        for mode in modes:
            if mode != "inprocess":
                quiet[mode] = deployed_quiet_cycle(mode, args, parent, endpoint, rules, Path(tmp))

        if not args.no_baseline:
            naive = NaiveCron(endpoint, renderer, rules, rules.policy.horizon_days)
            baseline.append(measure("first", parent, calendars, naive.sync, args.workers))
            baseline.append(measure("steady", parent, calendars, naive.sync, args.workers))
            parent.send(("change", args.changed))
            parent.recv()
            baseline.append(measure("changed", parent, calendars, naive.sync, args.workers))
    parent.send(("quit",))
    parent.recv()
    server.join(10)

    result = report(args, hello, phases, baseline)
    result["cpu_quiet_cycle"] = cpu
    result["quiet_cycle_per_calendar"] = quiet
    naive = next((b for b in baseline if b.name == "steady"), None)
    result["naive_quiet_cycle_per_calendar"] = (
        per_cycle({"requests": naive.server_requests, "bytes": naive.server_bytes}, len(calendars))
        if naive
        else {}
    )
    result["goals"]["quiet cycle: 1.00 list with a syncToken per calendar, in every mode"] = all(
        "error" not in row and row["by_kind"] == {"list+token": 1.0} for row in quiet.values()
    )
    result["goals"]["quiet cycle CPU <= 1.5 x a bare events.list"] = cpu["ratio"] <= 1.5
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_human(result)
        print_table("deployment modes", quiet, result["naive_quiet_cycle_per_calendar"])
        print(
            f"\nCPU, in process, serial: a quiet cycle {cpu['cycle_ms']:.3f} ms, a bare "
            f"events.list {cpu['bare_list_ms']:.3f} ms per calendar: ratio {cpu['ratio']:.2f}"
        )
    return 0


def quiet_cpu(
    providers: dict[str, GoogleProvider],
    store: Store,
    rules: Any,
    renderer: AgendaRenderer,
    fingerprint: str,
    calendars: list[str],
    rounds: int = 5,
) -> dict[str, float]:
    """CPU per calendar: a quiet cycle, and a bare ``events.list`` with its sync token.

    Both serial in this thread, same client (the provider's resource and its
    authorised http), same fake; the best of ``rounds`` alternating rounds.
    """
    tokens = {c: (store.get_cursor(c) or "").partition("|")[2] for c in calendars}
    best_cycle = best_bare = math.inf
    for _ in range(rounds):
        gc.collect()  # each round starts from the same heap, for both
        started = time.process_time()
        for c in calendars:
            report = run_cycle(providers[c], store, rules, renderer, NOW, fingerprint=fingerprint)
            if report.requests != Counter({"list": 1}) or report.writes:
                raise RuntimeError(f"{c}: not a quiet cycle: {dict(report.requests)}")
        best_cycle = min(best_cycle, time.process_time() - started)
        gc.collect()
        started = time.process_time()
        for c in calendars:
            provider = providers[c]
            provider._events.list(
                calendarId=c,
                singleEvents=False,
                showDeleted=True,
                maxResults=2500,
                quotaUser=c,
                syncToken=tokens[c],
            ).execute(http=provider._client.http, num_retries=0)
        best_bare = min(best_bare, time.process_time() - started)
    n = len(calendars)
    return {
        "cycle_ms": round(best_cycle / n * 1000, 3),
        "bare_list_ms": round(best_bare / n * 1000, 3),
        "ratio": round(best_cycle / best_bare, 2) if best_bare else math.inf,
    }


def deployed_quiet_cycle(
    mode: str, args: Any, conn: Any, endpoint: str, rules: Any, tmp: Path
) -> dict[str, Any]:
    """A quiet cycle per calendar in ``mode`` (see :mod:`bench.modes`), on a fresh store."""
    entries = [
        {
            "name": f"m{i:05d}",
            "provider": "google",
            "owner": f"m{i:05d}@example.com",
            "calendar_id": f"m{i:05d}@example.com",
            "credentials": "anonymous",
            "api_endpoint": endpoint,
            "batch_size": args.batch_size,
            "writes_per_minute": 10_000,
        }
        for i in range(args.calendars)
    ]

    def counts() -> dict[str, Any]:
        conn.send(("counts",))
        answer: dict[str, Any] = conn.recv()
        return answer

    interval = args.interval or max(5.0, args.calendars / 20)
    return measure_deployed(mode, tmp, entries, rules.org, counts, interval)


def report(
    args: Any, hello: dict[str, Any], phases: list[Phase], baseline: list[Phase]
) -> dict[str, Any]:
    first = phases[0]
    steady = phases[2]
    goals = {
        "steady: 1 list per calendar": steady.requests.get("list", 0) == args.calendars
        and sum(steady.requests.values()) == args.calendars,
        "steady: 0 writes": steady.writes == 0,
        "first: lists <= ceil(events/2500) per calendar": first.requests.get("list", 0)
        <= args.calendars * math.ceil(args.events / 2500),
        "first: batches <= ceil(writes/batch size) per calendar": first.requests.get("batch", 0)
        <= first.batch_bound,
        "peak RSS < 300 MB": max(p.peak_rss_mb for p in phases) < 300,
    }
    ratios = {}
    by_name = {p.name: p for p in phases}
    for b in baseline:
        o = by_name[b.name]
        ratios[b.name] = {
            "requests": _ratio(sum(o.requests.values()), sum(b.requests.values())),
            "writes": _ratio(o.writes, b.writes),
            "wall": _ratio(o.wall, b.wall),
            "cpu": _ratio(o.cpu, b.cpu),
        }
    return {
        "config": {
            "calendars": args.calendars,
            "events": args.events,
            "latency_s": args.latency,
            "workers": args.workers,
            "batch_size": args.batch_size,
            "seed_seconds": round(hello["seed_seconds"], 1),
        },
        "ours": [p.row() for p in phases],
        "baseline": [p.row() for p in baseline],
        "ratios_ours_over_baseline": ratios,
        "goals": goals,
    }


def _ratio(ours: float, theirs: float) -> float | None:
    return round(ours / theirs, 3) if theirs else None


def print_human(result: dict[str, Any]) -> None:
    print("config:", json.dumps(result["config"]))
    for title in ("ours", "baseline"):
        if not result[title]:
            continue
        print(f"\n{title}:")
        for row in result[title]:
            print(
                f"  {row['phase']:<48} wall {row['wall_s']:>7.2f}s  cpu {row['cpu_s']:>7.2f}s  "
                f"writes {row['writes']:>7}  rss {row['peak_rss_mb']:>6.1f} MB  "
                f"requests {row['requests_total']:>7} {row['requests']}"
                + (f"  errors {row['errors']}" if row["errors"] else "")
            )
    if result["ratios_ours_over_baseline"]:
        print("\nours / baseline:")
        for phase, ratio in result["ratios_ours_over_baseline"].items():
            print(f"  {phase:<10} {json.dumps(ratio)}")
    print("\ngoals:")
    for goal, ok in result["goals"].items():
        print(f"  [{'x' if ok else ' '}] {goal}")


if __name__ == "__main__":
    sys.exit(main())
