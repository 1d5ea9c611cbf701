"""Bench: sync cycles of many CalDAV calendars on a local Radicale.

Seeds N calendars x M events (default 200 x 40; not measured), starts Radicale
on a free loopback port, and runs the engine over every calendar three times:

1. **first**: full listing, decisions, one PUT per resource that gets a block;
2. **after-write**: the sync token moved because of our own PUTs;
3. **steady**: nothing changed.

It prints the HTTP requests per cycle (by kind) and the wall time of each.
Goal: a steady cycle makes exactly one sync-collection REPORT per calendar
and no PUT.

``--mode`` (``inprocess``, ``process``, ``restart``, ``replicas``, a comma
list, or ``all``; see :mod:`bench.modes`) measures a quiet cycle as operators
deploy it: ``sync`` from cron, the daemon restarted between cycles, three
daemon replicas on PostgreSQL for ten cycles. The subprocess modes reach
Radicale through a counting proxy, so every request is seen (a 401 challenge
too); each mode prints requests by kind (``REPORT sync``: a sync-collection
REPORT; ``REPORT multiget``/``query``; ``PROPFIND``, ``GET``, ``PUT``, ``401``)
and bytes per calendar (calendars named by display name in the config, as
``config.example.yaml`` does; ``--calendar-by path`` names them by path),
beside the naive baseline's quiet cycle: a cron script
that fetches every resource of the horizon with one calendar-query REPORT
and PUTs every event it would give an agenda. Goal: 1.00 request per
calendar, a sync-collection REPORT, in every mode, and no PROPFIND.

Seeding writes the calendars straight into Radicale's filesystem storage
before the server starts (a PUT costs ~100 ms on a loaded machine, so 8,000 of
them took longer than the cycles being measured). Each file holds exactly the
bytes Radicale stores for a PUT of the same body (normalised by Radicale's own
item code, with the one VTIMEZONE it would generate made once and reused; the
first calendar is checked against the full path), so the server and the engine
see the same calendars either way.
Radicale then builds its item and history caches on one unmeasured
sync-collection REPORT per calendar, as they would exist after PUTs.
``--seed http`` keeps the old way: MKCALENDAR and one PUT per event.

    .venv/bin/python -m bench.caldav_sync [--calendars 200] [--events 40] [--seed files|http]
    .venv/bin/python -m bench.caldav_sync --calendars 100 --mode all
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from caldav.davclient import DAVClient
from radicale import item as radicale_item

from bench.modes import (
    measure_deployed,
    parse_modes,
    per_cycle,
    print_table,
)
from feedback_agendas.agendas.policy import Org, Rules, Team
from feedback_agendas.agendas.render import AgendaRenderer
from feedback_agendas.integrations.calendars.caldav import CaldavProvider
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.sync.cycle import run_cycle
from feedback_agendas.scheduler.sync.fingerprint import rules_fingerprint
from tests.integration.radicale import running_radicale

NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
MONDAY = datetime(2026, 11, 30, 8, 0)  # local wall time, Europe/Stockholm
PASSWORD = "bench"


def manager(i: int) -> str:
    return f"manager{i}@example.com"


def members(i: int) -> list[str]:
    return [f"m{i}-{k}@example.com" for k in range(6)]


def _event(
    uid: str,
    start: datetime,
    minutes: int,
    title: str,
    people: list[str],
    organizer: str,
    extra: str = "",
) -> str:
    end = start + timedelta(minutes=minutes)
    attendees = "".join(f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{p}\r\n" for p in people)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\n"
        "BEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261101T120000Z\r\n"
        f"DTSTART;TZID=Europe/Stockholm:{start:%Y%m%dT%H%M%S}\r\n"
        f"DTEND;TZID=Europe/Stockholm:{end:%Y%m%dT%H%M%S}\r\n"
        f"{extra}SUMMARY:{title}\r\nDESCRIPTION:Notes for {title}\r\n"
        f"ORGANIZER:mailto:{organizer}\r\n{attendees}"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def calendar_events(i: int, count: int) -> dict[str, str]:
    """A manager's calendar: weekly 1:1s, stand-ups, external calls, someone else's meetings."""
    boss, team = manager(i), members(i)
    events = {}
    for j in range(count):
        start = MONDAY + timedelta(days=j % 10, hours=j % 8)
        uid = f"c{i}-e{j}@example.com"
        kind = j % 5
        if kind == 0:
            body = _event(
                uid,
                start,
                30,
                f"1:1 {team[j % 6]}",
                [boss, team[j % 6]],
                boss,
                "RRULE:FREQ=WEEKLY\r\n",
            )
        elif kind == 1:
            body = _event(uid, start, 15, "Team stand-up", [boss, *team], boss)
        elif kind == 2:
            body = _event(uid, start, 60, "Call with a customer", [boss, "guest@acme.test"], boss)
        elif kind == 3:
            body = _event(uid, start, 30, "Their meeting", [team[0], boss], team[0])
        else:
            body = _event(uid, start - timedelta(days=60), 30, "Old 1:1", [boss, team[1]], boss)
        events[f"e{j}.ics"] = body
    return events


def seed_over_http(url: str, calendars: int, events: int) -> None:
    """Create each calendar and PUT its events, as a calendar app would (8 in parallel)."""

    def seed_one(i: int) -> None:
        user = f"user{i}"
        client = DAVClient(url=url + "/", username=user, password=PASSWORD, auth_type="basic")
        principal: Any = client.get_principal()
        calendar: Any = principal.make_calendar(name="Work", cal_id="work")
        for name, body in calendar_events(i, events).items():
            headers = {"Content-Type": "text/calendar"}
            response = client.put(str(calendar.url.join(name)), body, headers)
            if response.status not in (201, 204):
                raise RuntimeError(f"seeding {user}/{name}: HTTP {response.status}")
        client.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(seed_one, range(calendars)))


# Radicale's own default for [server] max_vevent_rrule_occurrence.
MAX_RRULE_OCCURRENCES = 10000

# A sync-collection REPORT without a token: the full listing, as a client's first sync.
INITIAL_SYNC_REPORT = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:sync-collection xmlns:D="DAV:">'
    "<D:sync-token/><D:sync-level>1</D:sync-level>"
    "<D:prop><D:getetag/></D:prop>"
    "</D:sync-collection>"
)


def stored_form(body: str, collection_path: str) -> str:
    """The text Radicale writes to disk for a PUT of ``body`` (it re-serialises via vobject)."""
    components = radicale_item.read_components(body)
    radicale_item.check_and_sanitize_items(
        components, max_vevent_rrule_occurrence=MAX_RRULE_OCCURRENCES, tag="VCALENDAR"
    )
    (component,) = components
    item = radicale_item.Item(collection_path=collection_path, vobject_item=component)
    return item.serialize()


def with_vtimezone(body: str, vtimezone: str) -> str:
    """``body`` with a VTIMEZONE block placed before its VEVENT."""
    at = body.index("BEGIN:VEVENT\r\n")
    return body[:at] + vtimezone + body[at:]


def stockholm_vtimezone() -> str:
    """The VTIMEZONE block Radicale's vobject generates for TZID=Europe/Stockholm.

    Generating it costs ~100 ms per resource (pytz transition search), which is most
    of what a PUT costs here; it is the same block every time, so it is made once.
    """
    text = stored_form(calendar_events(0, 1)["e0.ics"], "user0/work")
    start, end = text.index("BEGIN:VTIMEZONE\r\n"), text.index("END:VTIMEZONE\r\n")
    return text[start : end + len("END:VTIMEZONE\r\n")]


def seed_into_storage(storage: Path, calendars: int, events: int) -> None:
    """Write each user's ``work`` calendar into Radicale's storage folder (server not running).

    Same layout as Radicale 3.9 makes over HTTP: ``collection-root/<user>/work/`` with a
    ``.Radicale.props`` JSON file and one ``.ics`` file per resource, holding the bytes
    a PUT of the same body would store. Caches are left for Radicale to build.
    """
    vtimezone = stockholm_vtimezone()
    for i in range(calendars):
        user = f"user{i}"
        folder = storage / "collection-root" / user / "work"
        folder.mkdir(parents=True)
        props = {"D:displayname": "Work", "tag": "VCALENDAR"}
        # sort_keys as Radicale's own writer does, so the bytes match too.
        (folder / ".Radicale.props").write_text(json.dumps(props, sort_keys=True), "utf-8")
        for name, body in calendar_events(i, events).items():
            text = stored_form(with_vtimezone(body, vtimezone), f"{user}/work")
            if i == 0 and text != stored_form(body, f"{user}/work"):
                # Guard the shortcut: the first calendar also goes the slow, exact way.
                raise RuntimeError(f"seeding {user}/{name}: shortcut differs from a PUT")
            with (folder / name).open("w", encoding="utf-8", newline="") as file:
                file.write(text)


def warm_caches(url: str, calendars: int) -> None:
    """One full sync-collection REPORT per calendar, so Radicale builds its caches unmeasured."""

    def warm_one(i: int) -> None:
        user = f"user{i}"
        client = DAVClient(url=url + "/", username=user, password=PASSWORD, auth_type="basic")
        response = client.report(f"{url}/{user}/work/", INITIAL_SYNC_REPORT, depth=1)
        if response.status != 207:
            raise RuntimeError(f"warming {user}: HTTP {response.status}")
        client.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(warm_one, range(calendars)))


def rules_for(calendars: int) -> Rules:
    teams = tuple(
        Team(
            name=f"team{i}",
            manager=manager(i),
            members=frozenset(members(i)),
            timezone="Europe/Stockholm",
        )
        for i in range(calendars)
    )
    return Rules(org=Org(internal_domains=frozenset({"example.com"}), teams=teams))


class CountingProxy:
    """A loopback HTTP proxy in front of Radicale that counts what passes: requests by kind
    and body bytes (both ways). Keep-alive on both sides."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            upstream_conn: http.client.HTTPConnection | None = None

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                status, out_headers, answer = proxy.forward(self, self.command, body, headers)
                proxy.count(self.command, body, status, len(body) + len(answer))
                self.send_response(status)
                for key, value in out_headers:
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_PUT = do_PROPFIND = do_REPORT = do_OPTIONS = _forward
            do_DELETE = do_POST = do_MKCALENDAR = do_PROPPATCH = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def forward(
        self, handler: Any, method: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        for attempt in range(2):
            conn = handler.upstream_conn
            if conn is None:
                conn = handler.upstream_conn = http.client.HTTPConnection(
                    self.host, self.port, timeout=60
                )
            try:
                conn.request(method, handler.path, body=body or None, headers=headers)
                response = conn.getresponse()
                return response.status, response.getheaders(), response.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                handler.upstream_conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def count(self, method: str, body: bytes, status: int, moved: int) -> None:
        kind = method
        if status == 401:
            kind = "401"
        elif method == "REPORT":
            kind = (
                "REPORT sync"
                if b"sync-collection" in body
                else "REPORT multiget"
                if b"calendar-multiget" in body
                else "REPORT query"
            )
        with self.lock:
            self.counts[kind] += 1
            self.counts["bytes"] += moved

    def take(self) -> dict[str, Any]:
        with self.lock:
            counts = dict(self.counts)
            self.counts.clear()
        moved = counts.pop("bytes", 0)
        return {"requests": counts, "bytes": moved}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calendars", type=int, default=200)
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument(
        "--seed",
        choices=("files", "http"),
        default="files",
        help="write the storage folder before start (fast) or PUT every event (slow)",
    )
    parser.add_argument(
        "--mode",
        default="inprocess",
        help="deployment modes to measure a quiet cycle in: "
        "inprocess,process,restart,replicas (a comma list) or all",
    )
    parser.add_argument(
        "--interval", type=float, help="replicas: seconds between cycles (default: N/10, >= 5)"
    )
    parser.add_argument(
        "--calendar-by",
        choices=("name", "path"),
        default="name",
        help="subprocess modes: name each calendar in the config by its display name"
        " (as config.example.yaml does; found by discovery) or by its path",
    )
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args(argv)
    modes = parse_modes(args.mode)

    quiet: dict[str, dict[str, Any]] = {}
    naive: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="caldav-bench-") as tmp:
        storage = Path(tmp) / "collections"
        seed_started = time.perf_counter()
        if args.seed == "files":
            seed_into_storage(storage, args.calendars, args.events)
        with running_radicale(storage) as server:
            if args.seed == "files":
                warm_caches(server.url, args.calendars)
            else:
                seed_over_http(server.url, args.calendars, args.events)
            print(
                f"seeded {args.calendars} x {args.events} events ({args.seed}) in "
                f"{time.perf_counter() - seed_started:.1f}s"
            )
            proxy = CountingProxy(server.url)
            try:
                results = measure(proxy.url, Path(tmp), args.calendars, proxy)
                proxy.take()
                steady = results[-1]
                if "inprocess" in modes:
                    quiet["inprocess"] = per_cycle(steady[5], args.calendars)
                for mode in modes:
                    if mode != "inprocess":
                        quiet[mode] = deployed_quiet_cycle(mode, args, proxy, Path(tmp))
                if not args.no_baseline:
                    naive = naive_quiet_cycle(proxy, args.calendars)
            finally:
                proxy.close()

    ok = steady[4] == Counter({"report": args.calendars})
    print(f"steady goal (1 REPORT per calendar, 0 PUT): {'met' if ok else 'NOT met'}")
    print_table("deployment modes", quiet, naive)
    floor = all(
        "error" not in row and row["by_kind"] == {"REPORT sync": 1.0} for row in quiet.values()
    )
    print(
        "\nquiet cycle: 1.00 sync-collection REPORT per calendar, no PROPFIND, in every mode: "
        + ("met" if floor else "NOT met")
    )
    return 0 if ok and floor else 1


