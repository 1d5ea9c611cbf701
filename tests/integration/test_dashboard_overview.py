"""The overview's data on a real store: states, failing first, filter, sort and pages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.web.overview import Overview, build_overview
from feedback_agendas.scheduler.storage.db import write_transaction
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.storage.tables import calendar_health
from tests.integration.pg import postgres_schema

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fa.db'}"
    else:
        with postgres_schema() as url:
            yield url


def config(tmp_path: Path, url: str, count: int, opted: tuple[str, ...] = ()) -> AppConfig:
    data = {
        "storage": {"url": url},
        "calendars": [
            {"name": f"cal{i:05d}", "provider": "memory", "owner": f"p{i}@example.com"}
            for i in range(count)
        ],
        "org": {"internal_domains": ["example.com"]},
        "opt_out": {"calendars": list(opted)},
        "sync": {"interval_seconds": 300},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_config(path, environ={})


def health(store: Store, rows: list[dict[str, object]]) -> None:
    with write_transaction(store.engine) as conn:
        conn.execute(calendar_health.insert(), rows)


def row(name: str, success_ago: timedelta | None, failures: int = 0) -> dict[str, object]:
    return {
        "calendar": name,
        "last_success_at": NOW - success_ago if success_ago is not None else None,
        "last_failure_at": NOW - timedelta(minutes=1) if failures else None,
        "consecutive_failures": failures,
        "last_error_kind": "auth" if failures else None,
    }


def test_states_failing_first_then_stale_new_ok_and_opted_out(
    tmp_path: Path, storage_url: str
) -> None:
    cfg = config(tmp_path, storage_url, 6, opted=("cal00005",))
    with Store.open(cfg.storage.url) as store:
        health(
            store,
            [
                row("cal00000", timedelta(minutes=2)),
                row("cal00001", timedelta(hours=2)),  # > 3 intervals of 5 min
                row("cal00002", None, failures=3),
                row("cal00003", timedelta(minutes=1), failures=1),
                row("cal00005", timedelta(minutes=1)),
            ],
        )
        overview = build_overview(
            cfg,
            store,
            NOW,
            started_at=NOW - timedelta(minutes=1),
            replica_id="r1",
            error_messages={"cal00002": "calendar cal00002: auth: refused"},
        )
    states = [(r.name, r.state) for r in overview.rows]
    assert states == [
        ("cal00002", "failing"),
        ("cal00003", "failing"),
        ("cal00001", "stale"),
        ("cal00004", "new"),
        ("cal00000", "ok"),
        ("cal00005", "opted_out"),
    ]
    assert overview.rows[0].error_message == "calendar cal00002: auth: refused"
    assert overview.rows[1].error_message is None and overview.rows[1].error_kind == "auth"
    assert dict(overview.counts) == {
        "failing": 2,
        "stale": 1,
        "new": 1,
        "ok": 1,
        "opted_out": 1,
    }
    assert [r.holder for r in overview.replicas] == ["r1"]


def test_pages_filter_and_sort_over_many_calendars(tmp_path: Path, storage_url: str) -> None:
    cfg = config(tmp_path, storage_url, 120)
    with Store.open(cfg.storage.url) as store:
        health(
            store,
            [
                row(f"cal{i:05d}", timedelta(minutes=1), failures=1 if i in (7, 99) else 0)
                for i in range(120)
            ],
        )

        def page(**kw: Any) -> Overview:
            return build_overview(cfg, store, NOW, started_at=NOW, replica_id="r1", **kw)

        first = page()
        assert (first.pages, first.page, len(first.rows)) == (3, 1, 50)
        assert [r.name for r in first.rows[:2]] == ["cal00007", "cal00099"]
        last = page(page=99)  # clamped to the last page
        assert (last.page, len(last.rows)) == (3, 20)
        found = page(query="CAL0009")  # any case; the failing one first
        assert [r.name for r in found.rows] == ["cal00099"] + [f"cal{i:05d}" for i in range(90, 99)]
        assert (found.matched, found.total) == (10, 120)
        failing = page(state="failing", sort="name")
        assert [r.name for r in failing.rows] == ["cal00007", "cal00099"]
        by_name = page(sort="name", page=2)
        assert by_name.rows[0].name == "cal00050"


def test_unseen_opted_out_and_removed_calendars(tmp_path: Path, storage_url: str) -> None:
    cfg = config(tmp_path, storage_url, 6, opted=("cal00004",))
    with Store.open(cfg.storage.url) as store:
        health(
            store,
            [
                row("cal00000", timedelta(hours=2)),  # stale
                row("cal00002", timedelta(hours=3)),  # stale
                row("cal00003", timedelta(minutes=1)),
                row("cal00004", timedelta(minutes=1), failures=2),  # opted out wins
                row("gone", None, failures=9),  # removed from the config: not shown
            ],
        )

        def page(**kw: Any) -> Overview:
            # The daemon has run for a day: a calendar never synced is stale too.
            return build_overview(
                cfg, store, NOW, started_at=NOW - timedelta(days=1), replica_id="r1", **kw
            )

        overview = page()
        assert [(r.name, r.state) for r in overview.rows] == [
            ("cal00000", "stale"),
            ("cal00001", "stale"),  # never synced, merged by name with the store's stale ones
            ("cal00002", "stale"),
            ("cal00005", "stale"),
            ("cal00003", "ok"),
            ("cal00004", "opted_out"),
        ]
        assert dict(overview.counts) == {
            "failing": 0,
            "stale": 4,
            "new": 0,
            "ok": 1,
            "opted_out": 1,
        }
        by_name = page(sort="name")  # the store's, then never synced, then opted out
        assert [r.name for r in by_name.rows] == [
            "cal00000",
            "cal00002",
            "cal00003",
            "cal00001",
            "cal00005",
            "cal00004",
        ]
        assert [r.name for r in page(sort="failures", query="5").rows] == ["cal00005"]
        assert [r.name for r in page(state="stale", page_size=2, page=2).rows] == [
            "cal00002",
            "cal00005",
        ]
        assert page(state="failing").rows == ()
