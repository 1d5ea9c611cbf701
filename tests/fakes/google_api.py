"""A faithful local Google Calendar v3 API for tests and the benchmark.

A real HTTP server (``ThreadingHTTPServer`` on 127.0.0.1, port 0) that the
real ``google-api-python-client`` talks to unchanged::

    with FakeGoogleCalendarAPI() as api:
        api.add_calendar("boss@example.com")
        api.add_event("boss@example.com", {...event resource...})
        build("calendar", "v3", static_discovery=True, credentials=AnonymousCredentials(),
              client_options={"api_endpoint": api.endpoint})

What it serves, checked against the discovery document of the installed client
(unknown or mistyped parameters and fields are rejected with 400 and recorded
in :attr:`violations`):

- ``events.list``: paging (keyset page tokens), ``syncToken`` (changes since),
  ``nextSyncToken`` on the last page only, 410 ``fullSyncRequired`` for an
  expired token, ``showDeleted``, ``timeMin``/``timeMax``; ``singleEvents=true``
  is refused (we never use it);
- ``events.get`` and ``events.patch`` of singles, series and instances (an
  unmodified instance is materialised from its series; patching it makes an
  exception, as Google does); patch demands ``If-Match`` (400 and a violation
  without it), answers 412 on a stale etag, records ``sendUpdates``, merges
  ``extendedProperties`` maps and replaces anything else;
- ``/batch/calendar/v3`` (``multipart/mixed``), ``events.watch``, ``channels.stop``;
- events organized by others (``organizer.self`` false, attendee copies).

Faults on demand (:class:`Faults`): one-shot faults per kind, and seeded rates
of transient errors (429 / 403 rate limits / 500 / 503), 410 on list pages and
412 from a concurrent user edit; ``delay`` makes a response slow. Every call is
counted by kind in :attr:`requests` and recorded in :attr:`calls`.
"""

from __future__ import annotations

import base64
import copy
import email.parser
import itertools
import json
import random
import re
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

from tests.fakes.google_discovery import check_request, check_shape

SYNC_TOKEN_CONFLICTS = ("timeMin", "timeMax", "q", "orderBy", "updatedMin", "iCalUID")
PATCHABLE_BY_US = {"description", "extendedProperties"}
MAX_PAGE = 2500
MAX_DESCRIPTION_BYTES = 8192


