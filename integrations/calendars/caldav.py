"""A calendar on a CalDAV server (Nextcloud, Fastmail, iCloud, Radicale...).

The requests are the few WebDAV ones this provider needs, sent by
:mod:`feedback_agendas.integrations.calendars.webdav` over one HTTP session: the ``caldav``
library re-quotes hrefs, and a resource name that needs %-escapes (a space,
``?``, ``#``, ``%``, ``;``, ``:``, non-ASCII) then names another resource or
no valid URL at all.

- **Hrefs** are kept exactly as the server sent them, resolved against the URL
  of the request that returned them (relative hrefs included), and never
  decoded and rebuilt. A resource is known by its href relative to the
  collection (the raw last segment) or, outside it, by its absolute URL.
- **Discovery**: a calendar named by display name is found with three
  PROPFINDs (principal, calendar home, its members). The URL found is kept in
  the store (``collections``) and reused by every later process; discovery
  runs again only when the collection answers 404, 301 or 308, or the config
  changes. Credentials go with the first request over TLS or to a loopback
  address, so there is no 401 round trip.
- **Incremental sync** is an RFC 6578 ``sync-collection`` REPORT (truncated
  replies are followed). An invalid token raises
  :class:`~feedback_agendas.agendas.errors.CursorExpired`; the engine then lists once in full.
  Only a server without sync-collection support is listed in full every time
  (a depth-1 PROPFIND of etags), and the log says so once.
- **Reading data**: changed resources are fetched with one
  ``calendar-multiget`` REPORT per :data:`MULTIGET_CHUNK` hrefs. When a
  multiget fails as a whole (a 5xx, a body we cannot read), each resource of
  it is fetched on its own, so one resource the server cannot serve is
  skipped with a reason and the rest of the calendar syncs; it is tried again
  next cycle. A resource without events (VTODO, VJOURNAL, VFREEBUSY) is
  ignored. A change whose etag is that of the version held in memory
  (typically what our own PUT stored) is reported from memory, not fetched.
- **A UID in two resources** is a clash: its events are reported unreadable
  (with both names) in every cycle while it lasts, and neither resource is
  written. Once one of them goes, the other is read again.
- **Cursor**: the sync token plus, per resource, a prefix of its etag and the
  ``(UID, RECURRENCE-ID)`` of its events, packed into an opaque string. The
  refs let a later sync report the events of a removed resource (or a removed
  override) as deleted, even after a restart. :meth:`cursor_after_writes`
  puts the etags our PUTs returned into it, so that the next cycle, in this
  process or another, does not fetch our own writes back.
- **Writes** go through :mod:`feedback_agendas.integrations.calendars.ics` (only DESCRIPTION and
  ``X-FEEDBACK-AGENDAS-HASH`` of the targeted VEVENT change) and are one
  ``PUT`` per resource with ``If-Match`` on the etag the decision was made on.
  A 412 gives :class:`~feedback_agendas.agendas.errors.PreconditionFailed`. The bytes edited are
  the stored ones: a multiget's copy has its line ends normalised by the XML
  parser (a server may store LF-only objects as uploaded), so a write to a
  resource last read by multiget GETs it first (an etag other than the
  decision's is a conflict, as a 412 is). Quiet cycles need no GET.

Request kinds counted in ``requests`` are the HTTP methods, lower case:
``report``, ``get``, ``put``, ``propfind``. Nothing here logs descriptions or
credentials.

It is the longest provider (about 1,000 lines) because CalDAV servers differ:
sync-token and ctag fallbacks, per-resource fallback reads, discovery, and
writes that keep other programs' bytes all live here, each with the server
behaviour it answers; the wire layer is :mod:`.webdav` and the byte-exact
editing :mod:`.ics_lines`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit
from xml.sax.saxutils import escape

from pydantic import SecretStr

from feedback_agendas.agendas.errors import (
    CursorExpired,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    ProviderError,
    RateLimited,
)
from feedback_agendas.agendas.model import (
    ChangeSet,
    DescriptionWrite,
    EventRef,
    Meeting,
    Unreadable,
    WriteOutcome,
)
from feedback_agendas.integrations.calendars.base import BuildContext, CalendarConfig, ProviderSpec
from feedback_agendas.integrations.calendars.ics import (
    IcsError,
    meetings_from_calendar,
    parse_calendar,
    rewrite_descriptions,
)
from feedback_agendas.integrations.calendars.webdav import (
    CALDAV,
    DAV,
    DavSession,
    Multistatus,
    parse_multistatus,
    path_key,
    resolve_href,
    status_error,
)
from feedback_agendas.integrations.config_types import (
    HttpUrl,
    NonEmptyStr,
    TimeZoneName,
    is_loopback_url,
)
from feedback_agendas.integrations.redact import split_userinfo

log = logging.getLogger(__name__)

CURSOR_PREFIX = "caldav2:"  # caldav1 cursors named resources by their decoded names
ETAG_PREFIX_LEN = 24  # enough to tell two versions of one resource apart
MULTIGET_CHUNK = 200  # hrefs per calendar-multiget REPORT
MAX_SYNC_PAGES = 100  # truncated sync-collection replies followed per cycle
DEFAULT_TIMEOUT_SECONDS = 30

# Statuses of a sync-collection REPORT that mean "this server cannot do it".
_NO_SYNC_STATUSES = {400, 405, 415, 501}
# Statuses of a request to the collection itself that mean "it is not (or no longer) here".
_MOVED_STATUSES = {404, 301, 308}
_EVENTLESS_COMPONENTS = ("VTODO", "VJOURNAL", "VFREEBUSY")
_XML = {"Content-Type": "application/xml; charset=utf-8"}

_Key = tuple[str, str | None]  # (UID, RECURRENCE-ID text) of one event


class CollectionMemory(Protocol):
    """Where discovered collection URLs are kept across processes (the store does it).

    ``config_digest`` changes with the server URL, the user name and the
    calendar's name: a URL remembered under another digest is not returned.
    """

    def discovered_collection(self, calendar: str, config_digest: str) -> str | None: ...

    def remember_collection(self, calendar: str, config_digest: str, url: str | None) -> None: ...


@dataclass(frozen=True, slots=True)
class _ResourceState:
    """What a cursor remembers of one calendar object resource.

    ``etag`` is a prefix of its etag, or "" when it could not be read (it is
    tried again next cycle).
    """

    etag: str
    refs: tuple[_Key, ...]


@dataclass(frozen=True, slots=True)
class _Cursor:
    token: str  # the server's sync token; "" when the server cannot sync
    resources: dict[str, _ResourceState]


@dataclass(frozen=True, slots=True)
class _Fetched:
    """One resource as read: its bytes and its etag.

    ``exact`` is False for bytes that came through a calendar-multiget: the
    XML parser turned every CR into LF and :func:`_crlf` made every line end
    CRLF, which is right for parsing but not necessarily the stored bytes (a
    server that keeps an LF-only object as uploaded). A write edits exact
    bytes only.
    """

    key: str
    etag: str
    data: bytes
    exact: bool = True


class _MultigetFailed(Exception):
    """A calendar-multiget REPORT failed as a whole: fetch its resources one by one."""


class CaldavProvider:
    """One calendar collection on a CalDAV server, as a ``CalendarProvider``.

    ``calendar`` is the calendar's display name, or its URL (absolute, or a
    path relative to ``url``). ``client`` may be a ready ``caldav.DAVClient``
    whose HTTP session and auth are used (tests and the bench pass one);
    otherwise a session is made from ``url``, ``username`` and ``password``.
    ``collections`` (the store) keeps the URL that discovery by display name
    found, for every later process.
    """

    def __init__(
        self,
        name: str,
        url: str,
        username: str | None,
        password: str | None,
        calendar: str,
        owner: str,
        verify_tls: bool = True,
        default_timezone: str = "UTC",
        client: Any = None,
        collections: CollectionMemory | None = None,
    ) -> None:
        self.name = name
        # Credentials in the URL go to the session apart: the URL we log (and
        # resolve hrefs against) must never carry a password.
        url, username, password = split_userinfo(url, username, password)
        self.url = url
        self.owner = owner.lower()
        self.default_timezone = default_timezone
        self.requests: Counter[str] = Counter()
        self._calendar_spec = calendar
        if not verify_tls:
            log.warning("calendar %s: TLS certificate verification is off for %s", name, url)
        self._dav = DavSession(
            url,
            username,
            password,
            verify_tls=verify_tls,
            timeout=DEFAULT_TIMEOUT_SECONDS,
            requests=self.requests,
            session=getattr(client, "session", None),
            auth=getattr(client, "auth", None),
        )
        self._collection: str | None = None  # the collection's URL, ending in "/"
        self._collections = collections
        self._username = username if username is not None else getattr(client, "username", None)
        self._sync_supported = True
        # key -> (full etag, bytes, exact) of the last version read or written; exact
        # bytes (from a GET) let a write skip its GET; see _Fetched.
        self._cache: dict[str, tuple[str, bytes, bool]] = {}
        # UID -> resource key, from the last read; UIDs held by two resources are left out.
        self._uid_index: dict[str, str] = {}
        self._clashed: set[str] = set()
        # key -> etag our PUT returned, until cursor_after_writes puts it into a cursor.
        self._written: dict[str, str] = {}

    # -- reading ----------------------------------------------------------------

    def read_changes(self, cursor: str | None) -> ChangeSet:
        """Report resources changed since ``cursor`` (all of them when ``cursor`` is None).

        One sync-collection REPORT, plus multiget REPORTs for what changed.
        Raises CursorExpired when the server no longer knows the token (or the
        cursor is not ours), NotFound when the calendar is gone,
        PermissionDenied on 401/403 and TransientError on 5xx or timeouts of
        the listing. A resource that cannot be fetched or parsed comes back in
        ``unreadable``.
        """
        self._written.clear()  # etags of earlier writes are in what this read sees
        previous = None if cursor is None else self._decode_cursor(cursor)
        collection = self._collection_url()
        try:
            listing, removed, token = self._list_changes(collection, previous)
        except _CollectionMoved as exc:
            collection = self._rediscover(exc)
            try:
                listing, removed, token = self._list_changes(collection, previous)
            except _CollectionMoved as again:
                raise NotFound(f"calendar {self._calendar_spec!r}: {again}") from again

        resources: dict[str, _ResourceState] = dict(previous.resources) if previous else {}
        changed: list[str] = []
        for key, etag in sorted(listing.items()):
            old = resources.get(key)
            if old is not None and old.etag and old.etag == etag[:ETAG_PREFIX_LEN]:
                continue  # unchanged (a PROPFIND listing reports everything)
            changed.append(key)
        # Resources that could not be read last time are tried again.
        changed += sorted(
            k for k, s in resources.items() if not s.etag and k not in listing and k not in removed
        )
        clashed_before = _clashes(resources)

        batch = _Batch(resources)
        self._absorb(collection, changed, listing, batch)
        for key in removed:
            gone = resources.pop(key, None)
            self._cache.pop(key, None)
            if gone is not None:
                batch.deleted.update(self._ref(r) for r in gone.refs)

        # A clash that ended: the resource left holding the UID is read again.
        holders = _holders(resources)
        reread = sorted(
            {
                key
                for uid in clashed_before
                if len(holders.get(uid, ())) == 1
                for key in holders[uid]
                if key not in batch.read
            }
        )
        if reread:
            self._absorb(collection, reread, {}, batch)
            holders = _holders(resources)
        clashed = {uid for uid, keys in holders.items() if len(keys) > 1}
        meetings = [m for m in batch.meetings if m.ref.event_id not in clashed]
        unreadable = [u for u in batch.unreadable if u.ref.event_id not in clashed]
        for uid in sorted(clashed):
            keys = sorted(holders[uid])
            reason = f"UID {uid} is in {len(keys)} resources ({', '.join(keys)}); none is written"
            refs = sorted({r for k in keys for r in resources[k].refs if r[0] == uid}, key=str)
            unreadable.extend(Unreadable(self._ref(r), reason) for r in refs)
            log.warning("calendar %s: %s", self.name, reason)

        # A UID that moved to another resource is not gone.
        present = {m.ref for m in meetings} | {u.ref for u in unreadable}
        self._clashed = clashed
        self._uid_index = {
            uid: k for uid, keys in holders.items() if uid not in clashed for k in keys
        }
        return ChangeSet(
            meetings=tuple(meetings),
            deleted=tuple(sorted(batch.deleted - present)),
            cursor=self._encode_cursor(_Cursor(token, resources)),
            full=previous is None,
            unreadable=tuple(unreadable),
        )

    def _absorb(
        self, collection: str, keys: Sequence[str], listing: dict[str, str], batch: _Batch
    ) -> None:
        """Read ``keys`` (from memory when the etag matches) and fold them into ``batch``."""
        resources = batch.resources
        fetched = {
            k: _Fetched(k, listing[k], self._cache[k][1], self._cache[k][2])
            for k in keys
            if k in listing and k in self._cache and self._cache[k][0] == listing[k]
        }
        found, failed = self._fetch(collection, [k for k in keys if k not in fetched])
        fetched.update(found)
        for key in keys:
            batch.read.add(key)
            old = resources.get(key)
            old_refs = old.refs if old is not None else ()
            if key in failed:
                batch.unreadable.extend(self._unreadable(key, old_refs, failed[key]))
                resources[key] = _ResourceState("", old_refs)
                continue
            item = fetched.get(key)
            if item is None:  # gone between the listing and the multiget
                gone = resources.pop(key, None)
                self._cache.pop(key, None)
                if gone is not None:
                    batch.deleted.update(self._ref(r) for r in gone.refs)
                continue
            self._cache[key] = (item.etag, item.data, item.exact)
            try:
                found_meetings = self._parse(key, item.data, item.etag)
            except IcsError as exc:
                batch.unreadable.extend(self._unreadable(key, old_refs, str(exc)))
                resources[key] = _ResourceState(item.etag[:ETAG_PREFIX_LEN], old_refs)
                continue
            refs = tuple(_key(m.ref) for m in found_meetings)
            batch.meetings.extend(found_meetings)
            batch.deleted.update(self._ref(r) for r in old_refs if r not in refs)
            resources[key] = _ResourceState(item.etag[:ETAG_PREFIX_LEN], refs)

    def get(self, ref: EventRef) -> Meeting | None:
        """Read the event ``ref`` names again (one GET); None when it is gone.

        An event we have not seen is looked up by UID first (a calendar-query
        REPORT). A UID held by two resources (a clash) gives None. Raises
        IcsError (a ProviderError) when the resource can no longer be parsed.
        """
        if ref.event_id in self._clashed:
            return None
        collection = self._collection_url()
        key = self._uid_index.get(ref.event_id)
        item = self._get_resource(collection, key) if key else None
        if item is None:
            keys = self._find_by_uid(collection, ref.event_id)
            if len(keys) != 1:
                return None  # gone, or in two resources: not ours to pick one
            item = self._get_resource(collection, keys[0])
            if item is None:
                return None
        found = self._parse(item.key, item.data, item.etag)
        self._cache[item.key] = (item.etag, item.data, item.exact)
        for meeting in found:
            self._uid_index[meeting.ref.event_id] = item.key
        return next((m for m in found if m.ref == ref), None)

    # -- writing ----------------------------------------------------------------

    def write(self, writes: Sequence[DescriptionWrite]) -> list[WriteOutcome]:
        """One conditional PUT per resource; see :meth:`CalendarProvider.write`."""
        outcomes: dict[int, WriteOutcome] = {}
        by_resource: dict[str, list[tuple[int, DescriptionWrite]]] = defaultdict(list)
        try:
            collection = self._collection_url()
        except ProviderError as exc:
            return [WriteOutcome(w.ref, error=exc) for w in writes]
        for index, w in enumerate(writes):
            key = self._uid_index.get(w.ref.event_id)
            if key is None:
                outcomes[index] = WriteOutcome(w.ref, error=NotFound(f"no event {w.ref.event_id}"))
            else:
                by_resource[key].append((index, w))
        for key, items in by_resource.items():
            try:
                outcomes.update(self._write_resource(collection, key, items))
            except (ProviderError, PreconditionFailed) as exc:
                outcomes.update({i: WriteOutcome(w.ref, error=exc) for i, w in items})
        return [outcomes[i] for i in range(len(writes))]

    def cursor_after_writes(self, cursor: str) -> str:
        """``cursor`` with the etags our writes since it was made returned.

        The engine stores this instead of the cursor of :meth:`read_changes`:
        the next sync reports our writes as changed, and an etag that equals
        the one our PUT returned is our own echo, which is not fetched again.
        """
        written, self._written = self._written, {}
        if not written:
            return cursor
        state = self._decode_cursor(cursor)
        resources = dict(state.resources)
        for key, etag in written.items():
            old = resources.get(key)
            if old is not None and old.etag:
                resources[key] = _ResourceState(etag[:ETAG_PREFIX_LEN], old.refs)
        return self._encode_cursor(_Cursor(state.token, resources))

    def close(self) -> None:
        """Close the HTTP session."""
        self._dav.close()

    def _write_resource(
        self, collection: str, key: str, items: list[tuple[int, DescriptionWrite]]
    ) -> dict[int, WriteOutcome]:
        etags = {w.etag for _, w in items}
        if len(etags) != 1:
            # Decisions made on two versions of one resource: the older ones are stale.
            raise PreconditionFailed(f"{key}: writes based on different versions")
        etag = etags.pop()
        cached = self._cache.get(key)
        if cached is not None and cached[0] == etag and cached[2]:
            data = cached[1]
        else:
            # The exact stored bytes to edit (a multiget's copy has its line ends
            # normalised); an etag other than the decision's is a conflict, as a 412
            # would be, and the engine re-reads and decides again.
            item = self._get_resource(collection, key)
            if item is None:
                raise NotFound(f"{key} is gone")
            if item.etag != etag:
                raise PreconditionFailed(f"{key} changed since it was read")
            data = item.data
        new_data, applied, outcomes = rewrite_descriptions(
            data,
            items,
            source=key,
            calendar_name=self.name,
            owner=self.owner,
            default_timezone=self.default_timezone,
        )
        if new_data is None:
            return outcomes
        stored = self._put(collection, key, new_data, etag)
        new_etag = stored.etag
        self._cache[key] = (new_etag, stored.data, stored.exact)
        self._written[key] = new_etag
        outcomes.update({i: WriteOutcome(w.ref, etag=new_etag) for i, w in applied})
        return outcomes

    def _put(self, collection: str, key: str, data: bytes, etag: str) -> _Fetched:
        """PUT ``data`` if the resource still has ``etag``; the new version, as far as known.

        The bytes sent are not taken for exact: a server may store them
        reformatted (Radicale turns LF into CRLF) and still answer an etag.
        """
        headers = {"Content-Type": "text/calendar; charset=utf-8", "If-Match": etag}
        response = self._dav.request(
            "PUT", self._url(collection, key), body=data, headers=headers, what=f"PUT {key}"
        )
        if response.status_code not in (200, 201, 204):
            raise status_error(response.status_code, f"PUT {key}", response.headers)
        new_etag = response.headers.get("etag")
        if not new_etag or new_etag == etag:
            # The server did not say: read it back rather than guess.
            item = self._get_resource(collection, key)
            if item is None:
                raise NotFound(f"{key} vanished after the write")
            return item
        return _Fetched(key, str(new_etag), data, exact=False)

    # -- talking to the server --------------------------------------------------

    def _collection_url(self) -> str:
        """The calendar collection's URL: given, remembered, or discovered by display name."""
        if self._collection is None:
            spec = self._calendar_spec
            if self._by_url():
                url = resolve_href(self.url, spec)
            else:
                url = self._recall() or self._discover_and_remember(spec)
            self._collection = url if url.endswith("/") else url + "/"
        return self._collection

    def _by_url(self) -> bool:
        return self._calendar_spec.startswith(("http://", "https://", "/"))

    def _rediscover(self, moved: _CollectionMoved) -> str:
        """The collection answered 404 or moved: discover it again (display names only)."""
        if self._by_url():
            raise NotFound(f"calendar {self._calendar_spec!r}: {moved}; check its URL") from moved
        log.info("calendar %s: %s; discovering it again", self.name, moved)
        self._collection = None
        self._forget()
        self._collection = self._discover_and_remember(self._calendar_spec)
        if not self._collection.endswith("/"):
            self._collection += "/"
        return self._collection

    def _config_digest(self) -> str:
        parts = urlsplit(self.url)
        host = parts.netloc.rpartition("@")[2]  # never a password, not even hashed
        bare = urlunsplit(parts._replace(netloc=host))
        raw = json.dumps([bare, self._username or "", self._calendar_spec])
        return hashlib.sha256(raw.encode()).hexdigest()

    def _recall(self) -> str | None:
        if self._collections is None:
            return None
        try:
            return self._collections.discovered_collection(self.name, self._config_digest())
        except Exception as exc:  # the store is a cache here: discovery still works
            log.warning(
                "calendar %s: cannot read the remembered collection: %s",
                self.name,
                type(exc).__name__,
            )
            return None

    def _discover_and_remember(self, spec: str) -> str:
        url = self._discover(spec)
        if self._collections is not None and not urlsplit(url).username:
            try:
                self._collections.remember_collection(self.name, self._config_digest(), url)
            except Exception as exc:
                log.warning(
                    "calendar %s: cannot remember the collection: %s", self.name, type(exc).__name__
                )
        return url

    def _forget(self) -> None:
        if self._collections is not None:
            try:
                self._collections.remember_collection(self.name, self._config_digest(), None)
            except Exception as exc:
                log.warning(
                    "calendar %s: cannot forget the collection: %s", self.name, type(exc).__name__
                )

    def _discover(self, wanted: str) -> str:
        """Find the collection whose display name (or last path segment) is ``wanted``.

        Three PROPFINDs: the current user's principal, its calendar home, and
        the home's members.
        """
        principal = self._propfind_href(self.url, DAV + "current-user-principal") or self.url
        home = self._propfind_href(principal, CALDAV + "calendar-home-set") or principal
        members = self._propfind(
            home, "<D:resourcetype/><D:displayname/>", depth="1", what="PROPFIND calendar home"
        )
        count = 0
        for member in members.responses:
            kind = member.props.get(DAV + "resourcetype")
            if kind is None or kind.find(CALDAV + "calendar") is None:
                continue
            count += 1
            segment = unquote(urlsplit(member.href).path.rstrip("/").rsplit("/", 1)[-1])
            if member.text(DAV + "displayname") == wanted or segment == wanted:
                return member.href
        raise NotFound(f"no calendar named {wanted!r} (found {count} calendars)")

    def _propfind_href(self, url: str, prop: str) -> str | None:
        namespace, _, local = prop[1:].partition("}")
        prefix = "D" if namespace == "DAV:" else "C"
        found = self._propfind(url, f"<{prefix}:{local}/>", depth="0", what=f"PROPFIND {local}")
        for member in found.responses:
            element = member.props.get(prop)
            href = element.findtext(DAV + "href") if element is not None else None
            if href and href.strip():
                return resolve_href(member.href, href)
        return None

    def _propfind(
        self, url: str, props: str, *, depth: str, what: str, follow_redirects: bool = True
    ) -> Multistatus:
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            f"<D:prop>{props}</D:prop></D:propfind>"
        ).encode()
        response = self._dav.request(
            "PROPFIND",
            url,
            body=body,
            headers={**_XML, "Depth": depth},
            what=what,
            # Discovery follows redirects (/.well-known/caldav and friends);
            # the collection itself must not move under a remembered URL.
            follow_redirects=follow_redirects,
        )
        if not follow_redirects and response.status_code in _MOVED_STATUSES:
            raise _CollectionMoved(f"the collection answered {response.status_code}")
        if response.status_code != 207:
            raise status_error(response.status_code, what, response.headers)
        return parse_multistatus(response.content or b"", str(response.url))

    def _list_changes(
        self, collection: str, previous: _Cursor | None
    ) -> tuple[dict[str, str], set[str], str]:
        """``(key -> etag of changed or listed resources, removed keys, new token)``."""
        if self._sync_supported:
            if previous is not None and not previous.token:
                raise CursorExpired("cursor from a listing without sync support")
            token = previous.token if previous is not None else ""
            try:
                return self._sync_collection(collection, token)
            except _NoSyncSupport as exc:
                log.warning(
                    "calendar %s: the server has no sync-collection support (%s); "
                    "listing the whole calendar every cycle",
                    self.name,
                    exc,
                )
                self._sync_supported = False
                if previous is not None:
                    raise CursorExpired("sync-collection no longer available") from exc
        listing = self._list_all(collection)
        removed = set(previous.resources) - listing.keys() if previous is not None else set()
        return listing, removed, ""

    def _sync_collection(self, collection: str, token: str) -> tuple[dict[str, str], set[str], str]:
        changed: dict[str, str] = {}
        removed: set[str] = set()
        own = path_key(collection)
        for _page in range(MAX_SYNC_PAGES):
            body = (
                '<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:">'
                f"<D:sync-token>{escape(token)}</D:sync-token><D:sync-level>1</D:sync-level>"
                "<D:prop><D:getetag/></D:prop></D:sync-collection>"
            ).encode()
            response = self._dav.request(
                "REPORT",
                collection,
                body=body,
                headers={**_XML, "Depth": "0"},
                what="sync-collection REPORT",
            )
            status = response.status_code
            if status in _MOVED_STATUSES:
                raise _CollectionMoved(f"the collection answered {status}")
            if status != 207:
                text = response.content or b""
                if token and b"valid-sync-token" in text:
                    raise CursorExpired("the server no longer knows the sync token")
                if status in _NO_SYNC_STATUSES or (status == 403 and b"supported-report" in text):
                    raise _NoSyncSupport(f"HTTP {status}")
                raise status_error(status, "sync-collection REPORT", response.headers)
            result = parse_multistatus(response.content or b"", collection)
            truncated = False
            for item in result.responses:
                if path_key(item.href) == own:
                    truncated = truncated or item.status == 507
                    continue
                key = self._key(collection, item.href)
                if item.status == 404:
                    removed.add(key)
                    changed.pop(key, None)
                else:
                    changed[key] = (item.text(DAV + "getetag") or "").strip()
                    removed.discard(key)
            new_token = result.sync_token or ""
            if not truncated or not new_token or new_token == token:
                return changed, removed, new_token
            token = new_token
        log.warning("calendar %s: sync-collection still truncated", self.name)
        return changed, removed, token

    def _list_all(self, collection: str) -> dict[str, str]:
        """Every resource's etag, by a depth-1 PROPFIND (servers without sync-collection)."""
        found = self._propfind(
            collection, "<D:getetag/>", depth="1", what="PROPFIND", follow_redirects=False
        )
        own = path_key(collection)
        listing = {}
        for item in found.responses:
            etag = (item.text(DAV + "getetag") or "").strip()
            if path_key(item.href) != own and etag:
                listing[self._key(collection, item.href)] = etag
        return listing

    def _fetch(
        self, collection: str, keys: Sequence[str]
    ) -> tuple[dict[str, _Fetched], dict[str, str]]:
        """``(key -> data and etag, key -> why it could not be read)``; absent keys are gone.

        One calendar-multiget per chunk; a chunk whose multiget fails as a
        whole, and a resource missing from the answer, is fetched with a GET.
        """
        found: dict[str, _Fetched] = {}
        failed: dict[str, str] = {}
        for start in range(0, len(keys), MULTIGET_CHUNK):
            chunk = list(keys[start : start + MULTIGET_CHUNK])
            try:
                missing = self._multiget(collection, chunk, found, failed)
            except _MultigetFailed as exc:
                log.info(
                    "calendar %s: calendar-multiget failed (%s); fetching %d resources one by one",
                    self.name,
                    exc,
                    len(chunk),
                )
                missing = chunk
            for key in missing:
                try:
                    item = self._get_resource(collection, key)
                except (PermissionDenied, RateLimited):
                    raise
                except ProviderError as exc:
                    failed[key] = str(exc)
                    continue
                if item is not None:
                    found[key] = item
        return found, failed

    def _multiget(
        self,
        collection: str,
        chunk: list[str],
        found: dict[str, _Fetched],
        failed: dict[str, str],
    ) -> list[str]:
        """One calendar-multiget REPORT; returns the keys the answer left out."""
        hrefs = "".join(
            f"<D:href>{escape(urlsplit(self._url(collection, k)).path)}</D:href>" for k in chunk
        )
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            f"<D:prop><D:getetag/><C:calendar-data/></D:prop>{hrefs}</C:calendar-multiget>"
        ).encode()
        response = self._dav.request(
            "REPORT",
            collection,
            body=body,
            headers={**_XML, "Depth": "1"},
            what="calendar-multiget REPORT",
        )
        status = response.status_code
        if status in (401, 403, 429):
            raise status_error(status, "calendar-multiget REPORT", response.headers)
        if status != 207:
            raise _MultigetFailed(f"HTTP {status}")
        try:
            result = parse_multistatus(response.content or b"", collection)
        except ProviderError as exc:
            raise _MultigetFailed(str(exc)) from exc
        wanted = set(chunk)
        by_path = {path_key(self._url(collection, k)): k for k in chunk}
        answered: set[str] = set()
        for item in result.responses:
            key = self._key(collection, item.href)
            if key not in wanted:
                key = by_path.get(path_key(item.href), "")
                if not key:
                    continue  # a resource we did not ask for
            answered.add(key)
            if item.status in (404, 410):
                continue  # gone
            data = item.text(CALDAV + "calendar-data")
            etag = (item.text(DAV + "getetag") or "").strip()
            if item.status not in (None, 200):
                failed[key] = f"the server answered {item.status}"
            elif data is None or not etag:
                failed[key] = "the server sent no calendar data or no etag"
            else:
                found[key] = _Fetched(key, etag, _crlf(data.encode("utf-8")), exact=False)
        return [k for k in chunk if k not in answered]

    def _get_resource(self, collection: str, key: str | None) -> _Fetched | None:
        """GET one resource; None when it is gone."""
        if not key:
            return None
        response = self._dav.request("GET", self._url(collection, key), what=f"GET {key}")
        status = response.status_code
        if status in (404, 410):
            return None
        if status != 200:
            raise status_error(status, f"GET {key}", response.headers)
        etag = response.headers.get("etag")
        if not etag:
            raise ProviderError(f"GET {key}: no etag")
        return _Fetched(key, str(etag), bytes(response.content or b""))

    def _find_by_uid(self, collection: str, uid: str) -> list[str]:
        """Keys of the resources holding an event with ``uid`` (a calendar-query REPORT)."""
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
            '<C:comp-filter name="VEVENT"><C:prop-filter name="UID">'
            f'<C:text-match collation="i;octet">{escape(uid)}</C:text-match>'
            "</C:prop-filter></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
        ).encode()
        response = self._dav.request(
            "REPORT",
            collection,
            body=body,
            headers={**_XML, "Depth": "1"},
            what="calendar-query REPORT",
        )
        if response.status_code != 207:
            raise status_error(response.status_code, "calendar-query REPORT", response.headers)
        own = path_key(collection)
        result = parse_multistatus(response.content or b"", collection)
        return sorted(
            {
                self._key(collection, item.href)
                for item in result.responses
                if item.status in (None, 200) and path_key(item.href) != own
            }
        )

    # -- helpers ----------------------------------------------------------------

    @staticmethod
    def _key(collection: str, href: str) -> str:
        """How a resource is named in cursors: the raw last segment, or the absolute URL."""
        if href.startswith(collection):
            rest = href[len(collection) :]
            if rest and "/" not in rest and "://" not in rest:
                return rest
        return href

    @staticmethod
    def _url(collection: str, key: str) -> str:
        return key if "://" in key else collection + key

    def _parse(self, key: str, data: bytes, etag: str) -> list[Meeting]:
        cal = parse_calendar(data)
        if not cal.walk("VEVENT"):
            kinds = [kind for kind in _EVENTLESS_COMPONENTS if cal.walk(kind)]
            if kinds:
                # A task, journal entry or free/busy: nothing for us, and not broken.
                log.debug("calendar %s: %s holds no event (%s)", self.name, key, kinds[0])
                return []
        return meetings_from_calendar(
            cal,
            calendar_name=self.name,
            owner=self.owner,
            etag=etag,
            default_timezone=self.default_timezone,
            raw=data,
        )

    def _unreadable(self, key: str, old_refs: Iterable[_Key], reason: str) -> list[Unreadable]:
        # The engine logs and reports each one, once; the reason names the resource.
        # Report the events we knew in it, so that they are not taken as deleted.
        refs = [self._ref(r) for r in old_refs] or [EventRef(self.name, key)]
        return [Unreadable(ref, f"{key}: {reason}") for ref in refs]

    def _ref(self, key: _Key) -> EventRef:
        return EventRef(self.name, key[0], key[1])

    def _calendar_id(self) -> str:
        return self.url + "|" + self._calendar_spec

    def _encode_cursor(self, cursor: _Cursor) -> str:
        payload = {
            "calendar": self._calendar_id(),
            "token": cursor.token,
            "resources": {
                n: [s.etag, [list(r) for r in s.refs]] for n, s in sorted(cursor.resources.items())
            },
        }
        packed = zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), 6)
        return CURSOR_PREFIX + base64.urlsafe_b64encode(packed).decode("ascii")

    def _decode_cursor(self, cursor: str) -> _Cursor:
        if not cursor.startswith(CURSOR_PREFIX):
            raise CursorExpired("not a CalDAV cursor of this version")
        try:
            raw = zlib.decompress(base64.urlsafe_b64decode(cursor[len(CURSOR_PREFIX) :]))
            payload = json.loads(raw)
            if payload["calendar"] != self._calendar_id():
                raise CursorExpired("cursor of another calendar")
            resources = {
                str(n): _ResourceState(str(etag), tuple((str(u), r) for u, r in refs))
                for n, (etag, refs) in payload["resources"].items()
            }
            return _Cursor(str(payload["token"]), resources)
        except CursorExpired:
            raise
        except (ValueError, KeyError, TypeError, binascii.Error, zlib.error) as exc:
            raise CursorExpired("unreadable CalDAV cursor") from exc


