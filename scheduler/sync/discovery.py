"""Calendars from the directory: the people each ``discover:`` source found.

A ``calendars:`` entry with ``discover: NAME`` is a source. Each active person
it names becomes a calendar named by their address (the entry the source
makes for them), beside the config's own calendars; a person the config
already has a calendar for (by name or owner) keeps that one, and ``exclude``
leaves people out.

The list is stored in the database (``calendar_discovery``), so a new process
per ``sync`` (cron), a restarted daemon and every replica on PostgreSQL use
the same list, and the directory is asked at most once a day
(:data:`REFRESH_EVERY`; after a failure, again an hour later). A refresh:

- that fails keeps the last good list (a warning with the error's kind only);
- that would stop syncing more than the source's ``max_removal_share`` of the
  list at once is refused with a warning and kept as *pending* until an admin
  accepts it (``feedback-agendas discover --accept``, :func:`accept_pending`);
- otherwise replaces the list. A person who left or was suspended is no
  longer synced; what we recorded about their calendar stays until
  ``revert --calendar ADDRESS``.

With several replicas, one refreshes a source at a time (a lease); the others
use the stored list.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import SecretStr, TypeAdapter, ValidationError
from sqlalchemy import insert, select, update

from feedback_agendas.agendas.errors import FeedbackAgendasError
from feedback_agendas.integrations.directory.discovery import (
    PeopleSource,
    build_source,
    calendar_entry,
)
from feedback_agendas.scheduler.config.schema import (
    AppConfig,
    CalendarConfig,
    CalendarDiscovery,
    TeamConfig,
    calendar_entry_type,
)
from feedback_agendas.scheduler.storage.db import write_transaction
from feedback_agendas.scheduler.storage.leases import Leases
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.storage.tables import calendar_discovery

log = logging.getLogger(__name__)

REFRESH_EVERY = timedelta(days=1)
RETRY_AFTER_FAILURE = timedelta(hours=1)
# Long enough for a directory of tens of thousands (pages of 500, with retries).
REFRESH_LEASE = timedelta(minutes=10)
LEASE_PREFIX = "discovery:"

# What happened to a source's list.
STORED = "stored"  # not due: the stored list is used
REFRESHED = "refreshed"  # listed and applied
FAILED = "failed"  # the directory could not be read: the last good list stays
REFUSED = "refused"  # would remove too many at once: pending until accepted
ACCEPTED = "accepted"  # an admin accepted the pending list
BUSY = "busy"  # another replica is refreshing it
PREVIEWED = "previewed"  # listed for a dry run; nothing stored

SourceFactory = Callable[[CalendarDiscovery], PeopleSource]
# (refreshed_at, attempted_at, error_kind) of a stored list.
Stamp = tuple[datetime | None, datetime | None, str | None]


def default_source(source: CalendarDiscovery) -> PeopleSource:
    """The registered source for ``discover: NAME``, built from the entry's settings."""
    return build_source(source.discover, source.source_settings())


@dataclass(frozen=True)
class StoredList:
    """One source's row: the list in use, when it was refreshed, and a pending refresh."""

    addresses: frozenset[str]
    managers: Mapping[str, str]  # person -> manager, where the directory names one
    refreshed_at: datetime | None
    attempted_at: datetime | None
    error_kind: str | None
    pending: frozenset[str] | None
    pending_at: datetime | None
    pending_managers: Mapping[str, str] = field(default_factory=dict)

    def next_refresh(self) -> datetime | None:
        if self.attempted_at is None:
            return None
        wait = RETRY_AFTER_FAILURE if self.error_kind else REFRESH_EVERY
        return self.attempted_at + wait


@dataclass(frozen=True)
class DiscoveryOutcome:
    """What one source's refresh (or accept) did, for the CLI, the logs and the bench."""

    source: str
    discover: str
    state: str
    people: frozenset[str]  # the list now in use (for a dry run: what was listed)
    managers: Mapping[str, str] = field(default_factory=dict)  # of ``people``
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    pending_added: tuple[str, ...] = ()
    pending_removed: tuple[str, ...] = ()
    requests: int = 0
    seconds: float = 0.0
    error_kind: str | None = None
    refreshed_at: datetime | None = None
    max_removal_share: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "discover": self.discover,
            "state": self.state,
            "people": len(self.people),
            "added": list(self.added),
            "removed": list(self.removed),
            "pending_added": list(self.pending_added),
            "pending_removed": list(self.pending_removed),
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "error_kind": self.error_kind,
            "refreshed_at": self.refreshed_at.isoformat() if self.refreshed_at else None,
            "max_removal_share": self.max_removal_share,
        }


