"""A calendar's cycles in one daemon: one at a time whatever triggers them, one provider for
the life of the process.

Real parts: SQLite through the store's migrations, the real leases, the real
google-api-python-client over HTTP against the local Calendar API
(``tests/fakes/google_api.py``). The daemon runs on an injected clock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from feedback_agendas.agendas.model import ChangeSet
from feedback_agendas.integrations.calendars.base import CalendarProvider
from feedback_agendas.integrations.calendars.memory import MemoryProvider
from feedback_agendas.integrations.ratelimit import QUOTA_COOLDOWN_SECONDS
from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.daemon import Daemon, push_sync_job, register, sync_job
from feedback_agendas.scheduler.sync.providers import build_provider
from tests.fakes.google_api import FakeGoogleCalendarAPI
from tests.support.clock import Clock

T0 = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
MONA = "mona@example.com"
LEASE = "calendar:mona"


def write_config(tmp: Path, calendar: dict[str, Any]) -> AppConfig:
    data = {
        "storage": {"url": f"sqlite:///{tmp / 'fa.db'}"},
        "calendars": [{"name": "mona", "owner": MONA, **calendar}],
        "org": {"internal_domains": ["example.com"]},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_config(path)


class GatedCalendar(MemoryProvider):
    """A memory calendar whose first ``read_changes`` waits at a gate; counts who is inside."""

    def __init__(self) -> None:
        super().__init__("mona", MONA)
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.calls = 0
        self.inside = 0
        self.most_inside = 0
        self._count = threading.Lock()

    def read_changes(self, cursor: str | None) -> ChangeSet:
        with self._count:
            self.calls += 1
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            first = self.calls == 1
        try:
            if first:
                self.entered.set()
                assert self.gate.wait(10), "the test never opened the gate"
            return super().read_changes(cursor)
        finally:
            with self._count:
                self.inside -= 1


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[Daemon, GatedCalendar]]:
    cfg = write_config(tmp_path, {"provider": "memory"})
    calendar = GatedCalendar()
    daemon = Daemon(cfg, clock=Clock(T0), provider_factory=lambda _c: calendar)
    yield daemon, calendar
    calendar.gate.set()
    daemon.shutdown()
    daemon.store.close()


def holder(daemon: Daemon) -> str | None:
    return daemon.leases.holders([LEASE]).get(LEASE)


def test_interval_and_push_of_one_calendar_never_overlap_and_the_lease_stays_with_its_cycle(
    gated: tuple[Daemon, GatedCalendar],
) -> None:
    daemon, calendar = gated
    daemon_id = register(daemon)
    interval = threading.Thread(target=sync_job, args=(daemon_id, "mona"))
    interval.start()
    assert calendar.entered.wait(10)
    # A push notification, then a manual sync, arrive while the interval cycle reads.
    push = threading.Thread(target=push_sync_job, args=(daemon_id, "mona"))
    push.start()
    push.join(10)
    assert calendar.most_inside == 1, "two cycles of one calendar ran at once"
    assert holder(daemon) == daemon.replica_id, "the lease was released under a running cycle"
    assert not push.is_alive(), "the push trigger waited for the running cycle"
    assert daemon.sync_calendar("mona") is None

    calendar.gate.set()
    interval.join(10)
    assert not interval.is_alive()
    # The triggers that came during the cycle ran once, after it; then the lease was given back.
    assert calendar.calls == 2
    assert calendar.most_inside == 1
    assert holder(daemon) is None
    assert daemon.sync_calendar("mona") is not None
    assert calendar.calls == 3


def test_a_failing_cycle_does_not_block_the_calendar_and_rebuilds_its_provider(
    tmp_path: Path,
) -> None:
    cfg = write_config(tmp_path, {"provider": "memory"})

    class Broken(MemoryProvider):
        def read_changes(self, cursor: str | None) -> ChangeSet:
            raise RuntimeError("a bug")

    built: list[CalendarProvider] = []

    def factory(_cfg: Any) -> CalendarProvider:
        built.append(Broken("mona", MONA))
        return built[-1]

    daemon = Daemon(cfg, clock=Clock(T0), provider_factory=factory)
    try:
        for n in range(1, 3):
            report = daemon.sync_calendar("mona")
            assert report is not None and report.error == "internal"
            assert holder(daemon) is None
            assert len(built) == n  # after a failure like this one, built afresh
    finally:
        daemon.shutdown()
        daemon.store.close()


def test_one_provider_per_calendar_for_the_life_of_the_process(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"provider": "memory"})
    built: list[CalendarProvider] = []
    closed: list[CalendarProvider] = []

    def factory(calendar_cfg: Any) -> CalendarProvider:
        provider = build_provider(calendar_cfg)
        provider.close = lambda: closed.append(provider)  # type: ignore[method-assign]
        built.append(provider)
        return provider

    clock = Clock(T0)
    daemon = Daemon(cfg, clock=clock, provider_factory=factory)
    try:
        for minutes in range(3):
            clock.now = T0 + timedelta(minutes=minutes)
            assert daemon.sync_calendar("mona") is not None
        assert len(built) == 1 and closed == []
        # Its config entry changed: built again, the old one closed.
        daemon.calendars["mona"] = daemon.calendars["mona"].model_copy(update={"owner": "m@x.se"})
        assert daemon.sync_calendar("mona") is not None
        assert len(built) == 2 and closed == [built[0]]
    finally:
        daemon.shutdown()
        daemon.store.close()
    assert closed == built


def test_a_google_quota_cool_down_holds_across_cycles(tmp_path: Path) -> None:
    with FakeGoogleCalendarAPI() as api:
        api.add_calendar(MONA)
        cfg = write_config(
            tmp_path,
            {
                "provider": "google",
                "calendar_id": MONA,
                "credentials": "anonymous",
                "api_endpoint": api.endpoint,
            },
        )
        clock = Clock(T0)
        daemon = Daemon(cfg, clock=clock)
        daemon_id = register(daemon)
        try:
            api.faults.inject("list", 403, "quotaExceeded")
            first = daemon.sync_calendar("mona")
            assert first is not None and first.error == "quota"
            assert api.requests["list"] == 1
            # Every later cycle in the cool-down, however triggered, sends nothing.
            for seconds in (1, 60, 1800, QUOTA_COOLDOWN_SECONDS - 1):
                clock.now = T0 + timedelta(seconds=seconds)
                report = daemon.sync_calendar("mona")
                assert report is not None and report.error == "quota"
                push_sync_job(daemon_id, "mona")
                sync_job(daemon_id, "mona")
                assert api.requests["list"] == 1, f"a request {seconds}s after quotaExceeded"
            clock.now = T0 + timedelta(seconds=QUOTA_COOLDOWN_SECONDS)
            after = daemon.sync_calendar("mona")
            assert after is not None and after.ok
            assert api.requests["list"] == 1 + 1
        finally:
            daemon.shutdown()
            daemon.store.close()
