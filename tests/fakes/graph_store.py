"""The mailboxes behind the fake Graph API: events, occurrences, versions, meeting updates.

Events are kept in Graph's JSON shape with times in UTC. A series master
(``type: seriesMaster``) is expanded into occurrences on demand; an
exception is its own event (``type: exception``, ``seriesMasterId``,
``originalStart``). Occurrence ids are opaque to clients but decodable here.

Exchange behaviour modelled:

- every change gives a new ``@odata.etag``/``changeKey`` and a new version
  (what delta reports);
- an HTML body is stored as a whole document, and lines broken with ``<br>``
  come back as styled ``<div>`` lines (``rewrite_html``);
- a change to the organizer's copy of a meeting with attendees in its body,
  subject, start, end, location or attendees sends every attendee a meeting
  update (:attr:`FakeMailboxes.updates`) and updates their copies; a change
  to our extended property alone sends none.
"""

from __future__ import annotations

import base64
import copy
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

UPDATE_FIELDS = ("body", "subject", "start", "end", "location", "attendees")
_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
OUTLOOK_DIV = (
    '<div class="elementToProof" style="font-family: Aptos, sans-serif; font-size: 12pt;">'
)
DOCUMENT = (
    '<html><head>\r\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
    "\r\n</head>\r\n<body>\r\n{inner}\r\n</body>\r\n</html>\r\n"
)


def graph_time(moment: datetime) -> dict[str, str]:
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return {"dateTime": utc.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}


def parse_time(value: Any) -> datetime:
    text = value["dateTime"] if isinstance(value, dict) else str(value)
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        zone = value.get("timeZone", "UTC") if isinstance(value, dict) else "UTC"
        parsed = parsed.replace(tzinfo=ZoneInfo(zone or "UTC"))
    return parsed.astimezone(UTC)


def occurrence_id(master_id: str, original: datetime) -> str:
    raw = f"{master_id}|{original.astimezone(UTC):%Y%m%dT%H%M%SZ}".encode()
    return "AAMkOCC" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_occurrence(event_id: str) -> tuple[str, datetime] | None:
    if not event_id.startswith("AAMkOCC"):
        return None
    raw = event_id[len("AAMkOCC") :]
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        master, stamp = text.rsplit("|", 1)
        return master, datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except (ValueError, UnicodeDecodeError):
        return None


def rewrite_html(content: str) -> str:
    """What Exchange stores for an HTML body we send: a document, ``<br>`` lines as divs."""
    match = re.search(r"<body\b[^>]*>(.*)</body\s*>", content, re.IGNORECASE | re.DOTALL)
    if match:
        head, inner, tail = content[: match.start(1)], match.group(1), content[match.end(1) :]
    else:
        head, inner, tail = None, content, None
    empty_line = f"{OUTLOOK_DIV}<br></div>"
    if _BR.search(inner.replace(empty_line, "")):
        stripped = inner.strip("\r\n").replace(empty_line, "\x00")
        lines = _BR.split(stripped)
        inner = "".join(
            f"{OUTLOOK_DIV}{line or '<br>'}</div>" if "\x00" not in line else line for line in lines
        ).replace("\x00", empty_line)
        if head is not None:
            inner = f"\r\n{inner}\r\n"
    if head is None:
        return DOCUMENT.format(inner=inner)
    return f"{head}{inner}{tail}"


@dataclass
class Update:
    """One meeting update Outlook would send: to whom, for which event, caused by whom."""

    mailbox: str
    event_id: str
    attendee: str
    by: str  # "app" (a Graph request) or "user" (seeded edits)


@dataclass
class Mailbox:
    address: str
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    # version -> ids of skeletons removed at that version
    removed: list[tuple[int, list[str]]] = field(default_factory=list)


