"""Google push channels in the running service.

Real parts: the local Calendar API (``tests/fakes/google_api.py``) with the
real client, the daemon's HTTP endpoint on loopback (the fake posts its
notifications there), SQLite through the migrations, the APScheduler ticker.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, func, inspect, select

from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.daemon import Daemon
from feedback_agendas.scheduler.service.http_server import EndpointServer
from feedback_agendas.scheduler.service.loop import build_scheduler, run_forever
from feedback_agendas.scheduler.sync.push import (
    PUSH_LEASE,
    PushChannels,
    PushReport,
    push_channels_table,
    token_verifier,
)
from tests.fakes.google_api import FakeGoogleCalendarAPI
from tests.support.receivers import free_port

# Channels registered before providers had their own routes post here: it must not move.
WEBHOOK_PATH = "/webhooks/google"
MONA = "mona@example.com"
ERIK = "erik@example.com"


def write_config(
    tmp: Path, api: FakeGoogleCalendarAPI, port: int, *, public: bool = True, **extra: Any
) -> AppConfig:
    data: dict[str, Any] = {
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
            for name, owner in (("mona", MONA), ("erik", ERIK))
        ],
        "org": {"internal_domains": ["example.com"]},
        "server": {"host": "127.0.0.1", "port": port},
        "sync": {"interval_seconds": 3600},
        **extra,
    }
    if public:
        data["server"]["public_url"] = f"http://127.0.0.1:{port}/"
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_config(path)


def list_calls(api: FakeGoogleCalendarAPI, owner: str) -> int:
    return sum(1 for c in api.calls if c.kind == "list" and f"/calendars/{owner}/" in c.path)


class Service:
    """A daemon, its push channels and its webhook endpoint; pushes sync synchronously."""

    def __init__(
        self,
        cfg: AppConfig,
        replica_id: str = "replica-a",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.daemon = Daemon(cfg, replica_id=replica_id)
        self.push = PushChannels(
            cfg, self.daemon.store, replica_id=replica_id, clock=clock or (lambda: now())
        )
        self.synced: list[str] = []
        # (calendar, channel id, noticed at, follow up at) asked for by the webhook
        self.later: list[tuple[str, str, datetime, datetime]] = []
        self.server = EndpointServer(
            cfg.server.host,
            cfg.server.port,
            ready=self.daemon.readiness,
            metrics=self.daemon.metrics_text,
        )
        webhooks = self.push.webhooks(self.sync_now, lambda *later: self.later.append(later))
        for path, handler in webhooks.items():
            self.server.register_push(path, handler)
        self.server.start()

    def sync_now(self, calendar: str) -> None:
        self.synced.append(calendar)
        self.daemon.sync_calendar(calendar)

    def close(self) -> None:
        self.server.stop()
        self.daemon.shutdown()
        self.daemon.store.close()


@pytest.fixture
def api() -> Iterator[FakeGoogleCalendarAPI]:
    with FakeGoogleCalendarAPI() as fake:
        fake.add_calendar(MONA)
        fake.add_calendar(ERIK)
        yield fake


@pytest.fixture
def service(tmp_path: Path, api: FakeGoogleCalendarAPI) -> Iterator[Service]:
    svc = Service(write_config(tmp_path, api, free_port()))
    yield svc
    svc.close()


def post(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=b"", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def now() -> datetime:
    return datetime.now(UTC)


def test_every_google_calendar_gets_a_channel_to_the_public_url(
    service: Service, api: FakeGoogleCalendarAPI
) -> None:
    report = service.push.maintain(now())
    assert sorted(report.registered) == ["erik", "mona"]
    assert sorted(c["calendar_id"] for c in api.channels.values()) == [ERIK, MONA]
    address = f"http://127.0.0.1:{service.server.port}/webhooks/google"
    assert {c["address"] for c in api.channels.values()} == {address}
    tokens = [c["token"] for c in api.channels.values()]
    assert len(set(tokens)) == 2 and all(len(t) >= 32 for t in tokens)  # one secret each
    assert api.violations == []
    # A second run with nothing expiring makes no request.
    before = sum(api.requests.values())
    assert service.push.maintain(now()).registered == []
    assert sum(api.requests.values()) == before


def test_no_public_url_no_channels(tmp_path: Path, api: FakeGoogleCalendarAPI) -> None:
    svc = Service(write_config(tmp_path, api, free_port(), public=False))
    try:
        assert not svc.push.enabled
        assert svc.push.maintain(now()).registered == []
        assert api.channels == {} and api.requests["watch"] == 0
    finally:
        svc.close()


def test_a_wrong_token_is_refused_and_syncs_nothing(
    service: Service, api: FakeGoogleCalendarAPI
) -> None:
    service.push.maintain(now())
    channel = next(c for c in api.channels.values() if c["calendar_id"] == MONA)
    url = service.server.url + WEBHOOK_PATH
    headers = {
        "X-Goog-Channel-Id": channel["id"],
        "X-Goog-Resource-State": "exists",
        "X-Goog-Channel-Token": channel["token"] + "x",
    }
    assert post(url, headers) == 403
    # Erik's (valid) token does not open Mona's channel either.
    erik = next(c for c in api.channels.values() if c["calendar_id"] == ERIK)
    assert post(url, {**headers, "X-Goog-Channel-Token": erik["token"]}) == 403
    assert post(url, {**headers, "X-Goog-Channel-Id": "fa-unknown"}) == 403
    no_token = {k: v for k, v in headers.items() if k != "X-Goog-Channel-Token"}
    assert post(url, no_token) == 403
    assert service.synced == [] and api.requests["list"] == 0


def test_exists_syncs_that_calendar_right_away_and_sync_state_is_ignored(
    service: Service, api: FakeGoogleCalendarAPI
) -> None:
    service.push.maintain(now())
    assert api.notify_channels(MONA, state="sync") == 1  # the channel's first message
    assert service.synced == [] and api.requests["list"] == 0
    assert api.notify_channels(MONA, state="exists") == 1
    assert service.synced == ["mona"]
    assert list_calls(api, MONA) == 1 and list_calls(api, ERIK) == 0


def test_any_replica_accepts_a_channel_another_registered(
    tmp_path: Path, api: FakeGoogleCalendarAPI
) -> None:
    cfg = write_config(tmp_path, api, free_port())
    first = Service(cfg, "replica-a")
    try:
        first.push.maintain(now())
    finally:
        first.close()
    # Another replica on the same database, behind the same public URL.
    second = Service(cfg, "replica-b")
    try:
        assert api.notify_channels(ERIK) == 1
        assert second.synced == ["erik"] and list_calls(api, ERIK) == 1
    finally:
        second.close()


def test_only_the_lease_holder_registers_a_calendars_channel(
    tmp_path: Path, api: FakeGoogleCalendarAPI
) -> None:
    cfg = write_config(tmp_path, api, free_port())
    svc = Service(cfg, "replica-a")
    try:
        at = now()
        other = "replica-b"
        minute = timedelta(seconds=60)
        assert svc.daemon.leases.claim([PUSH_LEASE + "mona"], other, minute, at, 1)
        report = svc.push.maintain(at)
        assert report.registered == ["erik"]
        assert [c["calendar_id"] for c in api.channels.values()] == [ERIK]
        svc.daemon.leases.release([PUSH_LEASE + "mona"], other)
        assert svc.push.maintain(at).registered == ["mona"]
        # Both replicas maintaining at once still leave one channel per calendar.
        twin = PushChannels(cfg, svc.daemon.store, replica_id=other)
        assert twin.maintain(at).registered == [] and len(api.channels) == 2
    finally:
        svc.close()


def test_a_channel_is_replaced_before_it_expires(
    service: Service, api: FakeGoogleCalendarAPI
) -> None:
    service.push.maintain(now())
    old = service.push.channels("mona")[0]
    assert old.expires_at is not None
    # Just outside the margin: nothing to do. Just inside: a new channel, the old one stopped.
    outside = old.expires_at - service.push.margin - timedelta(minutes=1)
    assert service.push.maintain(outside) == PushReport()
    report = service.push.maintain(old.expires_at - service.push.margin + timedelta(minutes=1))
    assert report.replaced == ["erik", "mona"]
    new = service.push.channels("mona")
    assert len(new) == 1 and new[0].channel_id != old.channel_id
    assert old.channel_id not in api.channels and new[0].channel_id in api.channels
    assert api.requests["stop"] == 2
    assert api.notify_channels(MONA) == 1 and service.synced == ["mona"]


def test_opt_out_and_removal_stop_the_channel(tmp_path: Path, api: FakeGoogleCalendarAPI) -> None:
    port = free_port()
    svc = Service(write_config(tmp_path, api, port))
    try:
        svc.push.maintain(now())
        erik_channel = svc.push.channels("erik")[0]
    finally:
        svc.close()
    opted = Service(write_config(tmp_path, api, port, opt_out={"calendars": ["erik"]}))
    try:
        assert opted.push.maintain(now()).stopped == ["erik"]
        assert [c["calendar_id"] for c in api.channels.values()] == [MONA]
        assert opted.push.channels("erik") == []
        url = opted.server.url + WEBHOOK_PATH
        headers = {
            "X-Goog-Channel-Id": erik_channel.channel_id,
            "X-Goog-Resource-State": "exists",
            "X-Goog-Channel-Token": "anything",
        }
        assert post(url, headers) == 403 and opted.synced == []
    finally:
        opted.close()
    # Mona removed from the config: no credentials to stop it with; it is forgotten,
    # so its notifications fail verification until Google lets it expire.
    cfg = write_config(tmp_path, api, port, opt_out={"calendars": ["erik"]})
    only_erik = cfg.model_copy(update={"calendars": cfg.calendars[1:]})
    removed = Service(only_erik)
    try:
        assert removed.push.maintain(now()).stopped == ["mona"]
        assert removed.push.channels() == []
        with pytest.raises(urllib.error.HTTPError) as refused:
            api.notify_channels(MONA)
        refused.value.close()
        assert refused.value.code == 403 and removed.synced == []
    finally:
        removed.close()


def test_a_reload_stops_a_removed_calendars_channel_at_google_and_registers_an_added_one(
    service: Service, api: FakeGoogleCalendarAPI
) -> None:
    service.push.maintain(now())
    cfg = service.daemon.cfg
    without_mona = cfg.model_copy(update={"calendars": cfg.calendars[1:]})
    service.push.use_config(without_mona)
    assert service.push.maintain(now()).stopped == ["mona"]
    # Stopped with the credentials of its former entry, not only forgotten.
    assert [c["calendar_id"] for c in api.channels.values()] == [ERIK]
    service.push.use_config(cfg)
    assert service.push.maintain(now()).registered == ["mona"]
    assert sorted(c["calendar_id"] for c in api.channels.values()) == [ERIK, MONA]


def test_tokens_never_reach_logs_or_the_database(
    service: Service, api: FakeGoogleCalendarAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    service.push.maintain(now())
    api.notify_channels(MONA)
    api.notify_channels(ERIK, state="sync")
    service.push.maintain(service.push.channels("mona")[0].expires_at or now())  # replace
    tokens = [c["token"] for c in api.channels.values()]
    tokens += [c.headers.get("x-goog-channel-token", "") for c in api.calls]
    tokens += [str((c.body or {}).get("token", "")) for c in api.calls if c.kind == "watch"]
    tokens = [t for t in tokens if t]
    assert len(set(tokens)) >= 3
    engine = service.daemon.store.engine
    dump = []
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            dump += [repr(tuple(row)) for row in conn.exec_driver_sql(f'SELECT * FROM "{table}"')]
        stored = {row.verifier for row in conn.execute(select(push_channels_table))}
    text = "\n".join(dump)
    for token in set(tokens):
        assert token not in text and token not in caplog.text
    assert stored == {token_verifier(c["token"]) for c in api.channels.values()}


def test_polling_stays_on_with_plus_minus_25_percent_jitter(service: Service) -> None:
    scheduler = build_scheduler(service.daemon, 100.0, service.daemon.cfg.sync.jitter)
    trigger = scheduler.get_job("sync:mona").trigger
    at = datetime(2026, 3, 23, 7, 0, tzinfo=UTC)
    previous = trigger.get_next_fire_time(None, at)
    gaps = []
    for _ in range(400):
        following = trigger.get_next_fire_time(previous, previous)
        gaps.append((following - previous).total_seconds())
        previous = following
    assert 75.0 <= min(gaps) < 80.0 and 120.0 < max(gaps) <= 125.0
    assert 95.0 < sum(gaps) / len(gaps) < 105.0


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def stored_channels(cfg: AppConfig) -> int:
    """How many channels the running service has stored (a reader of its own)."""
    engine = create_engine(cfg.storage.url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(push_channels_table)).scalar_one()
            )
    finally:
        engine.dispose()


def test_the_running_service_registers_syncs_on_push_and_stops_on_shutdown(
    tmp_path: Path, api: FakeGoogleCalendarAPI
) -> None:
    cfg = write_config(tmp_path, api, free_port())
    stop = threading.Event()
    runner = threading.Thread(
        target=run_forever, args=(cfg,), kwargs={"echo": lambda _s: None, "stop": stop}
    )
    runner.start()
    try:
        # Google answers the watch before the daemon stores the channel: wait for both.
        wait_for(lambda: len(api.channels) == 2 and stored_channels(cfg) == 2)
        # Erik's first poll is half an interval away: only the push can make this list call.
        before = list_calls(api, ERIK)
        assert api.notify_channels(ERIK) == 1
        wait_for(lambda: list_calls(api, ERIK) == before + 1)
    finally:
        stop.set()
        runner.join(15)
    assert not runner.is_alive()
    assert api.channels == {} and api.requests["stop"] == 2


@pytest.mark.postgres
def test_replicas_racing_on_postgresql_register_one_channel_per_calendar(
    tmp_path: Path, api: FakeGoogleCalendarAPI
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from feedback_agendas.scheduler.storage.store import Store
    from tests.integration.pg import postgres_schema

    owners = [f"u{n}@example.com" for n in range(8)]
    for owner in owners:
        api.add_calendar(owner)
    with postgres_schema() as url:
        data = {
            "storage": {"url": url},
            "calendars": [
                {
                    "name": f"cal{n}",
                    "provider": "google",
                    "owner": owner,
                    "calendar_id": owner,
                    "credentials": "anonymous",
                    "api_endpoint": api.endpoint,
                }
                for n, owner in enumerate(owners)
            ],
            "org": {"internal_domains": ["example.com"]},
            "server": {"public_url": "http://127.0.0.1:9/"},
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        cfg = load_config(path)
        stores = [Store.open(url) for _ in range(3)]
        try:
            replicas = [
                PushChannels(cfg, store, replica_id=f"replica-{n}")
                for n, store in enumerate(stores)
            ]
            at = now()
            with ThreadPoolExecutor(3) as pool:
                reports = list(pool.map(lambda r: r.maintain(at), replicas))
            registered = sorted(name for r in reports for name in r.registered)
            assert registered == sorted(f"cal{n}" for n in range(8))
            assert sorted(c["calendar_id"] for c in api.channels.values()) == sorted(owners)
            assert len(replicas[0].channels()) == 8
            # Any replica verifies any channel through the shared table.
            channel = next(iter(api.channels.values()))
            assert {r.calendar_for(channel["id"], channel["token"]) for r in replicas} == {
                next(c.calendar for c in replicas[0].channels() if c.channel_id == channel["id"])
            }
        finally:
            for store in stores:
                store.close()


def captured(api: FakeGoogleCalendarAPI, owner: str) -> dict[str, str]:
    """The headers of the last notification the fake sent for ``owner``'s channel."""
    channel = next(c for c in api.channels.values() if c["calendar_id"] == owner)
    return {
        "Content-Type": "application/json; utf-8",
        "X-Goog-Channel-Id": channel["id"],
        "X-Goog-Channel-Token": channel["token"],
        "X-Goog-Resource-Id": channel["resourceId"],
        "X-Goog-Resource-State": "exists",
        "X-Goog-Message-Number": str(api.message_numbers[channel["id"]]),
    }


