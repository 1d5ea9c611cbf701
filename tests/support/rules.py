"""Rules for tests: the example.com organisation and its team "platform"."""

from __future__ import annotations

from typing import Any

from feedback_agendas.agendas.policy import Org, Rules, Team


def platform_team(manager: str, *members: str, **options: Any) -> Team:
    """The team "platform" that ``manager`` leads; ``options`` are other Team fields."""
    return Team(name="platform", manager=manager, members=frozenset(members), **options)


def example_com_rules(*teams: Team, **options: Any) -> Rules:
    """Rules whose one internal domain is example.com; ``options`` are other Rules fields."""
    return Rules(org=Org(internal_domains=frozenset({"example.com"}), teams=teams), **options)
