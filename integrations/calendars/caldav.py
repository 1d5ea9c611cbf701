"""A calendar on a CalDAV server (Nextcloud, Fastmail, iCloud, Radicale...).

Built on the ``caldav`` library. (This module shadows the library's name only
for relative imports; ``import caldav`` here is absolute and gets the library.)

- **Incremental sync** is RFC 6578 ``sync-collection`` through
  ``Calendar.get_objects_by_sync_token(..., disable_fallback=True)``: the
  library's silent full-retrieval fallback would hide an expired token (and
  turn it into a full listing we could not tell apart from an incremental
  one). An invalid token raises :class:`~agendas.errors.CursorExpired`; the
  engine then lists once in full. Only a server without sync-collection
  support is listed in full every time (a depth-1 PROPFIND of etags), and the
  log says so once.
- **Reading data**: changed resources are fetched with one
  ``calendar-multiget`` REPORT per :data:`MULTIGET_CHUNK` hrefs, not a GET each.
  A change whose etag is that of the version held in memory (typically what
  our own PUT stored) is reported from memory, not fetched again: the cycle
  after a write costs one sync REPORT, like a quiet one.
- **Cursor**: the sync token plus, per resource (last path segment), a prefix
  of its etag and the ``(UID, RECURRENCE-ID)`` of its events, packed into an
  opaque string. The refs let a later sync report the events of a removed
  resource (or a removed override) as deleted, even after a restart.
- **Writes** go through :mod:`integrations.calendars.ics` (only DESCRIPTION and
  ``X-FEEDBACK-AGENDAS-HASH`` of the targeted VEVENT change) and are one
  ``PUT`` per resource with ``If-Match`` on the etag the decision was made on
  (``save(raw_data=..., increase_seqno=False, precondition="etag")``). A 412
  gives :class:`~agendas.errors.PreconditionFailed`.
- **Errors** from ``caldav``/``requests`` are translated here, where they enter.

Request kinds counted in ``requests`` are the HTTP methods, lower case:
``report``, ``get``, ``put``, ``propfind`` (and ``options`` etc. if the library
sends them). Nothing here logs descriptions or credentials.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import caldav.davclient
from caldav.calendarobjectresource import Event as DavEvent
from caldav.davclient import DAVClient
from caldav.elements import dav
from caldav.lib import error as dav_errors

from agendas.errors import (
    CursorExpired,
    FeedbackAgendasError,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    ProviderError,
    RateLimited,
    TransientError,
)
from agendas.model import ChangeSet, DescriptionWrite, EventRef, Meeting, Unreadable, WriteOutcome
from integrations.calendars.ics import (
    IcsError,
    meetings_from_calendar,
    parse_calendar,
    rewrite_descriptions,
)
from integrations.redact import split_userinfo

log = logging.getLogger(__name__)

# The HTTP library caldav was built with (niquests, or requests as a fallback).
_http: Any = getattr(caldav.davclient, "requests")  # noqa: B009

CURSOR_PREFIX = "caldav1:"
ETAG_PREFIX_LEN = 24  # enough to tell two versions of one resource apart
MULTIGET_CHUNK = 200  # hrefs per calendar-multiget REPORT
DEFAULT_TIMEOUT_SECONDS = 30

# Statuses of a sync-collection REPORT that mean "this server cannot do it".
_NO_SYNC_STATUSES = {400, 405, 415, 501}
_EVENTLESS_COMPONENTS = ("VTODO", "VJOURNAL")

_Key = tuple[str, str | None]  # (UID, RECURRENCE-ID text) of one event


@dataclass(frozen=True, slots=True)
class _ResourceState:
    """What a cursor remembers of one calendar object resource."""

    etag: str  # prefix of the etag
    refs: tuple[_Key, ...]


@dataclass(frozen=True, slots=True)
class _Cursor:
    token: str  # the server's sync token; "" when the server cannot sync
    resources: dict[str, _ResourceState]


@dataclass(frozen=True, slots=True)
class _Fetched:
    """One resource as read: raw bytes (CRLF lines) and its etag."""

    name: str
    etag: str
    data: bytes


class CaldavProvider:
    """One calendar collection on a CalDAV server, as a ``CalendarProvider``.

    ``calendar`` is the calendar's display name, or its URL (absolute, or a
    path relative to ``url``). ``client`` may be a ready ``caldav.DAVClient``
    (tests pass one); otherwise one is built from ``url``, ``username`` and
    ``password``.
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
    ) -> None:
        self.name = name
        # Credentials in the URL go to the client apart: the URL we and the caldav
        # library log (it logs its URL at DEBUG) must never carry a password.
        url, username, password = split_userinfo(url, username, password)
        self.url = url
        self.owner = owner.lower()
        self.default_timezone = default_timezone
        self.requests: Counter[str] = Counter()
        self._calendar_spec = calendar
        if not verify_tls:
            log.warning("calendar %s: TLS certificate verification is off for %s", name, url)
        self._client = client or DAVClient(
            url=url,
            username=username,
            password=password,
            ssl_verify_cert=verify_tls,
            timeout=DEFAULT_TIMEOUT_SECONDS,
            rate_limit_handle=False,  # backing off belongs to our retry helper, not a sleep here
        )
        self._count_requests(self._client)
        self._calendar: Any = None
        self._sync_supported = True
        # name -> (full etag, bytes) of the last version read, for writes without a GET.
        self._cache: dict[str, tuple[str, bytes]] = {}
        # UID -> resource name, from the last read.
        self._uid_index: dict[str, str] = {}

    # -- reading ----------------------------------------------------------------

    def read_changes(self, cursor: str | None) -> ChangeSet:
        """Report resources changed since ``cursor`` (all of them when ``cursor`` is None).

        One sync-collection REPORT, plus multiget REPORTs for what changed.
        Raises CursorExpired when the server no longer knows the token (or the
        cursor is not ours), NotFound when the calendar is gone,
        PermissionDenied on 401/403 and TransientError on 5xx or timeouts.
        """
        previous = None if cursor is None else self._decode_cursor(cursor)
        calendar = self._resolve_calendar()
        listing, deleted_names, token = self._list_changes(calendar, previous)

        resources: dict[str, _ResourceState] = dict(previous.resources) if previous else {}
        changed: list[str] = []
        for res_name, etag in sorted(listing.items()):
            old = resources.get(res_name)
            if previous is not None and old is not None and old.etag == etag[:ETAG_PREFIX_LEN]:
                continue  # unchanged (a PROPFIND listing reports everything)
            changed.append(res_name)
        # What we wrote (or read) last is cached: our own write comes back as a
        # change, and reporting it needs no second trip to the server.
        fetched = {
            n: _Fetched(n, listing[n], self._cache[n][1])
            for n in changed
            if n in self._cache and self._cache[n][0] == listing[n]
        }
        fetched.update(self._fetch(calendar, [n for n in changed if n not in fetched]))
        meetings: list[Meeting] = []
        unreadable: list[Unreadable] = []
        deleted: set[EventRef] = set()
        for res_name in changed:
            item = fetched.get(res_name)
            old = resources.get(res_name) if previous is not None else None
            old_refs = old.refs if old is not None else ()
            if item is None:  # gone between the listing and the multiget
                deleted_names.add(res_name)
                continue
            self._cache[res_name] = (item.etag, item.data)
            try:
                found = self._parse(item.data, item.etag)
            except IcsError as exc:
                unreadable.extend(self._unreadable(res_name, old_refs, str(exc)))
                resources[res_name] = _ResourceState(item.etag[:ETAG_PREFIX_LEN], old_refs)
                continue
            refs = tuple(_key(m.ref) for m in found)
            meetings.extend(found)
            deleted.update(self._ref(r) for r in old_refs if r not in refs)
            resources[res_name] = _ResourceState(item.etag[:ETAG_PREFIX_LEN], refs)
        for res_name in deleted_names:
            gone = resources.pop(res_name, None)
            self._cache.pop(res_name, None)
            if gone is not None:
                deleted.update(self._ref(r) for r in gone.refs)

        # A UID that moved to another resource is not gone.
        present = {m.ref for m in meetings} | {u.ref for u in unreadable}
        self._uid_index = {uid: n for n, s in sorted(resources.items()) for uid, _ in s.refs}
        return ChangeSet(
            meetings=tuple(meetings),
            deleted=tuple(sorted(deleted - present)),
            cursor=self._encode_cursor(_Cursor(token, resources)),
            full=previous is None,
            unreadable=tuple(unreadable),
        )

    def get(self, ref: EventRef) -> Meeting | None:
        """Read the event ``ref`` names again (one GET); None when it is gone.

        An event we have not seen is looked up by UID first (a calendar-query
        REPORT). Raises IcsError (a ProviderError) when the resource can no
        longer be parsed.
        """
        calendar = self._resolve_calendar()
        res_name = self._uid_index.get(ref.event_id)
        item = self._get_resource(calendar, res_name) if res_name else None
        if item is None:
            res_name = self._find_by_uid(calendar, ref.event_id)
            item = self._get_resource(calendar, res_name) if res_name else None
            if item is None:
                return None
        found = self._parse(item.data, item.etag)
        self._cache[item.name] = (item.etag, item.data)
        for meeting in found:
            self._uid_index[meeting.ref.event_id] = item.name
        return next((m for m in found if m.ref == ref), None)

    # -- writing ----------------------------------------------------------------

    def write(self, writes: Sequence[DescriptionWrite]) -> list[WriteOutcome]:
        """One conditional PUT per resource; see :meth:`CalendarProvider.write`."""
        outcomes: dict[int, WriteOutcome] = {}
        by_resource: dict[str, list[tuple[int, DescriptionWrite]]] = defaultdict(list)
        try:
            calendar = self._resolve_calendar()
        except ProviderError as exc:
            return [WriteOutcome(w.ref, error=exc) for w in writes]
        for index, w in enumerate(writes):
            res_name = self._uid_index.get(w.ref.event_id)
            if res_name is None:
                outcomes[index] = WriteOutcome(w.ref, error=NotFound(f"no event {w.ref.event_id}"))
            else:
                by_resource[res_name].append((index, w))
        for res_name, items in by_resource.items():
            try:
                outcomes.update(self._write_resource(calendar, res_name, items))
            except (ProviderError, PreconditionFailed) as exc:
                outcomes.update({i: WriteOutcome(w.ref, error=exc) for i, w in items})
        return [outcomes[i] for i in range(len(writes))]

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.close()

    def _write_resource(
        self, calendar: Any, res_name: str, items: list[tuple[int, DescriptionWrite]]
    ) -> dict[int, WriteOutcome]:
        etags = {w.etag for _, w in items}
        if len(etags) != 1:
            # Decisions made on two versions of one resource: the older ones are stale.
            raise PreconditionFailed(f"{res_name}: writes based on different versions")
        etag = etags.pop()
        cached = self._cache.get(res_name)
        if cached is not None and cached[0] == etag:
            data = cached[1]
        else:
            item = self._get_resource(calendar, res_name)
            if item is None:
                raise NotFound(f"{res_name} is gone")
            if item.etag != etag:
                raise PreconditionFailed(f"{res_name} changed since it was read")
            data = item.data
        new_data, applied, outcomes = rewrite_descriptions(
            data,
            items,
            source=res_name,
            calendar_name=self.name,
            owner=self.owner,
            default_timezone=self.default_timezone,
        )
        if new_data is None:
            return outcomes
        new_etag = self._put(calendar, res_name, new_data, etag)
        self._cache[res_name] = (new_etag, new_data)
        outcomes.update({i: WriteOutcome(w.ref, etag=new_etag) for i, w in applied})
        return outcomes

    def _put(self, calendar: Any, res_name: str, data: bytes, etag: str) -> str:
        resource = DavEvent(
            client=self._client,
            url=calendar.url.join(res_name),
            parent=calendar,
            props={dav.GetEtag.tag: etag},
        )
        try:
            resource.save(raw_data=data, increase_seqno=False, precondition="etag")
        except Exception as exc:
            raise _translate(exc, f"PUT {res_name}") from exc
        new_etag = resource.etag
        if not new_etag or new_etag == etag:
            # The server did not say: read it back rather than guess.
            item = self._get_resource(calendar, res_name)
            if item is None:
                raise NotFound(f"{res_name} vanished after the write")
            new_etag = item.etag
        return str(new_etag)

    # -- talking to the server --------------------------------------------------

    def _count_requests(self, client: Any) -> None:
        """Count every HTTP request by method, through the session's response hook."""

        def count(response: Any, *args: Any, **kwargs: Any) -> Any:
            self.requests[str(response.request.method).lower()] += 1
            return response

        client.session.hooks.setdefault("response", []).append(count)

    def _resolve_calendar(self) -> Any:
        """The calendar collection; looked up once (by URL, or by display name)."""
        if self._calendar is not None:
            return self._calendar
        spec = self._calendar_spec
        try:
            if spec.startswith(("http://", "https://", "/")):
                calendar = self._client.calendar(url=urljoin(self.url, spec))
            else:
                calendar = self._calendar_by_name(spec)
        except FeedbackAgendasError:
            raise
        except Exception as exc:
            raise _translate(exc, "calendar discovery") from exc
        self._calendar = calendar
        return calendar

    def _calendar_by_name(self, wanted: str) -> Any:
        principal = self._client.get_principal()
        names = []
        for candidate in self._client.get_calendars(principal):
            display = candidate.get_display_name()
            names.append(display)
            if display == wanted or _last_segment(str(candidate.url)) == wanted:
                return candidate
        raise NotFound(f"no calendar named {wanted!r} (found {len(names)} calendars)")

    def _list_changes(
        self, calendar: Any, previous: _Cursor | None
    ) -> tuple[dict[str, str], set[str], str]:
        """``(name -> etag of changed or listed resources, removed names, new token)``."""
        if self._sync_supported:
            token = previous.token if previous is not None else None
            if previous is not None and not previous.token:
                raise CursorExpired("cursor from a listing without sync support")
            try:
                result = calendar.get_objects_by_sync_token(
                    sync_token=token, load_objects=False, disable_fallback=True
                )
            except Exception as exc:
                if not _means_no_sync_support(exc):
                    if token and _is_invalid_token(exc):
                        raise CursorExpired("the server no longer knows the sync token") from exc
                    raise _translate(exc, "sync-collection REPORT") from exc
                log.warning(
                    "calendar %s: the server has no sync-collection support (%s); "
                    "listing the whole calendar every cycle",
                    self.name,
                    type(exc).__name__,
                )
                self._sync_supported = False
                if previous is not None:
                    raise CursorExpired("sync-collection no longer available") from exc
            else:
                removed = {str(u) for u in result.deleted_urls}
                changed: dict[str, str] = {}
                gone: set[str] = set()
                for obj in result.objects:
                    res_name = _last_segment(str(obj.url))
                    if not res_name or str(obj.url.canonical()) in removed:
                        gone.add(res_name)
                    elif obj.etag:
                        changed[res_name] = str(obj.etag)
                return changed, gone, str(result.sync_token or "")
        listing = self._list_all(calendar)
        gone = set(previous.resources) - listing.keys() if previous is not None else set()
        return listing, gone, ""

    def _list_all(self, calendar: Any) -> dict[str, str]:
        """Every resource's etag, by a depth-1 PROPFIND (servers without sync-collection)."""
        try:
            response = calendar._query_properties([dav.GetEtag()], depth=1)
            props = response.expand_simple_props([dav.GetEtag()])
        except Exception as exc:
            raise _translate(exc, "PROPFIND") from exc
        listing = {}
        own = _last_segment(str(calendar.url))
        for href, values in props.items():
            res_name = _last_segment(href)
            etag = values.get(dav.GetEtag.tag)
            if res_name and res_name != own and etag:
                listing[res_name] = str(etag)
        return listing

    def _fetch(self, calendar: Any, names: Sequence[str]) -> dict[str, _Fetched]:
        """Data and etags of ``names`` via calendar-multiget, in chunks."""
        found: dict[str, _Fetched] = {}
        for start in range(0, len(names), MULTIGET_CHUNK):
            chunk = names[start : start + MULTIGET_CHUNK]
            urls = [calendar.url.join(n) for n in chunk]
            try:
                objects = calendar.multiget(urls, raise_notfound=False)
            except Exception as exc:
                raise _translate(exc, "calendar-multiget REPORT") from exc
            for obj in objects:
                raw = obj.raw_data
                if raw is None or not obj.etag:
                    continue
                res_name = _last_segment(str(obj.url))
                found[res_name] = _Fetched(res_name, str(obj.etag), _crlf(bytes(raw)))
        return found

    def _get_resource(self, calendar: Any, res_name: str | None) -> _Fetched | None:
        """GET one resource; None when it is gone."""
        if not res_name:
            return None
        resource = DavEvent(client=self._client, url=calendar.url.join(res_name), parent=calendar)
        try:
            resource.load(only_if_unloaded=False)
        except dav_errors.NotFoundError:
            return None
        except Exception as exc:
            raise _translate(exc, f"GET {res_name}") from exc
        raw = resource.raw_data
        if raw is None or not resource.etag:
            raise ProviderError(f"GET {res_name}: no data or no etag")
        return _Fetched(res_name, str(resource.etag), bytes(raw))

    def _find_by_uid(self, calendar: Any, uid: str) -> str | None:
        try:
            found = calendar.get_event_by_uid(uid)
        except dav_errors.NotFoundError:
            return None
        except Exception as exc:
            raise _translate(exc, "calendar-query REPORT") from exc
        return _last_segment(str(found.url)) or None

    # -- helpers ----------------------------------------------------------------

    def _parse(self, data: bytes, etag: str) -> list[Meeting]:
        cal = parse_calendar(data)
        if not cal.walk("VEVENT") and any(cal.walk(kind) for kind in _EVENTLESS_COMPONENTS):
            return []  # a task or journal entry: nothing for us, and not broken
        return meetings_from_calendar(
            cal,
            calendar_name=self.name,
            owner=self.owner,
            etag=etag,
            default_timezone=self.default_timezone,
        )

    def _unreadable(self, res_name: str, old_refs: Iterable[_Key], reason: str) -> list[Unreadable]:
        log.warning("calendar %s: skipped unreadable resource %s: %s", self.name, res_name, reason)
        # Report the events we knew in it, so that they are not taken as deleted.
        refs = [self._ref(r) for r in old_refs] or [EventRef(self.name, res_name)]
        return [Unreadable(ref, reason) for ref in refs]

    def _ref(self, key: _Key) -> EventRef:
        return EventRef(self.name, key[0], key[1])

    def _calendar_id(self) -> str:
        return urljoin(self.url, self._calendar_spec)

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
            raise CursorExpired("not a CalDAV cursor")
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