class _CollectionMoved(Exception):
    """The collection answered 404, 301 or 308: a remembered URL is stale."""


class _NoSyncSupport(Exception):
    """The server cannot do a sync-collection REPORT at all."""


@dataclass
class _Batch:
    """What one read_changes collects while it reads resources."""

    resources: dict[str, _ResourceState]
    meetings: list[Meeting]
    unreadable: list[Unreadable]
    deleted: set[EventRef]
    read: set[str]

    def __init__(self, resources: dict[str, _ResourceState]) -> None:
        self.resources = resources
        self.meetings = []
        self.unreadable = []
        self.deleted = set()
        self.read = set()


def _key(ref: EventRef) -> _Key:
    return (ref.event_id, ref.recurrence_id)


def _holders(resources: dict[str, _ResourceState]) -> dict[str, set[str]]:
    """UID -> the resources holding an event with it."""
    holders: dict[str, set[str]] = defaultdict(set)
    for key, state in resources.items():
        for uid, _rid in state.refs:
            holders[uid].add(key)
    return holders


def _clashes(resources: dict[str, _ResourceState]) -> set[str]:
    return {uid for uid, keys in _holders(resources).items() if len(keys) > 1}


def _crlf(data: bytes) -> bytes:
    """Restore CRLF line ends: an XML parser turns them into LF inside a REPORT."""
    if b"\r\n" in data:
        return data
    return data.replace(b"\n", b"\r\n")


