"""Calendars found in a directory: who is an active person, whatever the directory.

A ``calendars:`` entry may be a source (``discover: NAME``) instead of one
calendar. The source names the active people it finds; each becomes a
calendar named by their address. A registered class is built from the
entry's settings (its keys but ``discover``, ``exclude`` and the removal
share) and has a classmethod ``calendar_entry(settings, address)``: the
``calendars[]`` entry of one person, as plain data the caller validates. The
runtime only asks for these, through the registry below (issue 15 adds
``microsoft_directory`` the same way).

Errors: :meth:`PeopleSource.active_people` raises
:class:`~feedback_agendas.agendas.errors.FeedbackAgendasError` subclasses (or
``OSError``) when the directory cannot be read; the caller then keeps the
last good list.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Protocol

# name -> "module:Class"; imported on first use (a vdir-only install never
# imports googleapiclient).
SOURCES: dict[str, str] = {
    "google_directory": "feedback_agendas.integrations.directory.google_discovery:"
    "GoogleDirectoryPeople",
}


class PeopleSource(Protocol):
    """The active people of one directory scope (a domain, org units, groups)."""

    #: How many list requests this source has made (for the bench and the tests).
    requests: int
    #: After :meth:`active_people`: each person's manager, where the directory
    #: names one (lower case); may be empty.
    managers: dict[str, str]

    def active_people(self) -> frozenset[str]:
        """Every active (not suspended, not archived) person in scope, as lower-case addresses."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def source_names() -> tuple[str, ...]:
    """The registered ``discover:`` names."""
    return tuple(sorted(SOURCES))


def source_class(name: str) -> Any:
    """Import and return the source class registered under ``name``."""
    try:
        target = SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown discovery source {name!r}") from None
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def calendar_entry(name: str, settings: Mapping[str, Any], address: str) -> dict[str, Any]:
    """The ``calendars[]`` entry source ``name`` makes for ``address`` (no directory call)."""
    entry: dict[str, Any] = source_class(name).calendar_entry(settings, address)
    return entry


def build_source(name: str, settings: Mapping[str, Any], **extra: Any) -> PeopleSource:
    """The source ``name`` built from its settings (the entry's keys but ``discover``)."""
    source: PeopleSource = source_class(name)(**settings, **extra)
    return source
