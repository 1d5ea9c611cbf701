"""Leases: which replica works on which resource (a calendar, a batch of outbox rows).

A lease is a row ``(resource, holder, expires_at)``. A holder claims free or
expired resources, renews its leases with :meth:`Leases.heartbeat` while it
works, and gives them back with :meth:`Leases.release`. A holder that dies simply stops
renewing; once its leases expire, others claim them.

On PostgreSQL the claim is ``SELECT ... FOR UPDATE SKIP LOCKED``: competing
replicas skip the rows another one is claiming instead of queueing on them.
On SQLite (one machine) the claim runs in a ``BEGIN IMMEDIATE`` transaction,
which serialises claimers on the write lock.

A holder is a replica id, by default ``HOST-PID-RANDOM``
(:func:`local_replica_id`): a process killed with ``kill -9`` cannot give its
leases back, and :meth:`Leases.reclaim_dead_local` lets its successor on the same
host take them back at once instead of waiting for them to expire.

Time is an argument (``now``); the caller's clock decides.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import ColumnElement, Engine, and_, case, or_, select, update

from feedback_agendas.scheduler.storage.db import insert_ignoring, write_transaction
from feedback_agendas.scheduler.storage.tables import leases


class OtherLeases(Protocol):
    """Leases kept outside the leases table (the outbox's rows): who holds some, give back."""

    def lease_owners(self) -> set[str]: ...

    def release(self, owner: str) -> int: ...


class Leases:
    """The leases table on one database (``db``, a SQLAlchemy engine)."""

    def __init__(self, db: Engine) -> None:
        self.db = db

    def claim(
        self,
        resources: str | Sequence[str],
        holder: str,
        ttl: timedelta,
        now: datetime,
        limit: int,
    ) -> list[str]:
        """Claim up to ``limit`` resources for ``holder`` until ``now + ttl``; return them, sorted.

        ``resources`` is either a list of resource names (rows are created for
        the ones not seen before) or one string: a prefix, matching the resources
        that already have rows. A resource is claimable when it is free, its
        lease expired, or ``holder`` holds it already (the claim renews it; those
        come first, so a holder keeps its work). Two holders never hold the same
        resource at the same time.
        """
        if limit <= 0:
            return []
        t = leases.c
        if isinstance(resources, str):
            wanted: ColumnElement[bool] = t.resource.startswith(resources, autoescape=True)
        else:
            names = sorted(set(resources))
            if not names:
                return []
            self._register(names)
            wanted = t.resource.in_(names)
        claimable = or_(t.holder.is_(None), t.holder == holder, t.expires_at <= now)
        candidates = (
            select(t.resource)
            .where(wanted, claimable)
            .order_by(case((t.holder == holder, 0), else_=1), t.resource)
            .limit(limit)
            # Ignored on SQLite, where BEGIN IMMEDIATE already excludes other claimers.
            .with_for_update(skip_locked=True)
        )
        with write_transaction(self.db) as conn:
            chosen = list(conn.execute(candidates).scalars())
            if chosen:
                conn.execute(
                    update(leases)
                    .where(t.resource.in_(chosen))
                    .values(holder=holder, expires_at=now + ttl)
                )
        return sorted(chosen)

    def heartbeat(
        self, resources: Sequence[str], holder: str, ttl: timedelta, now: datetime
    ) -> list[str]:
        """Extend ``holder``'s unexpired leases on ``resources`` to ``now + ttl``; return those.

        A resource missing from the result was lost (expired, or claimed by
        someone else): stop working on it.
        """
        names = sorted(set(resources))
        if not names:
            return []
        t = leases.c
        mine = and_(t.resource.in_(names), t.holder == holder, t.expires_at > now)
        with write_transaction(self.db) as conn:
            renewed = list(conn.execute(select(t.resource).where(mine).with_for_update()).scalars())
            if renewed:
                conn.execute(
                    update(leases).where(t.resource.in_(renewed)).values(expires_at=now + ttl)
                )
        return sorted(renewed)

    def release(self, resources: Sequence[str], holder: str) -> None:
        """Give back ``holder``'s leases on ``resources``; leases held by others are untouched."""
        names = sorted(set(resources))
        if not names:
            return
        t = leases.c
        with write_transaction(self.db) as conn:
            conn.execute(
                update(leases)
                .where(t.resource.in_(names), t.holder == holder)
                .values(holder=None, expires_at=None)
            )

    def holders(self, resources: str | Sequence[str]) -> dict[str, str | None]:
        """Who holds each resource (by name or prefix), expired or not; ``None``: free."""
        t = leases.c
        if isinstance(resources, str):
            query = select(t.resource, t.holder).where(
                t.resource.startswith(resources, autoescape=True)
            )
        else:
            query = select(t.resource, t.holder).where(t.resource.in_(sorted(set(resources))))
        with self.db.connect() as conn:
            return {resource: who for resource, who in conn.execute(query.order_by(t.resource))}

    def _register(self, names: list[str]) -> None:
        # A separate, short transaction: concurrent claimers must not hold each
        # other up on freshly inserted (still uncommitted) rows.
        with write_transaction(self.db) as conn:
            conn.execute(
                insert_ignoring(conn, leases, ["resource"]),
                [{"resource": name, "holder": None, "expires_at": None} for name in names],
            )

    def reclaim_dead_local(self, prefix: str, own: str, *others: OtherLeases) -> int:
        """Give back the leases of earlier processes on this host that are gone; return how many.

        Looks at the leases on resources starting with ``prefix`` and at those of
        ``others``. A process killed with ``kill -9`` (or by the OOM killer)
        cannot release its leases, and a restarted daemon would wait out the
        whole lease before it may take that work. On this host we can tell that
        the holder is dead: its id is a :func:`local_replica_id` whose pid no
        longer exists, or is our own pid under another id (a container restarted
        as pid 1). A pid that exists is treated as alive, even if it was reused:
        then we wait, which is safe. ``own`` is never reclaimed.

        Call once at start-up, before any work, in a process that runs one replica.
        """
        pattern = re.compile(re.escape(socket.gethostname()) + r"-(\d+)-[0-9a-f]{6}")
        held = self.holders(prefix)
        candidates = {h for h in held.values() if h}
        for other in others:
            candidates |= other.lease_owners()
        dead = set()
        for holder in candidates - {own}:
            found = pattern.fullmatch(holder)
            if found and _process_gone(int(found.group(1))):
                dead.add(holder)
        released = 0
        for holder in sorted(dead):
            resources = [r for r, h in held.items() if h == holder]
            self.release(resources, holder)
            released += len(resources) + sum(other.release(holder) for other in others)
        return released


def local_replica_id() -> str:
    """A replica id for this process: ``HOST-PID-RANDOM``."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _process_gone(pid: int) -> bool:
    """True when no process ``pid`` runs on this host, or it is this very process."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's live process
        return False
    return False
