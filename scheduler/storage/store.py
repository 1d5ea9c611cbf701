"""The store: sync cursors, one record per event we saw, and the run log.

It keeps what we need to stay idempotent and nothing more: ids, block hashes,
codes, counts and times. Never titles, descriptions, attendee names or
feedback content (I7); codes are checked to be codes, so free text is refused
before it reaches the database.

A cycle's outcome (new cursor, records, run log entry) is committed in one
transaction: a crash before the commit leaves the old cursor, and the next
cycle reads the same changes again.

A quiet cycle (nothing changed, nothing due) is most cycles, and the one
every calendar pays on every poll: :meth:`Store.begin_cycle` reads its cursor
and whether any record is due in one statement, and :meth:`Store.commit_quiet`
writes the cursor and the run log entry in one statement each. Both run on the
DB-API connection with SQL prepared once per engine: SQLAlchemy's per-statement
work (cache keys, result objects, events) cost several times the statements.
"""

from __future__ import annotations

import random
import re
import threading
import weakref
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import QueuePool

from feedback_agendas.agendas.errors import UserError
from feedback_agendas.agendas.model import EventRef
from feedback_agendas.integrations.redact import mask_url
from feedback_agendas.scheduler.storage.db import (
    UTCDateTime,
    _writer_lock,
    create_engine_for,
    upsert,
    write_transaction,
)
from feedback_agendas.scheduler.storage.migrations import migrate
from feedback_agendas.scheduler.storage.tables import MAX_EVENT_ID as MAX_EVENT_ID
from feedback_agendas.scheduler.storage.tables import MAX_RECURRENCE_ID as MAX_RECURRENCE_ID
from feedback_agendas.scheduler.storage.tables import (
    caldav_collections,
    calendar_cursors,
    calendar_health,
    event_records,
    run_log,
    run_log_counts,
)

# Keep this many runs per calendar in the run log; older ones are pruned on commit
# (after a quiet cycle, on one commit in QUIET_PRUNE_EVERY, drawn at random).
RUN_LOG_KEEP = 500
QUIET_PRUNE_EVERY = 50

# A series (or single event) has no recurrence id; the key column cannot be NULL.
_SERIES = ""

# A code is a short identifier ("one_on_one", "skipped.not_organizer",
# "error.RateLimited"): no spaces, so a sentence cannot pass for one.
_CODE = re.compile(r"^[A-Za-z0-9_.:/+-]+$")


def is_code(value: str, max_len: int) -> bool:
    """True when ``value`` is a code of 1 to ``max_len`` characters (no spaces, no text)."""
    return 0 < len(value) <= max_len and _CODE.match(value) is not None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """What we know about one event we saw or touched. Ids, codes, a hash and times only.

    ``kind``: ``one_on_one`` | ``team`` | ``skip``; ``reason``: the skip reason
    code; ``action``: what the last cycle did (``inserted``, ``updated``,
    ``removed``, ``unchanged``, ``left_edited``, ``skipped``, ``failed``);
    ``block_hash``: the hash of our block now in the event (``None``: none of
    ours); ``revisit_at``: when to read the event again without a change;
    ``pending_write``: a write failed or was given up, retry next cycle.
    """

    ref: EventRef
    kind: str
    reason: str | None
    action: str
    block_hash: str | None
    revisit_at: datetime | None
    pending_write: bool
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CalendarHealth:
    """How a calendar fares: its last successful cycle and the failures in a row since."""

    calendar: str
    last_success_at: datetime | None
    last_failure_at: datetime | None
    consecutive_failures: int
    last_error_kind: str | None