class DiscoveredLists:
    """The ``calendar_discovery`` rows: each source's list and its pending refresh."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def load(self, keys: Iterable[str] | None = None) -> dict[str, StoredList]:
        t = calendar_discovery.c
        query = select(calendar_discovery)
        if keys is not None:
            query = query.where(t.source.in_(sorted(set(keys))))
        with self.store.engine.connect() as conn:
            rows = conn.execute(query).all()
        found = {}
        for row in rows:
            addresses, managers = _decode(row.addresses)
            pending, pending_managers = _decode(row.pending)
            found[row.source] = StoredList(
                addresses=addresses or frozenset(),
                managers=managers,
                refreshed_at=row.refreshed_at,
                attempted_at=row.attempted_at,
                error_kind=row.error_kind,
                pending=pending,
                pending_at=row.pending_at,
                pending_managers=pending_managers,
            )
        return found

    def stamps(self, keys: Iterable[str]) -> dict[str, Stamp]:
        """(refreshed_at, attempted_at, error_kind) per source, without the lists: a cheap check."""
        t = calendar_discovery.c
        query = select(t.source, t.refreshed_at, t.attempted_at, t.error_kind).where(
            t.source.in_(sorted(set(keys)))
        )
        with self.store.engine.connect() as conn:
            return {
                row.source: (row.refreshed_at, row.attempted_at, row.error_kind)
                for row in conn.execute(query)
            }

    def save(self, key: str, **values: Any) -> None:
        """Insert or update the row of ``key``; lists are given as sets of addresses
        (``addresses``, ``pending``), each with its people's managers (``managers``,
        ``pending_managers``)."""
        for column, managers in (("addresses", "managers"), ("pending", "pending_managers")):
            relations = values.pop(managers, {})
            if column in values:
                values[column] = _encode(values[column], relations)
        t = calendar_discovery.c
        with write_transaction(self.store.engine) as conn:
            found = conn.execute(select(t.source).where(t.source == key)).first()
            if found is None:
                values.setdefault("addresses", _encode(frozenset(), {}))
                conn.execute(insert(calendar_discovery).values(source=key, **values))
            else:
                conn.execute(update(calendar_discovery).where(t.source == key).values(**values))


def _encode(addresses: frozenset[str] | None, managers: Mapping[str, str]) -> str | None:
    """``{address: manager or ""}``, sorted, so the text is the same in every process."""
    if addresses is None:
        return None
    return json.dumps({a: managers.get(a, "") for a in sorted(addresses)}, sort_keys=True)


def _decode(text: str | None) -> tuple[frozenset[str] | None, dict[str, str]]:
    if text is None:
        return None, {}
    data = json.loads(text)
    if isinstance(data, list):  # a list of addresses only
        return frozenset(data), {}
    return frozenset(data), {a: m for a, m in data.items() if m}


def refresh_sources(
    cfg: AppConfig,
    store: Store,
    now: datetime,
    *,
    force: bool = False,
    dry_run: bool = False,
    source_factory: SourceFactory = default_source,
    holder: str = "discovery",
    clock: Callable[[], float] = time.monotonic,
) -> list[DiscoveryOutcome]:
    """Refresh every source that is due (all of them with ``force``); one outcome per source.

    ``dry_run`` lists the due sources (all with ``force``) and stores nothing.
    Never raises for a directory failure (the outcome says ``failed``).
    """
    lists = DiscoveredLists(store)
    stored = lists.load(s.source_key() for s in cfg.calendar_sources)
    outcomes = []
    for source in cfg.calendar_sources:
        key = source.source_key()
        row = stored.get(key)
        due = force or row is None or (row.next_refresh() or now) <= now
        if not due:
            assert row is not None
            outcomes.append(_unchanged(source, row, STORED))
            continue
        if dry_run:
            outcomes.append(_preview(source, row, source_factory, clock))
            continue
        resource = LEASE_PREFIX + key
        if not Leases(store.engine).claim([resource], holder, REFRESH_LEASE, now, 1):
            outcomes.append(_unchanged(source, row, BUSY))
            continue
        try:
            outcomes.append(_refresh(source, row, lists, now, source_factory, clock))
        finally:
            Leases(store.engine).release([resource], holder)
    return outcomes


def _unchanged(source: CalendarDiscovery, row: StoredList | None, state: str) -> DiscoveryOutcome:
    return DiscoveryOutcome(
        source=source.source_key(),
        discover=source.discover,
        state=state,
        people=row.addresses if row else frozenset(),
        managers=row.managers if row else {},
        error_kind=row.error_kind if row else None,
        refreshed_at=row.refreshed_at if row else None,
        max_removal_share=source.max_removal_share,
        **_pending_diff(row),
    )


def _pending_diff(row: StoredList | None) -> dict[str, Any]:
    if row is None or row.pending is None:
        return {}
    return {
        "pending_added": tuple(sorted(row.pending - row.addresses)),
        "pending_removed": tuple(sorted(row.addresses - row.pending)),
    }


def _list_people(
    source: CalendarDiscovery, factory: SourceFactory, clock: Callable[[], float]
) -> tuple[frozenset[str] | None, dict[str, str], int, float, str | None]:
    """(people or None on failure, their managers, list requests, seconds, error kind)."""
    started = clock()
    requests = 0
    managers: dict[str, str] = {}
    try:
        reader = factory(source)
        try:
            people = reader.active_people()
            managers = {p: m for p, m in getattr(reader, "managers", {}).items() if p in people}
        finally:
            requests = reader.requests
            reader.close()
    except (FeedbackAgendasError, OSError) as exc:
        kind = type(exc).__name__
        # The kind only: a message may quote a URL or the credentials file.
        log.warning(
            "calendar source %s could not be listed (%s); keeping the last good list",
            source.discover,
            kind,
        )
        return None, {}, requests, clock() - started, kind
    return people, managers, requests, clock() - started, None


def _preview(
    source: CalendarDiscovery,
    row: StoredList | None,
    factory: SourceFactory,
    clock: Callable[[], float],
) -> DiscoveryOutcome:
    people, managers, requests, seconds, kind = _list_people(source, factory, clock)
    current = row.addresses if row else frozenset()
    if people is None:
        return DiscoveryOutcome(
            source=source.source_key(),
            discover=source.discover,
            state=FAILED,
            people=current,
            managers=row.managers if row else {},
            requests=requests,
            seconds=seconds,
            error_kind=kind,
            max_removal_share=source.max_removal_share,
        )
    return DiscoveryOutcome(
        source=source.source_key(),
        discover=source.discover,
        state=PREVIEWED,
        people=people,
        managers=managers,
        added=tuple(sorted(people - current)),
        removed=tuple(sorted(current - people)),
        requests=requests,
        seconds=seconds,
        refreshed_at=row.refreshed_at if row else None,
        max_removal_share=source.max_removal_share,
    )


def _refresh(
    source: CalendarDiscovery,
    row: StoredList | None,
    lists: DiscoveredLists,
    now: datetime,
    factory: SourceFactory,
    clock: Callable[[], float],
) -> DiscoveryOutcome:
    key = source.source_key()
    people, managers, requests, seconds, kind = _list_people(source, factory, clock)
    current = row.addresses if row else frozenset()
    kept = row.managers if row else {}
    common: dict[str, Any] = {
        "source": key,
        "discover": source.discover,
        "requests": requests,
        "seconds": seconds,
        "max_removal_share": source.max_removal_share,
    }
    if people is None:
        lists.save(key, attempted_at=now, error_kind=kind)
        return DiscoveryOutcome(
            state=FAILED,
            people=current,
            managers=kept,
            error_kind=kind,
            refreshed_at=row.refreshed_at if row else None,
            **common,
            **_pending_diff(row),
        )
    added = tuple(sorted(people - current))
    removed = tuple(sorted(current - people))
    if current and len(removed) / len(current) > source.max_removal_share:
        lists.save(
            key,
            attempted_at=now,
            error_kind=None,
            pending=people,
            pending_managers=managers,
            pending_at=now,
        )
        log.warning(
            "calendar source %s: the directory no longer lists %d of the %d people synced "
            "(%.0f%%, more than %.0f%% at once); nothing was removed. See "
            "`feedback-agendas discover`, then accept with `feedback-agendas discover --accept`",
            source.discover,
            len(removed),
            len(current),
            100 * len(removed) / len(current),
            100 * source.max_removal_share,
        )
        return DiscoveryOutcome(
            state=REFUSED,
            people=current,
            managers=kept,
            pending_added=added,
            pending_removed=removed,
            refreshed_at=row.refreshed_at if row else None,
            **common,
        )
    lists.save(
        key,
        addresses=people,
        managers=managers,
        refreshed_at=now,
        attempted_at=now,
        error_kind=None,
        pending=None,
        pending_at=None,
    )
    if added or removed:
        log.info(
            "calendar source %s: %d people (%d new, %d no longer listed)",
            source.discover,
            len(people),
            len(added),
            len(removed),
        )
    return DiscoveryOutcome(
        state=REFRESHED,
        people=people,
        managers=managers,
        added=added,
        removed=removed,
        refreshed_at=now,
        **common,
    )


def accept_pending(cfg: AppConfig, store: Store, now: datetime) -> list[DiscoveryOutcome]:
    """Apply every source's pending (refused) list; one outcome per source that had one."""
    lists = DiscoveredLists(store)
    stored = lists.load(s.source_key() for s in cfg.calendar_sources)
    outcomes = []
    for source in cfg.calendar_sources:
        key = source.source_key()
        row = stored.get(key)
        if row is None or row.pending is None:
            continue
        lists.save(
            key,
            addresses=row.pending,
            managers=row.pending_managers,
            refreshed_at=row.pending_at or now,
            attempted_at=row.pending_at or now,
            error_kind=None,
            pending=None,
            pending_at=None,
        )
        outcomes.append(
            DiscoveryOutcome(
                source=key,
                discover=source.discover,
                state=ACCEPTED,
                people=row.pending,
                managers=row.pending_managers,
                added=tuple(sorted(row.pending - row.addresses)),
                removed=tuple(sorted(row.addresses - row.pending)),
                refreshed_at=row.pending_at or now,
                max_removal_share=source.max_removal_share,
            )
        )
    return outcomes