def _key(ref: EventRef) -> _Key:
    return (ref.event_id, ref.recurrence_id)


def _last_segment(url: str) -> str:
    """The resource name: the last segment of a URL or href path, unquoted."""
    path = urlsplit(url).path.rstrip("/")
    return unquote(path.rsplit("/", 1)[-1])


def _crlf(data: bytes) -> bytes:
    """Restore CRLF line ends: an XML parser turns them into LF inside a REPORT."""
    if b"\r\n" in data:
        return data
    return data.replace(b"\n", b"\r\n")


def _is_invalid_token(exc: Exception) -> bool:
    return isinstance(exc, dav_errors.DAVError) and dav.ValidSyncToken.tag in exc.preconditions


def _means_no_sync_support(exc: Exception) -> bool:
    """Did a sync-collection REPORT fail because the server cannot do it at all?"""
    if not isinstance(exc, dav_errors.DAVError) or _is_invalid_token(exc):
        return False
    if dav.SupportedReport.tag in exc.preconditions:
        return True
    if isinstance(exc, dav_errors.ReportError) and exc.status is None:
        return True  # the library knows from its feature table that sync is unsupported
    return exc.status in _NO_SYNC_STATUSES


def _translate(exc: Exception, what: str) -> FeedbackAgendasError:
    """Map a ``caldav``/``requests`` error to our tree; never quotes response bodies."""
    if isinstance(exc, FeedbackAgendasError):
        return exc
    if isinstance(exc, dav_errors.ETagMismatchError | dav_errors.ScheduleTagMismatchError):
        return PreconditionFailed(f"{what}: the resource changed since it was read")
    if isinstance(exc, dav_errors.RateLimitError):
        return RateLimited(f"{what}: rate limited", retry_after=exc.retry_after_seconds)
    if isinstance(exc, dav_errors.NotFoundError):
        return NotFound(f"{what}: not found")
    if isinstance(exc, _http.Timeout | _http.ConnectionError):
        return TransientError(f"{what}: {type(exc).__name__}")
    if isinstance(exc, dav_errors.DAVError):
        status = exc.status
        if isinstance(exc, dav_errors.AuthorizationError) or status in (401, 403):
            return PermissionDenied(f"{what}: {status or 'not authorised'}")
        if status == 404:
            return NotFound(f"{what}: not found")
        if status == 412:
            return PreconditionFailed(f"{what}: the resource changed since it was read")
        if status is not None and status >= 500:
            return TransientError(f"{what}: server error {status}")
        return ProviderError(f"{what}: {type(exc).__name__} {status or ''}".rstrip())
    if isinstance(exc, _http.RequestException):
        return TransientError(f"{what}: {type(exc).__name__}")
    return ProviderError(f"{what}: {type(exc).__name__}")
