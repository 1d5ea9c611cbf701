"""CalDAV resources as a server names and serves them, against a real Radicale.

Names that need %-escapes, relative hrefs, resources the provider cannot use
(VTODO, VFREEBUSY, a 500 for one href) and a UID held by two resources. Each
test runs the sync engine over the provider and checks what users rely on:
the 1:1s still get their agendas, the others are skipped with a reason, and
nothing is reported deleted that is not.

What Radicale itself refuses (a PUT of ``a%3Fb.ics`` or ``a:b.ics``, any
VFREEBUSY) comes from the real HTTP proxy in :mod:`tests.integration.http_proxy`
in front of it, which stores such names under other names and can serve an
extra resource, relative hrefs or a 500.
"""

from __future__ import annotations

import logging
import re
import uuid
from urllib.parse import unquote

import pytest

from feedback_agendas.agendas.block import START_MARKER
from tests.integration.radicale import RadicaleServer, radicale_server  # noqa: F401
from tests.support.caldav_calendar import (  # noqa: F401
    NOW,
    OWNER,
    RENAMED,
    RULES,
    USER,
    Calendar,
    cal,
    entries,
    one_on_one,
)

# Resource names as they appear in a URL; Radicale stores the first five as they are.
STORED_AS_IS = ["with%20space.ics", "a%23b.ics", "a%25b.ics", "a%3Bb.ics", "%C3%A9t%C3%A9.ics"]
AWKWARD = STORED_AS_IS + list(RENAMED)


TODO = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTODO\r\n"
    b"UID:todo@example.com\r\nDTSTAMP:20261101T120000Z\r\nSUMMARY:Prepare\r\n"
    b"END:VTODO\r\nEND:VCALENDAR\r\n"
)
FREEBUSY = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VFREEBUSY\r\n"
    b"UID:busy@example.com\r\nDTSTAMP:20261101T120000Z\r\nDTSTART:20261201T080000Z\r\n"
    b"DTEND:20261201T170000Z\r\nFREEBUSY:20261201T090000Z/20261201T093000Z\r\n"
    b"END:VFREEBUSY\r\nEND:VCALENDAR\r\n"
)


def relative_hrefs(method: str, path: str, body: bytes) -> bytes:
    """Answer every href below the request's collection relative to it, as some servers do."""
    base = path.split("?")[0]
    if not base.endswith("/"):
        return body

    def shorten(match: re.Match[bytes]) -> bytes:
        href = match.group(2)
        if href.startswith(base.encode()) and href != base.encode():
            href = href[len(base) :]
        return match.group(1) + href + match.group(3)

    return re.sub(rb"(<href>)([^<]+)(</href>)", shorten, body)


def respelled_hrefs(method: str, path: str, body: bytes) -> bytes:
    """Spell the escapes of a multiget's hrefs in lower case (the sync listing keeps them)."""
    if b"<sync-token>" in body:
        return body

    def lower(match: re.Match[bytes]) -> bytes:
        return re.sub(rb"%[0-9A-F]{2}", lambda m: m.group(0).lower(), match.group(0))

    return re.sub(rb"<href>[^<]+</href>", lower, body)


SPELLINGS = {"absolute": None, "relative": relative_hrefs, "respelled": respelled_hrefs}


@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_every_awkward_resource_name_is_read_written_and_reported(
    cal: Calendar,  # noqa: F811
    spelling: str,
) -> None:
    changed_hrefs: list[str] = []
    rewrite = SPELLINGS[spelling]
    if rewrite is not None:

        def transform(method: str, path: str, body: bytes) -> bytes:
            answer = rewrite(method, path, body)
            if answer != body:
                changed_hrefs.append(path)
            return answer

        cal.proxy.transform = transform
    uids = {name: f"{i}-{uuid.uuid4().hex[:6]}@example.com" for i, name in enumerate(AWKWARD)}
    for name, uid in uids.items():
        cal.put(name, one_on_one(uid))

    first = cal.cycle()
    assert first.ok, first.error
    found = entries(first)
    for name, uid in uids.items():
        assert found[uid]["action"] == "inserted", name  # read and reported
    assert first.writes == len(AWKWARD)
    # One multiget read them all, however its answer spelled the hrefs (no GET to
    # read); each write GETs the exact stored bytes it edits (a multiget's copy has
    # its line ends normalised), at the same href.
    assert first.requests == {"report": 2, "get": len(AWKWARD), "put": len(AWKWARD)}
    for name in AWKWARD:
        data = cal.get(name)
        assert START_MARKER.encode() in data, name  # written to the resource it came from
        assert data.startswith(b"BEGIN:VCALENDAR")

    # Every later cycle, in a new process, is one REPORT and no write: the
    # echo of our own PUTs is not fetched back (their etags are in the cursor).
    cal.proxy.reset()
    echo = cal.cycle()
    assert echo.writes == 0 and echo.actions == {}
    assert cal.proxy.counts() == {"report": 1}
    cal.proxy.reset()
    quiet = cal.cycle()
    assert quiet.writes == 0 and quiet.actions == {}
    assert cal.proxy.counts() == {"report": 1}
    # Nothing else appeared upstream: each write went to the resource it read.
    stored = sorted(p.name for p in cal.folder.iterdir() if p.suffix == ".ics")
    assert set(stored) == {RENAMED.get(n, unquote(n)) for n in AWKWARD}
    # The server did answer with relative or respelled hrefs.
    assert bool(changed_hrefs) == (rewrite is not None)