def test_a_replayed_notification_is_dropped_and_a_flood_syncs_once_per_window(
    tmp_path: Path, api: FakeGoogleCalendarAPI, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [datetime(2026, 3, 23, 7, 0, tzinfo=UTC)]
    svc = Service(write_config(tmp_path, api, free_port()), clock=lambda: clock[0])
    try:
        svc.push.maintain(now())
        url = svc.server.url + WEBHOOK_PATH
        assert api.notify_channels(MONA) == 1
        assert svc.synced == ["mona"] and list_calls(api, MONA) == 1
        # The same notification 20 times (before: 20 syncs, 20 list requests).
        headers = captured(api, MONA)
        assert [post(url, headers) for _ in range(20)] == [200] * 20
        assert svc.synced == ["mona"] and list_calls(api, MONA) == 1 and svc.later == []
        assert svc.push.replays == 20
        replay_lines = [r for r in caplog.records if "replayed notification" in r.getMessage()]
        assert len(replay_lines) == 1  # one line a minute, not one per replay

        # Forged message numbers pass the replay check; the window holds them to one
        # follow-up at its end.
        number = int(headers["X-Goog-Message-Number"])
        clock[0] += timedelta(seconds=1)
        for n in range(1, 21):
            assert post(url, {**headers, "X-Goog-Message-Number": str(number + 1000 * n)}) == 200
        assert svc.synced == ["mona"] and list_calls(api, MONA) == 1
        window_end = clock[0] - timedelta(seconds=1) + svc.push.sync_window
        assert {(c, at) for c, _ch, _noticed, at in svc.later} == {("mona", window_end)}
        clock[0] = window_end
        calendar, channel_id, noticed_at, _at = svc.later[-1]
        svc.push.follow_up(calendar, channel_id, noticed_at)
        assert svc.synced == ["mona", "mona"] and list_calls(api, MONA) == 2
        # The earlier follow-ups of that window are covered by the one that ran.
        for calendar, channel_id, noticed_at, _at in svc.later[:-1]:
            svc.push.follow_up(calendar, channel_id, noticed_at)
        assert svc.synced == ["mona", "mona"]

        # After the window a genuine notification syncs at once again.
        clock[0] += svc.push.sync_window
        assert api.notify_channels(MONA) == 1
        assert svc.synced == ["mona"] * 3 and list_calls(api, MONA) == 3
        # Without a message number (Google always sends one) it is refused.
        no_number = {k: v for k, v in headers.items() if k != "X-Goog-Message-Number"}
        assert post(url, no_number) == 400
        assert post(url, {**headers, "X-Goog-Message-Number": "-5"}) == 400
        assert svc.synced == ["mona"] * 3
    finally:
        svc.close()


def test_the_running_service_drops_replays_and_rate_limits_a_flood(
    tmp_path: Path, api: FakeGoogleCalendarAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feedback_agendas.scheduler.sync import push

    monkeypatch.setattr(push, "PUSH_SYNC_WINDOW", timedelta(seconds=5))
    cfg = write_config(tmp_path, api, free_port())
    stop = threading.Event()
    runner = threading.Thread(
        target=run_forever, args=(cfg,), kwargs={"echo": lambda _s: None, "stop": stop}
    )
    runner.start()
    try:
        # Google answers the watch before the daemon stores the channel: wait for both.
        wait_for(lambda: len(api.channels) == 2 and stored_channels(cfg) == 2)
        # Mona's first poll is half an interval away: every list call here is a push's.
        before = list_calls(api, MONA)
        window_opened = time.monotonic()
        assert api.notify_channels(MONA) == 1
        wait_for(lambda: list_calls(api, MONA) == before + 1)
        url = f"http://127.0.0.1:{cfg.server.port}{WEBHOOK_PATH}"
        headers = captured(api, MONA)
        assert [post(url, headers) for _ in range(20)] == [200] * 20
        number = int(headers["X-Goog-Message-Number"])
        forged = [
            post(url, {**headers, "X-Goog-Message-Number": str(number + 1000 * n)})
            for n in range(1, 21)
        ]
        assert forged == [200] * 20
        if time.monotonic() - window_opened < 4:  # (a loaded machine may be slower)
            assert list_calls(api, MONA) == before + 1  # inside the window: nothing yet
        wait_for(lambda: list_calls(api, MONA) == before + 2, 15)  # one follow-up at its end
        time.sleep(1.5)
        assert list_calls(api, MONA) == before + 2
    finally:
        stop.set()
        runner.join(15)
    assert not runner.is_alive()


@pytest.mark.postgres
def test_replicas_on_postgresql_share_the_replay_check_and_the_window(
    tmp_path: Path, api: FakeGoogleCalendarAPI
) -> None:
    from tests.integration.pg import postgres_schema

    with postgres_schema() as url:
        clock = [datetime(2026, 3, 23, 7, 0, tzinfo=UTC)]
        replicas = []
        for name in ("replica-a", "replica-b"):
            cfg = write_config(tmp_path, api, free_port(), storage={"url": url})
            replicas.append(Service(cfg, name, clock=lambda: clock[0]))
        a, b = replicas
        try:
            a.push.maintain(now())
            assert api.notify_channels(MONA) == 1  # reaches replica a (its public URL)
            assert a.synced == ["mona"]
            headers = captured(api, MONA)
            b_url = b.server.url + WEBHOOK_PATH
            # The same notification replayed at the other replica: dropped there too.
            assert post(b_url, headers) == 200 and b.synced == [] and b.later == []
            # A new number inside a's window: b does not sync, it follows up at the end.
            number = int(headers["X-Goog-Message-Number"]) + 1
            forged = {**headers, "X-Goog-Message-Number": str(number)}
            clock[0] += timedelta(seconds=3)
            assert post(b_url, forged) == 200 and b.synced == []
            [(calendar, channel_id, noticed_at, at)] = b.later
            assert at == datetime(2026, 3, 23, 7, 0, tzinfo=UTC) + b.push.sync_window
            clock[0] = at
            b.push.follow_up(calendar, channel_id, noticed_at)
            assert b.synced == ["mona"] and a.synced == ["mona"]
            a.push.follow_up(calendar, channel_id, noticed_at)  # a late twin: covered
            assert a.synced == ["mona"] and list_calls(api, MONA) == 2
        finally:
            for replica in replicas:
                replica.close()
