"""Calendars and managers from Entra ID (``discover: microsoft_directory``,
``org.directory: {provider: microsoft}``), over msal and requests against the
local Graph over HTTPS (tests/fakes/graph_directory.py adds the directory)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from feedback_agendas.agendas.block import START_MARKER
from feedback_agendas.integrations.calendars.microsoft_config import MicrosoftCalendar
from feedback_agendas.integrations.directory.microsoft import MicrosoftDirectory
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.cli import main
from feedback_agendas.scheduler.service.commands import sync_all
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.sync.discovery import (
    FAILED,
    REFRESHED,
    REFUSED,
    refresh_sources,
    resolve_calendars,
)
from feedback_agendas.scheduler.sync.org_directory import resolve_rules
from tests.fakes.graph_api import FakeGraph
from tests.fakes.graph_directory import GraphDirectory
from tests.support.graph import CLIENT_ID, SECRET, app_keys, graph_session, start_graph

DOMAIN = "example.com"
BOSS = f"boss@{DOMAIN}"
CAROL = f"carol@{DOMAIN}"


def person(i: int) -> str:
    return f"p{i:05d}@{DOMAIN}"


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = start_graph()
    yield fake
    fake.stop()
    assert fake.violations == []


@pytest.fixture
def directory(graph: FakeGraph) -> GraphDirectory:
    return GraphDirectory(graph)


def write_config(tmp: Path, graph: FakeGraph, **source: Any) -> Path:
    data = {
        "storage": {"url": f"sqlite:///{tmp / 'fa.db'}"},
        "calendars": [{"discover": "microsoft_directory", **app_keys(graph), **source}],
        # No teams: who reports to whom comes with the people (their managers).
        "org": {"internal_domains": [DOMAIN], "team_defaults": {"goals": ["Ship it"]}},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def seed(directory: GraphDirectory, count: int) -> list[str]:
    directory.add_user(BOSS)
    people = [person(i) for i in range(count)]
    for address in people:
        directory.add_user(address, manager=BOSS)
    return people


def refresh(path: Path, now: datetime, **kw: Any) -> Any:
    cfg = load_config(path)
    store = Store.open(cfg.storage.url)
    try:
        [outcome] = refresh_sources(cfg, store, now, **kw)
        return outcome
    finally:
        store.close()


def test_every_enabled_user_with_a_mail_becomes_a_calendar_in_pages_of_999(
    tmp_path: Path, graph: FakeGraph, directory: GraphDirectory
) -> None:
    people = seed(directory, 2500)
    directory.add_user("off@example.com", enabled=False, manager=BOSS)
    directory.add_user("guest@partner.org", guest=True, manager=BOSS)
    directory.add_user(None)  # no mailbox
    path = write_config(tmp_path, graph, write_mode="reminder", exclude=[person(7)])
    now = datetime.now(UTC)
    outcome = refresh(path, now)
    assert outcome.state == REFRESHED
    assert outcome.people == frozenset([*people, BOSS])
    # 2,504 users in pages of 999; the managers in $batches of 20.
    assert graph.requests["users"] == math.ceil(2504 / 999) == 3
    assert graph.requests["batch"] == math.ceil(2501 / 20)
    assert outcome.requests == graph.requests["users"] + graph.requests["batch"]
    assert outcome.managers[person(0)] == BOSS and BOSS not in outcome.managers

    cfg = load_config(path)
    store = Store.open(cfg.storage.url)
    try:
        resolved = resolve_calendars(cfg, store, now, refresh=False)
    finally:
        store.close()
    calendars = {c.name: c for c in resolved.calendars}
    assert len(calendars) == 2500 and person(7) not in calendars  # excluded
    mona = calendars[person(1)]
    assert isinstance(mona, MicrosoftCalendar)
    assert (mona.owner, mona.tenant_id, mona.client_id) == (person(1), graph.tenant, CLIENT_ID)
    assert mona.write_mode == "reminder" and mona.client_secret is not None
    assert SECRET not in repr(mona)
    [team] = resolved.rules().org.teams
    assert (team.name, team.manager) == (f"directory:{BOSS}", BOSS)
    assert len(team.members) == 2499 and team.goals == ("Ship it",)


def test_a_discovered_calendar_is_synced_with_the_shared_app(
    tmp_path: Path, graph: FakeGraph, directory: GraphDirectory
) -> None:
    [alice] = seed(directory, 1)
    start = (datetime.now(UTC) + timedelta(days=2)).replace(hour=9, minute=0, microsecond=0)
    event = graph.store.add_event(
        alice,
        subject="Alice / Boss",
        start=start,
        end=start + timedelta(minutes=30),
        attendees=[(BOSS, "required")],
    )
    cfg = load_config(write_config(tmp_path, graph))
    reports = {r.calendar: r for r in sync_all(cfg, datetime.now(UTC))}
    assert sorted(reports) == sorted([alice, BOSS])
    assert all(r.ok for r in reports.values())
    written = graph.store.find(alice, event)
    assert written is not None and START_MARKER in written["body"]["content"]
    # The source and every calendar it made share the app's one session: one token.
    assert graph.requests["token"] == 1


def test_groups_narrow_the_list_to_their_nested_members(
    tmp_path: Path, graph: FakeGraph, directory: GraphDirectory
) -> None:
    people = seed(directory, 6)
    directory.add_user("off@example.com", enabled=False)
    inner = directory.add_group("inner@example.com", [people[4], "off@example.com"])
    directory.add_group("eng@example.com", [people[0], people[1], inner])
    other = directory.add_group("sales@example.com", [people[5]])
    outcome = refresh(
        write_config(tmp_path, graph, groups=["eng@example.com", other]), datetime.now(UTC)
    )
    assert outcome.state == REFRESHED
    assert outcome.people == {people[0], people[1], people[4], people[5]}
    assert graph.requests["users"] == 0  # only the groups were listed
    assert graph.requests["groups"] == 1  # eng@ named by its mail; sales by its id
    assert graph.requests["transitiveMembers"] == 2


def test_a_failed_refresh_keeps_the_calendars(
    tmp_path: Path, graph: FakeGraph, directory: GraphDirectory
) -> None:
    people = seed(directory, 5)
    path = write_config(tmp_path, graph)
    now = datetime.now(UTC)
    assert refresh(path, now).state == REFRESHED
    graph.fail("users", 403, code="Authorization_RequestDenied")
    later = now + timedelta(days=1, minutes=1)
    outcome = refresh(path, later)
    assert outcome.state == FAILED and outcome.error_kind == "PermissionDenied"
    assert outcome.people == frozenset([*people, BOSS])
    # A failure among the manager lookups fails the refresh too: no half list of teams.
    graph.fail("manager", 403, times=1)
    outcome = refresh(path, later + timedelta(hours=1))
    assert outcome.state == FAILED and len(outcome.people) == 6
    cfg = load_config(path)
    store = Store.open(cfg.storage.url)
    try:
        resolved = resolve_calendars(cfg, store, later, refresh=False)
    finally:
        store.close()
    assert sorted(c.name for c in resolved.calendars) == sorted([*people, BOSS])


def test_a_refresh_that_drops_30_percent_waits_for_accept(
    tmp_path: Path, graph: FakeGraph, directory: GraphDirectory
) -> None:
    people = seed(directory, 9)  # ten with the boss
    path = write_config(tmp_path, graph)
    now = datetime.now(UTC)
    assert len(refresh(path, now).people) == 10
    for gone in people[:3]:  # a mistake in Entra: three of ten vanish
        directory.remove(gone)
    outcome = refresh(path, now + timedelta(days=1, minutes=1))
    assert outcome.state == REFUSED and len(outcome.people) == 10
    assert outcome.pending_removed == tuple(people[:3])
    result = CliRunner().invoke(main, ["discover", "--config", str(path), "--accept"])
    assert result.exit_code == 0, result.output
    assert "accepted: 7 people" in result.output
    cfg = load_config(path)
    store = Store.open(cfg.storage.url)
    try:
        resolved = resolve_calendars(cfg, store, now, refresh=False)
    finally:
        store.close()
    assert sorted(c.name for c in resolved.calendars) == sorted([*people[3:], BOSS])


def test_direct_reports_make_a_team_and_a_manager_404_means_none(
    tmp_path: Path, graph: FakeGraph, directory: GraphDirectory
) -> None:
    directory.add_user(BOSS)
    directory.add_user(CAROL)  # manages nobody, and has no manager (404)
    reports = [f"r{n:04d}@{DOMAIN}" for n in range(1200)]  # two pages of direct reports
    for address in reports:
        directory.add_user(address, manager=BOSS)
    directory.add_user("gone@example.com", enabled=False, manager=BOSS)

    session = graph_session(graph)
    try:
        reader = MicrosoftDirectory(session)
        found = reader.reports_of("Boss@Example.com")
        assert found.manager == BOSS and found.reports == frozenset(reports)
        assert reader.requests == graph.requests["directReports"] == 2
        assert reader.reports_of(CAROL).reports == frozenset()
        assert reader.reports_of("stranger@example.com").reports == frozenset()  # 404
    finally:
        session.close()

    data = {
        "storage": {"url": f"sqlite:///{tmp_path / 'fa.db'}"},
        "calendars": [
            {"name": name, "provider": "microsoft", "owner": owner, **app_keys(graph)}
            for name, owner in (("boss", BOSS), ("carol", CAROL))
        ],
        "org": {
            "internal_domains": [DOMAIN],
            "teams": [{"name": "platform", "manager": CAROL, "members": [reports[0]]}],
            "directory": {"provider": "microsoft", **app_keys(graph)},
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    teams = {t.name: t for t in resolve_rules(load_config(path)).org.teams}
    assert set(teams) == {"platform", f"directory:{BOSS}"}  # the config's team wins for Carol
    assert teams[f"directory:{BOSS}"].members == frozenset(reports)

    # Discovery asks each person's manager: a 404 is simply no manager.
    outcome = refresh(write_config(tmp_path, graph), datetime.now(UTC))
    assert outcome.managers.get(CAROL) is None and outcome.managers.get(BOSS) is None
    assert outcome.managers[reports[5]] == BOSS
    assert graph.requests["manager"] == 1202


def test_bad_entries_name_the_file_line_and_key(tmp_path: Path, graph: FakeGraph) -> None:
    path = write_config(tmp_path, graph, groups=["not a group"])
    result = CliRunner().invoke(main, ["check-config", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}:" in result.output
    assert "calendars[0].groups[0]: name a group by its object id (a GUID)" in result.output
    path = write_config(tmp_path, graph, client_secret="")
    result = CliRunner().invoke(main, ["check-config", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert "calendars[0].client_secret: is empty" in result.output
    # check-config looks at what the source names on this machine, as for a calendar.
    keys = {"client_secret": None, "certificate": {"path": "app.pem", "thumbprint": "ab" * 20}}
    data = yaml.safe_load(write_config(tmp_path, graph, **keys).read_text())
    del data["calendars"][0]["client_secret"]
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = CliRunner().invoke(main, ["check-config", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert f"calendars[0].certificate.path: file not found: {tmp_path / 'app.pem'}" in (
        result.output
    )
    path = write_config(tmp_path, graph, discover="microsoft_directry")
    result = CliRunner().invoke(main, ["check-config", "--config", str(path)])
    assert "calendars[0].discover: should be one of: google_directory, microsoft_directory" in (
        result.output
    )
