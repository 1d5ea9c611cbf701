"""The store and the leases, on SQLite (a temp file) and on the real PostgreSQL.

Every test runs on both databases; the PostgreSQL ones use a private schema
(see ``tests/integration/pg.py``).
"""

from __future__ import annotations

import dataclasses
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Boolean, DateTime, Integer, MetaData, String, event, inspect, text

from feedback_agendas.agendas.errors import UserError
from feedback_agendas.agendas.model import EventRef
from feedback_agendas.scheduler.storage.leases import Leases
from feedback_agendas.scheduler.storage.migrations import head_revision, schema_metadata
from feedback_agendas.scheduler.storage.store import (
    CycleStart,
    EventRecord,
    RunSummary,
    Store,
    upgrade,
)
from tests.integration.pg import postgres_url

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
CAL = "mona"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    pg_url, cleanup = postgres_url()
    try:
        yield pg_url
    finally:
        cleanup()


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    with Store.open(url) as opened:
        yield opened


def ref(event_id: str, recurrence_id: str | None = None, calendar: str = CAL) -> EventRef:
    return EventRef(calendar, event_id, recurrence_id)


def record(
    r: EventRef,
    *,
    kind: str = "one_on_one",
    reason: str | None = None,
    action: str = "inserted",
    block_hash: str | None = "3f2a9c",
    revisit_at: datetime | None = None,
    pending_write: bool = False,
    updated_at: datetime = NOW,
) -> EventRecord:
    return EventRecord(r, kind, reason, action, block_hash, revisit_at, pending_write, updated_at)


def run(
    calendar: str = CAL,
    *,
    started_at: datetime = NOW,
    ok: bool = True,
    error_kind: str | None = None,
    writes: int = 0,
    counts: dict[str, int] | None = None,
) -> RunSummary:
    return RunSummary(
        calendar,
        started_at,
        started_at + timedelta(seconds=2),
        ok,
        error_kind,
        writes,
        counts or {},
    )


def table_rows(store: Store, table: str) -> list[Any]:
    with store.engine.connect() as conn:
        return list(conn.execute(text(f"SELECT * FROM {table}")))


# -- migrations --------------------------------------------------------------


def test_open_upgrades_an_empty_database_to_head_and_again_is_a_no_op(url: str) -> None:
    assert upgrade(url) == head_revision()
    with Store.open(url) as store:
        tables = set(inspect(store.engine).get_table_names())
        assert {
            "calendar_cursors",
            "event_records",
            "run_log",
            "run_log_counts",
            "leases",
        } <= tables
        with store.engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == head_revision()
    assert upgrade(url) == head_revision()


def schema_differences(store: Store, declared: MetaData) -> list[Any]:
    """What autogenerate would change to make the database match the declared tables."""
    with store.engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), declared))


def test_the_migrated_store_tables_are_exactly_the_ones_the_code_declares(store: Store) -> None:
    # Catches a table, column, type or index declared in the code that no
    # migration creates, or the other way round.
    differences = schema_differences(store, schema_metadata())
    assert differences == []


def test_the_schema_is_known_without_loading_the_service() -> None:
    # Migrations (and autogenerate) need the tables only: not the daemon, the
    # sync engine or a provider.
    probe = (
        "import sys\n"
        "from feedback_agendas.scheduler.storage.migrations import schema_metadata\n"
        "print(len(schema_metadata().tables))\n"
        "print(sorted(m for m in sys.modules if m.startswith("
        "('feedback_agendas.scheduler.service', 'feedback_agendas.scheduler.sync',"
        " 'feedback_agendas.scheduler.reminders', 'feedback_agendas.integrations.calendars'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.splitlines()
    assert int(out[0]) >= 11
    assert out[1] == "[]"


def test_every_table_is_declared_in_the_tables_module() -> None:
    # One place to read the schema and to add a table.
    declaring = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "scheduler").rglob("*.py")
        if "migrations" not in path.parts and re.search(r"\bTable\(", path.read_text("utf-8"))
    )
    assert declaring == ["scheduler/storage/tables.py"]


