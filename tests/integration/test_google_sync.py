"""End to end: the engine over the Google provider, the real client and the local API.

First cycle, steady state, 410 resync, 412 re-merge, a failed write retried in
the next cycle, and convergence of a seeded synthetic org under injected faults.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from feedback_agendas.agendas.policy import Rules
from feedback_agendas.agendas.render import AgendaRenderer
from feedback_agendas.integrations.calendars.google import GoogleProvider
from feedback_agendas.integrations.retry import RetryPolicy
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.sync.cycle import run_cycle
from feedback_agendas.scheduler.sync.report import CycleReport
from tests.fakes.google_api import FakeGoogleCalendarAPI, Faults
from tests.fakes.google_org import NOW, SyntheticOrg, rules_for, seed_org

START_MARKER = "── feedback agenda ──"


@pytest.fixture(scope="module")
def renderer() -> AgendaRenderer:
    return AgendaRenderer()


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store.open("sqlite:///:memory:")
    yield s
    s.close()


class Org:
    """A seeded org, one provider per calendar, and a way to run cycles."""

    def __init__(
        self,
        api: FakeGoogleCalendarAPI,
        store: Store,
        renderer: AgendaRenderer,
        calendars: int,
        events: int,
        **provider_kw: Any,
    ) -> None:
        self.api = api
        self.store = store
        self.renderer = renderer
        self.seeded: SyntheticOrg = seed_org(api, calendars, events)
        self.rules: Rules = rules_for(calendars)
        provider_kw.setdefault("sleep", lambda _s: None)
        self.providers = [
            GoogleProvider(
                name=c,
                owner=c,
                calendar_id=c,
                api_endpoint=api.endpoint,
                rng=random.Random(5),
                **provider_kw,
            )
            for c in self.seeded.calendars
        ]

    def cycle(self) -> list[CycleReport]:
        return [run_cycle(p, self.store, self.rules, self.renderer, NOW) for p in self.providers]

    def close(self) -> None:
        for p in self.providers:
            p.close()

    def blocks(self, key: tuple[str, str]) -> int:
        return str(self.api.event(*key).get("description", "")).count(START_MARKER)

    def assert_converged(self) -> None:
        for key, kind in self.seeded.kinds.items():
            description = str(self.api.event(*key).get("description", ""))
            text = self.seeded.user_text[key]
            assert description.startswith(text), (key, kind)
            if key in set(self.seeded.eligible()):
                assert description.count(START_MARKER) == 1, (key, kind)
            else:
                assert description == text, (key, kind)


@pytest.fixture
def api() -> Iterator[FakeGoogleCalendarAPI]:
    with FakeGoogleCalendarAPI() as fake:
        yield fake


@pytest.fixture
def make_org(store: Store, renderer: AgendaRenderer) -> Iterator[Callable[..., Org]]:
    made: list[Org] = []

    def make(api: FakeGoogleCalendarAPI, calendars: int, events: int, **kw: Any) -> Org:
        org = Org(api, store, renderer, calendars, events, **kw)
        made.append(org)
        return org

    yield make
    for org in made:
        org.close()


def total(reports: list[CycleReport], kind: str) -> int:
    return sum(r.requests[kind] for r in reports)


def test_first_cycle_then_a_steady_cycle(
    api: FakeGoogleCalendarAPI, make_org: Callable[..., Org]
) -> None:
    org = make_org(api, calendars=3, events=30)
    first = org.cycle()
    assert all(r.ok for r in first)
    writes = sum(r.writes for r in first)
    assert writes == len(org.seeded.eligible())
    assert total(first, "list") == 3  # ceil(events / 2500) per calendar
    assert total(first, "batch") == sum(math.ceil(r.writes / 50) for r in first)
    org.assert_converged()
    # Our own writes come back through the sync token once: nothing to do.
    second = org.cycle()
    assert sum(r.writes for r in second) == 0
    steady = org.cycle()
    assert sum(r.writes for r in steady) == 0
    assert [dict(r.requests) for r in steady] == [{"list": 1}] * 3
    org.assert_converged()
    assert api.violations == []


def test_an_expired_token_gives_one_full_resync_and_no_duplicate_block(
    api: FakeGoogleCalendarAPI, make_org: Callable[..., Org]
) -> None:
    org = make_org(api, calendars=1, events=30)
    org.cycle()
    org.cycle()
    api.expire_sync_tokens(org.seeded.calendars[0])
    (report,) = org.cycle()
    assert report.ok and report.full_resync
    assert report.writes == 0
    assert report.requests["list"] == 2  # the 410, then one full listing
    org.assert_converged()
    (after,) = org.cycle()
    assert not after.full_resync and dict(after.requests) == {"list": 1}


def test_a_concurrent_user_edit_is_re_read_and_merged(
    api: FakeGoogleCalendarAPI, make_org: Callable[..., Org]
) -> None:
    org = make_org(api, calendars=1, events=10)
    api.faults.inject("patch", concurrent_edit=True)
    (report,) = org.cycle()
    assert report.ok and report.conflicts == 1
    assert report.requests["get"] == 1  # the re-read of the event the user edited
    edited = [c for c in api.calls if c.kind == "patch" and c.status == 412]
    assert len(edited) == 1
    event_id = edited[0].path.rsplit("/", 1)[1]
    key = (org.seeded.calendars[0], event_id)
    description = str(api.event(*key)["description"])
    assert "concurrent note 1" in description  # the user's words survive
    assert description.count(START_MARKER) == 1
    org.assert_converged()


def test_a_write_given_up_in_one_cycle_is_retried_in_the_next(
    api: FakeGoogleCalendarAPI, make_org: Callable[..., Org]
) -> None:
    org = make_org(api, calendars=1, events=10, retry_policy=RetryPolicy(attempts=2))
    key = org.seeded.eligible()[0]
    api.faults.inject("patch", 503, "backendError", path_endswith="/" + key[1])
    api.faults.inject("patch", 503, "backendError", path_endswith="/" + key[1])
    (first,) = org.cycle()
    assert first.errors["network"] == 1
    assert org.blocks(key) == 0
    org.cycle()  # our other writes come back through the token; the failed one does not
    org.assert_converged()
    assert org.blocks(key) == 1


def test_a_block_the_user_edited_is_never_overwritten(
    api: FakeGoogleCalendarAPI, make_org: Callable[..., Org]
) -> None:
    org = make_org(api, calendars=1, events=10)
    org.cycle()
    key = org.seeded.eligible()[0]
    description = str(api.event(*key)["description"])
    edited = description.replace("Situation: ___", "Situation: the Monday demo")
    assert edited != description
    api.user_edit(*key, {"description": edited})
    org.cycle()
    org.cycle()
    assert api.event(*key)["description"] == edited


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_convergence_under_faults(make_org: Callable[..., Org], seed: int) -> None:
    """20% transient errors, 2% 410s and 5% 412s: every eligible meeting ends with one block."""
    faults = Faults(seed=seed, transient_rate=0.20, gone_rate=0.02, conflict_rate=0.05)
    with FakeGoogleCalendarAPI(faults=faults) as api:
        org = make_org(api, calendars=4, events=40)
        for _ in range(5):
            org.cycle()
        org.assert_converged()
        patches = [c for c in api.calls if c.kind == "patch"]
        assert patches
        assert all(c.headers.get("if-match") for c in patches)
        assert all(c.params.get("sendUpdates") == "none" for c in patches)
        assert api.user_edits > 0  # conflicts did happen, and their notes survived
        notes = sum(
            str(api.event(*key).get("description", "")).count("concurrent note")
            for key in org.seeded.kinds
        )
        assert notes == api.user_edits
        assert api.violations == []
