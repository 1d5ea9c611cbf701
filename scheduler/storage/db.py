"""How we talk to the database: engines, the UTC time type, write transactions.

The same code runs on SQLite (the default, one process) and PostgreSQL
(several replicas). Differences are kept here:

- SQLite connections run in WAL mode with a busy timeout and foreign keys on.
  We emit ``BEGIN`` ourselves so that write transactions can be
  ``BEGIN IMMEDIATE``: a deferred transaction that reads and then writes can
  fail at once with "database is locked" when another writer got in between,
  and the busy timeout does not help with that lock upgrade.
- Times are stored as aware UTC (``timestamptz`` on PostgreSQL, fixed-width
  UTC text on SQLite, which also sorts and compares correctly).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, DateTime, Dialect, Engine, Insert, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.types import TypeDecorator

from feedback_agendas.agendas.errors import UserError
from feedback_agendas.integrations.redact import mask_url

SQLITE_BUSY_TIMEOUT_MS = 10_000

_BEGIN_MODES = {"DEFERRED": "BEGIN", "IMMEDIATE": "BEGIN IMMEDIATE"}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime that always comes back in UTC.

    Naive datetimes are refused: a naive time is a bug (whose clock?), and
    storing it would make ``revisit_at <= now`` silently wrong.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: the store keeps aware UTC times")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite keeps the text form; without the offset it is fixed-width and sorts.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def is_postgresql(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "postgresql"


def insert_ignoring(bind: Engine | Connection, table: Table, keys: Sequence[str]) -> Insert:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING``, on SQLite and PostgreSQL alike.

    Add ``.returning(...)`` to learn which rows went in (``rowcount`` of an
    executemany is not reliable across drivers).
    """
    return _dialect_insert(bind, table).on_conflict_do_nothing(index_elements=list(keys))


def upsert(
    bind: Engine | Connection,
    table: Table,
    keys: Sequence[str],
    set_: Mapping[str, Any] | None = None,
) -> Insert:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE``, on SQLite and PostgreSQL alike.

    ``set_`` says what a conflicting row becomes (values or expressions on the
    table's columns); by default every other column takes the new row's value.
    """
    stmt = _dialect_insert(bind, table)
    if set_ is None:
        set_ = {col.name: stmt.excluded[col.name] for col in table.columns if col.name not in keys}
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=dict(set_))


def _dialect_insert(bind: Engine | Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    if bind.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def create_engine_for(url: str) -> Engine:
    """Create the engine for a ``sqlite:///FILE`` or ``postgresql+psycopg://`` URL.

    Raises :class:`~feedback_agendas.agendas.errors.UserError` for any other kind of database.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise UserError(f"not a database URL: {mask_url(url)}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = create_engine(parsed)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            # We ship psycopg 3; a bare scheme would make SQLAlchemy look for psycopg2.
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True)
    raise UserError(
        f"unsupported database {mask_url(url)}: use sqlite:///FILE or postgresql+psycopg://"
    )


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event (below) emit BEGIN, instead of pysqlite's
    # implicit transactions, so that we can choose BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # The timeout first: switching to WAL itself may have to wait for a lock.
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
    connection.exec_driver_sql(_BEGIN_MODES[mode])


_sqlite_writers: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_sqlite_writers_guard = threading.Lock()


def _writer_lock(engine: Engine) -> AbstractContextManager[object]:
    """One writing thread at a time per SQLite engine in this process.

    SQLite allows one writer; with many sync threads, BEGIN IMMEDIATE would
    otherwise poll its busy timeout and can give up ("database is locked").
    Queueing on a lock here is fair and costs nothing. Other processes still
    wait on the busy timeout. PostgreSQL needs no such lock.
    """
    if engine.dialect.name != "sqlite":
        return nullcontext()
    with _sqlite_writers_guard:
        lock = _sqlite_writers.get(engine)
        if lock is None:
            lock = _sqlite_writers[engine] = threading.RLock()
    return lock


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: ``BEGIN IMMEDIATE`` on SQLite, plain on PostgreSQL.

    Commits on normal exit, rolls back on an exception.
    """
    with (
        _writer_lock(engine),
        engine.execution_options(sqlite_begin="IMMEDIATE").begin() as connection,
    ):
        yield connection