def _table_of(difference: Any) -> str:
    op = difference[0] if isinstance(difference, list) else difference  # modify_*: a list
    kind = op[0]
    if kind.endswith("_table") or kind.endswith("_table_comment"):
        return str(op[1].name)
    if kind.startswith("modify_") or kind.endswith("_column"):
        return str(op[2])
    return str(op[1].table.name)  # an index or a constraint


def test_a_database_migrated_by_a_newer_version_is_refused(url: str) -> None:
    upgrade(url)
    with Store.open(url) as store, store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    with pytest.raises(UserError, match="revision f00d"):
        Store.open(url)


def test_an_unreachable_database_is_a_user_error_without_the_password() -> None:
    with pytest.raises(UserError) as caught:
        Store.open("postgresql+psycopg://fa:s3cret@127.0.0.1:1/nothing?connect_timeout=2")
    assert "127.0.0.1:1" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_two_processes_upgrading_at_once_both_succeed(url: str) -> None:
    # Each process opens its own connection and migrates a fresh database; without
    # the lock one of them fails creating the same table.
    code = (
        "import sys; from feedback_agendas.scheduler.storage.store import upgrade;"
        " print(upgrade(sys.argv[1]))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, url],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [proc.communicate(timeout=60) for proc in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == head_revision()


# -- what the database may hold (I7) -------------------------------------------

# Every column of the store, with what it holds. A new column must be added
# here, and it must be an id, a hash, a code, a count, a flag or a time.
EXPECTED_COLUMNS = {
    "calendar_cursors": {"calendar", "cursor", "updated_at"},
    "event_records": {
        "calendar",
        "event_id",
        "recurrence_id",
        "kind",
        "reason",
        "action",
        "block_hash",
        "revisit_at",
        "pending_write",
        "updated_at",
    },
    "run_log": {"id", "calendar", "started_at", "finished_at", "ok", "error_kind", "writes"},
    "run_log_counts": {"run_id", "code", "count"},
    "leases": {"resource", "holder", "expires_at"},
}
# The only unbounded text: the provider's opaque sync token.
OPAQUE_TOKENS = {("calendar_cursors", "cursor")}
CONTENT_NAMES = re.compile(
    r"title|summary|description|body|content|text|note|comment|feedback|attendee|name|email|"
    r"subject|message|secret|password|token"
)


def test_the_schema_holds_only_ids_hashes_codes_counts_and_times(store: Store) -> None:
    inspector = inspect(store.engine)
    columns = {
        table: {col["name"]: col["type"] for col in inspector.get_columns(table)}
        for table in inspector.get_table_names()
        if table != "alembic_version"
    }
    # Every table (the reminder tables too): no column named for content.
    for table, cols in columns.items():
        for name in cols:
            if (table, name) not in OPAQUE_TOKENS:
                assert not CONTENT_NAMES.search(name), f"{table}.{name} sounds like content"
    # The store's tables: exactly these columns, each a bounded id/code, a number,
    # a flag or a time.
    for table, expected in EXPECTED_COLUMNS.items():
        assert set(columns[table]) == expected, table
        for name, type_ in columns[table].items():
            where = f"{table}.{name}"
            if (table, name) in OPAQUE_TOKENS:
                continue
            if isinstance(type_, String):
                assert type_.length is not None, f"{where} is unbounded text"
                assert type_.length <= 1024, f"{where} could hold a description"
            else:
                assert isinstance(type_, Integer | Boolean | DateTime), f"{where}: {type_!r}"


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("reason", "Anna keeps interrupting in meetings"),
        ("kind", "Weekly 1:1 with Anna"),
        ("action", "x" * 33),
        ("counts", "skipped.told Anna off"),
        ("error_kind", "HTTP 403: forbidden for anna@example.com"),
    ],
)
def test_free_text_is_refused_and_nothing_is_stored(store: Store, field: str, bad: str) -> None:
    rec = record(ref("ev1"))
    summary = run()
    if field in ("reason", "kind", "action"):
        change: dict[str, Any] = {field: bad}
        rec = dataclasses.replace(rec, **change)
    elif field == "counts":
        summary = run(counts={bad: 1})
    else:
        summary = run(error_kind=bad)
    with pytest.raises(ValueError, match="code"):
        store.commit_cycle(CAL, "token-1", [rec], [], summary)
    assert store.get_cursor(CAL) is None
    assert store.records(CAL) == {}
    assert store.recent_runs() == []