@dataclass(frozen=True, slots=True)
class CycleStart:
    """What a cycle reads before it asks the provider: the stored cursor, and whether any
    record of the calendar is due for a revisit or a retried write."""

    cursor: str | None
    due: bool


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One cycle of one calendar in the run log. ``counts`` maps codes to numbers."""

    calendar: str
    started_at: datetime
    finished_at: datetime
    ok: bool
    error_kind: str | None
    writes: int
    counts: dict[str, int]


class Store:
    """The database behind the engine. Open with :meth:`open`; close when done."""

    def __init__(self, engine: Engine, *, run_log_keep: int = RUN_LOG_KEEP) -> None:
        """Wrap an engine whose database is already at head (use :meth:`open`)."""
        self.engine = engine
        self.run_log_keep = run_log_keep
        self._quick = _QuietStatements(engine)
        self._prune_draw = random.Random()

    @classmethod
    def open(cls, url: str, *, run_log_keep: int = RUN_LOG_KEEP) -> Store:
        """Connect to ``url`` and upgrade the database to the newest schema.

        Raises :class:`~feedback_agendas.agendas.errors.UserError` when the database cannot be
        reached or was migrated by a newer version.
        """
        engine = create_engine_for(url)
        try:
            migrate(engine)
        except OperationalError as exc:
            engine.dispose()
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise UserError(f"cannot open the database at {mask_url(url)}: {reason}") from exc
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, run_log_keep=run_log_keep)

    def close(self) -> None:
        """Close every pooled connection."""
        self._quick.close()
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- cursors -------------------------------------------------------------

    def get_cursor(self, calendar: str) -> str | None:
        """The stored sync cursor of ``calendar``; ``None`` when there is none."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(calendar_cursors.c.cursor).where(calendar_cursors.c.calendar == calendar)
            ).scalar_one_or_none()

    def begin_cycle(self, calendar: str, now: datetime) -> CycleStart:
        """The cursor of ``calendar`` and whether :meth:`due_refs` has anything at ``now``.

        One statement.
        """
        q = self._quick
        row = q.run(q.begin, (calendar, calendar, q.time(now)), fetch=True)
        assert row is not None
        return CycleStart(cursor=row[0], due=bool(row[1]))

    def reset_cursor(self, calendar: str) -> None:
        """Forget the cursor: the next cycle lists the calendar in full. Records stay."""
        with write_transaction(self.engine) as conn:
            conn.execute(
                update(calendar_cursors)
                .where(calendar_cursors.c.calendar == calendar)
                .values(cursor=None)
            )

    # -- discovered CalDAV collections ---------------------------------------

    def discovered_collection(self, calendar: str, config_digest: str) -> str | None:
        """The collection URL found for ``calendar`` under this config; None if unknown."""
        t = caldav_collections.c
        with self.engine.connect() as conn:
            return conn.execute(
                select(t.url).where(t.calendar == calendar, t.config_digest == config_digest)
            ).scalar_one_or_none()

    def remember_collection(self, calendar: str, config_digest: str, url: str | None) -> None:
        """Keep (or, with ``url=None``, forget) where ``calendar`` was found."""
        if url is not None and (urlsplit(url).username or urlsplit(url).password):
            raise ValueError("a collection URL with credentials in it is not stored")
        with write_transaction(self.engine) as conn:
            if url is None:
                conn.execute(
                    delete(caldav_collections).where(caldav_collections.c.calendar == calendar)
                )
                return
            conn.execute(
                upsert(conn, caldav_collections, ["calendar"]),
                [{"calendar": calendar, "config_digest": config_digest, "url": url}],
            )

    # -- records -------------------------------------------------------------

    def records(self, calendar: str) -> dict[EventRef, EventRecord]:
        """Every record of ``calendar`` by event."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(event_records).where(event_records.c.calendar == calendar)
            ).mappings()
            return {rec.ref: rec for rec in map(_record_from_row, rows)}

    def all_records(self) -> list[EventRecord]:
        """Every record of every calendar, ordered by event."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(event_records)).mappings()
            return sorted(map(_record_from_row, rows), key=lambda rec: rec.ref)

    def due_refs(self, calendar: str, now: datetime) -> list[EventRef]:
        """Events of ``calendar`` to read again: revisit time reached, or a write pending."""
        t = event_records.c
        query = (
            select(t.calendar, t.event_id, t.recurrence_id)
            .where(t.calendar == calendar)
            .where(or_(t.revisit_at <= now, t.pending_write.is_(True)))
        )
        with self.engine.connect() as conn:
            return sorted(_ref(*row) for row in conn.execute(query))

    # -- the cycle's commit --------------------------------------------------

    def commit_cycle(
        self,
        calendar: str,
        cursor: str | None,
        upserts: Sequence[EventRecord],
        deletes: Sequence[EventRef],
        run: RunSummary,
    ) -> None:
        """Store a cycle's outcome in ONE transaction: cursor, records, run log.

        ``cursor=None`` keeps the stored cursor. ``upserts`` replace the records
        of their events, ``deletes`` drop records. Everything must belong to
        ``calendar``. Raises ``ValueError`` (and stores nothing) on a record or
        run that is not ids, codes and aware times.
        """
        _check_cycle(calendar, upserts, deletes, run)
        with write_transaction(self.engine) as conn:
            if cursor is not None:
                conn.execute(
                    upsert(conn, calendar_cursors, ["calendar"]),
                    [{"calendar": calendar, "cursor": cursor, "updated_at": run.finished_at}],
                )
            if upserts:
                conn.execute(
                    upsert(conn, event_records, ["calendar", "event_id", "recurrence_id"]),
                    [_row_from_record(rec) for rec in upserts],
                )
            if deletes:
                t = event_records.c
                conn.execute(
                    delete(event_records).where(
                        t.calendar == bindparam("b_calendar"),
                        t.event_id == bindparam("b_event_id"),
                        t.recurrence_id == bindparam("b_recurrence_id"),
                    ),
                    [
                        {
                            "b_calendar": ref.calendar,
                            "b_event_id": ref.event_id,
                            "b_recurrence_id": ref.recurrence_id or _SERIES,
                        }
                        for ref in deletes
                    ],
                )
            self._append_run(conn, run)

    def commit_quiet(self, calendar: str, cursor: str | None, run: RunSummary) -> None:
        """Store a quiet cycle's outcome: its new cursor (``None``: unchanged), its run log entry.

        One statement each, and one for the calendar's health, in one
        transaction (and, on one commit in ``QUIET_PRUNE_EVERY``, the run log's
        pruning). For a cycle that changed no record; anything else goes
        through :meth:`commit_cycle`.
        """
        _check_cycle(calendar, (), (), run)
        q = self._quick
        statements: list[tuple[str, tuple[Any, ...] | list[tuple[Any, ...]]]] = []
        if cursor is not None:
            statements.append((q.upsert_cursor, (calendar, cursor, q.time(run.finished_at))))
        prune = self._prune_draw.random() * QUIET_PRUNE_EVERY < 1
        if run.counts:
            statements.append((q.insert_run_returning, q.run_row(run)))
            statements.append((q.insert_counts, sorted(run.counts.items())))
        else:
            statements.append((q.insert_run, q.run_row(run)))
        if run.ok:
            statements.append((q.health_ok, (calendar, q.time(run.finished_at))))
        else:
            statements.append(
                (q.health_failed, (calendar, q.time(run.finished_at), run.error_kind))
            )
        if prune:
            statements.append((q.prune, (calendar, calendar, self.run_log_keep - 1)))
        q.write(statements)

    def _append_run(self, conn: Connection, run: RunSummary) -> None:
        run_id = conn.execute(
            run_log.insert()
            .values(
                calendar=run.calendar,
                started_at=run.started_at,
                finished_at=run.finished_at,
                ok=run.ok,
                error_kind=run.error_kind,
                writes=run.writes,
            )
            .returning(run_log.c.id)
        ).scalar_one()
        if run.counts:
            conn.execute(
                run_log_counts.insert(),
                [
                    {"run_id": run_id, "code": code, "count": count}
                    for code, count in sorted(run.counts.items())
                ],
            )
        _record_health(conn, run)
        # Prune: the newest ``run_log_keep`` runs of the calendar stay.
        oldest_kept = (
            select(run_log.c.id)
            .where(run_log.c.calendar == run.calendar)
            .order_by(run_log.c.id.desc())
            .offset(self.run_log_keep - 1)
            .limit(1)
            .scalar_subquery()
        )
        conn.execute(
            delete(run_log).where(run_log.c.calendar == run.calendar, run_log.c.id < oldest_kept)
        )

    # -- reading the run log -------------------------------------------------

    def calendar_health(self) -> dict[str, CalendarHealth]:
        """Every calendar's health, as the last committed runs of all replicas left it."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(calendar_health)).mappings().all()
        return {row["calendar"]: CalendarHealth(**row) for row in rows}

    def recent_runs(self, limit: int = 20) -> list[RunSummary]:
        """The newest ``limit`` runs over all calendars, newest first."""
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(run_log)
                    .order_by(run_log.c.started_at.desc(), run_log.c.id.desc())
                    .limit(limit)
                )
                .mappings()
                .all()
            )
            counts = _counts_of(conn, [row["id"] for row in rows])
        return [_run_from_row(row, counts.get(row["id"], {})) for row in rows]

    def status(self) -> dict[str, Any]:
        """Per calendar: cursor, records by kind and action, pending writes, health, last run.

        Only counts, codes and times, ready for ``json.dumps``.
        """
        t = event_records.c
        with self.engine.connect() as conn:
            cursors = dict(
                conn.execute(select(calendar_cursors.c.calendar, calendar_cursors.c.cursor)).all()
            )
            groups = conn.execute(
                select(t.calendar, t.kind, t.action, t.pending_write, func.count()).group_by(
                    t.calendar, t.kind, t.action, t.pending_write
                )
            ).all()
            last_ids = select(func.max(run_log.c.id)).group_by(run_log.c.calendar)
            last_runs = (
                conn.execute(select(run_log).where(run_log.c.id.in_(last_ids))).mappings().all()
            )
            health = {
                row["calendar"]: row
                for row in conn.execute(select(calendar_health)).mappings().all()
            }

        by_kind: dict[str, Counter[str]] = {}
        by_action: dict[str, Counter[str]] = {}
        pending: Counter[str] = Counter()
        for calendar, kind, action, pending_write, n in groups:
            by_kind.setdefault(calendar, Counter())[kind] += n
            by_action.setdefault(calendar, Counter())[action] += n
            if pending_write:
                pending[calendar] += n
        last = {row["calendar"]: row for row in last_runs}

        result: dict[str, Any] = {}
        for calendar in sorted(cursors.keys() | by_kind.keys() | last.keys() | health.keys()):
            kinds = by_kind.get(calendar, Counter())
            row = last.get(calendar)
            result[calendar] = {
                "cursor": cursors.get(calendar) is not None,
                "records": sum(kinds.values()),
                "by_kind": dict(sorted(kinds.items())),
                "by_action": dict(sorted(by_action.get(calendar, Counter()).items())),
                "pending_writes": pending[calendar],
                "health": _health_status(health.get(calendar)),
                "last_run": None
                if row is None
                else {
                    "started_at": row["started_at"].isoformat(),
                    "finished_at": row["finished_at"].isoformat(),
                    "ok": row["ok"],
                    "error_kind": row["error_kind"],
                    "writes": row["writes"],
                },
            }
        return result


def _health_status(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    success = row["last_success_at"]
    return {
        "last_success_at": success.isoformat() if success else None,
        "consecutive_failures": row["consecutive_failures"],
        "last_error_kind": row["last_error_kind"],
    }


class _QuietStatements:
    """The quiet cycle's SQL, prepared once for an engine's dialect, run on the DB-API connection.

    Errors come out as SQLAlchemy's (``DBAPIError`` subclasses), as from any
    other statement of the store.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        dialect = engine.dialect
        self.sqlite = dialect.name == "sqlite"
        # An SQLite file: each thread keeps a connection of its own (a file never
        # drops it; checking one out of the pool and back cost as much as the
        # statements). PostgreSQL connections come from the pool, which pings
        # them; so do SQLite's in-memory ones (one database per connection).
        self.own_connections = self.sqlite and isinstance(engine.pool, QueuePool)
        # A thread's connection closes when its thread is gone; close() closes
        # the ones still open.
        self._local = threading.local()
        self._own: weakref.WeakSet[Any] = weakref.WeakSet()
        self._own_lock = threading.Lock()
        p = "?" if self.sqlite else "%s"
        to_db = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
        self.time: Any = to_db or (lambda value: value)
        self.begin = (
            f"SELECT (SELECT cursor FROM calendar_cursors WHERE calendar = {p}),"
            f" EXISTS (SELECT 1 FROM event_records WHERE calendar = {p}"
            f" AND (revisit_at <= {p} OR pending_write))"
        )
        self.upsert_cursor = (
            f"INSERT INTO calendar_cursors (calendar, cursor, updated_at) VALUES ({p}, {p}, {p})"
            " ON CONFLICT (calendar) DO UPDATE"
            " SET cursor = excluded.cursor, updated_at = excluded.updated_at"
        )
        self.insert_run = (
            "INSERT INTO run_log (calendar, started_at, finished_at, ok, error_kind, writes)"
            f" VALUES ({p}, {p}, {p}, {p}, {p}, {p})"
        )
        self.insert_run_returning = self.insert_run + " RETURNING id"
        self.insert_counts = (
            f"INSERT INTO run_log_counts (run_id, code, count) VALUES ({p}, {p}, {p})"
        )
        self.health_ok = (
            "INSERT INTO calendar_health (calendar, last_success_at, consecutive_failures,"
            f" last_error_kind) VALUES ({p}, {p}, 0, NULL) ON CONFLICT (calendar) DO UPDATE"
            " SET last_success_at = excluded.last_success_at, consecutive_failures = 0,"
            " last_error_kind = NULL"
        )
        self.health_failed = (
            "INSERT INTO calendar_health (calendar, last_failure_at, consecutive_failures,"
            f" last_error_kind) VALUES ({p}, {p}, 1, {p}) ON CONFLICT (calendar) DO UPDATE"
            " SET last_failure_at = excluded.last_failure_at,"
            " consecutive_failures = calendar_health.consecutive_failures + 1,"
            " last_error_kind = excluded.last_error_kind"
        )
        self.prune = (
            f"DELETE FROM run_log WHERE calendar = {p} AND id < (SELECT id FROM run_log"
            f" WHERE calendar = {p} ORDER BY id DESC LIMIT 1 OFFSET {p})"
        )

    def run_row(self, run: RunSummary) -> tuple[Any, ...]:
        return (
            run.calendar,
            self.time(run.started_at),
            self.time(run.finished_at),
            run.ok,
            run.error_kind,
            run.writes,
        )

    def _connection(self) -> Any:
        if not self.own_connections:
            return self.engine.raw_connection()
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self.engine.raw_connection()
            connection.detach()  # ours now: the pool neither counts nor recycles it
            self._local.connection = connection
            with self._own_lock:
                self._own.add(connection)
            # Closed explicitly when its thread is gone, not left to the collector.
            weakref.finalize(threading.current_thread(), connection.close)
        return connection

    def _done(self, connection: Any) -> None:
        if not self.own_connections:
            connection.close()  # back to the pool, which rolls back

    def close(self) -> None:
        """Close the threads' own connections (SQLite)."""
        with self._own_lock:
            own, self._own = list(self._own), weakref.WeakSet()
        for connection in own:
            connection.close()
        self._local = threading.local()

    def run(self, sql: str, params: tuple[Any, ...], *, fetch: bool = False) -> Any:
        """One read statement in its own short transaction; the first row if ``fetch``."""
        connection = self._connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(sql, params)
                return cursor.fetchone() if fetch else None
            finally:
                cursor.close()
        except self.engine.dialect.loaded_dbapi.Error as exc:
            raise self._translated(sql, params, exc) from exc
        finally:
            self._done(connection)

    def write(self, statements: list[tuple[str, Any]]) -> None:
        """Run ``statements`` in one write transaction (``BEGIN IMMEDIATE`` on SQLite).

        ``insert_run_returning`` gives the new run's id; later statements that
        take a list of rows (the run's counts) get it prepended to each row.
        """
        sql: str = ""
        params: Any = ()
        with _writer_lock(self.engine):
            connection = self._connection()
            try:
                cursor = connection.cursor()
                try:
                    # One statement is a transaction of its own (SQLite's autocommit).
                    if self.sqlite and len(statements) > 1:
                        cursor.execute("BEGIN IMMEDIATE")
                    run_id = None
                    for sql, params in statements:
                        if isinstance(params, list):
                            cursor.executemany(sql, [(run_id, *row) for row in params])
                            continue
                        cursor.execute(sql, params)
                        if sql is self.insert_run_returning:
                            row = cursor.fetchone()
                            assert row is not None
                            run_id = row[0]
                    connection.commit()
                finally:
                    cursor.close()
            except self.engine.dialect.loaded_dbapi.Error as exc:
                connection.rollback()
                raise self._translated(sql, params, exc) from exc
            except BaseException:
                connection.rollback()
                raise
            finally:
                self._done(connection)

    def _translated(self, sql: str, params: Any, exc: Exception) -> Exception:
        dbapi_error = self.engine.dialect.loaded_dbapi.Error
        translated = DBAPIError.instance(
            sql, params, exc, dbapi_error, hide_parameters=True, dialect=self.engine.dialect
        )
        return translated