_ADAPTERS: dict[int, TypeAdapter[Any]] = {}


def _calendar_adapter() -> TypeAdapter[Any]:
    """Validates one ``calendars[]`` entry as the registered providers' models do."""
    entry = calendar_entry_type()  # one object per set of registered models
    if id(entry) not in _ADAPTERS:
        _ADAPTERS[id(entry)] = TypeAdapter(entry)
    return _ADAPTERS[id(entry)]


def discovered_calendars(
    cfg: AppConfig, people: Mapping[str, frozenset[str]]
) -> tuple[CalendarConfig, ...]:
    """The calendars of the people each source found (``people``: source key -> addresses).

    In config order of the sources, each sorted by address. Left out: people
    in the source's ``exclude``, people the config (or an earlier source)
    already has a calendar for, and addresses that are not valid calendar
    names (a warning names the count, not the addresses).
    """
    taken = {c.name.lower() for c in cfg.calendars} | {c.owner.lower() for c in cfg.calendars}
    found: list[CalendarConfig] = []
    for source in cfg.calendar_sources:
        excluded = {a.lower() for a in source.exclude}
        settings = source.source_settings()
        invalid = 0
        for address in sorted(people.get(source.source_key(), frozenset())):
            if address in excluded or address in taken:
                continue
            try:
                entry = _calendar_adapter().validate_python(
                    calendar_entry(source.discover, settings, address)
                )
            except ValidationError:
                invalid += 1
                continue
            taken.add(address)
            found.append(entry)
        if invalid:
            log.warning(
                "calendar source %s: %d address(es) are not usable calendar names; left out",
                source.discover,
                invalid,
            )
    return tuple(found)