# -- SQLite settings ----------------------------------------------------------


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'wal.db'}") as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert (conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 1000
        assert (tmp_path / "wal.db-wal").exists()
    # WAL is a property of the file: any other program opening it uses WAL too.
    raw = sqlite3.connect(tmp_path / "wal.db")
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        raw.close()


def test_a_writer_waits_for_another_instead_of_failing(tmp_path: Path) -> None:
    # Two stores on one SQLite file, as two processes would be: the second
    # commit queues behind the first writer's open transaction.
    db = f"sqlite:///{tmp_path / 'busy.db'}"
    with Store.open(db) as first, Store.open(db) as second:
        done = threading.Event()
        errors: list[BaseException] = []

        def commit_second() -> None:
            try:
                second.commit_cycle(CAL, "from-second", [], [], run())
            except BaseException as exc:  # reported below
                errors.append(exc)
            done.set()

        with first.engine.execution_options(sqlite_begin="IMMEDIATE").begin() as conn:
            conn.execute(text("UPDATE calendar_cursors SET cursor = 'x'"))
            worker = threading.Thread(target=commit_second)
            worker.start()
            assert not done.wait(0.3)  # blocked on the write lock, not failed
        worker.join(timeout=10)
        assert errors == []
        assert first.get_cursor(CAL) == "from-second"


# -- cycles -------------------------------------------------------------------


def test_a_cycle_commits_cursor_records_and_run_together(store: Store) -> None:
    series, occurrence = ref("standup"), ref("standup", "2026-03-02T08:30:00Z")
    records = [
        record(series, kind="team", action="inserted", revisit_at=NOW + timedelta(days=1)),
        record(occurrence, kind="skip", reason="cancelled", action="skipped", block_hash=None),
    ]
    summary = run(writes=1, counts={"action.inserted": 1, "skipped.cancelled": 1})
    store.commit_cycle(CAL, "token-1", records, [], summary)

    assert store.get_cursor(CAL) == "token-1"
    assert store.records(CAL) == {rec.ref: rec for rec in records}
    assert store.recent_runs() == [summary]
    assert store.get_cursor("other") is None
    assert store.records("other") == {}


def test_no_cursor_keeps_the_stored_one_and_reset_forgets_it(store: Store) -> None:
    store.commit_cycle(CAL, "token-1", [record(ref("ev1"))], [], run())
    store.commit_cycle(CAL, None, [], [], run(ok=False, error_kind="TransientError"))
    assert store.get_cursor(CAL) == "token-1"

    store.reset_cursor(CAL)
    assert store.get_cursor(CAL) is None
    assert set(store.records(CAL)) == {ref("ev1")}  # records survive a reset
    store.commit_cycle(CAL, "token-2", [], [], run())
    assert store.get_cursor(CAL) == "token-2"


def test_upserts_replace_records_and_deletes_remove_them(store: Store) -> None:
    a, b, c = ref("a"), ref("b", "2026-03-03"), ref("c")
    store.commit_cycle(CAL, "t1", [record(a), record(b), record(c)], [], run())
    changed = record(
        a,
        action="left_edited",
        block_hash="77aa",
        pending_write=True,
        updated_at=NOW + timedelta(hours=1),
    )
    store.commit_cycle(CAL, "t2", [changed], [b, ref("never-seen")], run())
    assert store.records(CAL) == {a: changed, c: record(c)}
    assert [rec.ref for rec in store.all_records()] == [a, c]


def test_records_of_another_calendar_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="calendar"):
        store.commit_cycle(CAL, "t", [record(ref("x", calendar="bob"))], [], run())
    with pytest.raises(ValueError, match="calendar"):
        store.commit_cycle(CAL, "t", [], [], run(calendar="bob"))