class ApiError(Exception):
    """An error answer: status, reason, message, and optional extra headers."""

    def __init__(
        self, status: int, reason: str, message: str = "", headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.message = message or reason
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        domain = "usageLimits" if "imit" in self.reason or "quota" in self.reason else "global"
        return {
            "error": {
                "code": self.status,
                "message": self.message,
                "errors": [{"domain": domain, "reason": self.reason, "message": self.message}],
            }
        }


@dataclass
class RecordedCall:
    """One call as the server saw it (header names lower case)."""

    kind: str
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int = 0
    in_batch: bool = False


@dataclass
class Fault:
    """A one-shot fault for the next call of ``kind`` (``list``, ``patch``, ``*`` ...)."""

    kind: str
    status: int = 0
    reason: str = ""
    path_endswith: str = ""  # only calls whose path ends so (e.g. "/<event id>")
    retry_after: float | None = None
    delay: float = 0.0
    concurrent_edit: bool = False


@dataclass
class Faults:
    """What goes wrong. Rates are drawn from a seeded RNG, so runs repeat."""

    seed: int = 0
    transient_rate: float = 0.0  # 429 / 403 rate limits / 500 / 503, on any call
    gone_rate: float = 0.0  # 410 on list calls that carry a sync or page token
    conflict_rate: float = 0.0  # a user edits the event just before our patch: 412
    queue: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def inject(self, kind: str, status: int = 0, reason: str = "", **kw: Any) -> None:
        """Queue a one-shot fault for the next call of ``kind`` (``*`` for any)."""
        self.queue.append(Fault(kind=kind, status=status, reason=reason, **kw))

    def take(self, kind: str, path: str = "") -> Fault | None:
        for i, fault in enumerate(self.queue):
            if fault.kind in (kind, "*") and path.endswith(fault.path_endswith):
                return self.queue.pop(i)
        return None

    def random_transient(self) -> ApiError | None:
        if self.transient_rate <= 0 or self.rng.random() >= self.transient_rate:
            return None
        status, reason = self.rng.choice(
            [
                (429, "rateLimitExceeded"),
                (403, "rateLimitExceeded"),
                (403, "userRateLimitExceeded"),
                (500, "backendError"),
                (503, "backendError"),
            ]
        )
        headers = {"Retry-After": "1"} if status == 429 else {}
        return ApiError(status, reason, headers=headers)


@dataclass
class FakeCalendar:
    calendar_id: str
    owner: str
    time_zone: str = "UTC"
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    seq_of: dict[str, int] = field(default_factory=dict)
    seq: int = 0
    generation: int = 0


def _utc_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _parse_when(when: dict[str, Any]) -> datetime | date:
    if when.get("dateTime"):
        parsed = datetime.fromisoformat(str(when["dateTime"]).replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=ZoneInfo(when.get("timeZone") or "UTC"))
        return parsed
    return date.fromisoformat(str(when["date"]))


def instance_suffix(original: datetime | date) -> str:
    """Google's instance id suffix: ``20261201T080000Z`` or ``20261201``."""
    if isinstance(original, datetime):
        return original.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return original.strftime("%Y%m%d")


def _when_of(moment: datetime | date, zone: str | None) -> dict[str, Any]:
    if isinstance(moment, datetime):
        local = moment.astimezone(ZoneInfo(zone)) if zone else moment.astimezone(UTC)
        out: dict[str, Any] = {"dateTime": local.isoformat()}
    else:
        out = {"date": moment.isoformat()}
    if zone:
        out["timeZone"] = zone
    return out


def normalise_html(text: str) -> str:
    """What Google does to HTML we send, as far as we rely on it: ``<br/>`` -> ``<br>``."""
    return re.sub(r"<br\s*/?>", "<br>", text, flags=re.IGNORECASE)


class FakeGoogleCalendarAPI:
    """The local Calendar API. Use as a context manager, or ``start()``/``stop()``."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        faults: Faults | None = None,
        normalise: bool = True,
        validate_responses: bool = True,
        require_quota_user: bool = True,
    ) -> None:
        self.latency = latency
        self.faults = faults or Faults()
        self.normalise = normalise
        self.validate_responses = validate_responses
        self.require_quota_user = require_quota_user
        self.calendars: dict[str, FakeCalendar] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        # The last X-Goog-Message-Number sent on each channel.
        self.message_numbers: dict[str, int] = {}
        self.requests: Counter[str] = Counter()
        self.calls: list[RecordedCall] = []
        self.record_calls = True
        self.violations: list[str] = []
        self.user_edits = 0
        # Admin SDK Directory: user address -> manager address (and who is suspended).
        self.directory: dict[str, str] = {}
        self.suspended: set[str] = set()
        # More of the directory: users with their org unit (anyone in ``directory``
        # is a user too, in "/"), archived users, and groups' member addresses.
        self.users: dict[str, str] = {}
        self.archived: set[str] = set()
        self.groups: dict[str, list[str]] = {}
        self._lock = threading.RLock()
        self._etags = itertools.count(3_180_000_000_000_000)
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> FakeGoogleCalendarAPI:
        api = self

        class Handler(_Handler):
            fake = api

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGoogleCalendarAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/calendar/v3/"

    @property
    def root(self) -> str:
        """``http://127.0.0.1:PORT/``: the api_endpoint for the Admin SDK Directory."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def batch_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/batch/calendar/v3"

    # -- seeding and user actions (the test's side) -----------------------------

    def add_calendar(
        self, calendar_id: str, owner: str | None = None, time_zone: str = "UTC"
    ) -> None:
        with self._lock:
            self.calendars[calendar_id] = FakeCalendar(
                calendar_id, (owner or calendar_id).lower(), time_zone
            )

    def _new_etag(self) -> str:
        return f'"{next(self._etags)}"'

    def _touch(self, cal: FakeCalendar, event: dict[str, Any]) -> None:
        cal.seq += 1
        cal.seq_of[event["id"]] = cal.seq
        event["etag"] = self._new_etag()
        event["updated"] = _utc_stamp(datetime.now(UTC))

    def add_event(self, calendar_id: str, resource: dict[str, Any]) -> dict[str, Any]:
        """Create an event from a (partial) resource; fills id, etag, organizer and stamps."""
        with self._lock:
            cal = self.calendars[calendar_id]
            event = copy.deepcopy(resource)
            event.setdefault("id", f"ev{next(self._ids):08d}")
            event.setdefault("kind", "calendar#event")
            event.setdefault("status", "confirmed")
            event.setdefault("eventType", "default")
            event.setdefault("iCalUID", f"{event['id']}@google.com")
            event.setdefault("sequence", 0)
            event.setdefault("created", _utc_stamp(datetime.now(UTC)))
            organizer = event.setdefault("organizer", {"email": cal.owner})
            organizer["self"] = organizer.get("email", "").lower() == cal.owner
            event.setdefault("creator", dict(organizer))
            if "attendees" in event:
                for attendee in event["attendees"]:
                    if attendee.get("email", "").lower() == cal.owner:
                        attendee["self"] = True
            problems = check_shape(event, "Event")
            if problems:
                raise ValueError(f"seeded event is not a valid resource: {problems}")
            cal.events[event["id"]] = event
            self._touch(cal, event)
            return copy.deepcopy(event)

    def add_attendee_copy(
        self, calendar_id: str, event_id: str, attendee_calendar: str
    ) -> dict[str, Any]:
        """Put a copy of an event into an attendee's calendar (same id, not organized there)."""
        with self._lock:
            original = copy.deepcopy(self.calendars[calendar_id].events[event_id])
            original.pop("etag", None)
            return self.add_event(attendee_calendar, original)

    def event(self, calendar_id: str, event_id: str) -> dict[str, Any]:
        """The stored resource (a copy), including cancelled ones and exceptions."""
        with self._lock:
            return copy.deepcopy(self.calendars[calendar_id].events[event_id])

    def user_edit(self, calendar_id: str, event_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """A person edits an event in the Calendar UI: fields replaced, new etag."""
        with self._lock:
            cal = self.calendars[calendar_id]
            event = cal.events.get(event_id) or self._materialise(cal, event_id, store=True)
            event.update(copy.deepcopy(changes))
            self._touch(cal, event)
            self.user_edits += 1
            return copy.deepcopy(event)

    def cancel(self, calendar_id: str, event_id: str) -> None:
        """Delete an event (or, with an instance id, cancel one occurrence)."""
        with self._lock:
            cal = self.calendars[calendar_id]
            event = cal.events.get(event_id) or self._materialise(cal, event_id, store=True)
            event["status"] = "cancelled"
            self._touch(cal, event)

    def expire_sync_tokens(self, calendar_id: str) -> None:
        """Every sync token of this calendar answers 410 from now on."""
        with self._lock:
            self.calendars[calendar_id].generation += 1

    def instance_id(self, series_id: str, original: datetime | date) -> str:
        return f"{series_id}_{instance_suffix(original)}"

    def notify_channels(self, calendar_id: str, state: str = "exists") -> int:
        """POST a push notification to every channel watching ``calendar_id``; count sent.

        As Google does: headers only, ``Content-Length: 0``, and a message
        number that grows with each message on the channel (1 for ``sync``).
        """
        with self._lock:
            targets = [c for c in self.channels.values() if c["calendar_id"] == calendar_id]
            numbers = []
            for channel in targets:
                last = self.message_numbers.get(channel["id"], 0)
                self.message_numbers[channel["id"]] = number = 1 if state == "sync" else last + 7
                numbers.append(number)
        for channel, number in zip(targets, numbers, strict=True):
            request = urllib.request.Request(
                channel["address"],
                data=b"",
                method="POST",
                headers={
                    "Content-Type": "application/json; utf-8",
                    "X-Goog-Channel-Id": channel["id"],
                    "X-Goog-Channel-Token": channel.get("token", ""),
                    "X-Goog-Channel-Expiration": "Tue, 19 Nov 2030 01:13:52 GMT",
                    "X-Goog-Resource-Id": channel["resourceId"],
                    "X-Goog-Resource-Uri": f"{self.endpoint}calendars/{calendar_id}/events",
                    "X-Goog-Resource-State": state,
                    "X-Goog-Message-Number": str(number),
                },
            )
            with urllib.request.urlopen(request, timeout=5):
                pass
        return len(targets)

    # -- recurrence ------------------------------------------------------------

    def _occurs(self, master: dict[str, Any], original: datetime | date) -> bool:
        start = _parse_when(master["start"])
        lines = "\n".join(master.get("recurrence") or ())
        if not lines:
            return False
        if isinstance(start, datetime):
            zone = master["start"].get("timeZone")
            local = start.astimezone(ZoneInfo(zone)) if zone else start
            rules = rrulestr(lines, dtstart=local, forceset=True)
            return isinstance(original, datetime) and original in rules
        rules = rrulestr(lines, dtstart=datetime.combine(start, datetime.min.time()), forceset=True)
        return (
            not isinstance(original, datetime)
            and datetime.combine(original, datetime.min.time()) in rules
        )

    def _materialise(self, cal: FakeCalendar, event_id: str, *, store: bool) -> dict[str, Any]:
        """An unmodified occurrence of a series, built from the master (stored on demand)."""
        series_id, sep, suffix = event_id.rpartition("_")
        master = cal.events.get(series_id) if sep else None
        if master is None or not master.get("recurrence") or master.get("status") == "cancelled":
            raise ApiError(404, "notFound", "Not Found")
        try:
            if "T" in suffix:
                original: datetime | date = datetime.strptime(suffix, "%Y%m%dT%H%M%SZ").replace(
                    tzinfo=UTC
                )
            else:
                original = datetime.strptime(suffix, "%Y%m%d").date()
        except ValueError:
            raise ApiError(404, "notFound", "Not Found") from None
        if not self._occurs(master, original):
            raise ApiError(404, "notFound", "Not Found")
        start, end = _parse_when(master["start"]), _parse_when(master["end"])
        zone = master["start"].get("timeZone")
        instance = copy.deepcopy(master)
        instance.pop("recurrence", None)
        instance["id"] = event_id
        instance["recurringEventId"] = series_id
        instance["originalStartTime"] = _when_of(original, zone)
        instance["start"] = _when_of(original, zone)
        instance["end"] = _when_of(original + (end - start), zone)
        if store:
            cal.events[event_id] = instance
            self._touch(cal, instance)
        return instance

    # -- serving ---------------------------------------------------------------

    def _calendar(self, calendar_id: str, params: dict[str, str]) -> FakeCalendar:
        if calendar_id == "primary":
            user = params.get("quotaUser", "")
            for cal in self.calendars.values():
                if cal.owner == user:
                    return cal
        found = self.calendars.get(calendar_id)
        if found is None:
            raise ApiError(404, "notFound", "Not Found")
        return found

    def handle(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        raw: bytes,
        *,
        in_batch: bool = False,
    ) -> tuple[int, dict[str, str], bytes]:
        """Serve one call; returns (status, headers, body)."""
        parts = urlsplit(target)
        path = unquote(parts.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        params = {k: v[-1] for k, v in query.items()}
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = None
        kind, route = self._route(method, path)
        call = RecordedCall(kind, method, path, params, dict(headers), body, in_batch=in_batch)
        with self._lock:
            self.requests[kind] += 1
            if self.record_calls:
                self.calls.append(call)
        try:
            if route is None:
                raise ApiError(404, "notFound", f"no route for {method} {path}")
            fault = self._fault_for(kind, params, path)
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
            if fault is not None and fault.status:
                headers_out = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
                raise ApiError(fault.status, fault.reason or "backendError", headers=headers_out)
            if kind not in ("batch", "users.list", "members.list"):
                self._validate(kind, query, body)
            status, answer = route(params, headers, body, path, fault)
            out = json.dumps(answer).encode() if answer is not None else b""
            call.status = status
            return status, {"Content-Type": "application/json; charset=UTF-8"}, out
        except ApiError as err:
            call.status = err.status
            hdrs = {"Content-Type": "application/json; charset=UTF-8", **err.headers}
            return err.status, hdrs, json.dumps(err.body()).encode()

    def _route(self, method: str, path: str) -> tuple[str, Any]:
        if method == "POST" and path == "/batch/calendar/v3":
            return "batch", None
        if method == "POST" and path == "/calendar/v3/channels/stop":
            return "stop", self._stop
        if method == "GET" and path == "/admin/directory/v1/users":
            return "users.list", self._users_list
        if method == "GET" and re.fullmatch(r"/admin/directory/v1/groups/[^/]+/members", path):
            return "members.list", self._members_list
        m = re.fullmatch(r"/calendar/v3/calendars/([^/]+)/events(?:/([^/]+))?", path)
        if m is None:
            return "unknown", None
        if m.group(2) is None and method == "GET":
            return "list", self._list
        if m.group(2) == "watch" and method == "POST":
            return "watch", self._watch
        if m.group(2) and method == "GET":
            return "get", self._get
        if m.group(2) and method == "PATCH":
            return "patch", self._patch
        return "unknown", None

    def _fault_for(self, kind: str, params: dict[str, str], path: str = "") -> Fault | None:
        with self._lock:
            fault = self.faults.take(kind, path)
            if fault is not None:
                return fault
            if kind == "batch":
                return None
            transient = self.faults.random_transient()
            if transient is not None:
                raise transient
            if (
                kind == "list"
                and ("syncToken" in params or "pageToken" in params)
                and self.faults.gone_rate > 0
                and self.faults.rng.random() < self.faults.gone_rate
            ):
                raise ApiError(410, "fullSyncRequired", "Sync token is no longer valid")
            if (
                kind == "patch"
                and self.faults.conflict_rate > 0
                and self.faults.rng.random() < self.faults.conflict_rate
            ):
                return Fault(kind="patch", concurrent_edit=True)
        return None

    def _violation(self, text: str) -> None:
        with self._lock:
            self.violations.append(text)

    def _validate(self, kind: str, query: dict[str, list[str]], body: Any) -> None:
        resource, name = ("channels", "stop") if kind == "stop" else ("events", kind)
        problems = check_request(resource, name, query)
        schema = {"patch": "Event", "watch": "Channel", "stop": "Channel"}.get(kind)
        if schema is not None:
            problems += check_shape(body if body is not None else {}, schema)
        if self.require_quota_user and "quotaUser" not in query:
            problems.append(f"{kind}: no quotaUser")
        if problems:
            for p in problems:
                self._violation(p)
            raise ApiError(400, "badRequest", "; ".join(problems))

    def _answer(self, value: dict[str, Any], schema: str) -> dict[str, Any]:
        if self.validate_responses:
            problems = check_shape(value, schema)
            if problems:
                self._violation(f"fake answered a malformed {schema}: {problems[:3]}")
        return value

    # list ----------------------------------------------------------------------

    def _list(
        self, params: dict[str, str], headers: Any, body: Any, path: str, fault: Any
    ) -> tuple[int, Any]:
        cal = self._calendar(path.split("/")[4], params)
        if params.get("singleEvents") == "true":
            raise ApiError(400, "invalid", "singleEvents=true is not supported by the fake")
        if "syncToken" in params:
            clash = [k for k in SYNC_TOKEN_CONFLICTS if k in params]
            if clash:
                self._violation(f"list: syncToken with {clash}")
                raise ApiError(400, "invalid", f"syncToken cannot be combined with {clash}")
        page_size = min(int(params.get("maxResults", "250")), MAX_PAGE)
        with self._lock:
            if "pageToken" in params:
                state = _decode(params["pageToken"])
                if state.get("cal") != cal.calendar_id:
                    raise ApiError(400, "invalid", "bad pageToken")
            else:
                since = -1
                if "syncToken" in params:
                    # Google answers 410 for any token it cannot use, garbage included.
                    try:
                        token = _decode(params["syncToken"])
                    except ApiError:
                        raise ApiError(410, "fullSyncRequired", "Sync token is invalid") from None
                    if token.get("cal") != cal.calendar_id or token.get("gen") != cal.generation:
                        raise ApiError(410, "fullSyncRequired", "Sync token is no longer valid")
                    since = int(token["seq"])
                state = {
                    "cal": cal.calendar_id,
                    "since": since,
                    "snap": cal.seq,
                    "gen": cal.generation,
                    "after": "",
                }
            if state["since"] >= 0 and state["gen"] != cal.generation:
                raise ApiError(410, "fullSyncRequired", "Sync token is no longer valid")
            incremental = state["since"] >= 0
            show_deleted = incremental or params.get("showDeleted") == "true"
            t_min = _time_bound(params.get("timeMin"))
            t_max = _time_bound(params.get("timeMax"))
            chosen: list[dict[str, Any]] = []
            for event_id in sorted(i for i in cal.events if i > state["after"]):
                if cal.seq_of[event_id] <= state["since"]:
                    continue
                event = cal.events[event_id]
                if event.get("status") == "cancelled" and not show_deleted:
                    continue
                if not _overlaps(event, t_min, t_max):
                    continue
                chosen.append(event)
                if len(chosen) > page_size:
                    break
            more = len(chosen) > page_size
            items = [_listed(e) for e in chosen[:page_size]]
            answer: dict[str, Any] = {
                "kind": "calendar#events",
                "etag": self._new_etag(),
                "summary": cal.calendar_id,
                "updated": _utc_stamp(datetime.now(UTC)),
                "timeZone": cal.time_zone,
                "accessRole": "owner",
                "defaultReminders": [],
                "items": items,
            }
            if more:
                answer["nextPageToken"] = _encode({**state, "after": items[-1]["id"]})
            else:
                answer["nextSyncToken"] = _encode(
                    {"cal": cal.calendar_id, "seq": state["snap"], "gen": cal.generation}
                )
        return 200, self._answer(answer, "Events")

    # get / patch -----------------------------------------------------------------

    def _lookup(self, cal: FakeCalendar, event_id: str, *, store: bool) -> dict[str, Any]:
        event = cal.events.get(event_id)
        if event is None:
            event = self._materialise(cal, event_id, store=store)
        return event

    def _get(
        self, params: dict[str, str], headers: Any, body: Any, path: str, fault: Any
    ) -> tuple[int, Any]:
        _, _, _, _, calendar_id, _, event_id = path.split("/")
        with self._lock:
            cal = self._calendar(calendar_id, params)
            event = self._lookup(cal, event_id, store=False)
            if event.get("status") == "cancelled" and event.get("recurringEventId"):
                return 200, self._answer(_listed(event), "Event")
            return 200, self._answer(copy.deepcopy(event), "Event")

    def _patch(
        self,
        params: dict[str, str],
        headers: dict[str, str],
        body: Any,
        path: str,
        fault: Fault | None,
    ) -> tuple[int, Any]:
        _, _, _, _, calendar_id, _, event_id = path.split("/")
        if_match = headers.get("if-match")
        if params.get("sendUpdates") != "none":
            self._violation(f"patch {event_id}: sendUpdates={params.get('sendUpdates')!r}")
        if not if_match:
            self._violation(f"patch {event_id}: no If-Match")
            raise ApiError(400, "ifMatchRequired", "this fake refuses a patch without If-Match")
        body = body or {}
        extra = set(body) - PATCHABLE_BY_US
        extra_props = set(body.get("extendedProperties") or {}) - {"private"}
        if extra or extra_props:
            self._violation(f"patch {event_id}: sends {sorted(extra | extra_props)}")
            raise ApiError(
                400, "invalid", "patch may only carry description and extendedProperties.private"
            )
        with self._lock:
            cal = self._calendar(calendar_id, params)
            event = self._lookup(cal, event_id, store=False)
            if event.get("status") == "cancelled":
                raise ApiError(410, "deleted", "Resource has been deleted")
            refusal = _refusal(event)
            if refusal:
                self._violation(f"patch {event_id}: {refusal}")
                raise ApiError(
                    403,
                    "forbiddenForNonOrganizer" if "organize" in refusal else "forbidden",
                    refusal,
                )
            if fault is not None and fault.concurrent_edit:
                # Someone typed into the event a moment before our patch arrived.
                event = self._lookup(cal, event_id, store=True)
                note = f"<br>concurrent note {self.user_edits + 1}"
                event["description"] = str(event.get("description", "")) + note
                self._touch(cal, event)
                self.user_edits += 1
            if if_match != event.get("etag"):
                raise ApiError(412, "conditionNotMet", "Precondition Failed")
            event = self._lookup(cal, event_id, store=True)
            if "description" in body:
                text = str(body["description"] or "")
                if len(text.encode()) > MAX_DESCRIPTION_BYTES:
                    self._violation(
                        f"patch {event_id}: description over {MAX_DESCRIPTION_BYTES} bytes"
                    )
                event["description"] = normalise_html(text) if self.normalise else text
            private = (body.get("extendedProperties") or {}).get("private")
            if private is not None:
                stored = event.setdefault("extendedProperties", {}).setdefault("private", {})
                for key, value in private.items():
                    if len(key) > 44 or (value is not None and len(str(value)) > 1024):
                        raise ApiError(400, "invalid", "extended property too long")
                    if value is None:
                        stored.pop(key, None)
                    else:
                        stored[key] = value
            self._touch(cal, event)
            return 200, self._answer(copy.deepcopy(event), "Event")

    # directory ------------------------------------------------------------------------

    def _users_list(
        self, params: dict[str, str], headers: Any, body: Any, path: str, fault: Any
    ) -> tuple[int, Any]:
        known = {
            "customer",
            "domain",
            "query",
            "maxResults",
            "pageToken",
            "alt",
            "quotaUser",
            "fields",
        }
        unknown = set(params) - known
        if unknown or not ({"customer", "domain"} & set(params)):
            self._violation(f"users.list: bad parameters {sorted(unknown) or 'no customer/domain'}")
            raise ApiError(400, "invalid", "bad users.list parameters")
        size = int(params.get("maxResults", "100"))
        if not 1 <= size <= 500:
            self._violation(f"users.list: maxResults={size} outside 1..500")
            raise ApiError(400, "invalid", "maxResults must be 1..500")
        query = params.get("query", "")
        manager = re.fullmatch(r"directManager='([^']+)'", query)
        unit = re.fullmatch(r"orgUnitPath='([^']+)'", query)
        with self._lock:
            everyone = {u: "/" for u in self.directory} | dict(self.users)
            domain = params.get("domain")
            if domain:
                everyone = {u: p for u, p in everyone.items() if u.endswith("@" + domain)}
            if manager is not None:
                boss = manager.group(1).lower()
                found = sorted(u for u, mgr in self.directory.items() if mgr == boss)
            elif unit is not None:
                # Like the Admin SDK: the unit and every unit below it.
                prefix = unit.group(1).rstrip("/")
                found = sorted(
                    u for u, p in everyone.items() if p == prefix or p.startswith(prefix + "/")
                )
            elif not query:
                found = sorted(everyone)
            else:
                raise ApiError(400, "invalid", "unsupported users.list query")
            users = [
                {
                    "kind": "admin#directory#user",
                    "primaryEmail": u,
                    "suspended": u in self.suspended,
                    "archived": u in self.archived,
                    "orgUnitPath": everyone.get(u, "/"),
                    **(
                        {"relations": [{"value": self.directory[u], "type": "manager"}]}
                        if u in self.directory
                        else {}
                    ),
                }
                for u in found
            ]
        start = int(params.get("pageToken") or 0)
        page = users[start : start + size]
        if "fields" in params:
            page = [
                {
                    k: v
                    for k, v in user.items()
                    if k in ("primaryEmail", "suspended", "archived", "relations")
                }
                for user in page
            ]
        answer: dict[str, Any] = {"kind": "admin#directory#users", "users": page}
        if start + size < len(found):
            answer["nextPageToken"] = str(start + size)
        return 200, answer

    def _members_list(
        self, params: dict[str, str], headers: Any, body: Any, path: str, fault: Any
    ) -> tuple[int, Any]:
        known = {
            "maxResults",
            "pageToken",
            "includeDerivedMembership",
            "roles",
            "alt",
            "quotaUser",
            "fields",
        }
        unknown = set(params) - known
        if unknown:
            self._violation(f"members.list: bad parameters {sorted(unknown)}")
            raise ApiError(400, "invalid", "bad members.list parameters")
        size = int(params.get("maxResults", "200"))
        if not 1 <= size <= 200:
            self._violation(f"members.list: maxResults={size} outside 1..200")
            raise ApiError(400, "invalid", "maxResults must be 1..200")
        group = unquote(path.split("/")[5]).lower()
        with self._lock:
            if group not in self.groups:
                raise ApiError(404, "notFound", "Resource Not Found: groupKey")
            members = [
                {
                    "kind": "admin#directory#member",
                    "email": address,
                    "type": "GROUP" if address in self.groups else "USER",
                    "status": "SUSPENDED" if address in self.suspended else "ACTIVE",
                    "role": "MEMBER",
                }
                for address in self.groups[group]
            ]
        start = int(params.get("pageToken") or 0)
        answer: dict[str, Any] = {
            "kind": "admin#directory#members",
            "members": members[start : start + size],
        }
        if start + size < len(members):
            answer["nextPageToken"] = str(start + size)
        return 200, answer

    # push ---------------------------------------------------------------------------

    def _watch(
        self, params: dict[str, str], headers: Any, body: Any, path: str, fault: Any
    ) -> tuple[int, Any]:
        calendar_id = path.split("/")[4]
        body = body or {}
        if body.get("type") != "web_hook" or not body.get("address") or not body.get("id"):
            raise ApiError(400, "invalid", "watch needs id, type web_hook and address")
        with self._lock:
            cal = self._calendar(calendar_id, params)
            if body["id"] in self.channels:
                raise ApiError(400, "channelIdNotUnique", "Channel id not unique")
            ttl = int((body.get("params") or {}).get("ttl", "604800"))
            expiration = int((time.time() + min(ttl, 2_592_000)) * 1000)
            channel = {
                "kind": "api#channel",
                "id": body["id"],
                "resourceId": f"res-{cal.calendar_id}",
                "resourceUri": f"{self.endpoint}calendars/{cal.calendar_id}/events",
                "token": body.get("token", ""),
                "expiration": str(expiration),
            }
            self.channels[body["id"]] = {
                **channel,
                "address": body["address"],
                "calendar_id": cal.calendar_id,
            }
        return 200, self._answer(channel, "Channel")

    def _stop(
        self, params: dict[str, str], headers: Any, body: Any, path: str, fault: Any
    ) -> tuple[int, Any]:
        body = body or {}
        with self._lock:
            channel = self.channels.get(str(body.get("id")))
            if channel is None or channel["resourceId"] != body.get("resourceId"):
                raise ApiError(404, "notFound", "Channel not found")
            del self.channels[channel["id"]]
        return 204, None

    # batch ----------------------------------------------------------------------------

    def handle_batch(self, content_type: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        """Split a multipart/mixed batch, serve each part, answer multipart/mixed."""
        if not content_type.startswith("multipart/mixed"):
            return 400, {"Content-Type": "text/plain"}, b"batch must be multipart/mixed"
        message = email.parser.BytesParser().parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
        )
        parts = message.get_payload()
        if not isinstance(parts, list) or len(parts) > 1000:
            return 400, {"Content-Type": "text/plain"}, b"bad batch"
        boundary = f"batch_{next(self._ids):012d}"
        chunks: list[bytes] = []
        part: Any
        for part in parts:
            content_id = str(part["Content-ID"] or "")
            inner = part.get_payload()
            assert isinstance(inner, str)
            request_line, _, rest = inner.partition("\n")
            method, target, _ = request_line.strip().split(" ", 2)
            head, _, body = rest.replace("\r\n", "\n").partition("\n\n")
            headers = {}
            for line in head.split("\n"):
                if ":" in line:
                    key, _, value = line.partition(":")
                    headers[key.strip().lower()] = value.strip()
            status, out_headers, out = self.handle(
                method, target, headers, body.encode(), in_batch=True
            )
            response_id = content_id.replace("<", "<response-", 1)
            header_lines = "".join(f"{k}: {v}\r\n" for k, v in out_headers.items())
            chunks.append(
                (
                    f"--{boundary}\r\nContent-Type: application/http\r\n"
                    f"Content-ID: {response_id}\r\n\r\n"
                    f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n{header_lines}"
                    f"Content-Length: {len(out)}\r\n\r\n"
                ).encode()
                + out
                + b"\r\n"
            )
        chunks.append(f"--{boundary}--\r\n".encode())
        return 200, {"Content-Type": f"multipart/mixed; boundary={boundary}"}, b"".join(chunks)


_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    410: "Gone",
    412: "Precondition Failed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _refusal(event: dict[str, Any]) -> str | None:
    """Why we must never have sent a patch for this event (I6), or None."""
    if not (event.get("organizer") or {}).get("self"):
        return "we do not organize this event"
    if event.get("locked"):
        return "event is locked"
    if event.get("eventType", "default") != "default":
        return f"eventType {event.get('eventType')}"
    if event.get("visibility") == "private":
        return "private event"
    return None


def _listed(event: dict[str, Any]) -> dict[str, Any]:
    """What a list returns for an event: a cancelled instance is a stub."""
    if event.get("status") == "cancelled":
        stub = {
            "kind": "calendar#event",
            "etag": event["etag"],
            "id": event["id"],
            "status": "cancelled",
        }
        if event.get("recurringEventId"):
            stub["recurringEventId"] = event["recurringEventId"]
            stub["originalStartTime"] = event["originalStartTime"]
        return stub
    return copy.deepcopy(event)


def _time_bound(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _as_datetime(moment: datetime | date) -> datetime:
    if isinstance(moment, datetime):
        return moment
    return datetime.combine(moment, datetime.min.time(), tzinfo=UTC)


def _overlaps(event: dict[str, Any], t_min: datetime | None, t_max: datetime | None) -> bool:
    """Window filter for timeMin/timeMax. A series counts from its first start on."""
    if (t_min is None and t_max is None) or "start" not in event:
        return True
    start = _as_datetime(_parse_when(event["start"]))
    end = _as_datetime(_parse_when(event["end"]))
    if t_max is not None and start >= t_max:
        return False
    return not (t_min is not None and not event.get("recurrence") and end <= t_min)


def _encode(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def _decode(token: str) -> dict[str, Any]:
    try:
        decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(token.encode()))
        if not isinstance(decoded, dict):
            raise ValueError(token)
        return decoded
    except (ValueError, TypeError):
        raise ApiError(400, "invalid", "bad token") from None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeGoogleCalendarAPI

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.fake.latency:
            time.sleep(self.fake.latency)
        if self.command == "POST" and self.path.split("?")[0] == "/batch/calendar/v3":
            with self.fake._lock:
                self.fake.requests["batch"] += 1
            fault = self.fake._fault_for("batch", {})
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
            if fault is not None and fault.status:
                err = ApiError(fault.status, fault.reason or "backendError")
                status, headers, body = (
                    err.status,
                    {"Content-Type": "application/json"},
                    json.dumps(err.body()).encode(),
                )
            else:
                status, headers, body = self.fake.handle_batch(
                    self.headers.get("Content-Type", ""), raw
                )
        else:
            lowered = {k.lower(): v for k, v in self.headers.items()}
            status, headers, body = self.fake.handle(self.command, self.path, lowered, raw)
        try:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a timeout test)

    do_GET = _serve
    do_POST = _serve
    do_PATCH = _serve