def deployed_quiet_cycle(mode: str, args: Any, proxy: CountingProxy, tmp: Path) -> dict[str, Any]:
    """A quiet cycle per calendar in ``mode`` (see :mod:`bench.modes`), on a fresh store."""
    entries = [
        {
            "name": f"cal{i}",
            "provider": "caldav",
            "url": proxy.url + "/",
            "username": f"user{i}",
            "password": PASSWORD,
            "calendar": "Work" if args.calendar_by == "name" else f"/user{i}/work/",
            "owner": manager(i),
            "timezone": "Europe/Stockholm",
        }
        for i in range(args.calendars)
    ]
    interval = args.interval or max(5.0, args.calendars / 10)
    org = rules_for(args.calendars).org
    return measure_deployed(mode, tmp, entries, org, proxy.take, interval)


QUERY_HORIZON = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
    "<D:prop><D:getetag/><C:calendar-data/></D:prop>"
    '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
    '<C:time-range start="{start}" end="{end}"/>'
    "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
)


def naive_quiet_cycle(proxy: CountingProxy, calendars: int) -> dict[str, Any]:
    """The naive cron script's cycle: the horizon's events in one calendar-query REPORT,
    then a PUT of every event it would give an agenda (a 1:1 or a stand-up it organises),
    whether or not it changed; as the Google bench's naive baseline does."""
    start = NOW.strftime("%Y%m%dT%H%M%SZ")
    end = (NOW + timedelta(days=14)).strftime("%Y%m%dT%H%M%SZ")
    body = QUERY_HORIZON.format(start=start, end=end)

    def one(i: int) -> None:
        user = f"user{i}"
        client = DAVClient(url=proxy.url + "/", username=user, password=PASSWORD, auth_type="basic")
        try:
            answer = client.report(f"{proxy.url}/{user}/work/", body, depth=1)
            text = answer.raw if isinstance(answer.raw, str) else answer.raw.decode()
            for name, data in calendar_events(i, 40).items():
                if f"{name}<" not in text or ("1:1" not in data and "stand-up" not in data):
                    continue
                client.put(
                    f"{proxy.url}/{user}/work/{name}", data, {"Content-Type": "text/calendar"}
                )
        finally:
            client.close()

    proxy.take()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(calendars)))
    return per_cycle(proxy.take(), calendars)


