"""Round trips through the sync engine against a real Radicale server.

Seeded with our own realistic week (a recurring 1:1 with a moved and a
cancelled instance, a stand-up, an outside guest, a Swedish team, a floating
1:1, an all-day event, someone else's meeting) and with every ``.ics`` file
shipped in icalendar's own tests. A second CalDAV client plays the user.
"""

from __future__ import annotations

import base64
import logging
import shutil
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import icalendar
import pytest
from caldav.davclient import DAVClient

from feedback_agendas.agendas.block import START_MARKER
from feedback_agendas.agendas.model import DescriptionWrite, WriteOutcome
from feedback_agendas.agendas.policy import Org, Rules, Team
from feedback_agendas.agendas.render import AgendaRenderer
from feedback_agendas.integrations.calendars.caldav import CaldavProvider
from feedback_agendas.integrations.calendars.ics import HASH_PROPERTY, parse_calendar
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.sync.cycle import run_cycle
from feedback_agendas.scheduler.sync.report import CycleReport
from tests.integration.radicale import RadicaleServer, radicale_server  # noqa: F401
from tests.support.rules import example_com_rules, platform_team

USER = "mona"
BASIC_AUTH = "Basic " + base64.b64encode(f"{USER}:pw".encode()).decode()

OWNER = "mona@example.com"
NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)

RULES = example_com_rules(
    platform_team(OWNER, "alice@example.com", "bob@example.com", timezone="Europe/Stockholm"),
    Team(
        name="plattform-sv",
        manager=OWNER,
        members=frozenset({"erik@example.com", "sara@example.com"}),
        locale="sv",
        timezone="Europe/Stockholm",
    ),
)

STOCKHOLM = """BEGIN:VTIMEZONE
TZID:Europe/Stockholm
X-LIC-LOCATION:Europe/Stockholm
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE"""


def _calendar(*components: str) -> bytes:
    body = "\n".join(
        ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Example Corp//Calendar 4.2//EN"]
        + [c.strip() for c in components]
        + ["END:VCALENDAR"]
    )
    return (body.replace("\n", "\r\n") + "\r\n").encode()


# A weekly 1:1 with Alice: the 8 Dec one moved to Wednesday, the 15 Dec one
# cancelled, the 22 Dec one removed by EXDATE. An alarm and Alice's PARTSTAT
# must survive our writes.
ONE_ON_ONE = _calendar(
    STOCKHOLM,
    """BEGIN:VEVENT
UID:alice-1on1@example.com
DTSTAMP:20261101T120000Z
SEQUENCE:3
DTSTART;TZID=Europe/Stockholm:20261201T100000
DTEND;TZID=Europe/Stockholm:20261201T103000
RRULE:FREQ=WEEKLY;BYDAY=TU
EXDATE;TZID=Europe/Stockholm:20261222T100000
SUMMARY:Mona / Alice 1:1
LOCATION:Room Aurora
DESCRIPTION:Dial-in: 555-0101
ORGANIZER;CN=Mona:mailto:mona@example.com
ATTENDEE;CN=Mona;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:mona@example.com
ATTENDEE;CN=Alice;PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT:mailto:alice@example.com
BEGIN:VALARM
ACTION:DISPLAY
DESCRIPTION:Reminder
TRIGGER:-PT10M
END:VALARM
END:VEVENT""",
    """BEGIN:VEVENT
UID:alice-1on1@example.com
DTSTAMP:20261101T120000Z
SEQUENCE:4
RECURRENCE-ID;TZID=Europe/Stockholm:20261208T100000
DTSTART;TZID=Europe/Stockholm:20261209T130000
DTEND;TZID=Europe/Stockholm:20261209T133000
SUMMARY:Mona / Alice 1:1 (moved)
DESCRIPTION:Moved: Alice travels on Tuesday
ORGANIZER;CN=Mona:mailto:mona@example.com
ATTENDEE;CN=Mona;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:mona@example.com
ATTENDEE;CN=Alice;PARTSTAT=TENTATIVE;ROLE=REQ-PARTICIPANT:mailto:alice@example.com
END:VEVENT""",
    """BEGIN:VEVENT
UID:alice-1on1@example.com
DTSTAMP:20261101T120000Z
SEQUENCE:4
RECURRENCE-ID;TZID=Europe/Stockholm:20261215T100000
DTSTART;TZID=Europe/Stockholm:20261215T100000
DTEND;TZID=Europe/Stockholm:20261215T103000
STATUS:CANCELLED
SUMMARY:Mona / Alice 1:1
ORGANIZER;CN=Mona:mailto:mona@example.com
ATTENDEE;CN=Mona;PARTSTAT=ACCEPTED:mailto:mona@example.com
ATTENDEE;CN=Alice;PARTSTAT=ACCEPTED:mailto:alice@example.com
END:VEVENT""",
)

