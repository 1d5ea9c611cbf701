"""The quiet cycle's SQL: prepared once per engine, run on the DB-API connection.

A quiet cycle (nothing changed, nothing due) is most cycles, and the one
every calendar pays on every poll: ``Store.begin_cycle`` reads its cursor
and whether any record is due in one statement, and ``Store.commit_quiet`` writes
the cursor, the run log entry and the health in one statement each.
SQLAlchemy's per-statement work (cache keys, result objects, events) cost
several times the statements, so these bypass it.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import QueuePool

from feedback_agendas.scheduler.storage.db import UTCDateTime, _writer_lock
from feedback_agendas.scheduler.storage.records import RunSummary


class QuietStatements:
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
            sql,
            params,
            exc,
            dbapi_error,
            hide_parameters=True,
            dialect=self.engine.dialect,
        )
        return translated
