"""The store: the sync engine's state (cursors, event records, run log, health) on one database.

It keeps what we need to stay idempotent and nothing more: ids, block hashes,
codes, counts and times (the values and their checks are in
:mod:`feedback_agendas.scheduler.storage.records`). :meth:`Store.open` also
migrates the database; the other concerns' repositories (leases, outbox,
wins, read-backs, push channels) take the store's engine.

A cycle's outcome (new cursor, records, run log entry) is committed in one
transaction: a crash before the commit leaves the old cursor, and the next
cycle reads the same changes again. A quiet cycle (most cycles) reads and
writes through :mod:`feedback_agendas.scheduler.storage.quiet`.

Why one module above 400 lines: the cursor, the records, the run log and the
health are written together by :meth:`Store.commit_cycle`, in one transaction,
and read together by :meth:`Store.status`; split apart, each part would have
to hand its connection to the others.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
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
from sqlalchemy.exc import OperationalError

from feedback_agendas.agendas.errors import UserError
from feedback_agendas.agendas.model import EventRef
from feedback_agendas.integrations.redact import mask_url
from feedback_agendas.scheduler.storage.db import (
    create_engine_for,
    upsert,
    write_transaction,
)
from feedback_agendas.scheduler.storage.migrations import migrate
from feedback_agendas.scheduler.storage.quiet import QuietStatements
from feedback_agendas.scheduler.storage.records import (
    SERIES,
    CalendarHealth,
    CycleStart,
    EventRecord,
    RunSummary,
    check_cycle,
    is_code,
    record_from_row,
    ref_of,
    row_from_record,
    run_from_row,
)
from feedback_agendas.scheduler.storage.tables import (
    MAX_EVENT_ID,
    MAX_RECURRENCE_ID,
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


class Store:
    """The database behind the engine. Open with :meth:`open`; close when done."""

    def __init__(self, engine: Engine, *, run_log_keep: int = RUN_LOG_KEEP) -> None:
        """Wrap an engine whose database is already at head (use :meth:`open`)."""
        self.engine = engine
        self.run_log_keep = run_log_keep
        self._quick = QuietStatements(engine)
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
            return {rec.ref: rec for rec in map(record_from_row, rows)}

    def all_records(self) -> list[EventRecord]:
        """Every record of every calendar, ordered by event."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(event_records)).mappings()
            return sorted(map(record_from_row, rows), key=lambda rec: rec.ref)

    def due_refs(self, calendar: str, now: datetime) -> list[EventRef]:
        """Events of ``calendar`` to read again: revisit time reached, or a write pending."""
        t = event_records.c
        query = (
            select(t.calendar, t.event_id, t.recurrence_id)
            .where(t.calendar == calendar)
            .where(or_(t.revisit_at <= now, t.pending_write.is_(True)))
        )
        with self.engine.connect() as conn:
            return sorted(ref_of(*row) for row in conn.execute(query))

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
        check_cycle(calendar, upserts, deletes, run)
        with write_transaction(self.engine) as conn:
            if cursor is not None:
                conn.execute(
                    upsert(conn, calendar_cursors, ["calendar"]),
                    [
                        {
                            "calendar": calendar,
                            "cursor": cursor,
                            "updated_at": run.finished_at,
                        }
                    ],
                )
            if upserts:
                conn.execute(
                    upsert(conn, event_records, ["calendar", "event_id", "recurrence_id"]),
                    [row_from_record(rec) for rec in upserts],
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
                            "b_recurrence_id": ref.recurrence_id or SERIES,
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
        check_cycle(calendar, (), (), run)
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
        return [run_from_row(row, counts.get(row["id"], {})) for row in rows]

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


# What the rest of the code imports from here.
__all__ = [
    "MAX_EVENT_ID",
    "MAX_RECURRENCE_ID",
    "RUN_LOG_KEEP",
    "CalendarHealth",
    "CycleStart",
    "EventRecord",
    "RunSummary",
    "Store",
    "is_code",
    "upgrade",
]

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


def _counts_of(conn: Connection, run_ids: list[int]) -> dict[int, dict[str, int]]:
    if not run_ids:
        return {}
    result: dict[int, dict[str, int]] = {}
    query = select(run_log_counts).where(run_log_counts.c.run_id.in_(run_ids))
    for row in conn.execute(query).mappings():
        result.setdefault(row["run_id"], {})[row["code"]] = row["count"]
    return result
