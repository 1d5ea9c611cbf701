"""Managers from the Admin SDK Directory, over the real client against the local API."""

from __future__ import annotations

import pytest

from feedback_agendas.agendas.errors import RateLimited
from feedback_agendas.agendas.policy import Team
from feedback_agendas.integrations.directory.base import ManagerReports, merge_teams
from feedback_agendas.integrations.directory.google import GoogleDirectory
from feedback_agendas.integrations.retry import RetryPolicy
from tests.fakes.google_api import FakeGoogleCalendarAPI


def test_reports_come_from_direct_manager_queries_across_pages() -> None:
    with FakeGoogleCalendarAPI() as api:
        api.directory = {f"r{n:03d}@example.com": "boss@example.com" for n in range(620)}
        api.directory["other@example.com"] = "someone@example.com"
        api.suspended = {"r000@example.com"}
        directory = GoogleDirectory(
            credentials="anonymous", domain="example.com", api_endpoint=api.root
        )
        found = directory.reports_of("Boss@Example.com")
        assert found.manager == "boss@example.com"
        assert len(found.reports) == 619  # suspended users are not reports
        assert "other@example.com" not in found.reports
        assert directory.requests == 2  # 500 per page
        calls = [c for c in api.calls if c.kind == "users.list"]
        assert calls[0].params["query"] == "directManager='Boss@Example.com'"
        assert api.violations == []
        directory.close()


def test_rate_limits_are_retried_with_the_one_helper() -> None:
    with FakeGoogleCalendarAPI() as api:
        api.directory = {"a@example.com": "boss@example.com"}
        api.faults.inject("users.list", 429, "rateLimitExceeded", retry_after=2)
        slept: list[float] = []
        directory = GoogleDirectory(
            credentials="anonymous", api_endpoint=api.root, sleep=slept.append
        )
        assert directory.reports_of("boss@example.com").reports == {"a@example.com"}
        assert slept and slept[0] >= 2
        for _ in range(2):
            api.faults.inject("users.list", 429, "rateLimitExceeded")
        stubborn = GoogleDirectory(
            credentials="anonymous",
            api_endpoint=api.root,
            sleep=slept.append,
            retry_policy=RetryPolicy(attempts=2),
        )
        with pytest.raises(RateLimited):
            stubborn.reports_of("boss@example.com")
        directory.close()
        stubborn.close()


def test_config_teams_win_over_the_directory() -> None:
    configured = Team(
        name="platform", manager="boss@example.com", members=frozenset({"a@example.com"})
    )
    found = [
        ManagerReports("boss@example.com", frozenset({"a@example.com", "b@example.com"})),
        ManagerReports("carol@example.com", frozenset({"d@example.com"})),
        ManagerReports("nobody@example.com", frozenset()),
    ]
    teams = merge_teams([configured], found)
    assert teams[0] == configured
    assert [t.manager for t in teams] == ["boss@example.com", "carol@example.com"]
    assert teams[1].members == {"d@example.com"}
