"""A CalDAV server that stores objects as uploaded, LF line ends included (SabreDAV, Nextcloud).

A calendar-multiget cannot tell: its XML parser turns every CR into LF. The
real HTTP proxy in front of Radicale plays such a server for one resource: it
serves that resource with LF-only lines, in GET and in multiget answers alike.
A write must send the stored bytes back with only DESCRIPTION and
``X-FEEDBACK-AGENDAS-HASH`` changed, LF line ends kept.
"""

from __future__ import annotations

from tests.integration.radicale import radicale_server  # noqa: F401
from tests.support.caldav_calendar import (  # noqa: F401
    Calendar,
    cal,
    entries,
    one_on_one,
)

OURS = (b"DESCRIPTION", b"X-FEEDBACK-AGENDAS-HASH")


def content_lines(data: bytes) -> list[bytes]:
    """The LF-separated content lines of ``data``, each with its folded continuations."""
    lines: list[bytes] = []
    for line in data.split(b"\n"):
        if line[:1] in (b" ", b"\t") and lines:
            lines[-1] += b"\n" + line
        else:
            lines.append(line)
    return lines


def outside_ours(data: bytes) -> list[bytes]:
    """Every content line byte for byte, DESCRIPTION as a placeholder, the hash left out."""
    return [
        b"<DESCRIPTION>" if line.upper().startswith(OURS[0]) else line
        for line in content_lines(data)
        if not line.upper().startswith(OURS[1])
    ]


def test_a_write_keeps_the_lf_line_ends_a_server_stored(cal: Calendar) -> None:  # noqa: F811
    name = "alice.ics"
    cal.put(name, one_on_one("alice@example.com"))
    href = (cal.path + name).encode()
    # What the server stores and serves: Radicale's bytes with LF-only lines.
    direct = cal.user.get(cal.server.url + cal.path + name)
    stored = bytes(direct.content).replace(b"\r\n", b"\n")
    assert b"\r" not in stored and stored.count(b"\n") > 10

    def lf_only(method: str, path: str, body: bytes) -> bytes:
        if (method == "GET" and path == href.decode()) or (method == "REPORT" and href in body):
            return body.replace(b"&#13;", b"").replace(b"\r\n", b"\n")
        return body

    cal.proxy.transform = lf_only
    cal.proxy.reset()
    first = cal.cycle()
    assert first.ok, first.error
    assert entries(first)["alice@example.com"]["action"] == "inserted"
    (put,) = [e for e in cal.proxy.exchanges if e.method == "PUT"]
    assert b"\r" not in put.body  # LF line ends kept
    assert outside_ours(put.body) == outside_ours(stored)  # every other byte as stored
    (written,) = [line for line in content_lines(put.body) if line.startswith(OURS[0])]
    assert written.startswith(b"DESCRIPTION:Notes\\n\\n") and written != b"DESCRIPTION:Notes"
    assert b"X-FEEDBACK-AGENDAS-HASH" in put.body
    # One GET fetched the exact bytes to edit; a quiet cycle afterwards needs none.
    assert first.requests["get"] == 1
    cal.proxy.reset()
    second = cal.cycle()
    assert second.ok and second.writes == 0
    assert cal.proxy.counts() == {"report": 1}
