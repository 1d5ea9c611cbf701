"""Calendars found in a directory: who is an active person, whatever the directory.

A ``calendars:`` entry may be a source (``discover: NAME``) instead of one
calendar. The source names the active people it finds; each becomes a
calendar named by their address. A registered class has:

- ``config``: its entry's model, a :class:`SourceConfig` whose ``discover``
  is ``Literal["<its name>"]`` (the config's discriminator);
- a constructor taking the entry's settings (:meth:`SourceConfig.source_settings`);
- a classmethod ``calendar_entry(settings, address)``: the ``calendars[]``
  entry of one person, as plain data the caller validates.

The runtime only asks for these, through the registry below.

Errors: :meth:`PeopleSource.active_people` raises
:class:`~feedback_agendas.agendas.errors.FeedbackAgendasError` subclasses (or
``OSError``) when the directory cannot be read; the caller then keeps the
last good list.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import Field

from feedback_agendas.integrations.config_types import Email, FrozenModel

# name -> "module:Class"; imported on first use (a vdir-only install never
# imports googleapiclient).
SOURCES: dict[str, str] = {
    "google_directory": "feedback_agendas.integrations.directory.google_discovery:"
    "GoogleDirectoryPeople",
    "microsoft_directory": "feedback_agendas.integrations.directory.microsoft_discovery:"
    "MicrosoftDirectoryPeople",
}


class SourceConfig(FrozenModel):
    """One ``discover:`` entry of ``calendars``; each source's model extends it.

    The list is refreshed at most once a day
    (:mod:`feedback_agendas.scheduler.sync.discovery`); ``exclude`` leaves
    people out, and a refresh that would stop syncing more than
    ``max_removal_share`` of the list at once waits for
    ``feedback-agendas discover --accept``.
    """

    discover: str
    exclude: tuple[Email, ...] = ()
    max_removal_share: float = Field(default=0.1, ge=0, le=1)

    def source_settings(self) -> dict[str, Any]:
        """What the source is built from: every key but ``discover``, ``exclude`` and the share."""
        return self.model_dump(exclude={"discover", "exclude", "max_removal_share"})

    def scope(self) -> dict[str, Any]:
        """What decides who is listed (no credentials); the stored list is keyed by it."""
        return {}

    def source_key(self) -> str:
        """A stable id of this source's scope, under which its list is stored."""
        scope = {"discover": self.discover, **self.scope()}
        digest = hashlib.sha256(json.dumps(scope, sort_keys=True).encode()).hexdigest()[:16]
        return f"{self.discover}:{digest}"

    def problems_here(self) -> list[tuple[str, str]]:
        """(key, message) for what this entry names on this machine and cannot use."""
        return []

    def may_list(self, address: str) -> bool:
        """Could this source list ``address``? (``revert`` of someone who left.)"""
        return True


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


def source_configs() -> tuple[type[SourceConfig], ...]:
    """Every registered source's entry model, in the order of :func:`source_names`."""
    return tuple(source_class(name).config for name in source_names())


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
