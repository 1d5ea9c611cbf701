"""Byte-exact writes on calendars that other programs wrote: the same checks on vdir and Radicale.

Each case is an object with a construct that a re-serialising library would
rewrite (see issue 9). We write a description and our hash to one VEVENT and
check that the stored object differs from the original only in that VEVENT's
DESCRIPTION and ``X-FEEDBACK-AGENDAS-HASH`` lines, byte for byte (checked by
:mod:`tests.fidelity`, not by the code under test).

On vdir the original is the file. Radicale re-serialises what it is sent, so
there the original is what a GET returns; we check the body of our PUT against
it, and also what Radicale serves afterwards.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pytest
from caldav.davclient import DAVClient

from feedback_agendas.agendas.model import DescriptionWrite, EventRef, Meeting
from feedback_agendas.agendas.render import AgendaRenderer
from feedback_agendas.integrations.calendars.caldav import CaldavProvider
from feedback_agendas.integrations.calendars.ics import UnsafeToWrite
from feedback_agendas.integrations.calendars.vdir import VdirProvider
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.sync.cycle import run_cycle
from tests.fidelity import calendar, logical_lines, only_written_lines_differ
from tests.integration.radicale import RadicaleServer, radicale_server  # noqa: F401
from tests.support.rules import example_com_rules, platform_team

OWNER = "mona@example.com"
USER = "mona"
BASIC_AUTH = "Basic " + base64.b64encode(f"{USER}:pw".encode()).decode()
NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
RULES = example_com_rules(platform_team(OWNER, "alice@example.com", timezone="Europe/Berlin"))
NEW_TEXT = (
    "Dial-in: 555-0101\n\n-- agenda --\nÅsa: this you do well; name the behaviour, "
    "its impact, and what to keep doing (a long line, folded at 75 octets: ÅÄÖ åäö €)"
)

BERLIN = (
    "BEGIN:VTIMEZONE",
    "TZID:Europe/Berlin",
    "BEGIN:STANDARD",
    "DTSTART:19701025T030000",
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
    "TZOFFSETFROM:+0200",
    "TZOFFSETTO:+0100",
    "END:STANDARD",
    "END:VTIMEZONE",
)


def one_on_one(*lines: str | bytes, ending: bytes = b"\r\n", before: tuple[str, ...] = ()) -> bytes:
    """A 1:1 of Mona and Alice, with ``lines`` added to its VEVENT."""
    return calendar(
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Other Program//Other Program 1.0//EN",
        *before,
        "BEGIN:VEVENT",
        "UID:case@example.com",
        "DTSTAMP:20261101T120000Z",
        *lines,
        "ORGANIZER;CN=Mona:mailto:mona@example.com",
        "ATTENDEE;CN=Mona;PARTSTAT=ACCEPTED:mailto:mona@example.com",
        "ATTENDEE;CN=Alice;PARTSTAT=ACCEPTED:mailto:alice@example.com",
        "END:VEVENT",
        "END:VCALENDAR",
        ending=ending,
    )


TIMED = (
    "DTSTART;TZID=Europe/Berlin:20261202T100000",
    "DTEND;TZID=Europe/Berlin:20261202T103000",
)

# id -> the object; each must be written with only the two lines changed.
WRITABLE_CASES: dict[str, bytes] = {
    "tzid-with-z": one_on_one(
        "DTSTART;TZID=America/New_York:20261222T170000Z",
        "DTEND;TZID=America/New_York:20261222T173000Z",
        "SUMMARY:Mona / Alice",
        "DESCRIPTION:Dial-in: 555-0101",
    ),
    "escaped-quote-in-summary": one_on_one(
        *TIMED, 'SUMMARY:He said \\"hi\\" to Alice', "DESCRIPTION:x", before=BERLIN
    ),
    "resources-comma-list": one_on_one(
        *TIMED, "RESOURCES:EASEL,PROJECTOR,VCR", "DESCRIPTION:x", before=BERLIN
    ),
    "request-status": one_on_one(
        *TIMED, "REQUEST-STATUS:2.0;Success", "DESCRIPTION:x", before=BERLIN
    ),
    "tzid-param-with-trailing-space": one_on_one(
        "DTSTART;TZID=Europe/Berlin :20261202T100000",
        "DTEND;TZID=Europe/Berlin :20261202T103000",
        "DESCRIPTION:x",
        before=tuple(line.replace("TZID:Europe/Berlin", "TZID:Europe/Berlin ") for line in BERLIN),
    ),
    "rrule-part-order": one_on_one(
        *TIMED, "RRULE:BYDAY=WE;INTERVAL=2;FREQ=WEEKLY;WKST=MO", "DESCRIPTION:x", before=BERLIN
    ),
    "tzoffsetto-with-seconds": one_on_one(
        *TIMED,
        "DESCRIPTION:x",
        before=tuple(line.replace("+0100", "+010000") for line in BERLIN),
    ),
    "trigger-in-weeks": one_on_one(
        *TIMED,
        "DESCRIPTION:x",
        "BEGIN:VALARM",
        "TRIGGER:-P1W",
        "ACTION:DISPLAY",
        "DESCRIPTION:Reminder, a week ahead",
        "END:VALARM",
        before=BERLIN,
    ),
    "parameter-quoting": one_on_one(
        *TIMED,
        'X-OTHER;X-Q="a:b;c,d";X-P=plain:v',
        'LOCATION;ALTREP="http://example.com/room?a=1":Room "A"',
        'CONTACT;CN="Doe, Jane":Jane',
        "DESCRIPTION;LANGUAGE=en:x",
        before=BERLIN,
    ),
    "geo-signs": one_on_one(*TIMED, "GEO:+37.386013;-122.082932", "DESCRIPTION:x", before=BERLIN),
    "lf-line-endings": one_on_one(
        *TIMED, "SUMMARY:LF only", "DESCRIPTION:x", before=BERLIN, ending=b"\n"
    ),
    "odd-folds": one_on_one(
        *TIMED,
        "SUMMARY:Mo\r\n na / Al\r\n\tice",
        "DESCRIPTION:Dial\r\n -in: 5\r\n 55",
        "X-LONG:" + "y" * 90,
        before=BERLIN,
    ),
    "no-description-before-an-alarm": one_on_one(
        *TIMED,
        "SUMMARY:no text yet",
        "BEGIN:VALARM",
        "TRIGGER:-PT10M",
        "ACTION:DISPLAY",
        "DESCRIPTION:Reminder",
        "END:VALARM",
        before=BERLIN,
    ),
    "lower-case-names-and-old-hash": one_on_one(
        *TIMED, "description:x", "x-feedback-agendas-hash:old", "summary:s", before=BERLIN
    ),
}

ALL_DAY_CASES: dict[str, bytes] = {
    "date-with-tzid": one_on_one(
        "DTSTART;TZID=Europe/Berlin:20261202", "DTEND;TZID=Europe/Berlin:20261203", before=BERLIN
    ),
    "date-with-tzid-and-value-date": one_on_one(
        "DTSTART;TZID=Europe/Berlin;VALUE=DATE:20261202",
        "DTEND;VALUE=DATE;TZID=Europe/Berlin:20261203",
        before=BERLIN,
    ),
    "date-without-value-date": one_on_one("DTSTART:20261202", "DTEND:20261203"),
}

LATIN1 = one_on_one(
    *TIMED,
    "SUMMARY:Caf\xe9 1:1".encode("latin-1"),
    "LOCATION:R\xe4ksm\xf6rg\xe5s".encode("latin-1"),
    "DESCRIPTION:Kl\xe4der".encode("latin-1"),
    before=BERLIN,
)


class Backend(Protocol):
    """Where a case is stored: a vdir folder or a Radicale calendar."""

    provider: Any

    def store(self, data: bytes) -> bytes | None:
        """Store ``data``; return what the backend then holds (None: it refused it)."""

    def fetch(self) -> bytes:
        """What the backend holds now."""

    def written(self) -> list[bytes]:
        """Bodies we sent (vdir: the file after each write)."""


class VdirBackend:
    def __init__(self, folder: Path) -> None:
        self.path = folder / "case.ics"
        self.provider = VdirProvider("cases", folder, OWNER, default_timezone="Europe/Berlin")

    def store(self, data: bytes) -> bytes | None:
        self.path.write_bytes(data)
        return data

    def fetch(self) -> bytes:
        return self.path.read_bytes()

    def written(self) -> list[bytes]:
        return []


@dataclass
class RadicaleBackend:
    server: RadicaleServer
    provider: Any = None
    bodies: list[bytes] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        client = DAVClient(
            url=self.server.url + "/", username=USER, password="pw", auth_type="basic"
        )
        principal: Any = client.get_principal()
        cal_id = uuid.uuid4().hex
        calendar_obj = principal.make_calendar(name=f"Cases {cal_id[:6]}", cal_id=cal_id)
        self.url = str(calendar_obj.url.join("case.ics"))

        def capture(response: Any, *args: Any, **kwargs: Any) -> Any:
            if response.request.method == "PUT":
                self.bodies.append(bytes(response.request.body))
            return response

        client.session.hooks.setdefault("response", []).append(capture)
        self.provider = CaldavProvider(
            name="cases",
            url=self.server.url + "/",
            username=USER,
            password="pw",
            calendar=str(calendar_obj.url),
            owner=OWNER,
            default_timezone="Europe/Berlin",
            client=client,
        )

    def store(self, data: bytes) -> bytes | None:
        request = urllib.request.Request(
            self.url,
            data=data,
            method="PUT",
            headers={"Authorization": BASIC_AUTH, "Content-Type": "text/calendar"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10):
                pass
        except urllib.error.HTTPError:
            return None
        return self.fetch()

    def fetch(self) -> bytes:
        request = urllib.request.Request(self.url, headers={"Authorization": BASIC_AUTH})
        with urllib.request.urlopen(request, timeout=10) as response:
            body: bytes = response.read()
            return body

    def written(self) -> list[bytes]:
        return self.bodies


@pytest.fixture(params=["vdir", "radicale"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "vdir":
        yield VdirBackend(tmp_path)
        return
    server: RadicaleServer = request.getfixturevalue("radicale_server")
    radicale = RadicaleBackend(server)
    yield radicale
    radicale.provider.close()


def read_one(backend: Backend) -> Meeting:
    changes = backend.provider.read_changes(None)
    assert not changes.unreadable, changes.unreadable
    (meeting,) = changes.meetings
    return meeting


@pytest.mark.parametrize("case", sorted(WRITABLE_CASES))
def test_a_write_changes_only_the_description_and_hash_lines(backend: Backend, case: str) -> None:
    original = backend.store(WRITABLE_CASES[case])
    assert original is not None
    meeting = read_one(backend)
    assert meeting.editable and not meeting.all_day
    (outcome,) = backend.provider.write(
        [DescriptionWrite(meeting.ref, meeting.etag, NEW_TEXT, "hash-1")]
    )
    assert outcome.ok, outcome.error
    after = backend.fetch()
    assert after != original
    for body in [*backend.written(), after]:
        assert only_written_lines_differ(original, body), body.decode()
    fresh = backend.provider.get(meeting.ref)
    assert fresh is not None
    assert (fresh.description, fresh.stored_hash) == (NEW_TEXT, "hash-1")
    assert fresh.start == meeting.start and fresh.title == meeting.title
    for body in [*backend.written(), after]:
        assert (b"\r\n" in body) == (b"\r\n" in original)
        new_lines = set(logical_lines(body)) - set(logical_lines(original))
        assert len(new_lines) == 2  # DESCRIPTION and the hash
        for line in new_lines:  # folded at 75 octets, never inside a UTF-8 sequence
            parts = line.replace(b"\r\n", b"\n").rstrip(b"\n").split(b"\n ")
            assert all(len(part) <= 75 for part in parts)
            assert all(part.decode("utf-8") for part in parts)


def test_a_date_time_with_tzid_and_z_is_utc(backend: Backend) -> None:
    backend.store(WRITABLE_CASES["tzid-with-z"])
    meeting = read_one(backend)
    assert meeting.start == datetime(2026, 12, 22, 17, 0, tzinfo=UTC)
    assert meeting.timezone == "UTC"


@pytest.mark.parametrize("case", sorted(ALL_DAY_CASES))
def test_a_date_is_all_day_with_or_without_tzid_and_never_written(
    backend: Backend, case: str, tmp_path: Path
) -> None:
    original = backend.store(ALL_DAY_CASES[case])
    meeting = read_one(backend)
    assert meeting.all_day
    assert meeting.start.date().isoformat() == "2026-12-02"
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        report = run_cycle(backend.provider, store, RULES, AgendaRenderer(), NOW)
    finally:
        store.close()
    assert report.ok and report.writes == 0
    assert report.skipped == {"all_day": 1}
    assert backend.fetch() == original


def test_a_one_on_one_with_odd_syntax_gets_its_agenda_and_nothing_else_changes(
    backend: Backend, tmp_path: Path
) -> None:
    odd = one_on_one(
        *TIMED,
        "SUMMARY:Mona / Alice \\, weekly",
        "RRULE:BYDAY=WE;FREQ=WEEKLY",
        "RESOURCES:EASEL,PROJECTOR",
        "GEO:+37.386013;-122.082932",
        "DESCRIPTION:Dial-in: 555-0101",
        "BEGIN:VALARM",
        "TRIGGER:-P1W",
        "ACTION:DISPLAY",
        "DESCRIPTION:x",
        "END:VALARM",
        before=tuple(line.replace("+0100", "+010000") for line in BERLIN),
        ending=b"\n",
    )
    original = backend.store(odd)
    assert original is not None
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        first = run_cycle(backend.provider, store, RULES, AgendaRenderer(), NOW)
        second = run_cycle(backend.provider, store, RULES, AgendaRenderer(), NOW)
    finally:
        store.close()
    assert first.writes == 1 and second.writes == 0, (first.actions, first.errors)
    after = backend.fetch()
    assert b"X-FEEDBACK-AGENDAS-HASH:" in after
    assert only_written_lines_differ(original, after)


def test_latin1_bytes_are_skipped_and_stay_byte_identical(backend: Backend, tmp_path: Path) -> None:
    original = backend.store(LATIN1)
    assert original is not None
    if isinstance(backend, RadicaleBackend):
        # Radicale transcodes a PUT to UTF-8: what a client then reads is UTF-8,
        # with the letters intact, and is written like any other object.
        assert "Räksmörgås" in original.decode("utf-8")
        meeting = read_one(backend)
        assert meeting.editable
        (outcome,) = backend.provider.write([DescriptionWrite(meeting.ref, meeting.etag, "x", "h")])
        assert outcome.ok, outcome.error
        assert only_written_lines_differ(original, backend.fetch())
        return
    meeting = read_one(backend)
    assert not meeting.editable
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        report = run_cycle(backend.provider, store, RULES, AgendaRenderer(), NOW)
    finally:
        store.close()
    assert report.writes == 0 and report.skipped == {"not_editable": 1}
    (outcome,) = backend.provider.write([DescriptionWrite(meeting.ref, meeting.etag, "x", "h")])
    assert isinstance(outcome.error, UnsafeToWrite) and outcome.error.reason == "not_utf8"
    assert backend.fetch() == LATIN1


def test_only_the_targeted_override_changes(backend: Backend) -> None:
    series = calendar(
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Other//EN",
        *BERLIN,
        "BEGIN:VEVENT",
        "UID:series@example.com",
        "DTSTAMP:20261101T120000Z",
        "DTSTART;TZID=Europe/Berlin:20261201T100000",
        "DTEND;TZID=Europe/Berlin:20261201T103000",
        "RRULE:FREQ=WEEKLY",
        "DESCRIPTION:series text",
        "END:VEVENT",
        "BEGIN:VEVENT",
        "UID:series@example.com",
        "DTSTAMP:20261101T120000Z",
        "RECURRENCE-ID;TZID=Europe/Berlin:20261208T100000",
        "DTSTART;TZID=Europe/Berlin:20261209T100000",
        "DTEND;TZID=Europe/Berlin:20261209T103000",
        "DESCRIPTION:moved",
        "END:VEVENT",
        "END:VCALENDAR",
    )
    original = backend.store(series)
    assert original is not None
    changes = backend.provider.read_changes(None)
    moved = next(m for m in changes.meetings if m.ref.recurrence_id)
    assert moved.ref == EventRef("cases", "series@example.com", "2026-12-08T09:00:00Z")
    (outcome,) = backend.provider.write([DescriptionWrite(moved.ref, moved.etag, NEW_TEXT, "h")])
    assert outcome.ok, outcome.error
    for body in [*backend.written(), backend.fetch()]:
        assert only_written_lines_differ(original, body, event_index=1)
        assert b"DESCRIPTION:series text" in body