STANDUP = _calendar(
    STOCKHOLM,
    """BEGIN:VEVENT
UID:platform-standup@example.com
DTSTAMP:20261101T120000Z
DTSTART;TZID=Europe/Stockholm:20261130T091500
DTEND;TZID=Europe/Stockholm:20261130T093000
RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR
SUMMARY:Platform stand-up
ORGANIZER:mailto:mona@example.com
ATTENDEE;PARTSTAT=ACCEPTED:mailto:mona@example.com
ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.com
ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com
ATTENDEE;CUTYPE=ROOM;PARTSTAT=ACCEPTED:mailto:room-aurora@resource.example.com
END:VEVENT""",
)

# Looks like a 1:1, but the other person is outside the company: no agenda.
OUTSIDE_GUEST = _calendar(
    """BEGIN:VEVENT
UID:customer-call@example.com
DTSTAMP:20261101T120000Z
DTSTART:20261202T130000Z
DTEND:20261202T140000Z
SUMMARY:Call with Acme
DESCRIPTION:Contract renewal
ORGANIZER:mailto:mona@example.com
ATTENDEE;PARTSTAT=ACCEPTED:mailto:mona@example.com
ATTENDEE;PARTSTAT=ACCEPTED:mailto:guest@acme.test
END:VEVENT""",
)

SWEDISH_TEAM = _calendar(
    STOCKHOLM,
    """BEGIN:VEVENT
UID:veckomote@example.com
DTSTAMP:20261101T120000Z
DTSTART;TZID=Europe/Stockholm:20261203T140000
DTEND;TZID=Europe/Stockholm:20261203T150000
SUMMARY:Veckomöte plattform
DESCRIPTION:Fika efteråt
ORGANIZER;CN=Mona:mailto:mona@example.com
ATTENDEE;PARTSTAT=ACCEPTED:mailto:mona@example.com
ATTENDEE;CN=Erik Ström;PARTSTAT=ACCEPTED:mailto:erik@example.com
ATTENDEE;CN=Sara Åberg;PARTSTAT=DECLINED:mailto:sara@example.com
END:VEVENT""",
)

# A floating-time 1:1 with Bob (no TZID): read in the calendar's default zone.
FLOATING_ONE_ON_ONE = _calendar(
    """BEGIN:VEVENT
UID:bob-1on1@example.com
DTSTAMP:20261101T120000Z
DTSTART:20261204T110000
DTEND:20261204T113000
SUMMARY:Bob / Mona
ORGANIZER:mailto:mona@example.com
ATTENDEE:mailto:mona@example.com
ATTENDEE:mailto:bob@example.com
END:VEVENT""",
)

ALL_DAY = _calendar(
    """BEGIN:VEVENT
UID:offsite@example.com
DTSTAMP:20261101T120000Z
DTSTART;VALUE=DATE:20261207
DTEND;VALUE=DATE:20261208
SUMMARY:Team offsite
ORGANIZER:mailto:mona@example.com
ATTENDEE:mailto:mona@example.com
ATTENDEE:mailto:alice@example.com
ATTENDEE:mailto:bob@example.com
END:VEVENT""",
)

# Alice's 1:1 with Mona, organised by Alice: Mona's copy is not ours to write.
NOT_OURS = _calendar(
    """BEGIN:VEVENT
UID:alice-asks@example.com
DTSTAMP:20261101T120000Z
DTSTART:20261203T080000Z
DTEND:20261203T083000Z
SUMMARY:Alice / Mona: career chat
ORGANIZER:mailto:alice@example.com
ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.com
ATTENDEE;PARTSTAT=ACCEPTED:mailto:mona@example.com
END:VEVENT""",
)

