"""The calendar provider protocol and the registry that plugs providers in.

A provider does three things: report what changed since a cursor, read one
event again, and write descriptions conditionally on an etag. Everything else
(classification, planning, merging, records) happens outside it.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from feedback_agendas.agendas.model import (
    ChangeSet,
    DescriptionWrite,
    EventRef,
    Meeting,
    WriteOutcome,
)


@runtime_checkable
class CalendarProvider(Protocol):
    """One calendar.

    ``name`` is the calendar's configured name (``EventRef.calendar``).
    ``requests`` counts the requests made to the backend by kind
    (``list``, ``get``, ``patch``, ``batch``, ``put``, ``report`` ...).
    """

    name: str
    requests: Counter[str]

    def read_changes(self, cursor: str | None) -> ChangeSet:
        """Return what changed since ``cursor``; ``None`` means a full listing.

        Raises :class:`~feedback_agendas.agendas.errors.CursorExpired` when the cursor is no
        longer valid (the caller then calls again with ``None``), and
        :class:`~feedback_agendas.agendas.errors.ProviderError` subclasses on backend failures.
        Events it cannot parse come back in ``ChangeSet.unreadable``.
        """
        ...

    def get(self, ref: EventRef) -> Meeting | None:
        """Read one event (a series, a single event or one occurrence) again.

        Returns ``None`` when it no longer exists.
        """
        ...

    def write(self, writes: Sequence[DescriptionWrite]) -> list[WriteOutcome]:
        """Write each description if the event's etag still matches.

        One outcome per write, in order. A stale etag gives an outcome whose
        ``error`` is :class:`~feedback_agendas.agendas.errors.PreconditionFailed`; other failures
        carry a :class:`~feedback_agendas.agendas.errors.ProviderError`. Writes to different
        occurrences of one stored object (one .ics file) are applied together.
        Only the description and our block hash change.
        """
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...

    # Optional: ``cursor_after_writes(cursor) -> str``. The engine stores its
    # result instead of ``ChangeSet.cursor`` after the cycle's writes, so that a
    # provider can record the versions its own writes made (CalDAV: the etags
    # its PUTs returned) and not fetch them back in the next cycle.


# name -> "module:Class"; imported on first use so that a vdir-only install
# never imports googleapiclient or caldav.
PROVIDERS: dict[str, str] = {
    "memory": "feedback_agendas.integrations.calendars.memory:MemoryProvider",
    "vdir": "feedback_agendas.integrations.calendars.vdir:VdirProvider",
    "google": "feedback_agendas.integrations.calendars.google:GoogleProvider",
    "caldav": "feedback_agendas.integrations.calendars.caldav:CaldavProvider",
}


def provider_class(kind: str) -> Any:
    """Import and return the provider class registered under ``kind``."""
    try:
        target = PROVIDERS[kind]
    except KeyError:
        raise ValueError(f"unknown calendar provider {kind!r}") from None
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)
