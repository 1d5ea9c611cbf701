"""The Microsoft 365 provider: one mailbox's calendar through Microsoft Graph, app-only.

Reading is ``calendarView/delta`` over a window fixed inside the delta token
(from yesterday to :attr:`MicrosoftProvider.window_days` ahead). The cursor
holds the window and the ``@odata.deltaLink``; the window slides once a week
(:data:`WINDOW_SLACK`): when its start lies more than a week behind yesterday,
or its end less than a week beyond the days wanted, the cursor is refused
(:class:`CursorExpired`) and a new round starts. A new round costs a listing of
the window and its ``$batch`` fills, so a quiet day stays one delta call per
mailbox and the round is paid once a week, not daily. Delta reports skeletons
(id, type, seriesMasterId, start, end); the provider fills them with ``$batch``
GETs of the fields it maps and its extended property: a series by its master,
an exception by itself. A quiet cycle is one delta call.

Writing (``write_mode: body``): Graph has no ``sendUpdates=none``; every
change to the organizer's body sends each attendee a meeting update. So a
write goes out only when the agenda's visible text changes (or the block is
first added or removed), at most once per event and UTC day (the day is kept
in the event's extended property), and otherwise comes back as
:class:`WriteHeld`. The body is spliced inside the document Exchange keeps,
PATCHed with ``If-Match``, read back, and when Exchange rendered our block so
that its hash changed, the rendered hash is stored (a property-only PATCH,
which sends no update). ``write_mode: reminder`` never PATCHes.

The registration (config model, factory, ``PROVIDER``) is in
:mod:`.microsoft_config`; HTTP, auth and throttling in :mod:`.microsoft_session`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from urllib.parse import quote

from feedback_agendas.agendas.block import block_content, block_hash, block_matches, read_block
from feedback_agendas.agendas.errors import (
    CursorExpired,
    FeedbackAgendasError,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    ProviderError,
    WriteHeld,
)
from feedback_agendas.agendas.model import (
    ChangeSet,
    DescriptionWrite,
    EventRef,
    Meeting,
    Unreadable,
    WriteOutcome,
)
from feedback_agendas.integrations.calendars.microsoft_map import (
    EXPAND,
    PROPERTY_ID,
    SELECT,
    Body,
    Stamp,
    may_write,
    parse_graph_time,
    stamp_of,
    to_meeting_or_unreadable,
    utc_text,
)
from feedback_agendas.integrations.calendars.microsoft_session import GraphSession, raise_for

WriteMode = Literal["body", "reminder"]
# How far a delta round's window may lag behind the one wanted before a new round starts.
WINDOW_SLACK = timedelta(days=7)
CURSOR_VERSION = "ms1"
PAGE_SIZE = 200
PREFER_READ = 'IdType="ImmutableId", outlook.timezone="UTC"'


@dataclass
class _Seen:
    """What the last read of one event gave: its Graph id and type, body, stamp, meeting."""

    graph_id: str
    kind: str
    body: Body
    stamp: Stamp
    meeting: Meeting


def _day_start(moment: datetime) -> datetime:
    return datetime.combine(moment.astimezone(UTC).date(), time(0), tzinfo=UTC)


class MicrosoftProvider:
    """One mailbox's default calendar. ``session`` may serve many mailboxes of one app."""

    def __init__(
        self,
        *,
        name: str,
        owner: str,
        session: GraphSession,
        mailbox: str | None = None,
        write_mode: WriteMode = "body",
        window_days: int = 60,
        page_size: int = PAGE_SIZE,
        now: Callable[[], datetime] | None = None,
        own_session: bool = False,
    ) -> None:
        self.name = name
        self.owner = owner.lower()
        self.mailbox = (mailbox or owner).lower()
        self.write_mode: WriteMode = write_mode
        self.window_days = window_days
        self.page_size = page_size
        self.session = session
        self.requests: Counter[str] = Counter()
        self._now = now or (lambda: datetime.now(UTC))
        self._own_session = own_session
        self._seen: dict[EventRef, _Seen] = {}
        self._refs: dict[str, EventRef] = {}  # Graph id -> ref (ids seen in this process)
        self._written: dict[str, str] = {}  # Graph id -> etag our last write left

    @property
    def writes_events(self) -> bool:
        """False in ``write_mode: reminder``: the runtime then puts agendas in reminders."""
        return self.write_mode == "body"

    def write_notices(self, meeting: Meeting) -> int:
        """The meeting updates a write of ``meeting`` sends: one per attendee but us."""
        if not self.writes_events:
            return 0
        us = {self.mailbox, (meeting.organizer or "").lower()}
        return len({a.email for a in meeting.attendees} - us)

    # -- HTTP --------------------------------------------------------------------

    def _path(self, tail: str) -> str:
        return f"users/{quote(self.mailbox)}/{tail}"

    def _call(self, method: str, url: str, kind: str, **kw: Any) -> Any:
        self.requests[kind] += 1
        return self.session.call(method, url, mailbox=self.mailbox, kind=kind, **kw)

    def _event_url(self, graph_id: str) -> str:
        return self._path(f"events/{quote(graph_id, safe='')}?$select={SELECT}&$expand={EXPAND}")

    # -- reading -------------------------------------------------------------------

    def _window(self) -> tuple[datetime, datetime]:
        low = _day_start(self._now()) - timedelta(days=1)
        return low, low + timedelta(days=self.window_days + 1)

    def read_changes(self, cursor: str | None) -> ChangeSet:
        """Follow the delta round from ``cursor``; ``None`` starts a new round (a new window)."""
        if cursor is None:
            low, high = self._window()
            url = self._path(
                f"calendarView/delta?startDateTime={utc_text(low)}&endDateTime={utc_text(high)}"
            )
        else:
            low, high, url = self._parse_cursor(cursor)
        try:
            items, delta_link = self._follow(url, from_cursor=cursor is not None)
        except CursorExpired:
            if cursor is not None:
                raise  # the caller starts a new round
            # A token lost in the middle of a new round (410): that round, once more.
            items, delta_link = self._follow(url, from_cursor=False)
        meetings, deleted, unreadable = self._fill(items)
        return ChangeSet(
            meetings=tuple(meetings.values()),
            deleted=tuple(deleted),
            cursor=f"{CURSOR_VERSION}|{utc_text(low)}|{utc_text(high)}|{delta_link}",
            full=cursor is None,
            unreadable=tuple(unreadable.values()),
        )

    def _parse_cursor(self, cursor: str) -> tuple[datetime, datetime, str]:
        parts = cursor.split("|", 3)
        if len(parts) != 4 or parts[0] != CURSOR_VERSION or "deltatoken=" not in parts[3]:
            raise CursorExpired("graph delta: not a cursor of this provider")
        try:
            low, high = parse_graph_time(parts[1], "cursor"), parse_graph_time(parts[2], "cursor")
        except ValueError:
            raise CursorExpired("graph delta: unreadable cursor window") from None
        wanted_low, wanted_high = self._window()
        if wanted_low - low > WINDOW_SLACK or wanted_high - WINDOW_SLACK > high:
            raise CursorExpired("graph delta: the window moved; a new round starts")
        if not parts[3].startswith(self.session.graph + "/"):
            raise CursorExpired("graph delta: the cursor names another endpoint")
        return low, high, parts[3]

    def _follow(self, url: str, *, from_cursor: bool) -> tuple[list[dict[str, Any]], str]:
        """Every page of one round: (items, the deltaLink that ends it)."""
        headers = {"Prefer": f"{PREFER_READ}, odata.maxpagesize={self.page_size}"}
        items: list[dict[str, Any]] = []
        followed: set[str] = set()
        while True:
            followed.add(url)
            page = self._call("GET", url, "delta", headers=headers).body
            items += [i for i in page.get("value") or () if isinstance(i, dict)]
            next_link = page.get("@odata.nextLink")
            if next_link:
                if next_link in followed:
                    message = "graph delta: a nextLink repeated"
                    if from_cursor:
                        raise CursorExpired(message + "; a new round starts")
                    raise ProviderError(message + "; the round stops")
                url = str(next_link)
                continue
            delta_link = page.get("@odata.deltaLink")
            if not delta_link:
                raise ProviderError("graph delta: last page without a deltaLink")
            return items, str(delta_link)

    def _fill(
        self, items: list[dict[str, Any]]
    ) -> tuple[dict[EventRef, Meeting], dict[EventRef, None], dict[EventRef, Unreadable]]:
        wanted: dict[str, None] = {}
        removed: dict[EventRef, None] = {}
        for item in items:
            ident = str(item.get("id") or "")
            if not ident:
                continue
            if "@removed" in item:
                removed[self._refs.get(ident, EventRef(self.name, ident))] = None
            elif item.get("type") == "occurrence" and item.get("seriesMasterId"):
                wanted[str(item["seriesMasterId"])] = None
            else:
                wanted[ident] = None
        meetings: dict[EventRef, Meeting] = {}
        unreadable: dict[EventRef, Unreadable] = {}
        calls = [
            {
                "id": str(n),
                "method": "GET",
                "url": "/" + self._event_url(ident),
                "headers": {"Prefer": PREFER_READ},
            }
            for n, ident in enumerate(wanted)
        ]
        if calls:
            self.requests["batch"] += (len(calls) + 19) // 20
            self.requests["get"] += len(calls)
        answers = self.session.batch(self.mailbox, calls) if calls else {}
        for n, ident in enumerate(wanted):
            reply = answers[str(n)]
            if reply.status == 404:
                removed[self._refs.get(ident, EventRef(self.name, ident))] = None
                continue
            if 400 <= reply.status < 500 and reply.status not in (401, 408, 429):
                # This one event is refused (a 403 on one item): skip it, read the rest.
                ref = self._refs.get(ident, EventRef(self.name, ident))
                unreadable[ref] = Unreadable(ref, f"graph get: HTTP {reply.status}")
                continue
            raise_for(reply, "get")
            mapped = self._remember(reply.body)
            if isinstance(mapped, Unreadable):
                unreadable[mapped.ref] = mapped
            elif mapped is None:
                removed[self._refs.get(ident, EventRef(self.name, ident))] = None
            else:
                removed.pop(mapped.ref, None)
                meetings[mapped.ref] = mapped
        return meetings, removed, unreadable

    def _remember(self, item: dict[str, Any]) -> Meeting | Unreadable | None:
        """Map one full event and keep what a later write needs; None when cancelled."""
        mapped = to_meeting_or_unreadable(self.name, self.owner, item)
        self._refs[str(item.get("id"))] = mapped.ref
        if isinstance(mapped, Unreadable):
            return mapped
        if item.get("isCancelled"):
            self._seen.pop(mapped.ref, None)
            return None
        self._seen[mapped.ref] = _Seen(
            str(item.get("id")),
            str(item.get("type")),
            Body.split(item.get("body")),
            stamp_of(item),
            mapped,
        )
        return mapped

    def get(self, ref: EventRef) -> Meeting | None:
        """Read one event again (an occurrence by its series and original start)."""
        graph_id = self._graph_id(ref)
        if graph_id is None:
            return None
        try:
            item = self._call(
                "GET", self._event_url(graph_id), "get", headers={"Prefer": PREFER_READ}
            ).body
        except NotFound:
            self._seen.pop(ref, None)
            return None
        mapped = self._remember(item)
        if isinstance(mapped, Unreadable):
            raise ProviderError(f"graph get: unreadable event ({mapped.reason})")
        return mapped

    def _graph_id(self, ref: EventRef) -> str | None:
        if ref.recurrence_id is None:
            return ref.event_id
        seen = self._seen.get(ref)
        if seen is not None:
            return seen.graph_id
        # Not read in this process: ask the series for the instance at that start.
        try:
            original = parse_graph_time(ref.recurrence_id, "recurrence id")
        except ValueError:
            return None
        low, high = original - timedelta(days=1), original + timedelta(days=1)
        url = self._path(
            f"events/{quote(ref.event_id, safe='')}/instances?startDateTime={utc_text(low)}"
            f"&endDateTime={utc_text(high)}&$select=id,type,seriesMasterId,originalStart,start"
        )
        try:
            found = self._call("GET", url, "instances", headers={"Prefer": PREFER_READ}).body
        except NotFound:
            return None
        for item in found.get("value") or ():
            start = item.get("originalStart") or item.get("start")
            if start and utc_text(parse_graph_time(start, "originalStart")) == ref.recurrence_id:
                return str(item.get("id"))
        return None

    # -- writing -------------------------------------------------------------------

    def write(self, writes: Sequence[DescriptionWrite]) -> list[WriteOutcome]:
        """Write each description, or hold it back (:class:`WriteHeld`); one outcome each."""
        outcomes = []
        for w in writes:
            try:
                outcomes.append(WriteOutcome(ref=w.ref, etag=self._write_one(w)))
            except (FeedbackAgendasError, ValueError) as exc:
                outcomes.append(WriteOutcome(ref=w.ref, error=exc))
        return outcomes

    def _write_one(self, w: DescriptionWrite) -> str:
        if self.write_mode == "reminder":
            raise WriteHeld("write_mode reminder: events are never written")
        if not w.etag:
            raise PreconditionFailed("graph patch: no etag to match")
        seen = self._seen.get(w.ref)
        if seen is None or seen.meeting.etag != w.etag:
            if self.get(w.ref) is None:
                raise NotFound("graph patch: the event is gone")
            seen = self._seen[w.ref]
            if seen.meeting.etag != w.etag:
                raise PreconditionFailed("graph patch: the event changed since it was read")
        if not may_write(seen.meeting):
            raise PermissionDenied("graph patch: refused, the event is not ours to edit")
        if seen.kind == "occurrence":
            raise PermissionDenied("graph patch: refused, an occurrence is written on its series")
        today = self._now().astimezone(UTC).date()
        self._hold_if_needless(seen, w, today)
        content = seen.body.with_inner(w.description) if seen.body.html else w.description
        patch = {
            "body": {"contentType": "html" if seen.body.html else "text", "content": content},
            "singleValueExtendedProperties": [
                {"id": PROPERTY_ID, "value": Stamp(w.block_hash, today).value()}
            ],
        }
        answer = self._patch(seen.graph_id, w.etag, patch)
        fresh = self.get(w.ref)
        if fresh is None:
            return str(answer.get("@odata.etag") or "")
        etag = fresh.etag
        rendered = block_content(fresh.description)
        if w.block_hash and rendered is not None and not block_matches(rendered, w.block_hash):
            # Exchange rendered our block so that its hash changed: keep the rendering's
            # hash, so later cycles know the block as ours (no attendee update for this).
            stamp = {"id": PROPERTY_ID, "value": Stamp(block_hash(rendered), today).value()}
            answer = self._patch(seen.graph_id, etag, {"singleValueExtendedProperties": [stamp]})
            etag = str(answer.get("@odata.etag") or etag)
            self.get(w.ref)
        self._written[seen.graph_id] = etag
        return etag

    def _hold_if_needless(self, seen: _Seen, w: DescriptionWrite, today: date) -> None:
        """Raise :class:`WriteHeld` for a change of our block that attendees would not see,
        or a second change of it on one UTC day. Adding or removing a block always goes."""
        current = read_block(seen.body.inner)
        new = read_block(w.description)
        if current is None or new is None:
            return
        if _visible(current) == _visible(new):
            raise WriteHeld("graph patch: the agenda's visible text is unchanged")
        if seen.stamp.written_on == today:
            tomorrow = datetime.combine(today + timedelta(days=1), time(0), tzinfo=UTC)
            raise WriteHeld("graph patch: the event was written today already", tomorrow)

    def _patch(self, graph_id: str, etag: str, body: dict[str, Any]) -> dict[str, Any]:
        url = self._path(f"events/{quote(graph_id, safe='')}")
        headers = {"If-Match": etag, "Prefer": PREFER_READ}
        reply = self._call("PATCH", url, "patch", body=body, headers=headers)
        return dict(reply.body)

    def cursor_after_writes(self, cursor: str) -> str:
        """The cursor past our own writes, so the next cycle does not fetch them back.

        Follows the delta once more; when every change it reports is an event
        we wrote this cycle, still at the etag our write left, the new link is
        the cursor. Anything else (a user's change, a deletion, a failure)
        keeps ``cursor``: the next cycle reads those changes as usual.
        """
        written, self._written = self._written, {}
        if not written:
            return cursor
        try:
            low, high, url = self._parse_cursor(cursor)
            items, link = self._follow(url, from_cursor=True)
            ids = {
                str(i.get("seriesMasterId") if i.get("type") == "occurrence" else i.get("id"))
                for i in items
                if "@removed" not in i
            }
            if any("@removed" in i for i in items) or not ids <= written.keys():
                return cursor
            calls = [
                {
                    "id": ident,
                    "method": "GET",
                    "url": "/" + self._path(f"events/{quote(ident, safe='')}?$select=id"),
                    "headers": {"Prefer": PREFER_READ},
                }
                for ident in sorted(ids)
            ]
            self.requests["batch"] += (len(calls) + 19) // 20 if calls else 0
            answers = self.session.batch(self.mailbox, calls) if calls else {}
            for ident in ids:
                reply = answers[ident]
                if reply.status != 200 or reply.body.get("@odata.etag") != written[ident]:
                    return cursor
        except FeedbackAgendasError:
            return cursor
        return f"{CURSOR_VERSION}|{utc_text(low)}|{utc_text(high)}|{link}"

    def close(self) -> None:
        """Drop pooled connections when the session is this provider's alone."""
        if self._own_session:
            self.session.close()


def _visible(text: str) -> str:
    """A block's text as attendees read it: words only, whitespace collapsed."""
    return " ".join(text.split())
