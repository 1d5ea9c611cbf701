"""Microsoft Graph subscriptions through the daemon's real HTTP server.

Real parts: the local identity platform and Graph over HTTPS (msal, requests),
whose subscription routes validate the daemon's address as Graph does before
they answer, and post change and lifecycle notifications to it; the daemon's
endpoint on loopback; SQLite through the migrations; the push channels table.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from feedback_agendas.agendas.block import START_MARKER
from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.daemon import Daemon
from feedback_agendas.scheduler.service.http_server import EndpointServer
from feedback_agendas.scheduler.sync.push import PushChannels, token_verifier
from tests.fakes.graph_api import FakeGraph
from tests.fakes.graph_subscriptions import GraphSubscriptions
from tests.support.graph import calendar_entry, start_graph
from tests.support.receivers import free_port

MONA = "mona@example.com"
ERIK = "erik@example.com"
ALICE = "alice@example.com"


def now() -> datetime:
    return datetime.now(UTC)


def write_config(tmp: Path, graph: FakeGraph, port: int, *, public_path: str = "/") -> AppConfig:
    data: dict[str, Any] = {
        "storage": {"url": f"sqlite:///{tmp / 'fa.db'}"},
        "calendars": [
            calendar_entry(graph, owner, name=name)
            for name, owner in (("mona", MONA), ("erik", ERIK))
        ],
        "org": {
            "internal_domains": ["example.com"],
            "teams": [{"name": "platform", "manager": MONA, "members": [ALICE]}],
        },
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "public_url": f"http://127.0.0.1:{port}{public_path}",
        },
        "sync": {"interval_seconds": 3600},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_config(path)


class Service:
    """A daemon, its push channels and its webhook endpoint; pushes sync synchronously."""

    def __init__(self, cfg: AppConfig) -> None:
        self.daemon = Daemon(cfg, replica_id="replica-a")
        # No window between syncs of a channel: each notification here is a sync.
        self.push = PushChannels(
            cfg, self.daemon.store, replica_id="replica-a", sync_window=timedelta(0)
        )
        self.synced: list[str] = []
        self.maintain_asked = 0
        self.server = EndpointServer(
            cfg.server.host,
            cfg.server.port,
            ready=self.daemon.readiness,
            metrics=self.daemon.metrics_text,
        )
        webhooks = self.push.webhooks(self.sync_now, lambda *_later: None, self.maintain_soon)
        for path, handler in webhooks.items():
            self.server.register_push(path, handler)
        self.server.start()

    def sync_now(self, calendar: str) -> None:
        self.synced.append(calendar)
        self.daemon.sync_calendar(calendar)

    def maintain_soon(self) -> None:
        self.maintain_asked += 1

    def close(self) -> None:
        self.server.stop()
        self.daemon.shutdown()
        self.daemon.store.close()


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = start_graph()
    yield fake
    fake.stop()
    assert fake.violations == []


@pytest.fixture
def subs(graph: FakeGraph) -> GraphSubscriptions:
    return GraphSubscriptions(graph)


@pytest.fixture
def service(tmp_path: Path, graph: FakeGraph, subs: GraphSubscriptions) -> Iterator[Service]:
    svc = Service(write_config(tmp_path, graph, free_port()))
    yield svc
    svc.close()


def subscription_of(subs: GraphSubscriptions, mailbox: str) -> str:
    (sub,) = subs.of(mailbox)
    return sub.id


def post(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "text/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def test_graph_validates_the_address_before_the_subscription_exists(
    service: Service, subs: GraphSubscriptions, graph: FakeGraph
) -> None:
    report = service.push.maintain(now())
    assert report.registered == ["erik", "mona"] and report.failed == []
    address = f"{service.daemon.cfg.server.public_url}".rstrip("/") + "/webhooks/microsoft"
    mona = subs.of(MONA)[0]
    assert (mona.notification_url, mona.lifecycle_url) == (address, address)
    assert mona.change_types == ("created", "updated", "deleted")
    assert mona.expires - now() <= timedelta(minutes=4230)
    # Graph's validation request was echoed: 200, text/plain, the token, well within 10 s.
    validations = [d for d in subs.deliveries if "validationToken" in d.body]
    assert len(validations) == 2
    for check in validations:
        assert check.status == 200 and check.content_type.startswith("text/plain")
        assert check.answer.decode() == check.body["validationToken"]
        assert check.seconds < 10
    # The secret is kept only as its hash; the channel id is Graph's subscription id.
    (stored,) = service.push.channels("mona")
    assert stored.channel_id == mona.id
    assert stored.verifier == token_verifier(mona.client_state) != mona.client_state
    assert graph.requests["subscribe"] == 2


def test_an_address_that_does_not_echo_gets_no_subscription(
    tmp_path: Path, graph: FakeGraph, subs: GraphSubscriptions
) -> None:
    # The public URL names a path the daemon does not serve: the validation gets 404.
    svc = Service(write_config(tmp_path, graph, free_port(), public_path="/elsewhere/"))
    try:
        report = svc.push.maintain(now())
        assert report.failed == ["erik", "mona"] and report.registered == []
        assert subs.subscriptions == {} and svc.push.channels() == []
        assert subs.refused == ["validation answered 404"] * 2
    finally:
        svc.close()


def test_a_forged_client_state_is_refused_and_starts_nothing(
    service: Service, subs: GraphSubscriptions, graph: FakeGraph
) -> None:
    service.push.maintain(now())
    address = subs.of(MONA)[0].notification_url
    sub_id = subscription_of(subs, MONA)
    forged = {"subscriptionId": sub_id, "clientState": "guessed", "changeType": "updated"}
    assert post(address, {"value": [forged]}) == 403
    unknown = {"subscriptionId": "sub-9999", "clientState": "guessed", "changeType": "updated"}
    assert post(address, {"value": [unknown]}) == 403
    assert post(address, {"something": "else"}) == 403
    # Another mailbox's secret does not open this subscription either.
    erik_state = subs.of(ERIK)[0].client_state
    assert post(address, {"value": [{**forged, "clientState": erik_state}]}) == 403
    assert service.synced == [] and graph.requests["delta"] == 0


def test_a_notification_runs_one_delta_round_of_that_mailbox_only(
    service: Service, subs: GraphSubscriptions, graph: FakeGraph
) -> None:
    service.push.maintain(now())
    for name in ("mona", "erik"):
        report = service.daemon.sync_calendar(name)
        assert report is not None and report.ok
    before = dict(graph.per_mailbox)
    start = (now() + timedelta(days=2)).replace(hour=9, minute=0, second=0, microsecond=0)
    event = graph.store.add_event(
        MONA,
        subject="Mona / Alice",
        start=start,
        end=start + timedelta(minutes=30),
        attendees=[(ALICE, "required")],
    )
    assert subs.notify(MONA, "created", event) == [202]
    # The round found the new meeting and wrote its agenda; Erik's mailbox was not asked.
    assert service.synced == ["mona"]
    written = graph.store.find(MONA, event)
    assert written is not None and START_MARKER in written["body"]["content"]
    erik = {kind: n for (box, kind), n in graph.per_mailbox.items() if box == ERIK}
    assert erik == {kind: n for (box, kind), n in before.items() if box == ERIK}
    # A notification with nothing new behind it costs one delta call.
    deltas = graph.per_mailbox[(MONA, "delta")]
    assert subs.notify(MONA, "updated", event) == [202]
    assert service.synced == ["mona", "mona"]
    assert graph.per_mailbox[(MONA, "delta")] == deltas + 1
    assert graph.per_mailbox[(MONA, "patch")] == before.get((MONA, "patch"), 0) + 1


def test_subscriptions_are_renewed_before_the_4230_minute_limit(
    service: Service, subs: GraphSubscriptions, graph: FakeGraph
) -> None:
    service.push.maintain(now())
    ids = {s.id for s in subs.subscriptions.values()}
    # Well before expiry nothing is asked of Graph.
    quiet = service.push.maintain(now() + timedelta(hours=12))
    assert quiet.renewed == quiet.registered == [] and subs.renewals == 0
    # Within the margin of the subscription's expiry (at most 4,230 minutes away): PATCH.
    expires = min(c.expires_at for c in service.push.channels() if c.expires_at)
    report = service.push.maintain(expires - timedelta(hours=1))
    assert report.renewed == ["erik", "mona"] and report.registered == report.replaced == []
    assert subs.renewals == 2 and graph.requests["renew"] == 2
    assert {s.id for s in subs.subscriptions.values()} == ids
    renewed = [c.expires_at for c in service.push.channels()]
    assert all(e is not None and e > expires - timedelta(minutes=5) for e in renewed)


def test_reauthorization_required_renews_the_subscription(
    service: Service, subs: GraphSubscriptions
) -> None:
    service.push.maintain(now())
    sub_id = subscription_of(subs, MONA)
    assert subs.lifecycle(sub_id, "reauthorizationRequired") == 202
    assert service.maintain_asked == 1 and service.synced == []
    report = service.push.maintain(now())
    assert report.renewed == ["mona"] and report.registered == report.replaced == []
    assert subs.renewals == 1 and subscription_of(subs, MONA) == sub_id
    assert [c.channel_id for c in service.push.channels("mona")] == [sub_id]


def test_a_removed_subscription_is_registered_anew_after_a_delta_round(
    service: Service, subs: GraphSubscriptions, graph: FakeGraph
) -> None:
    service.push.maintain(now())
    service.daemon.sync_calendar("mona")
    deltas = graph.per_mailbox[(MONA, "delta")]
    old = subscription_of(subs, MONA)
    assert subs.lifecycle(old, "subscriptionRemoved") == 202
    assert service.synced == ["mona"] and graph.per_mailbox[(MONA, "delta")] == deltas + 1
    assert service.push.channels("mona") == [] and service.maintain_asked == 1
    report = service.push.maintain(now())
    assert report.registered == ["mona"]
    new = subscription_of(subs, MONA)
    assert new != old and [c.channel_id for c in service.push.channels("mona")] == [new]
    # The old subscription's secret no longer opens anything.
    assert (
        subs.deliver(
            subs.of(MONA)[0].notification_url,
            [{"subscriptionId": old, "clientState": "x", "lifecycleEvent": "missed"}],
        )
        == 403
    )


def test_missed_notifications_run_a_delta_round(
    service: Service, subs: GraphSubscriptions, graph: FakeGraph
) -> None:
    service.push.maintain(now())
    service.daemon.sync_calendar("mona")
    deltas = graph.per_mailbox[(MONA, "delta")]
    assert subs.lifecycle(subscription_of(subs, MONA), "missed") == 202
    assert service.synced == ["mona"]
    assert graph.per_mailbox[(MONA, "delta")] == deltas + 1
    assert service.maintain_asked == 0 and subs.renewals == 0


def test_stopping_deletes_the_subscriptions(service: Service, subs: GraphSubscriptions) -> None:
    service.push.maintain(now())
    ids = sorted(subs.subscriptions)
    report = service.push.stop_own(now())
    assert report.stopped == ["erik", "mona"]
    assert sorted(subs.deleted) == ids and subs.subscriptions == {}
    assert service.push.channels() == []