def upgrade(url: str) -> str:
    """Upgrade the database at ``url`` to the newest schema; return the revision it is at."""
    engine = create_engine_for(url)
    try:
        return migrate(engine)
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise UserError(f"cannot open the database at {mask_url(url)}: {reason}") from exc
    finally:
        engine.dispose()


# -- helpers ---------------------------------------------------------------


def _record_health(conn: Connection, run: RunSummary) -> None:
    """Count the run in ``calendar_health``: a success resets the failures in a row."""
    t = calendar_health
    if run.ok:
        values: dict[str, Any] = {
            "last_success_at": run.finished_at,
            "consecutive_failures": 0,
            "last_error_kind": None,
        }
        conn.execute(upsert(conn, t, ["calendar"], values).values(calendar=run.calendar, **values))
        return
    failed = {
        "last_failure_at": run.finished_at,
        "consecutive_failures": t.c.consecutive_failures + 1,
        "last_error_kind": run.error_kind,
    }
    conn.execute(
        upsert(conn, t, ["calendar"], failed).values(
            calendar=run.calendar,
            last_failure_at=run.finished_at,
            consecutive_failures=1,
            last_error_kind=run.error_kind,
        )
    )


def _check_code(field: str, value: str | None, max_len: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or len(value) > max_len or not _CODE.match(value):
        raise ValueError(f"{field} must be a code of at most {max_len} characters, without spaces")


def _check_ref(ref: EventRef, calendar: str) -> None:
    if ref.calendar != calendar:
        raise ValueError(f"an event of calendar {ref.calendar!r} in a cycle of {calendar!r}")
    if not ref.event_id or len(ref.event_id) > MAX_EVENT_ID or "\x00" in ref.event_id:
        raise ValueError(f"event ids must be 1 to {MAX_EVENT_ID} characters long, without NUL")
    if ref.recurrence_id is not None:
        _check_code("recurrence_id", ref.recurrence_id, MAX_RECURRENCE_ID)


def _check_cycle(
    calendar: str, upserts: Iterable[EventRecord], deletes: Iterable[EventRef], run: RunSummary
) -> None:
    if not calendar or len(calendar) > 200:
        raise ValueError("calendar names must be 1 to 200 characters long")
    for rec in upserts:
        _check_ref(rec.ref, calendar)
        _check_code("kind", rec.kind, 32)
        _check_code("reason", rec.reason, 64, optional=True)
        _check_code("action", rec.action, 32)
        _check_code("block_hash", rec.block_hash, 128, optional=True)
    for ref in deletes:
        _check_ref(ref, calendar)
    if run.calendar != calendar:
        raise ValueError(f"a run of calendar {run.calendar!r} in a cycle of {calendar!r}")
    _check_code("error_kind", run.error_kind, 64, optional=True)
    for code, count in run.counts.items():
        _check_code("count code", code, 128)
        if not isinstance(count, int):
            raise ValueError("counts must be integers")


def _ref(calendar: str, event_id: str, recurrence_id: str) -> EventRef:
    return EventRef(calendar, event_id, recurrence_id or None)


def _row_from_record(rec: EventRecord) -> dict[str, Any]:
    return {
        "calendar": rec.ref.calendar,
        "event_id": rec.ref.event_id,
        "recurrence_id": rec.ref.recurrence_id or _SERIES,
        "kind": rec.kind,
        "reason": rec.reason,
        "action": rec.action,
        "block_hash": rec.block_hash,
        "revisit_at": rec.revisit_at,
        "pending_write": rec.pending_write,
        "updated_at": rec.updated_at,
    }


def _record_from_row(row: Any) -> EventRecord:
    return EventRecord(
        ref=_ref(row["calendar"], row["event_id"], row["recurrence_id"]),
        kind=row["kind"],
        reason=row["reason"],
        action=row["action"],
        block_hash=row["block_hash"],
        revisit_at=row["revisit_at"],
        pending_write=bool(row["pending_write"]),
        updated_at=row["updated_at"],
    )


def _counts_of(conn: Connection, run_ids: list[int]) -> dict[int, dict[str, int]]:
    if not run_ids:
        return {}
    result: dict[int, dict[str, int]] = {}
    query = select(run_log_counts).where(run_log_counts.c.run_id.in_(run_ids))
    for row in conn.execute(query).mappings():
        result.setdefault(row["run_id"], {})[row["code"]] = row["count"]
    return result


def _run_from_row(row: Any, counts: dict[str, int]) -> RunSummary:
    return RunSummary(
        calendar=row["calendar"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        ok=bool(row["ok"]),
        error_kind=row["error_kind"],
        writes=row["writes"],
        counts=dict(sorted(counts.items())),
    )