def discovered_teams(
    cfg: AppConfig, managers: Mapping[str, Mapping[str, str]]
) -> tuple[TeamConfig, ...]:
    """The teams the sources' people make: each manager with their direct reports.

    ``managers``: source key -> {person: their manager}. A team is named
    ``directory:MANAGER`` and has the settings of ``org.team_defaults`` and the
    manager's own ``org.teams`` entry, as a team from ``org.directory`` does;
    a manager with a configured team keeps exactly that team. Excluded people
    are nobody's reports.
    """
    configured = {t.manager.lower() for t in cfg.org.configured_teams}
    excluded = {a.lower() for source in cfg.calendar_sources for a in source.exclude}
    reports: dict[str, set[str]] = {}
    for source in cfg.calendar_sources:
        for person, manager in managers.get(source.source_key(), {}).items():
            if person not in excluded and manager != person:
                reports.setdefault(manager, set()).add(person)
    teams = []
    for manager in sorted(reports):
        if manager in configured:
            continue
        settings = cfg.org.directory_team_settings(manager)
        settings["notify"] = tuple(SecretStr(url) for url in settings["notify"])
        teams.append(
            TeamConfig.model_construct(
                name=f"directory:{manager}",
                manager=manager,
                members=tuple(sorted(reports[manager])),
                **settings,
            )
        )
    return tuple(teams)