def test_a_resource_the_server_cannot_serve_does_not_block_the_calendar(
    cal: Calendar,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    cal.put("alice.ics", one_on_one("alice@example.com"))
    cal.put("broken.ics", one_on_one("bob@example.com", "bob@example.com"))
    broken = True

    def fault(method: str, path: str, body: bytes) -> int | None:
        asks_broken = path.endswith("/broken.ics") or b"broken.ics" in body
        if broken and method in ("GET", "REPORT") and asks_broken and b"sync-coll" not in body:
            return 500
        return None

    cal.proxy.fault = fault
    with caplog.at_level(logging.WARNING):
        first = cal.cycle()
    assert first.ok, first.error
    # Logged once (by the engine), naming the resource.
    assert sum("broken.ics" in r.getMessage() for r in caplog.records) == 1
    assert entries(first)["alice@example.com"]["action"] == "inserted"
    skipped = entries(first)["broken.ics"]  # never read: named by its resource
    assert (skipped["action"], skipped["reason"]) == ("skipped", "malformed")
    assert "500" in skipped["detail"]
    assert first.skipped["malformed"] == 1  # skipped with a reason, and logged
    assert START_MARKER.encode() in cal.get("alice.ics")

    # Still broken: tried again, still skipped, nothing taken for deleted.
    again = cal.cycle()
    assert again.ok and again.skipped["malformed"] == 1

    broken = False
    healed = cal.cycle()
    assert healed.ok
    assert entries(healed)["bob@example.com"]["action"] == "inserted"
    assert START_MARKER.encode() in cal.get("broken.ics")
    cal.proxy.reset()
    assert cal.cycle().writes == 0
    assert cal.proxy.counts() == {"report": 1}


def test_tasks_and_free_busy_beside_a_one_on_one(cal: Calendar) -> None:  # noqa: F811
    cal.put("alice.ics", one_on_one("alice@example.com"))
    cal.put("todo.ics", TODO)
    # Radicale will not store a VFREEBUSY; the proxy adds one to the collection.
    busy_etag = '"busy-1"'
    served: list[bytes] = []

    def member(method: str, path: str, body: bytes) -> bytes:
        href = f"{cal.path}busy.ics".encode()
        propstat = (
            b"<propstat><prop><getetag>" + busy_etag.encode() + b"</getetag>%s</prop>"
            b"<status>HTTP/1.1 200 OK</status></propstat>"
        )
        if method == "REPORT" and b"<sync-token>" in body:  # a sync-collection answer
            extra = b"<response><href>" + href + b"</href>" + propstat % b"" + b"</response>"
            return body.replace(b"</multistatus>", extra + b"</multistatus>")
        if method == "REPORT" and href in body:
            data = b"<C:calendar-data>" + FREEBUSY.replace(b"\r\n", b"\n") + b"</C:calendar-data>"
            gone = re.escape(b"<response><href>" + href + b"</href>") + rb"<status>[^<]*</status>"
            found = b"<response><href>" + href + b"</href>" + propstat % data
            served.append(href)
            return re.sub(gone, found.replace(b"\\", b"\\\\"), body)
        return body

    cal.proxy.transform = member
    first = cal.cycle()
    assert first.ok, first.error
    assert entries(first)["alice@example.com"]["action"] == "inserted"
    assert set(entries(first)) == {"alice@example.com"}
    assert served  # the free/busy resource was read, and ignored
    assert first.skipped == {}  # a task or free/busy holds no meeting: nothing to skip
    assert START_MARKER.encode() in cal.get("alice.ics")
    assert b"feedback agenda" not in cal.get("todo.ics")  # never written


def test_a_uid_in_two_resources_is_a_clash_and_neither_is_written(cal: Calendar) -> None:  # noqa: F811
    cal.put("alice.ics", one_on_one("alice@example.com"))
    cal.put("bob.ics", one_on_one("bob@example.com", "bob@example.com"))
    first = cal.cycle()
    assert entries(first)["bob@example.com"]["action"] == "inserted"
    before = cal.get("bob.ics")

    # Another program stores a second resource with Bob's UID (Radicale refuses
    # that over HTTP, so it is written into its storage folder).
    copy = one_on_one("bob@example.com", "bob@example.com").replace(b"Notes", b"Copy")
    (cal.folder / "bob-copy.ics").write_bytes(copy)
    clash = cal.cycle()
    assert clash.ok, clash.error
    reported = entries(clash)["bob@example.com"]  # a clash, not "deleted"
    assert (reported["action"], reported["reason"]) == ("skipped", "malformed")
    assert "2 resources (bob-copy.ics, bob.ics)" in reported["detail"]
    assert clash.skipped["malformed"] == 1
    assert clash.writes == 0
    assert any(r.event_id == "bob@example.com" for r in cal.store.records("work"))

    # A new process sees the clash too, and still writes neither resource.
    later = cal.cycle()
    assert later.writes == 0 and later.skipped["malformed"] == 1
    assert cal.get("bob.ics") == before
    assert b"feedback agenda" not in cal.get("bob-copy.ics")

    # The copy goes: the original is read again and is Bob's 1:1 once more.
    (cal.folder / "bob-copy.ics").unlink()
    resolved = cal.cycle()
    assert resolved.ok
    assert entries(resolved)["bob@example.com"]["action"] == "unchanged"
    assert resolved.skipped == {}
