"""Teams from the Admin SDK Directory, merged with the config's (config wins).

Real parts: the local API's ``users.list`` and Calendar API with the real
client, the engine and SQLite through ``sync_all`` and the daemon.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from feedback_agendas.integrations.directory.google import GoogleDirectory, GoogleDirectoryConfig
from feedback_agendas.integrations.retry import RetryPolicy
from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.commands import sync_all
from feedback_agendas.scheduler.service.daemon import Daemon
from feedback_agendas.scheduler.sync.org_directory import RulesCache, managers_to_ask, resolve_rules
from tests.fakes.google_api import FakeGoogleCalendarAPI

BOSS = "boss@example.com"
CAROL = "carol@example.com"
NOW = datetime(2026, 3, 23, 7, 0, tzinfo=UTC)
START_MARKER = "── feedback agenda ──"


@pytest.fixture
def api() -> Iterator[FakeGoogleCalendarAPI]:
    with FakeGoogleCalendarAPI() as fake:
        fake.add_calendar(BOSS)
        fake.add_calendar(CAROL)
        fake.directory = {
            "a@example.com": BOSS,
            "b@example.com": BOSS,
            "d@example.com": CAROL,
            "e@example.com": CAROL,
        }
        yield fake


def write_config(tmp: Path, api: FakeGoogleCalendarAPI, *, directory: bool = True) -> AppConfig:
    org: dict[str, Any] = {
        "internal_domains": ["example.com"],
        "teams": [{"name": "platform", "manager": BOSS, "members": ["a@example.com"]}],
    }
    if directory:
        org["directory"] = {
            "provider": "google",
            "credentials": "anonymous",
            "domain": "example.com",
            "api_endpoint": api.root,
        }
    data = {
        "storage": {"url": f"sqlite:///{tmp / 'fa.db'}"},
        "calendars": [
            {
                "name": name,
                "provider": "google",
                "owner": owner,
                "calendar_id": owner,
                "credentials": "anonymous",
                "api_endpoint": api.endpoint,
            }
            for name, owner in (("boss", BOSS), ("carol", CAROL))
        ],
        "org": org,
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_config(path)


def asked(api: FakeGoogleCalendarAPI) -> list[str]:
    return [c.params["query"] for c in api.calls if c.kind == "users.list"]


def test_the_directory_adds_teams_for_owners_the_config_does_not_cover(
    tmp_path: Path, api: FakeGoogleCalendarAPI
) -> None:
    cfg = write_config(tmp_path, api)
    assert managers_to_ask(cfg) == [CAROL]
    rules = resolve_rules(cfg)
    platform, found = rules.org.teams
    # Config wins: the configured team keeps exactly its members (not b@).
    assert platform == cfg.rules().org.teams[0]
    assert found.manager == CAROL and found.members == {"d@example.com", "e@example.com"}
    # Only the owner without a configured team is looked up.
    assert asked(api) == [f"directManager='{CAROL}'"]
    assert api.violations == []


def test_without_a_directory_the_config_teams_are_used_and_nobody_is_asked(
    tmp_path: Path, api: FakeGoogleCalendarAPI
) -> None:
    cfg = write_config(tmp_path, api, directory=False)
    assert resolve_rules(cfg) == cfg.rules()
    assert api.requests["users.list"] == 0


def test_a_directory_outage_falls_back_to_the_config(
    tmp_path: Path, api: FakeGoogleCalendarAPI, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = write_config(tmp_path, api)
    caplog.set_level(logging.DEBUG)

    def impatient(settings: GoogleDirectoryConfig) -> GoogleDirectory:
        return GoogleDirectory(
            credentials=str(settings.credentials),
            domain=settings.domain,
            api_endpoint=settings.api_endpoint,
            sleep=lambda _s: None,
            retry_policy=RetryPolicy(attempts=2),
        )

    for _ in range(2):
        api.faults.inject("users.list", 503, "backendError")
    assert resolve_rules(cfg, impatient) == cfg.rules()
    assert api.requests["users.list"] == 2
    # Refused outright (delegation missing): no retry, same fallback.
    api.faults.inject("users.list", 403, "forbidden")
    assert resolve_rules(cfg, impatient) == cfg.rules()
    ours = [
        r.getMessage()
        for r in caplog.records
        if r.name == "feedback_agendas.scheduler.sync.org_directory"
    ]
    assert ours == [
        "the org directory could not be read (TransientError); using the teams in the config",
        "the org directory could not be read (PermissionDenied); using the teams in the config",
    ]
    # Nothing listening at all.
    api.stop()
    assert resolve_rules(cfg, impatient) == cfg.rules()


def test_sync_all_writes_a_one_on_one_agenda_only_the_directory_knows(
    tmp_path: Path, api: FakeGoogleCalendarAPI
) -> None:
    start = NOW + timedelta(days=2)
    event = api.add_event(
        CAROL,
        {
            "summary": "Carol / Dana",
            "start": {"dateTime": start.isoformat()},
            "end": {"dateTime": (start + timedelta(minutes=30)).isoformat()},
            "attendees": [{"email": CAROL}, {"email": "d@example.com"}],
        },
    )

    def blocks() -> int:
        return str(api.event(CAROL, event["id"]).get("description", "")).count(START_MARKER)

    # The directory is down: carol manages no known team, so no 1:1 agenda.
    api.faults.inject("users.list", 403, "forbidden")
    sync_all(write_config(tmp_path, api), NOW)
    assert blocks() == 0
    sync_all(write_config(tmp_path, api), NOW)
    assert blocks() == 1


def test_the_daemon_asks_the_directory_at_most_once_a_day(
    tmp_path: Path, api: FakeGoogleCalendarAPI
) -> None:
    cfg = write_config(tmp_path, api)
    clock = [NOW]
    daemon = Daemon(cfg, clock=lambda: clock[0], replica_id="replica-a")
    try:
        assert [t.manager for t in daemon.rules.org.teams] == [BOSS, CAROL]
        assert api.requests["users.list"] == 1
        for hours in (1, 12, 23):
            clock[0] = NOW + timedelta(hours=hours)
            daemon.housekeeping()
        assert api.requests["users.list"] == 1
        api.directory["f@example.com"] = CAROL
        clock[0] = NOW + timedelta(hours=24, seconds=1)
        daemon.housekeeping()
        assert api.requests["users.list"] == 2
        assert "f@example.com" in daemon.rules.org.teams[1].members
    finally:
        daemon.shutdown()
        daemon.store.close()


def test_a_failed_refresh_keeps_the_last_good_teams_and_retries_within_hours(
    tmp_path: Path, api: FakeGoogleCalendarAPI
) -> None:
    cfg = write_config(tmp_path, api)
    cache = RulesCache(cfg)
    good = cache.rules(NOW)
    assert len(good.org.teams) == 2
    api.faults.inject("users.list", 403, "forbidden")
    later = NOW + timedelta(days=1)
    assert cache.rules(later) is good  # the outage does not drop carol's team
    assert cache.rules(later + timedelta(minutes=30)) is good  # not asked again yet
    assert api.requests["users.list"] == 2
    refreshed = cache.rules(later + timedelta(hours=1))
    assert api.requests["users.list"] == 3 and refreshed == good
