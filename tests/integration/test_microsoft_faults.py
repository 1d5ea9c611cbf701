"""Faults on the way to Graph: throttling with Retry-After, 503s, a delta round that expires
half-way, and a nextLink that repeats; every one ends in a converged calendar (or a clear
error that the next cycle recovers from), with no extra meeting update."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from feedback_agendas.agendas.block import START_MARKER
from feedback_agendas.agendas.errors import CursorExpired, ProviderError, RateLimited
from feedback_agendas.agendas.policy import Org, Rules, Team
from feedback_agendas.agendas.render import AgendaRenderer
from feedback_agendas.integrations.calendars.microsoft import MicrosoftProvider
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.sync.cycle import run_cycle
from tests.fakes.graph_api import FakeGraph, Request
from tests.support.graph import graph_provider, graph_session, start_graph

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
MONA = "mona@example.com"
REPORTS = [f"r{n}@example.com" for n in range(5)]
RULES = Rules(
    org=Org(
        internal_domains=frozenset({"example.com"}),
        teams=(Team("platform", MONA, frozenset(REPORTS), timezone="Europe/Stockholm"),),
    )
)
DELTA = r"/v1\.0/users/([^/]+)/calendarView/delta"


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = start_graph()
    start = (NOW + timedelta(days=1)).replace(hour=8)
    for n, report in enumerate(REPORTS):
        begin = start + timedelta(hours=n)
        fake.store.add_event(
            MONA,
            subject=f"{report.split('@')[0]} / Mona",
            start=begin,
            end=begin + timedelta(minutes=30),
            body=f"Dial-in {n}",
            attendees=[(MONA, "required"), (report, "required")],
            weekly=n % 2 == 0,
        )
    yield fake
    fake.stop()
    assert fake.violations == []


@pytest.fixture
def store() -> Iterator[Store]:
    made = Store.open("sqlite:///:memory:")
    yield made
    made.close()


def provider(graph: FakeGraph, slept: list[float] | None = None, **kw: Any) -> MicrosoftProvider:
    session = graph_session(graph, sleep=(slept.append if slept is not None else lambda _s: None))
    return graph_provider(graph, MONA, session=session, own_session=True, now=lambda: NOW, **kw)


def converged(graph: FakeGraph) -> None:
    for event in graph.store.mailboxes[MONA].events.values():
        assert event["body"]["content"].count(START_MARKER) == 1, event["subject"]
    sent: dict[tuple[str, str], int] = {}
    for _box, event_id, attendee in graph.updates():
        sent[(event_id, attendee)] = sent.get((event_id, attendee), 0) + 1
    assert set(sent.values()) == {1} and len(sent) == len(REPORTS)


def test_429_and_503_are_retried_after_what_retry_after_says(
    graph: FakeGraph, store: Store
) -> None:
    slept: list[float] = []
    made = provider(graph, slept)
    graph.fail("delta", 429, retry_after=7)
    graph.fail("batch_get", 429, retry_after=3)  # one call inside the $batch
    graph.fail("patch", 503, retry_after=2)
    graph.fail("patch", 503)  # no Retry-After: our own backoff
    try:
        report = run_cycle(made, store, RULES, AgendaRenderer(), NOW)
    finally:
        made.close()
    assert report.ok, report.error_message
    assert report.writes == len(REPORTS)
    assert slept[:4] == [7.0, 3.0, 2.0, 2.0]
    converged(graph)  # a 503'd PATCH did not land: still one update each


def test_throttling_that_does_not_end_fails_the_cycle_and_the_next_recovers(
    graph: FakeGraph, store: Store
) -> None:
    slept: list[float] = []
    made = provider(graph, slept)
    graph.fail("delta", 429, retry_after=30, times=5)
    try:
        with pytest.raises(RateLimited):
            made.read_changes(None)
        assert slept == [30.0] * 4  # bounded: four waits, then the error
        report = run_cycle(made, store, RULES, AgendaRenderer(), NOW)
    finally:
        made.close()
    assert report.ok and report.writes == len(REPORTS)
    converged(graph)


def delta_hook(graph: FakeGraph, on_call: Any) -> None:
    serve = next(h for m, p, h in graph.routes if m == "GET" and p.pattern == DELTA)
    calls = [0]

    def hooked(request: Request, match: re.Match[str]) -> Any:
        calls[0] += 1
        on_call(calls[0], request)
        return serve(request, match)

    graph.route("GET", DELTA, hooked)


def pages_of_a_round(graph: FakeGraph) -> int:
    before = graph.requests["delta"]
    made = provider(graph, page_size=2)
    try:
        made.read_changes(None)
    finally:
        made.close()
    pages = graph.requests["delta"] - before
    assert pages > 2
    return pages


def test_a_410_in_the_middle_of_a_new_round_starts_it_once_more(graph: FakeGraph) -> None:
    pages = pages_of_a_round(graph)
    delta_hook(graph, lambda n, _r: graph.expire_delta() if n == 2 else None)
    made = provider(graph, page_size=2)
    before = graph.requests["delta"]
    try:
        changes = made.read_changes(None)
    finally:
        made.close()
    assert changes.full and len(changes.meetings) == len(REPORTS)
    assert graph.requests["delta"] - before == 2 + pages  # a page, a 410, the whole round


def test_a_410_in_the_middle_of_a_stored_round_gives_one_full_resync(
    graph: FakeGraph, store: Store
) -> None:
    pages = pages_of_a_round(graph)
    made = provider(graph, page_size=2)
    try:
        assert run_cycle(made, store, RULES, AgendaRenderer(), NOW).ok
        # Users change every meeting: the next round has pages, and it expires half-way.
        for ident in list(graph.store.mailboxes[MONA].events):
            graph.store.user_edit(MONA, ident, {"subject": "moved to the big room"})
        before = graph.requests["delta"]
        delta_hook(graph, lambda n, _r: graph.expire_delta() if n == 2 else None)
        report = run_cycle(made, store, RULES, AgendaRenderer(), NOW)
    finally:
        made.close()
    assert report.ok and report.full_resync
    assert graph.requests["delta"] - before == 2 + pages
    converged(graph)


def test_a_repeating_next_link_stops_the_round_instead_of_looping(
    graph: FakeGraph, store: Store
) -> None:
    graph.repeat_next_link = True
    made = provider(graph, page_size=2)
    try:
        with pytest.raises(ProviderError, match="nextLink repeated"):
            made.read_changes(None)
        assert graph.requests["delta"] == 2
        failed = run_cycle(made, store, RULES, AgendaRenderer(), NOW)
        assert failed.error is not None and graph.updates() == []
        graph.repeat_next_link = False
        report = run_cycle(made, store, RULES, AgendaRenderer(), NOW)
        assert report.ok and report.writes == len(REPORTS)
        # From a stored cursor a repeat starts a new round (CursorExpired) instead.
        stored = made.read_changes(None)
        for ident in list(graph.store.mailboxes[MONA].events):
            graph.store.user_edit(MONA, ident, {"subject": "renamed"})
        graph.repeat_next_link = True
        with pytest.raises(CursorExpired):
            made.read_changes(stored.cursor)
    finally:
        made.close()
    converged(graph)


def test_at_most_four_requests_are_in_flight_per_mailbox(graph: FakeGraph) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from feedback_agendas.agendas.errors import NotFound

    session = graph_session(graph)
    graph.latency = 0.05

    def one(mailbox: str) -> None:
        with pytest.raises(NotFound):
            session.call("GET", f"users/{mailbox}/events/none", mailbox=mailbox, kind="get")

    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(one, [MONA] * 12 + ["lena@example.com"] * 12))
    finally:
        session.close()
    assert graph.max_in_flight[MONA] == 4
    assert graph.max_in_flight["lena@example.com"] == 4


def test_one_event_refused_is_skipped_and_the_rest_are_written(
    graph: FakeGraph, store: Store
) -> None:
    made = provider(graph)
    graph.fail("batch_get", 403, code="ErrorAccessDenied")
    try:
        report = run_cycle(made, store, RULES, AgendaRenderer(), NOW)
    finally:
        made.close()
    assert report.error is None
    assert report.skipped["malformed"] == 1
    assert report.writes == len(REPORTS) - 1
