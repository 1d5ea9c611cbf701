"""Bench: sync cycles of many CalDAV calendars on a local Radicale.

Seeds N calendars x M events (default 200 x 40; not measured), starts Radicale
on a free loopback port, and runs the engine over every calendar three times:

1. **first**: full listing, decisions, one PUT per resource that gets a block;
2. **after-write**: the sync token moved because of our own PUTs;
3. **steady**: nothing changed.

It prints the HTTP requests per cycle (by kind) and the wall time of each.
Goal: a steady cycle makes exactly one sync-collection REPORT per calendar
and no PUT.

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
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from caldav.davclient import DAVClient
from radicale import item as radicale_item

from agendas.policy import Org, Rules, Team
from agendas.render import AgendaRenderer
from integrations.calendars.caldav import CaldavProvider
from scheduler.engine import run_cycle
from scheduler.store import Store
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
    args = parser.parse_args(argv)

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
            results = measure(server.url, Path(tmp), args.calendars)

    steady = results[-1][4]
    ok = steady == Counter({"report": args.calendars})
    print(f"steady goal (1 REPORT per calendar, 0 PUT): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


CycleResult = tuple[str, float, int, int, Counter[str]]


def measure(url: str, tmp: Path, calendars: int) -> list[CycleResult]:
    """Run the three cycles over every calendar; print requests by kind and wall time of each."""
    rules = rules_for(calendars)
    renderer = AgendaRenderer()
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
        requests: Counter[str] = Counter()
        writes = failed = 0
        started = time.perf_counter()
        for provider in providers:
            report = run_cycle(provider, store, rules, renderer, NOW)
            failed += not report.ok
            writes += report.writes
            requests.update(report.requests)
        elapsed = time.perf_counter() - started
        results.append((label, elapsed, writes, failed, requests))
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