def test_a_failure_inside_commit_cycle_leaves_everything_as_it_was(store: Store) -> None:
    store.commit_cycle(CAL, "old", [record(ref("kept"))], [], run())
    before = (store.get_cursor(CAL), store.records(CAL), store.recent_runs())

    # The crash hits the last statement, after the cursor and records were written.
    def crash_on_run_log(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO RUN_LOG "):
            raise RuntimeError("disk full")

    event.listen(store.engine, "before_cursor_execute", crash_on_run_log)
    try:
        with pytest.raises(RuntimeError, match="disk full"):
            store.commit_cycle(
                CAL,
                "new",
                [record(ref("added")), record(ref("kept"), action="removed")],
                [ref("kept")],
                run(),
            )
    finally:
        event.remove(store.engine, "before_cursor_execute", crash_on_run_log)

    assert (store.get_cursor(CAL), store.records(CAL), store.recent_runs()) == before


def test_a_naive_time_fails_the_whole_commit(store: Store) -> None:
    store.commit_cycle(CAL, "old", [], [], run())
    naive_run = RunSummary(CAL, datetime(2026, 3, 2, 9), datetime(2026, 3, 2, 9), True, None, 0, {})
    with pytest.raises(Exception, match="naive datetime"):
        store.commit_cycle(CAL, "new", [record(ref("ev1"))], [], naive_run)
    assert store.get_cursor(CAL) == "old"
    assert store.records(CAL) == {}
    assert len(store.recent_runs()) == 1


def test_times_come_back_as_aware_utc(store: Store) -> None:
    stockholm = timezone(timedelta(hours=1))
    local = datetime(2026, 3, 2, 10, 15, 30, 123456, tzinfo=stockholm)
    store.commit_cycle(
        CAL, "t", [record(ref("ev1"), revisit_at=local, updated_at=local)], [], run()
    )
    got = store.records(CAL)[ref("ev1")]
    assert got.revisit_at == local
    assert got.revisit_at is not None and got.revisit_at.utcoffset() == timedelta(0)
    assert got.updated_at.tzinfo is not None and got.updated_at.utcoffset() == timedelta(0)


def test_due_refs_are_reached_revisits_and_pending_writes(store: Store) -> None:
    later = NOW + timedelta(hours=3)
    store.commit_cycle(
        CAL,
        "t",
        [
            record(ref("past"), revisit_at=NOW - timedelta(days=1)),
            record(ref("exactly-now"), revisit_at=NOW),
            record(ref("later"), revisit_at=later),
            record(ref("never")),
            record(ref("failed-write"), action="failed", pending_write=True, revisit_at=later),
            record(ref("series")),
            record(ref("series", "2026-03-02T09:00:00Z"), revisit_at=NOW),
        ],
        [],
        run(),
    )
    store.commit_cycle(
        "bob", "t", [record(ref("past", calendar="bob"), revisit_at=NOW)], [], run("bob")
    )
    assert store.due_refs(CAL, NOW) == [
        ref("exactly-now"),
        ref("failed-write"),
        ref("past"),
        ref("series", "2026-03-02T09:00:00Z"),
    ]
    assert ref("later") in store.due_refs(CAL, later)
    # Seen in another zone, the same instant is just as due.
    assert ref("exactly-now") in store.due_refs(CAL, NOW.astimezone(timezone(timedelta(hours=-5))))


def test_recent_runs_are_newest_first_with_counts_and_the_log_is_pruned(url: str) -> None:
    with Store.open(url, run_log_keep=3) as store:
        for i in range(5):
            store.commit_cycle(
                CAL,
                None,
                [],
                [],
                run(started_at=NOW + timedelta(minutes=i), counts={"action.unchanged": i + 1}),
            )
        store.commit_cycle("bob", None, [], [], run("bob", started_at=NOW - timedelta(days=1)))

        runs = store.recent_runs(limit=10)
        assert [(r.calendar, r.counts) for r in runs] == [
            (CAL, {"action.unchanged": 5}),
            (CAL, {"action.unchanged": 4}),
            (CAL, {"action.unchanged": 3}),
            ("bob", {}),
        ]
        assert store.recent_runs(limit=1) == runs[:1]
        # The counts of pruned runs went with them (ON DELETE CASCADE).
        assert len(table_rows(store, "run_log_counts")) == 3


def test_status_summarises_each_calendar_with_counts_only(store: Store) -> None:
    store.commit_cycle(
        CAL,
        "t",
        [
            record(ref("a"), kind="one_on_one", action="inserted"),
            record(ref("b"), kind="team", action="unchanged"),
            record(ref("c"), kind="team", action="failed", pending_write=True),
            record(ref("d"), kind="skip", reason="private", action="skipped", block_hash=None),
        ],
        [],
        run(writes=1),
    )
    store.commit_cycle("bob", None, [], [], run("bob", ok=False, error_kind="network"))
    store.commit_cycle("bob", None, [], [], run("bob", ok=False, error_kind="PermissionDenied"))
    assert store.status() == {
        CAL: {
            "cursor": True,
            "records": 4,
            "by_kind": {"one_on_one": 1, "skip": 1, "team": 2},
            "by_action": {"failed": 1, "inserted": 1, "skipped": 1, "unchanged": 1},
            "pending_writes": 1,
            "health": {
                "last_success_at": "2026-03-02T08:00:02+00:00",
                "consecutive_failures": 0,
                "last_error_kind": None,
            },
            "last_run": {
                "started_at": "2026-03-02T08:00:00+00:00",
                "finished_at": "2026-03-02T08:00:02+00:00",
                "ok": True,
                "error_kind": None,
                "writes": 1,
            },
        },
        "bob": {
            "cursor": False,
            "records": 0,
            "by_kind": {},
            "by_action": {},
            "pending_writes": 0,
            "health": {  # two failures in a row, never a success
                "last_success_at": None,
                "consecutive_failures": 2,
                "last_error_kind": "PermissionDenied",
            },
            "last_run": {
                "started_at": "2026-03-02T08:00:00+00:00",
                "finished_at": "2026-03-02T08:00:02+00:00",
                "ok": False,
                "error_kind": "PermissionDenied",
                "writes": 0,
            },
        },
    }


def test_a_success_resets_the_failures_in_a_row(store: Store) -> None:
    for _ in range(3):
        store.commit_cycle(CAL, None, [], [], run(ok=False, error_kind="storage"))
    assert store.calendar_health()[CAL].consecutive_failures == 3
    store.commit_cycle(CAL, None, [], [], run())
    health = store.calendar_health()[CAL]
    assert (health.consecutive_failures, health.last_error_kind) == (0, None)
    assert health.last_success_at == NOW + timedelta(seconds=2)
    assert health.last_failure_at == NOW + timedelta(seconds=2)


def test_many_records_commit_in_one_cycle(store: Store) -> None:
    many = [record(ref(f"ev{i:04}"), revisit_at=NOW + timedelta(minutes=i)) for i in range(2000)]
    store.commit_cycle(CAL, "t", many, [], run())
    assert len(store.records(CAL)) == 2000
    assert len(store.due_refs(CAL, NOW + timedelta(minutes=99))) == 100


# -- leases -------------------------------------------------------------------

TTL = timedelta(seconds=60)


def test_a_claim_takes_free_resources_up_to_the_limit(store: Store) -> None:
    cals = ["calendar:a", "calendar:b", "calendar:c"]
    assert Leases(store.engine).claim(cals, "r1", TTL, NOW, limit=2) == ["calendar:a", "calendar:b"]
    assert Leases(store.engine).claim(cals, "r2", TTL, NOW, limit=5) == ["calendar:c"]
    assert Leases(store.engine).claim(cals, "r3", TTL, NOW, limit=5) == []
    # A holder's claim renews what it holds before taking more.
    assert Leases(store.engine).claim(cals, "r1", TTL, NOW, limit=1) == ["calendar:a"]
    assert Leases(store.engine).holders(cals) == {
        "calendar:a": "r1",
        "calendar:b": "r1",
        "calendar:c": "r2",
    }


def test_a_prefix_claims_among_registered_resources(store: Store) -> None:
    Leases(store.engine).claim(
        ["outbox:1", "outbox:2", "calendar:a", "out%box"], "seed", TTL, NOW, 0
    )
    assert Leases(store.engine).holders("outbox:") == {}  # limit 0 claims and registers nothing
    Leases(store.engine).claim(
        ["outbox:1", "outbox:2", "calendar:a", "out%box"], "seed", TTL, NOW, 4
    )
    Leases(store.engine).release(["outbox:1", "outbox:2", "calendar:a", "out%box"], "seed")
    assert Leases(store.engine).claim("outbox:", "r1", TTL, NOW, limit=10) == [
        "outbox:1",
        "outbox:2",
    ]
    assert Leases(store.engine).claim("out%", "r2", TTL, NOW, limit=10) == ["out%box"]


def test_an_expired_lease_moves_to_another_holder(store: Store) -> None:
    res = ["calendar:a"]
    assert Leases(store.engine).claim(res, "r1", TTL, NOW, 1) == res
    assert Leases(store.engine).claim(res, "r2", TTL, NOW + TTL / 2, 1) == []
    assert (
        Leases(store.engine).heartbeat(res, "r1", TTL, NOW + TTL / 2) == res
    )  # now until NOW + 1.5 TTL
    assert Leases(store.engine).claim(res, "r2", TTL, NOW + TTL, 1) == []
    # r1 stopped renewing (it died): once expired, r2 takes over ...
    later = NOW + TTL * 2
    assert Leases(store.engine).claim(res, "r2", TTL, later, 1) == res
    # ... and r1 learns it lost the lease; its late release does not free r2's lease.
    assert Leases(store.engine).heartbeat(res, "r1", TTL, later) == []
    Leases(store.engine).release(res, "r1")
    assert Leases(store.engine).holders(res) == {"calendar:a": "r2"}
    Leases(store.engine).release(res, "r2")
    assert Leases(store.engine).claim(res, "r3", TTL, later, 1) == res


def test_a_heartbeat_after_expiry_does_not_revive_the_lease(store: Store) -> None:
    res = ["calendar:a"]
    Leases(store.engine).claim(res, "r1", TTL, NOW, 1)
    assert Leases(store.engine).heartbeat(res, "r1", TTL, NOW + TTL) == []


def test_competing_holders_never_hold_the_same_resource(store: Store) -> None:
    resources = [f"calendar:{i:02}" for i in range(30)]
    holders_n, rounds, limit = 8, 15, 5
    barrier = threading.Barrier(holders_n)
    claimed: dict[tuple[int, str], list[str]] = {}
    errors: list[BaseException] = []

    def replica(name: str) -> None:
        try:
            for round_no in range(rounds):
                # Every round starts after all leases of the round before expired.
                now = NOW + round_no * 2 * TTL
                barrier.wait(timeout=30)
                claimed[(round_no, name)] = Leases(store.engine).claim(
                    resources, name, TTL, now, limit
                )
        except BaseException as exc:  # reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=replica, args=(f"replica-{i}",)) for i in range(holders_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []

    for round_no in range(rounds):
        got = [claimed[(round_no, f"replica-{i}")] for i in range(holders_n)]
        flat = [res for one in got for res in one]
        assert len(flat) == len(set(flat)), f"round {round_no}: a resource has two holders"
        assert all(len(one) <= limit for one in got)
        assert flat, f"round {round_no}: nobody claimed anything"
    last = {
        res: f"replica-{i}"
        for i in range(holders_n)
        for res in claimed[(rounds - 1, f"replica-{i}")]
    }
    held = {res: who for res, who in Leases(store.engine).holders(resources).items() if res in last}
    assert held == last


def test_a_discovered_caldav_collection_is_kept_per_config_and_can_be_forgotten(
    store: Store,
) -> None:
    url = "https://dav.example.com/mona/work%20cal/"
    assert store.discovered_collection("work", "d1") is None
    store.remember_collection("work", "d1", url)
    assert store.discovered_collection("work", "d1") == url  # exactly as found
    assert store.discovered_collection("work", "d2") is None  # the config changed
    store.remember_collection("work", "d2", url + "x/")
    assert store.discovered_collection("work", "d1") is None
    assert store.discovered_collection("work", "d2") == url + "x/"
    store.remember_collection("work", "d2", None)
    assert store.discovered_collection("work", "d2") is None
    with pytest.raises(ValueError, match="credentials"):
        store.remember_collection("work", "d1", "https://mona:secret@dav.example.com/cal/")
    assert table_rows(store, "caldav_collections") == []


# -- the quiet cycle's statements ---------------------------------------------


def test_begin_cycle_reads_the_cursor_and_whether_anything_is_due(store: Store) -> None:
    assert store.begin_cycle(CAL, NOW) == CycleStart(cursor=None, due=False)
    later = NOW + timedelta(days=1)
    store.commit_cycle(
        CAL, "fp|token-1", [record(ref("a"), revisit_at=later)], [], run(counts={"x": 1})
    )
    assert store.begin_cycle(CAL, NOW) == CycleStart(cursor="fp|token-1", due=False)
    assert store.begin_cycle(CAL, later) == CycleStart(cursor="fp|token-1", due=True)
    assert store.begin_cycle("bob", later) == CycleStart(cursor=None, due=False)
    store.commit_cycle(CAL, None, [record(ref("b"), pending_write=True)], [], run())
    assert store.begin_cycle(CAL, NOW).due
    assert store.begin_cycle(CAL, NOW).due == bool(store.due_refs(CAL, NOW))


def test_commit_quiet_writes_the_cursor_and_the_run_log_and_nothing_else(store: Store) -> None:
    store.commit_cycle(CAL, "fp|token-1", [record(ref("a"))], [], run())
    before = table_rows(store, "event_records")
    store.commit_quiet(CAL, "fp|token-2", run(started_at=NOW + timedelta(minutes=5)))
    assert store.get_cursor(CAL) == "fp|token-2"
    store.commit_quiet(CAL, None, run(started_at=NOW + timedelta(minutes=10), ok=False))
    assert store.get_cursor(CAL) == "fp|token-2"  # None: unchanged
    store.commit_quiet("bob", "fp|bob-1", run("bob", started_at=NOW + timedelta(minutes=11)))
    assert table_rows(store, "event_records") == before
    newest = store.recent_runs(limit=3)
    assert [(r.calendar, r.started_at, r.ok) for r in newest] == [
        ("bob", NOW + timedelta(minutes=11), True),
        (CAL, NOW + timedelta(minutes=10), False),
        (CAL, NOW + timedelta(minutes=5), True),
    ]
    assert store.status()[CAL]["last_run"]["ok"] is False
    health = store.calendar_health()
    assert health[CAL].consecutive_failures == 1
    assert health[CAL].last_success_at == NOW + timedelta(minutes=5, seconds=2)
    assert health["bob"].last_success_at == NOW + timedelta(minutes=11, seconds=2)
    store.commit_quiet(CAL, None, run(started_at=NOW + timedelta(minutes=15)))
    assert store.calendar_health()[CAL].consecutive_failures == 0
    with pytest.raises(ValueError, match="code"):
        store.commit_quiet(CAL, "fp|x", run(error_kind="a sentence with spaces"))
    assert store.get_cursor(CAL) == "fp|token-2"


def test_commit_quiet_prunes_the_run_log_now_and_then(url: str) -> None:
    with Store.open(url, run_log_keep=3) as store:
        for i in range(1000):
            store.commit_quiet(CAL, None, run(started_at=NOW + timedelta(minutes=i)))
        kept = [r for r in table_rows(store, "run_log") if r.calendar == CAL]
        # Pruned on one quiet commit in 50 (at random): never all 1000, always the newest 3.
        assert 3 <= len(kept) < 1000
        newest = store.recent_runs(limit=3)
        assert [r.started_at for r in newest] == [
            NOW + timedelta(minutes=i) for i in (999, 998, 997)
        ]


def test_the_quiet_statements_work_from_many_threads(store: Store) -> None:
    def quiet(n: int) -> None:
        for i in range(20):
            name = f"cal{n}"
            store.begin_cycle(name, NOW)
            store.commit_quiet(name, f"fp|{i}", run(name, started_at=NOW + timedelta(minutes=i)))

    threads = [threading.Thread(target=quiet, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {store.get_cursor(f"cal{n}") for n in range(6)} == {"fp|19"}
    assert len(table_rows(store, "run_log")) == 6 * 20