WEEK: dict[str, bytes] = {
    "alice-1on1.ics": ONE_ON_ONE,
    "standup.ics": STANDUP,
    "customer-call.ics": OUTSIDE_GUEST,
    "veckomote.ics": SWEDISH_TEAM,
    "bob-1on1.ics": FLOATING_ONE_ON_ONE,
    "offsite.ics": ALL_DAY,
    "alice-asks.ics": NOT_OURS,
}

# The resources the first cycle must change, and the ones it must leave alone.
EXPECT_WRITTEN = {"alice-1on1.ics", "standup.ics", "veckomote.ics", "bob-1on1.ics"}
EXPECT_UNTOUCHED = set(WEEK) - EXPECT_WRITTEN

CORPUS = Path(icalendar.__file__).parent / "tests"
IGNORED_IN_COMPARISON = {"DESCRIPTION", HASH_PROPERTY}


@dataclass
class Setup:
    server: RadicaleServer
    user: DAVClient
    calendar: Any  # caldav.Calendar (its stubs say "sync or async")
    provider: CaldavProvider
    store: Store
    renderer: AgendaRenderer

    def url(self, name: str) -> str:
        return str(self.calendar.url.join(name))

    def put(self, name: str, data: bytes) -> int:
        """Store ``data`` as the user's app would (no If-Match); return the HTTP status."""
        request = urllib.request.Request(
            self.url(name),
            data=data,
            method="PUT",
            headers={"Authorization": BASIC_AUTH, "Content-Type": "text/calendar"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status: int = response.status
                return status
        except urllib.error.HTTPError as exc:
            return exc.code

    def get(self, name: str) -> bytes:
        """The resource's bytes exactly as the server sends them (plain HTTP GET)."""
        request = urllib.request.Request(self.url(name), headers={"Authorization": BASIC_AUTH})
        with urllib.request.urlopen(request, timeout=10) as response:
            body: bytes = response.read()
            return body

    def snapshot(self) -> dict[str, bytes]:
        objects = self.calendar.get_objects_by_sync_token(None, disable_fallback=True)
        names = [str(o.url).rsplit("/", 1)[-1] for o in objects]
        return {name: self.get(name) for name in names}

    def cycle(self, rules: Rules = RULES, now: datetime = NOW) -> CycleReport:
        report = run_cycle(self.provider, self.store, rules, self.renderer, now)
        assert report.ok, report.error
        return report


def user_client(server: RadicaleServer) -> DAVClient:
    # Basic auth up front: Radicale delays its 401 on purpose (brute-force guard).
    return DAVClient(url=server.url + "/", username=USER, password="pw", auth_type="basic")


@pytest.fixture(scope="module")
def renderer() -> AgendaRenderer:
    return AgendaRenderer()


def make_setup(
    server: RadicaleServer, tmp_path: Path, renderer: AgendaRenderer, *, own_client: bool
) -> Setup:
    user = user_client(server)
    principal: Any = user.get_principal()
    cal_id = uuid.uuid4().hex
    calendar = principal.make_calendar(name=f"Work {cal_id[:6]}", cal_id=cal_id)
    provider = CaldavProvider(
        name="week",
        url=server.url + "/",
        username=USER,
        password="pw",
        calendar=f"Work {cal_id[:6]}",  # by display name, as an admin would write it
        owner=OWNER,
        default_timezone="Europe/Stockholm",
        # The provider's own session sends Basic auth up front to a loopback
        # server; most tests hand it a ready caldav client, as the bench does.
        client=None if own_client else user_client(server),
    )
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    return Setup(server, user, calendar, provider, store, renderer)


@pytest.fixture(params=[False], ids=["basic-auth-client"])
def setup(
    request: pytest.FixtureRequest,
    radicale_server: RadicaleServer,  # noqa: F811
    tmp_path: Path,
    renderer: AgendaRenderer,
) -> Iterator[Setup]:
    s = make_setup(radicale_server, tmp_path, renderer, own_client=request.param)
    yield s
    s.provider.close()
    s.store.close()
    s.user.close()


def components(data: bytes) -> list[tuple[str | None, list[str]]]:
    """Each component with its own properties as sorted content lines; ours left out."""
    found = []
    for component in parse_calendar(data).walk():
        ignored = IGNORED_IN_COMPARISON if component.name == "VEVENT" else set()
        lines = sorted(
            str(component.content_line(name, value))
            for name, value in component.property_items(recursive=False)
            if name not in ignored and name not in ("BEGIN", "END")
        )
        found.append((component.name, lines))
    return found


def descriptions(data: bytes) -> dict[str | None, str]:
    """RECURRENCE-ID (None for the master) -> DESCRIPTION of each VEVENT."""
    found = {}
    for event in parse_calendar(data).walk("VEVENT"):
        rid = event.get("RECURRENCE-ID")
        found[None if rid is None else rid.to_ical().decode()] = str(event.get("DESCRIPTION", ""))
    return found


# -- the week ------------------------------------------------------------------


@pytest.mark.parametrize("setup", [True], ids=["own-client"], indirect=True)
def test_first_cycle_writes_the_expected_blocks_and_the_second_writes_nothing(
    setup: Setup,
) -> None:
    for name, data in WEEK.items():
        assert setup.put(name, data) == 201
    before = setup.snapshot()

    first = setup.cycle()
    entries = {(e["event_id"], e["recurrence_id"]): e for e in first.event_entries()}
    expect = {
        ("alice-1on1@example.com", None): ("inserted", ["better"]),
        ("alice-1on1@example.com", "2026-12-08T09:00:00Z"): ("inserted", ["better"]),
        ("alice-1on1@example.com", "2026-12-15T09:00:00Z"): ("skipped", []),
        ("platform-standup@example.com", None): ("inserted", ["praise"]),
        ("veckomote@example.com", None): ("inserted", ["praise"]),
        ("bob-1on1@example.com", None): ("inserted", ["better"]),
        ("customer-call@example.com", None): ("skipped", []),
        ("offsite@example.com", None): ("skipped", []),
        ("alice-asks@example.com", None): ("skipped", []),
    }
    assert {k: (e["action"], e["slots"]) for k, e in entries.items()} == expect
    assert entries[("customer-call@example.com", None)]["reason"] == "external_guest"
    assert entries[("offsite@example.com", None)]["reason"] == "all_day"
    assert entries[("alice-asks@example.com", None)]["reason"] == "not_organizer"
    assert entries[("alice-1on1@example.com", "2026-12-15T09:00:00Z")]["reason"] == "cancelled"
    assert first.writes == 5
    # The series and its moved instance live in one resource: one PUT for both.
    assert first.requests["put"] == 4

    after = setup.snapshot()
    changed = {n for n in before if before[n] != after[n]}
    assert changed == EXPECT_WRITTEN
    for name in EXPECT_UNTOUCHED:
        assert after[name] == before[name], name  # byte for byte
    for name in changed:
        # Everything but our two properties parses identically: VTIMEZONE,
        # VALARM, PARTSTAT, SEQUENCE, EXDATE, the cancelled instance...
        assert components(after[name]) == components(before[name]), name
    alice = descriptions(after["alice-1on1.ics"])
    assert alice[None].startswith("Dial-in: 555-0101\n\n" + START_MARKER)
    assert alice["20261208T100000"].startswith("Moved: Alice travels on Tuesday\n\n")
    assert START_MARKER in alice["20261208T100000"]
    assert alice["20261215T100000"] == ""  # the cancelled instance is left alone
    swedish = descriptions(after["veckomote.ics"])[None]
    assert swedish.startswith("Fika efteråt\n\n" + START_MARKER)
    assert "Beröm" in swedish and "Så här jobbar vi" in swedish
    assert "This is how we work here" in descriptions(after["standup.ics"])[None]

    second = setup.cycle()
    assert second.writes == 0
    assert second.requests == {"report": 1}  # one sync-collection REPORT, nothing else
    assert setup.snapshot() == after


def test_an_expired_sync_token_resyncs_once_without_duplicate_blocks(setup: Setup) -> None:
    for name, data in WEEK.items():
        setup.put(name, data)
    setup.cycle()
    written = setup.snapshot()
    # Radicale forgets every token it handed out for this collection.
    token_cache = (
        setup.server.storage
        / "collection-root"
        / USER
        / setup.calendar.url.path.strip("/").split("/")[-1]
        / ".Radicale.cache"
        / "sync-token"
    )
    shutil.rmtree(token_cache)

    resync = setup.cycle()
    assert resync.full_resync
    assert resync.writes == 0
    assert setup.snapshot() == written
    for data in written.values():
        for text in descriptions(data).values():
            assert text.count(START_MARKER) <= 1
    assert setup.cycle().requests == {"report": 1}


def test_a_deleted_resource_and_a_removed_override_are_reported(setup: Setup) -> None:
    for name, data in WEEK.items():
        setup.put(name, data)
    first = setup.provider.read_changes(None)
    setup.user.delete(setup.url("bob-1on1.ics"))
    cal = parse_calendar(setup.get("alice-1on1.ics"))
    cal.subcomponents = [
        c
        for c in cal.subcomponents
        if not (
            c.name == "VEVENT"
            and "20261208"
            in str(c.get("RECURRENCE-ID", "").to_ical() if c.get("RECURRENCE-ID") else "")
        )
    ]
    assert setup.put("alice-1on1.ics", cal.to_ical()) in (201, 204)

    later = setup.provider.read_changes(first.cursor)
    deleted = {(r.event_id, r.recurrence_id) for r in later.deleted}
    assert deleted == {
        ("bob-1on1@example.com", None),
        ("alice-1on1@example.com", "2026-12-08T09:00:00Z"),
    }
    assert {(m.ref.event_id, m.ref.recurrence_id) for m in later.meetings} == {
        ("alice-1on1@example.com", None),
        ("alice-1on1@example.com", "2026-12-15T09:00:00Z"),
    }


# -- a user edits between our read and our write ---------------------------------


class EditsBeforeFirstWrite:
    """The provider, with a user saving the event just before our first write lands."""

    def __init__(self, inner: CaldavProvider, edit: Any) -> None:
        self._inner = inner
        self._edit = edit
        self.name = inner.name
        self.requests = inner.requests

    def read_changes(self, cursor: str | None) -> Any:
        return self._inner.read_changes(cursor)

    def get(self, ref: Any) -> Any:
        return self._inner.get(ref)

    def write(self, writes: Any) -> list[WriteOutcome]:
        if self._edit is not None:
            edit, self._edit = self._edit, None
            edit()
        outcomes: list[WriteOutcome] = self._inner.write(writes)
        return outcomes

    def close(self) -> None:
        self._inner.close()


def test_a_concurrent_edit_gives_412_and_the_users_edit_survives(setup: Setup) -> None:
    setup.put("alice-1on1.ics", WEEK["alice-1on1.ics"])

    def alice_edits() -> None:
        # A second CalDAV client (the user's app) saves with its own If-Match.
        resource: Any = setup.calendar.get_event_by_uid("alice-1on1@example.com")
        resource.load(only_if_unloaded=False)
        cal = parse_calendar(bytes(resource.raw_data))
        master = next(e for e in cal.walk("VEVENT") if "RECURRENCE-ID" not in e)
        master["DESCRIPTION"] = icalendar.vText("Dial-in: 555-0101\nBring the roadmap")
        master["LOCATION"] = icalendar.vText("Room Borealis")
        resource.save(raw_data=cal.to_ical(), increase_seqno=False, precondition="etag")

    provider: Any = EditsBeforeFirstWrite(setup.provider, alice_edits)
    report = run_cycle(provider, setup.store, RULES, setup.renderer, NOW)
    assert report.ok, report.error
    # The GET before our PUT saw the new etag: a conflict, as a 412 would be; the
    # engine read the event again and the one PUT merged into the user's edit.
    assert report.conflicts >= 1
    assert report.errors == {}
    assert report.requests["put"] == 1

    cal = parse_calendar(setup.get("alice-1on1.ics"))
    master = next(e for e in cal.walk("VEVENT") if "RECURRENCE-ID" not in e)
    text = str(master["DESCRIPTION"])
    assert text.startswith("Dial-in: 555-0101\nBring the roadmap\n\n" + START_MARKER)
    assert text.count(START_MARKER) == 1
    assert str(master["LOCATION"]) == "Room Borealis"
    assert setup.cycle().writes == 0


def test_a_stale_put_is_refused_by_the_server_not_only_by_our_cache(setup: Setup) -> None:
    setup.put("bob-1on1.ics", WEEK["bob-1on1.ics"])
    (meeting,) = setup.provider.read_changes(None).meetings
    # A GET leaves the exact stored bytes in memory: the write PUTs without reading again.
    assert setup.provider.get(meeting.ref) == meeting
    setup.put("bob-1on1.ics", WEEK["bob-1on1.ics"].replace(b"Bob / Mona", b"Bob / Mona (moved)"))
    before = dict(setup.provider.requests)
    (outcome,) = setup.provider.write([DescriptionWrite(meeting.ref, meeting.etag, "ours", "h")])
    assert type(outcome.error).__name__ == "PreconditionFailed"
    assert setup.provider.requests["put"] == before.get("put", 0) + 1  # the server said 412
    assert b"ours" not in setup.get("bob-1on1.ics")


def test_a_write_edits_the_stored_bytes_and_a_changed_etag_is_a_conflict(setup: Setup) -> None:
    setup.put("bob-1on1.ics", WEEK["bob-1on1.ics"])
    (meeting,) = setup.provider.read_changes(None).meetings  # a multiget's copy
    setup.put("bob-1on1.ics", WEEK["bob-1on1.ics"].replace(b"Bob / Mona", b"Bob / Mona (moved)"))
    before = dict(setup.provider.requests)
    (outcome,) = setup.provider.write([DescriptionWrite(meeting.ref, meeting.etag, "ours", "h")])
    assert type(outcome.error).__name__ == "PreconditionFailed"
    # The GET for the exact bytes saw another etag: no PUT of a stale decision.
    assert setup.provider.requests["get"] == before.get("get", 0) + 1
    assert setup.provider.requests["put"] == before.get("put", 0)
    assert b"ours" not in setup.get("bob-1on1.ics")


# -- icalendar's own test files --------------------------------------------------


def test_icalendar_corpus_round_trips(setup: Setup) -> None:
    stored = 0
    for source in sorted(CORPUS.rglob("*.ics")):
        data = source.read_bytes()
        if not data.lstrip(b"\xef\xbb\xbf \r\n").upper().startswith(b"BEGIN:VCALENDAR"):
            continue  # bare components are not calendar object resources
        name = "-".join(source.relative_to(CORPUS).parts)
        # Radicale refuses what it cannot parse and UIDs already taken: that is the server's call.
        if setup.put(name, data) in (200, 201, 204):
            stored += 1
    assert stored >= 20  # 24 with icalendar 7.3.0 and Radicale 3.9
    before = setup.snapshot()
    # A time when some corpus events are ahead, so that decisions are made on them.
    rules = Rules(org=Org(internal_domains=frozenset({"example.com", "example.org"})))
    first = setup.cycle(rules=rules, now=datetime(2005, 1, 1, tzinfo=UTC))
    second = setup.cycle(rules=rules, now=datetime(2005, 1, 1, tzinfo=UTC))
    assert second.writes == 0
    after = setup.snapshot()
    changed = {n for n in before if before[n] != after[n]}
    assert len(changed) <= first.requests["put"]
    for name in before:
        if name in changed:
            assert components(after[name]) == components(before[name]), name
        else:
            assert after[name] == before[name], name


def test_tls_off_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="feedback_agendas.integrations.calendars.caldav"):
        provider = CaldavProvider(
            name="w",
            url="https://127.0.0.1:1/",
            username="u",
            password="secret-pw",
            calendar="Work",
            owner=OWNER,
            verify_tls=False,
        )
    provider.close()
    assert "TLS" in caplog.text
    assert "secret-pw" not in caplog.text