CycleResult = tuple[str, float, int, int, Counter[str], dict[str, Any]]


def measure(
    url: str, tmp: Path, calendars: int, proxy: CountingProxy | None = None
) -> list[CycleResult]:
    """Run the three cycles over every calendar; print requests by kind and wall time of each.

    With ``proxy`` (the one ``url`` points at), each cycle also carries what it counted.
    """
    rules = rules_for(calendars)
    renderer = AgendaRenderer()
    fingerprint = rules_fingerprint(rules, renderer)  # once, as the daemon does
    store = Store.open(f"sqlite:///{tmp / 'bench.db'}")
    providers = []
    for i in range(calendars):
        user = f"user{i}"
        # Basic auth up front: Radicale delays every 401 on purpose, and a
        # negotiating client would pay that once per calendar.
        client = DAVClient(url=url + "/", username=user, password=PASSWORD, auth_type="basic")
        providers.append(
            CaldavProvider(
                name=f"cal{i}",
                url=url + "/",
                username=user,
                password=PASSWORD,
                calendar=f"/{user}/work/",
                owner=manager(i),
                default_timezone="Europe/Stockholm",
                client=client,
            )
        )
    results: list[CycleResult] = []
    for label in ("first", "after-write", "steady"):
        if proxy is not None:
            proxy.take()
        requests: Counter[str] = Counter()
        writes = failed = 0
        started = time.perf_counter()
        for provider in providers:
            report = run_cycle(provider, store, rules, renderer, NOW, fingerprint=fingerprint)
            failed += not report.ok
            writes += report.writes
            requests.update(report.requests)
        elapsed = time.perf_counter() - started
        seen = proxy.take() if proxy is not None else {}
        results.append((label, elapsed, writes, failed, requests, seen))
        print(
            f"{label:12} {elapsed:7.2f}s  writes={writes:5}  failed={failed}  "
            f"requests={sum(requests.values()):5} {dict(sorted(requests.items()))}",
            flush=True,
        )
    for provider in providers:
        provider.close()
    store.close()
    return results


if __name__ == "__main__":
    sys.exit(main())