def with_calendars(
    cfg: AppConfig, calendars: Sequence[CalendarConfig], teams: Sequence[TeamConfig] = ()
) -> AppConfig:
    """``cfg`` whose ``calendars`` are the config's own plus ``calendars`` (no sources left),
    and whose teams are the config's plus ``teams``."""
    org = cfg.org.model_copy(update={"teams": (*cfg.org.teams, *teams)}) if teams else cfg.org
    return cfg.model_copy(
        update={"calendars": (*cfg.calendars, *calendars), "calendar_sources": (), "org": org}
    )


def resolve_calendars(
    cfg: AppConfig,
    store: Store,
    now: datetime,
    *,
    refresh: bool = True,
    dry_run: bool = False,
    source_factory: SourceFactory = default_source,
) -> AppConfig:
    """``cfg`` with every source's people as calendars, refreshing the sources that are due.

    The one function every entry point calls (``sync``, ``revert``, ``preview``,
    the daemon's start and its reloads). ``refresh=False`` uses the stored
    lists only; ``dry_run`` lists due sources without storing anything. A
    config without sources is returned as it is.
    """
    if not cfg.calendar_sources:
        return cfg
    if refresh:
        outcomes = refresh_sources(cfg, store, now, dry_run=dry_run, source_factory=source_factory)
        people = {o.source: o.people for o in outcomes}
        managers = {o.source: o.managers for o in outcomes}
    else:
        stored = DiscoveredLists(store).load(s.source_key() for s in cfg.calendar_sources)
        people = {key: row.addresses for key, row in stored.items()}
        managers = {key: row.managers for key, row in stored.items()}
    return with_calendars(cfg, discovered_calendars(cfg, people), discovered_teams(cfg, managers))


def former_calendar(cfg: AppConfig, address: str) -> CalendarConfig | None:
    """A calendar for ``address`` as a source would make it, though no source lists them now.

    So that ``revert --calendar ADDRESS`` can clean up after someone who left:
    the first source that could list the address (its domain, where it names one).
    """
    for source in cfg.calendar_sources:
        if source.may_list(address):
            try:
                entry = calendar_entry(source.discover, source.source_settings(), address.lower())
                calendar: CalendarConfig = _calendar_adapter().validate_python(entry)
                return calendar
            except ValidationError:
                return None
    return None


@dataclass
class CalendarList:
    """The daemon's calendars: the config's, plus the sources' people, kept current.

    :meth:`current` refreshes a source when it is due and notices a list that
    another process changed (a replica's refresh, ``discover --accept``).
    """

    cfg: AppConfig
    store: Store
    source_factory: SourceFactory = default_source
    holder: str = "discovery"
    _stamps: dict[str, Stamp] = field(default_factory=dict)
    _calendars: tuple[CalendarConfig, ...] | None = None
    #: The teams the sources' people make (see :func:`discovered_teams`).
    teams: tuple[TeamConfig, ...] = ()

    def current(self, now: datetime, *, force: bool = False) -> tuple[CalendarConfig, ...]:
        """Every calendar to sync now (config order, then each source's people by address)."""
        if not self.cfg.calendar_sources:
            return tuple(self.cfg.calendars)
        keys = [s.source_key() for s in self.cfg.calendar_sources]
        lists = DiscoveredLists(self.store)
        stamps = lists.stamps(keys)
        if force or any(_due(stamps.get(key), now) for key in keys):
            refresh_sources(
                self.cfg,
                self.store,
                now,
                force=force,
                source_factory=self.source_factory,
                holder=self.holder,
            )
            stamps = lists.stamps(keys)
        if self._calendars is None or stamps != self._stamps:
            stored = lists.load(keys)
            people = {key: row.addresses for key, row in stored.items()}
            self._calendars = (*self.cfg.calendars, *discovered_calendars(self.cfg, people))
            managers = {key: row.managers for key, row in stored.items()}
            self.teams = discovered_teams(self.cfg, managers)
            self._stamps = stamps
        return self._calendars


def _due(stamp: Stamp | None, now: datetime) -> bool:
    if stamp is None:
        return True
    _refreshed, attempted, error_kind = stamp
    if attempted is None:
        return True
    return attempted + (RETRY_AFTER_FAILURE if error_kind else REFRESH_EVERY) <= now