class FakeMailboxes:
    """Every mailbox's events, and the log of meeting updates."""

    def __init__(self) -> None:
        # More rewriting of HTML bodies (the inside of <body>), as some tenants' transport
        # rules or clients do; None: only what rewrite_html does.
        self.rewrite_extra: Callable[[str], str] | None = None
        self.mailboxes: dict[str, Mailbox] = {}
        self.updates: list[Update] = []
        self.attendee_copy_writes: list[tuple[str, str]] = []
        self.version = 0
        self._ids = itertools.count(1)
        # organizer (mailbox, id) -> attendee copies [(mailbox, id)]
        self.copies: dict[tuple[str, str], list[tuple[str, str]]] = {}

    # -- seeding (what users and Outlook do) ---------------------------------

    def mailbox(self, address: str) -> Mailbox:
        address = address.lower()
        if address not in self.mailboxes:
            self.mailboxes[address] = Mailbox(address)
        return self.mailboxes[address]

    def new_id(self) -> str:
        return f"AAMkEV{next(self._ids):06d}"

    def touch(self, box: Mailbox, event: dict[str, Any]) -> None:
        self.version += 1
        event["changeKey"] = f"CK{self.version:08d}"
        event["@odata.etag"] = f'W/"{event["changeKey"]}"'
        box.versions[event["id"]] = self.version

    def add_event(
        self,
        mailbox: str,
        *,
        subject: str,
        start: datetime,
        end: datetime,
        body: str = "",
        attendees: list[tuple[str, str]] = (),  # type: ignore[assignment]
        organizer: str | None = None,
        weekly: bool = False,
        timezone: str = "Europe/Stockholm",
        event_id: str | None = None,
        sensitivity: str = "normal",
        is_all_day: bool = False,
        show_as: str = "busy",
    ) -> str:
        box = self.mailbox(mailbox)
        organizer = (organizer or mailbox).lower()
        ident = event_id or self.new_id()
        event: dict[str, Any] = {
            "id": ident,
            "type": "seriesMaster" if weekly else "singleInstance",
            "subject": subject,
            "body": {"contentType": "html", "content": rewrite_html(body)},
            "start": graph_time(start),
            "end": graph_time(end),
            "originalStartTimeZone": timezone,
            "isAllDay": is_all_day,
            "isCancelled": False,
            "isOrganizer": organizer == box.address,
            "organizer": {"emailAddress": {"address": organizer, "name": organizer}},
            "attendees": [
                {
                    "type": kind,
                    "emailAddress": {"address": address, "name": address},
                    "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
                }
                for address, kind in attendees
            ],
            "sensitivity": sensitivity,
            "showAs": show_as,
            "location": {"displayName": ""},
            "singleValueExtendedProperties": [],
        }
        if weekly:
            local = start.astimezone(ZoneInfo(timezone))
            event["recurrence"] = {
                "pattern": {
                    "type": "weekly",
                    "interval": 1,
                    "daysOfWeek": [_DAYS[local.weekday()]],
                    "firstDayOfWeek": "sunday",
                },
                "range": {
                    "type": "noEnd",
                    "startDate": local.date().isoformat(),
                    "recurrenceTimeZone": timezone,
                },
            }
        box.events[ident] = event
        self.touch(box, event)
        return ident

    def add_exception(
        self,
        mailbox: str,
        master_id: str,
        original: datetime,
        start: datetime,
        end: datetime,
        body: str = "",
    ) -> str:
        box = self.mailbox(mailbox)
        master = box.events[master_id]
        ident = occurrence_id(master_id, original)
        event = copy.deepcopy(master)
        event.pop("recurrence", None)
        event.update(
            id=ident,
            type="exception",
            seriesMasterId=master_id,
            originalStart=original.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            start=graph_time(start),
            end=graph_time(end),
            body={"contentType": "html", "content": rewrite_html(body)},
            singleValueExtendedProperties=[],
        )
        box.events[ident] = event
        self.touch(box, event)
        return ident

    def add_attendee_copies(self, mailbox: str, event_id: str) -> list[tuple[str, str]]:
        """Each attendee's own copy (``isOrganizer`` false) in their mailbox."""
        box = self.mailbox(mailbox)
        original = box.events[event_id]
        made: list[tuple[str, str]] = []
        for attendee in original["attendees"]:
            address = attendee["emailAddress"]["address"].lower()
            if address == box.address or attendee["type"] == "resource":
                continue
            theirs = self.mailbox(address)
            event = copy.deepcopy(original)
            event["id"] = self.new_id()
            event["isOrganizer"] = False
            event["singleValueExtendedProperties"] = []
            theirs.events[event["id"]] = event
            self.touch(theirs, event)
            made.append((address, event["id"]))
        self.copies[(box.address, event_id)] = made
        return made

    def user_edit(self, mailbox: str, event_id: str, changes: dict[str, Any]) -> None:
        """An edit in Outlook (a body text as HTML is stored as Exchange stores it)."""
        self.apply(mailbox, event_id, changes, by="user")

    def delete(self, mailbox: str, event_id: str) -> None:
        box = self.mailbox(mailbox)
        ids = [event_id] + [i for i, e in box.events.items() if e.get("seriesMasterId") == event_id]
        gone = list(ids)
        master = box.events.get(event_id)
        if master and master["type"] == "seriesMaster":
            gone += [o["id"] for o in self.expand(box, master, None, None)]
        for ident in ids:
            box.events.pop(ident, None)
        self.version += 1
        box.removed.append((self.version, sorted(set(gone))))

    # -- reading ----------------------------------------------------------------

    def expand(
        self, box: Mailbox, master: dict[str, Any], low: datetime | None, high: datetime | None
    ) -> list[dict[str, Any]]:
        """Occurrences (not exceptions) of a weekly series overlapping [low, high)."""
        zone = ZoneInfo(master["recurrence"]["range"].get("recurrenceTimeZone") or "UTC")
        first = parse_time(master["start"]).astimezone(zone)
        length = parse_time(master["end"]) - parse_time(master["start"])
        replaced = {
            parse_time(e["originalStart"])
            for e in box.events.values()
            if e.get("seriesMasterId") == master["id"]
        }
        found: list[dict[str, Any]] = []
        limit = high or first + timedelta(days=400)
        for week in range(0, 2000):
            local = (first.replace(tzinfo=None) + timedelta(weeks=week)).replace(tzinfo=zone)
            begin = local.astimezone(UTC)
            if begin >= limit:
                break
            if (low is not None and begin + length <= low) or begin in replaced:
                continue
            found.append(self.occurrence(master, begin))
        return found

    def occurrence(self, master: dict[str, Any], original: datetime) -> dict[str, Any]:
        length = parse_time(master["end"]) - parse_time(master["start"])
        event = copy.deepcopy(master)
        event.pop("recurrence", None)
        event.update(
            id=occurrence_id(master["id"], original),
            type="occurrence",
            seriesMasterId=master["id"],
            originalStart=original.strftime("%Y-%m-%dT%H:%M:%SZ"),
            start=graph_time(original),
            end=graph_time(original + length),
            singleValueExtendedProperties=[],
        )
        return event

    def find(self, mailbox: str, event_id: str) -> dict[str, Any] | None:
        box = self.mailbox(mailbox)
        if event_id in box.events:
            return box.events[event_id]
        decoded = decode_occurrence(event_id)
        if decoded is None or decoded[0] not in box.events:
            return None
        master = box.events[decoded[0]]
        hits = [
            o
            for o in self.expand(box, master, decoded[1], decoded[1] + timedelta(seconds=1))
            if o["id"] == event_id
        ]
        return hits[0] if hits else None

    def in_window(self, box: Mailbox, low: datetime, high: datetime) -> list[dict[str, Any]]:
        """Everything calendarView shows in the window: singles, occurrences, exceptions."""
        shown: list[dict[str, Any]] = []
        for event in box.events.values():
            if event["type"] == "seriesMaster":
                shown += self.expand(box, event, low, high)
            elif parse_time(event["start"]) < high and parse_time(event["end"]) > low:
                shown.append(event)
        return shown

    def changed_since(
        self, box: Mailbox, version: int, low: datetime, high: datetime
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """(events shown in the window that changed after ``version``, removed ids)."""
        changed: list[dict[str, Any]] = []
        for ident, event in box.events.items():
            if box.versions.get(ident, 0) <= version:
                continue
            if event["type"] == "seriesMaster":
                changed += self.expand(box, event, low, high)
            elif parse_time(event["start"]) < high and parse_time(event["end"]) > low:
                changed.append(event)
        removed = [i for v, ids in box.removed if v > version for i in ids]
        return changed, removed

    # -- writing ---------------------------------------------------------------

    def apply(
        self, mailbox: str, event_id: str, changes: dict[str, Any], *, by: str
    ) -> dict[str, Any]:
        """Change an event as Exchange does; record the meeting updates it sends."""
        box = self.mailbox(mailbox)
        event = self.find(mailbox, event_id)
        if event is None:
            raise KeyError(event_id)
        if event["type"] == "occurrence":  # a changed occurrence becomes an exception
            event = copy.deepcopy(event)
            event["type"] = "exception"
            box.events[event["id"]] = event
        before = {k: copy.deepcopy(event.get(k)) for k in UPDATE_FIELDS}
        for key, value in changes.items():
            if key == "body":
                kind = str(value.get("contentType", "html")).lower()
                text = str(value.get("content", ""))
                stored = rewrite_html(text if kind == "html" else _text_to_html(text))
                if self.rewrite_extra is not None:
                    stored = self.rewrite_extra(stored)
                event["body"] = {"contentType": "html", "content": stored}
            elif key == "singleValueExtendedProperties":
                props = {p["id"].lower(): p for p in event.get(key) or []}
                for prop in value:
                    props[prop["id"].lower()] = {"id": prop["id"], "value": prop["value"]}
                event[key] = list(props.values())
            elif key in ("start", "end"):
                event[key] = graph_time(parse_time(value))
            else:
                event[key] = copy.deepcopy(value)
        self.touch(box, event)
        changed = [k for k in UPDATE_FIELDS if event.get(k) != before[k]]
        if not event.get("isOrganizer"):
            if by == "app":
                self.attendee_copy_writes.append((box.address, event["id"]))
            return event
        if changed and event.get("attendees"):
            self._send_update(box, event, by)
        return event

    def _send_update(self, box: Mailbox, event: dict[str, Any], by: str) -> None:
        for attendee in event["attendees"]:
            address = attendee["emailAddress"]["address"].lower()
            if address != box.address:
                self.updates.append(Update(box.address, event["id"], address, by))
        for their_box, their_id in self.copies.get((box.address, event["id"]), ()):
            theirs = self.mailboxes[their_box]
            copy_event = theirs.events.get(their_id)
            if copy_event is not None:
                for key in UPDATE_FIELDS:
                    copy_event[key] = copy.deepcopy(event.get(key))
                self.touch(theirs, copy_event)


def _text_to_html(text: str) -> str:
    import html

    return "<br>".join(html.escape(line) for line in text.split("\n"))