# -- registration -------------------------------------------------------------


class CaldavCalendar(CalendarConfig):
    """A calendar on a CalDAV server."""

    provider: Literal["caldav"]
    url: HttpUrl
    username: str | None = None
    password: SecretStr | None = None
    calendar: NonEmptyStr
    verify_tls: bool = True
    timezone: TimeZoneName | None = None

    def warnings(self) -> list[str]:
        """No certificate check, or a password sent in the clear."""
        found = []
        if not self.verify_tls:
            found.append("verify_tls is off; the server's certificate is not checked")
        if (
            self.password is not None
            and urlsplit(self.url).scheme == "http"
            and not is_loopback_url(self.url)
        ):
            found.append("the password is sent without TLS (http://)")
        return found


def build_caldav(config: CaldavCalendar, context: BuildContext) -> CaldavProvider:
    """The provider for one entry; ``context.collections`` keeps discovered collection URLs."""
    return CaldavProvider(
        name=config.name,
        url=config.url,
        username=config.username,
        password=config.password.get_secret_value() if config.password else None,
        calendar=config.calendar,
        owner=config.owner,
        verify_tls=config.verify_tls,
        default_timezone=config.timezone or "UTC",
        collections=context.collections,
    )


PROVIDER = ProviderSpec(name="caldav", config=CaldavCalendar, build=build_caldav)
