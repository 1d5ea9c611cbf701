"""Hrefs as a CalDAV server sends them: resolved, never decoded and rebuilt."""

from __future__ import annotations

import pytest

from feedback_agendas.integrations.calendars.webdav import (
    DAV,
    is_loopback,
    parse_multistatus,
    resolve_href,
)

BASE = "https://dav.example.com/mona/work/"


@pytest.mark.parametrize(
    ("href", "url"),
    [
        ("/mona/work/with%20space.ics", BASE + "with%20space.ics"),
        ("with%20space.ics", BASE + "with%20space.ics"),  # relative
        ("a%3Fb.ics", BASE + "a%3Fb.ics"),  # an escaped "?" stays escaped
        ("a%23b.ics", BASE + "a%23b.ics"),
        ("a%25b.ics", BASE + "a%25b.ics"),
        ("a%3Bb.ics", BASE + "a%3Bb.ics"),
        ("a%3Ab.ics", BASE + "a%3Ab.ics"),
        ("a:b.ics", BASE + "a:b.ics"),  # a colon in a relative href is no scheme
        ("%C3%A9t%C3%A9.ics", BASE + "%C3%A9t%C3%A9.ics"),
        ("été.ics", BASE + "%C3%A9t%C3%A9.ics"),  # raw non-ASCII is encoded, nothing else
        ("with space.ics", BASE + "with%20space.ics"),
        ("%40home.ics", BASE + "%40home.ics"),
        ("https://other.example.com/x/y.ics", "https://other.example.com/x/y.ics"),
        ("  /mona/work/x.ics\n", BASE + "x.ics"),
    ],
)
def test_hrefs_resolve_without_decoding(href: str, url: str) -> None:
    assert resolve_href(BASE, href) == url


def test_a_multistatus_keeps_hrefs_statuses_and_ok_props() -> None:
    body = (
        b'<?xml version="1.0"?><multistatus xmlns="DAV:"><sync-token>t2</sync-token>'
        b'<response><href>a%3Fb.ics</href><propstat><prop><getetag>"e1"</getetag></prop>'
        b"<status>HTTP/1.1 200 OK</status></propstat><propstat><prop><displayname/></prop>"
        b"<status>HTTP/1.1 404 Not Found</status></propstat></response>"
        b"<response><href>/mona/work/gone.ics</href><status>HTTP/1.1 404 Not Found</status>"
        b"</response><response><href>http://[::1/broken</href></response></multistatus>"
    )
    result = parse_multistatus(body, BASE)
    assert result.sync_token == "t2"
    first, gone = result.responses  # the href that is not a URL is left out
    assert first.href == BASE + "a%3Fb.ics"
    assert first.text(DAV + "getetag") == '"e1"'
    assert DAV + "displayname" not in first.props
    assert (gone.href, gone.status) == (BASE + "gone.ics", 404)


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:5232/", True),
        ("http://[::1]:5232/", True),
        ("http://localhost/", True),
        ("http://dav.example.com/", False),
        ("http://10.0.0.1/", False),
    ],
)
def test_loopback_servers(url: str, loopback: bool) -> None:
    assert is_loopback(url) is loopback
