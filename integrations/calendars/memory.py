"""An in-memory calendar: for tests, dry runs and the Hypothesis state machine.

It behaves like a real provider where the engine can tell: every change (a
user's or our own write) bumps the event's etag and shows up in the next
change set; writes are compare-and-swap on the etag; cursors can expire.
Test helpers edit the calendar *as a user* (:meth:`MemoryProvider.put`,
:meth:`MemoryProvider.delete`), inject failures
(:meth:`MemoryProvider.fail_next_write`) and simulate a concurrent edit
between read and write (:attr:`MemoryProvider.before_write`).

Request kinds counted in ``requests``: ``list``, ``get``, ``write``.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Literal

from feedback_agendas.agendas.errors import (
    CursorExpired,
    NotFound,
    PreconditionFailed,
    ProviderError,
)
from feedback_agendas.agendas.model import (
    ChangeSet,
    DescriptionWrite,
    EventRef,
    Meeting,
    WriteOutcome,
)
from feedback_agendas.integrations.calendars.base import BuildContext, CalendarConfig, ProviderSpec

_instances = itertools.count(1)


class MemoryProvider:
    """A calendar held in a dict; see the module docstring."""

    def __init__(self, name: str, owner: str) -> None:
        self.name = name
        self.owner = owner.lower()
        self.requests: Counter[str] = Counter()
        #: Called with each write before its etag is checked; a test may ``put``
        #: a user edit here to make the write stale.
        self.before_write: Callable[[DescriptionWrite], None] | None = None
        self._events: dict[EventRef, Meeting] = {}
        self._changed_at: dict[EventRef, int] = {}  # ref -> sequence of its last change
        self._deleted_at: dict[EventRef, int] = {}
        self._sequence = 0
        self._etags = itertools.count(1)
        self._failures: dict[EventRef, Exception] = {}
        # Cursors name this instance and an epoch, so that a cursor from another
        # calendar, another process, or before expire_cursors() is rejected.
        self._instance = f"{next(_instances)}{secrets.token_hex(4)}"
        self._epoch = 0

    # -- the provider protocol ---------------------------------------------------

    def read_changes(self, cursor: str | None) -> ChangeSet:
        """Everything (``cursor`` None) or what changed after ``cursor``."""
        self.requests["list"] += 1
        if cursor is None:
            return ChangeSet(
                meetings=tuple(self.meetings()),
                deleted=(),
                cursor=self._cursor(),
                full=True,
            )
        since = self._decode_cursor(cursor)
        changed = sorted(
            (ref for ref, seq in self._changed_at.items() if seq > since), key=EventRef.sort_key
        )
        deleted = sorted(
            (
                ref
                for ref, seq in self._deleted_at.items()
                if seq > since and ref not in self._events
            ),
            key=EventRef.sort_key,
        )
        return ChangeSet(
            meetings=tuple(self._events[ref] for ref in changed if ref in self._events),
            deleted=tuple(deleted),
            cursor=self._cursor(),
            full=False,
        )

    def get(self, ref: EventRef) -> Meeting | None:
        """The event as it is now, or None."""
        self.requests["get"] += 1
        return self._events.get(ref)

    def write(self, writes: Sequence[DescriptionWrite]) -> list[WriteOutcome]:
        """Compare-and-swap each description (and stored hash) on the event's etag."""
        return [self._write_one(w) for w in writes]

    def close(self) -> None:
        """Nothing to release."""

    # -- test helpers: the calendar's user ----------------------------------------

    def put(self, meeting: Meeting) -> Meeting:
        """Store or replace ``meeting`` as a user edit; returns it with its new etag.

        The calendar and owner are this provider's, whatever ``meeting`` says.
        """
        ref = dataclasses.replace(meeting.ref, calendar=self.name)
        return self._store(dataclasses.replace(meeting, ref=ref, owner=self.owner))

    def delete(self, ref: EventRef) -> None:
        """Delete an event as a user would; raises NotFound when there is none."""
        if ref not in self._events:
            raise NotFound(f"no event {ref.event_id}")
        del self._events[ref]
        self._changed_at.pop(ref, None)
        self._deleted_at[ref] = self._next_sequence()

    def meetings(self) -> list[Meeting]:
        """Every stored event, in ref order."""
        return [self._events[ref] for ref in sorted(self._events, key=EventRef.sort_key)]

    def fail_next_write(self, ref: EventRef, error: Exception) -> None:
        """Make the next write of ``ref`` fail with ``error``.

        ``error`` is a PreconditionFailed or a ProviderError instance.
        """
        if not isinstance(error, PreconditionFailed | ProviderError):
            raise TypeError("inject a PreconditionFailed or a ProviderError")
        self._failures[ref] = error

    def expire_cursors(self) -> None:
        """Invalidate every cursor issued so far (like Google's 410 fullSyncRequired)."""
        self._epoch += 1

    # -- internals ----------------------------------------------------------------

    def _write_one(self, w: DescriptionWrite) -> WriteOutcome:
        self.requests["write"] += 1
        failure = self._failures.pop(w.ref, None)
        if failure is not None:
            return WriteOutcome(w.ref, error=failure)
        if self.before_write is not None:
            self.before_write(w)
        current = self._events.get(w.ref)
        if current is None:
            return WriteOutcome(w.ref, error=NotFound(f"no event {w.ref.event_id}"))
        if current.etag != w.etag:
            return WriteOutcome(w.ref, error=PreconditionFailed(f"{w.ref.event_id} changed"))
        stored = self._store(
            dataclasses.replace(current, description=w.description, stored_hash=w.block_hash)
        )
        return WriteOutcome(w.ref, etag=stored.etag)

    def _store(self, meeting: Meeting) -> Meeting:
        stored = dataclasses.replace(meeting, etag=f'"{next(self._etags)}"')
        self._events[stored.ref] = stored
        self._changed_at[stored.ref] = self._next_sequence()
        return stored

    def _next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def _cursor(self) -> str:
        return f"mem:{self._instance}:{self._epoch}:{self._sequence}"

    def _decode_cursor(self, cursor: str) -> int:
        parts = cursor.split(":")
        if len(parts) != 4 or parts[0] != "mem" or parts[1] != self._instance:
            raise CursorExpired("not a cursor of this calendar")
        if parts[2] != str(self._epoch):
            raise CursorExpired("cursor expired")
        try:
            since = int(parts[3])
        except ValueError:
            raise CursorExpired("malformed cursor") from None
        if not 0 <= since <= self._sequence:
            raise CursorExpired("cursor from the future")
        return since


# -- registration -------------------------------------------------------------


class MemoryCalendar(CalendarConfig):
    """An in-memory calendar for tests and dry runs."""

    provider: Literal["memory"]


def build_memory(config: MemoryCalendar, context: BuildContext) -> MemoryProvider:
    """A new, empty calendar for one ``calendars[]`` entry."""
    return MemoryProvider(name=config.name, owner=config.owner)


PROVIDER = ProviderSpec(name="memory", config=MemoryCalendar, build=build_memory)
