"""Calendars from the directory (``discover: google_directory``), over the real client.

The Admin SDK Directory and Calendar v3 are the local fake over real HTTP;
google-api-python-client is used unchanged.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from feedback_agendas.integrations.directory.google_discovery import GoogleDirectoryPeople
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.cli import main
from feedback_agendas.scheduler.service.commands import sync_all
from feedback_agendas.scheduler.service.daemon import Daemon
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.sync.discovery import (
    REFRESHED,
    REFUSED,
    STORED,
    refresh_sources,
    resolve_calendars,
)
from tests.fakes.google_api import FakeGoogleCalendarAPI

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "example.com"
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
BOSS = f"boss@{DOMAIN}"


def person(i: int) -> str:
    return f"p{i:05d}@{DOMAIN}"


def seed_people(
    api: FakeGoogleCalendarAPI, count: int, unit: str = "/", calendars: bool = False
) -> list[str]:
    people = [person(i) for i in range(count)]
    for address in people:
        api.users[address] = unit
        api.directory[address] = BOSS  # the manager relation comes with users.list
        if calendars:
            api.add_calendar(address)
            api.add_event(address, one_on_one(address))
    return people


def one_on_one(owner: str) -> dict[str, Any]:
    start = NOW + timedelta(days=2)
    return {
        "summary": "1:1",
        "description": "my notes",
        "start": {"dateTime": start.isoformat(), "timeZone": "UTC"},
        "end": {"dateTime": (start + timedelta(minutes=30)).isoformat(), "timeZone": "UTC"},
        "attendees": [{"email": owner}, {"email": BOSS}],
    }


def write_config(tmp: Path, api: FakeGoogleCalendarAPI, **source: Any) -> Path:
    data = {
        "storage": {"url": f"sqlite:///{tmp / 'fa.db'}"},
        "calendars": [
            {
                "discover": "google_directory",
                "credentials": "anonymous",
                "subject": f"admin@{DOMAIN}",
                "domain": DOMAIN,
                "api_endpoint": api.root,
                **source,
            }
        ],
        # No teams: who reports to whom comes with the people (their manager relation).
        "org": {"internal_domains": [DOMAIN], "team_defaults": {"goals": ["Ship it"]}},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_a_whole_domain_of_5000_is_listed_in_ten_requests(tmp_path: Path) -> None:
    with FakeGoogleCalendarAPI() as api:
        people = seed_people(api, 5000)
        api.suspended = {people[0]}
        api.archived = {people[1]}
        api.users["someone@other.org"] = "/"
        cfg = load_config(write_config(tmp_path, api))
        store = Store.open(cfg.storage.url)
        try:
            [outcome] = refresh_sources(cfg, store, NOW)
        finally:
            store.close()
        assert outcome.state == REFRESHED
        assert len(outcome.people) == 4998  # neither suspended nor archived
        assert people[0] not in outcome.people and people[2] in outcome.people
        assert outcome.requests == api.requests["users.list"] <= math.ceil(5000 / 500)
        calls = [c for c in api.calls if c.kind == "users.list"]
        assert {c.params["maxResults"] for c in calls} == {"500"}
        assert all(c.params["domain"] == DOMAIN for c in calls)
        assert api.violations == []


def test_org_units_and_groups_narrow_the_list() -> None:
    with FakeGoogleCalendarAPI() as api:
        api.users.update(
            {
                f"ann@{DOMAIN}": "/Engineering",
                f"bob@{DOMAIN}": "/Engineering/Platform",  # a unit below counts
                f"cid@{DOMAIN}": "/Sales",
                f"dan@{DOMAIN}": "/Sales",
                f"eve@{DOMAIN}": "/Engineering",
            }
        )
        api.suspended = {f"eve@{DOMAIN}"}
        api.groups = {
            f"leads@{DOMAIN}": [f"dan@{DOMAIN}", f"eve@{DOMAIN}", "ext@other.org"]
            + [f"g{i:03d}@{DOMAIN}" for i in range(250)]  # two pages of members
        }
        source = GoogleDirectoryPeople(
            credentials="anonymous",
            domain=DOMAIN,
            org_units=["/Engineering"],
            groups=[f"leads@{DOMAIN}"],
            api_endpoint=api.root,
        )
        people = source.active_people()
        source.close()
        assert {f"ann@{DOMAIN}", f"bob@{DOMAIN}", f"dan@{DOMAIN}"} <= people
        assert f"cid@{DOMAIN}" not in people  # another unit, in no group
        assert f"eve@{DOMAIN}" not in people  # suspended
        assert "ext@other.org" not in people  # outside the domain
        assert len(people) == 3 + 250
        assert api.requests["users.list"] == 1 and api.requests["members.list"] == 2
        assert api.violations == []


def test_discovered_people_are_synced_and_a_failed_refresh_keeps_them(tmp_path: Path) -> None:
    with FakeGoogleCalendarAPI() as api:
        people = seed_people(api, 4, calendars=True)
        cfg = load_config(write_config(tmp_path, api))
        reports = sync_all(cfg, NOW)
        assert sorted(r.calendar for r in reports) == people
        # Each 1:1 with their manager got its agenda: the team came with the listing.
        assert all(r.ok and r.writes == 1 for r in reports)
        store = Store.open(cfg.storage.url)
        try:
            [team] = resolve_calendars(cfg, store, NOW, refresh=False).rules().org.teams
        finally:
            store.close()
        assert (team.name, team.manager) == (f"directory:{BOSS}", BOSS)
        assert team.members == frozenset(people) and team.goals == ("Ship it",)

        # A day later the directory refuses us: the calendars stay, and sync goes on.
        api.faults.inject("users.list", 403, "forbidden")
        later = NOW + timedelta(days=1, minutes=1)
        reports = sync_all(cfg, later)
        assert api.requests["users.list"] == 2
        assert sorted(r.calendar for r in reports) == people
        assert all(r.ok for r in reports)
        store = Store.open(cfg.storage.url)
        try:
            # Asked again an hour after the failure, not at every sync meanwhile.
            [outcome] = refresh_sources(cfg, store, later + timedelta(minutes=5))
            assert outcome.state == STORED and outcome.error_kind == "PermissionDenied"
            assert len(outcome.people) == 4
            assert api.requests["users.list"] == 2
            [outcome] = refresh_sources(cfg, store, later + timedelta(hours=1))
            assert outcome.state == REFRESHED and outcome.error_kind is None
        finally:
            store.close()


def test_a_refresh_that_drops_30_percent_waits_for_accept(tmp_path: Path) -> None:
    with FakeGoogleCalendarAPI() as api:
        people = seed_people(api, 10, calendars=True)
        config = write_config(tmp_path, api)
        cfg = load_config(config)
        assert len(sync_all(cfg, NOW)) == 10

        for gone in people[:3]:  # a mistake in the directory: three of ten vanish
            del api.users[gone], api.directory[gone]
        later = NOW + timedelta(days=1, minutes=1)
        reports = sync_all(cfg, later)
        assert sorted(r.calendar for r in reports) == people  # nobody dropped

        code, out = cli("discover", "--config", str(config), "--dry-run")
        assert code == 0, out
        assert "previewed: 7 people" in out
        assert all(f"  - {gone} (no longer synced)" in out for gone in people[:3])

        code, out = cli("discover", "--config", str(config))
        assert code == 1, out  # refused: it waits for --accept
        assert "refused: 10 people" in out
        assert "would stop syncing 3 of 10 (30%, more than 10% at once)" in out
        assert all(f"  - {gone}" in out for gone in people[:3])
        assert len(sync_all(cfg, later)) == 10

        code, out = cli("discover", "--config", str(config), "--accept")
        assert code == 0, out
        assert "accepted: 7 people" in out
        reports = sync_all(cfg, later)
        assert sorted(r.calendar for r in reports) == people[3:]

        # Their records stay until the admin reverts their calendar by address.
        code, out = cli("status", "--config", str(config), "--json")
        assert people[0] in json.loads(out)
        code, out = cli("revert", "--config", str(config), "--calendar", people[0])
        assert code == 0, out
        assert out.splitlines()[0] == f"{people[0]}: removed 1 block(s)"
        assert next(iter(api.calendars[people[0]].events.values()))["description"] == "my notes"


def test_someone_who_leaves_stops_being_synced_by_the_daemon(tmp_path: Path) -> None:
    with FakeGoogleCalendarAPI() as api:
        people = seed_people(api, 20, calendars=True)
        cfg = load_config(write_config(tmp_path, api))
        clock = [NOW]
        daemon = Daemon(cfg, clock=lambda: clock[0])
        changes: list[tuple[list[str], list[str]]] = []
        daemon.on_calendars_changed = lambda added, removed: changes.append((added, removed))
        try:
            assert sorted(daemon.calendars) == people
            assert daemon.sync_calendar(people[5]) is not None
            listed = api.requests["users.list"]

            api.suspended.add(people[5])  # one of twenty (5%): within the share
            api.users[person(99)] = "/"
            api.add_calendar(person(99))
            clock[0] = NOW + timedelta(hours=2)
            daemon.housekeeping()
            assert api.requests["users.list"] == listed  # not again within the day
            clock[0] = NOW + timedelta(days=1, minutes=1)
            daemon.housekeeping()
            assert changes == [([person(99)], [people[5]])]
            assert people[5] not in daemon.calendars and person(99) in daemon.calendars
            assert daemon.sync_calendar(people[5]) is None
            requests = sum(api.requests.values())
            assert daemon.sync_calendar(person(99)) is not None
            assert sum(api.requests.values()) > requests
        finally:
            daemon.shutdown()
            daemon.store.close()


def test_a_cron_sync_uses_the_stored_list_within_the_day(tmp_path: Path) -> None:
    with FakeGoogleCalendarAPI() as api:
        seed_people(api, 3, calendars=True)
        config = write_config(tmp_path, api)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}

        def cron_sync() -> dict[str, Any]:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "feedback_agendas.scheduler.service.cli",
                    "sync",
                    "--config",
                    str(config),
                    "--json",
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            return dict(json.loads(done.stdout))

        first = cron_sync()
        assert api.requests["users.list"] == 1
        second = cron_sync()
        assert api.requests["users.list"] == 1  # a new process, the same stored list
        assert first["writes"] == 3 and second["writes"] == 0


@pytest.mark.parametrize("share, refused", [(0.5, False), (0.2, True)])
def test_the_removal_share_is_configurable(tmp_path: Path, share: float, refused: bool) -> None:
    with FakeGoogleCalendarAPI() as api:
        people = seed_people(api, 10)
        cfg = load_config(write_config(tmp_path, api, max_removal_share=share))
        store = Store.open(cfg.storage.url)
        try:
            refresh_sources(cfg, store, NOW)
            for gone in people[:3]:
                api.suspended.add(gone)
            [outcome] = refresh_sources(cfg, store, NOW, force=True)
            assert (outcome.state == REFUSED) is refused
            assert len(outcome.people) == (10 if refused else 7)
        finally:
            store.close()
