"""The web primitives: signed purpose-bound tokens, CSRF, cookies, headers, password hashes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from feedback_agendas.scheduler.service.http_server import Request
from feedback_agendas.scheduler.service.web.pages import WebPages, read_form, redirect
from feedback_agendas.scheduler.service.web.passwords import (
    LoginThrottle,
    check_hash_format,
    hash_password,
    verify_password,
)
from feedback_agendas.scheduler.service.web.security import (
    CSRF_COOKIE,
    BadToken,
    CsrfGuard,
    Signer,
    cookie_header,
    read_cookies,
    security_headers,
)

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
SECRET = "0123456789abcdef0123456789abcdef"


def test_a_token_verifies_for_its_purpose_until_it_expires() -> None:
    signer = Signer(SECRET)
    token = signer.sign("opt-out", "ann@example.com", now=NOW, ttl=timedelta(days=30))
    assert signer.verify(token, "opt-out", now=NOW + timedelta(days=29)) == "ann@example.com"
    with pytest.raises(BadToken, match="expired"):
        signer.verify(token, "opt-out", now=NOW + timedelta(days=30))


def test_a_token_for_another_purpose_or_secret_or_altered_is_refused() -> None:
    signer = Signer(SECRET)
    token = signer.sign("opt-out", "ann@example.com", now=NOW, ttl=timedelta(days=30))
    with pytest.raises(BadToken):
        signer.verify(token, "opt-in", now=NOW)
    with pytest.raises(BadToken):
        Signer("another secret of enough length").verify(token, "opt-out", now=NOW)
    body, _, mac = token.partition(".")
    forged = Signer(SECRET).sign("opt-out", "bob@example.com", now=NOW, ttl=timedelta(days=30))
    with pytest.raises(BadToken):  # bob's payload with ann's signature
        signer.verify(forged.partition(".")[0] + "." + mac, "opt-out", now=NOW)
    for broken in ("", ".", body, f"{body}.", f".{mac}", f"{body}.{mac}x", "a.b.c", "é.é"):
        with pytest.raises(BadToken):
            signer.verify(broken, "opt-out", now=NOW)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        Signer("short")


def test_csrf_token_matches_only_its_browser_and_purpose() -> None:
    guard = CsrfGuard(Signer(SECRET))
    value, set_cookie = guard.browser_value({})
    assert set_cookie and "HttpOnly" in set_cookie[0][1] and "SameSite=Strict" in set_cookie[0][1]
    headers = {"Cookie": f"{CSRF_COOKIE}={value}"}
    assert guard.browser_value(headers) == (value, ())
    token = guard.token(value, "sync")
    assert guard.check(headers, {"csrf": token}, "sync")
    assert not guard.check(headers, {"csrf": token}, "opt-out")
    assert not guard.check(headers, {}, "sync")
    assert not guard.check({}, {"csrf": token}, "sync")
    other, _ = guard.browser_value({})
    assert not guard.check({"Cookie": f"{CSRF_COOKIE}={other}"}, {"csrf": token}, "sync")


def test_cookies_carry_the_safe_flags_and_bad_ones_read_as_none() -> None:
    name, value = cookie_header("fa_session", "abc", max_age=60, secure=True)
    assert name == "Set-Cookie"
    for flag in ("HttpOnly", "SameSite=Strict", "Secure", "Max-Age=60", "Path=/"):
        assert flag in value
    assert read_cookies({"cookie": "a=1; b=2"}) == {"a": "1", "b": "2"}
    assert read_cookies({"Cookie": 'x="\\'}) == {}


def test_pages_send_the_security_headers_and_escape_what_they_show() -> None:
    pages = WebPages()
    response = pages.render("message.html.j2", {"heading": "<script>x</script>", "text": "t"})
    headers = dict(response.headers)
    assert headers == dict(security_headers())
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert b"<script>x" not in response.body and b"&lt;script&gt;x" in response.body
    assert b"/static/dashboard.css" in response.body


def test_static_files_are_served_by_plain_name_only() -> None:
    pages = WebPages()

    def get(path: str) -> int:
        return pages.static(Request("GET", path, "", {}, b"")).status

    assert get("/static/dashboard.css") == 200
    assert get("/static/../base.html.j2") == 404
    assert get("/static/.hidden") == 404
    assert get("/static/nothing.css") == 404


def test_forms_and_redirects() -> None:
    form = Request(
        "POST", "/x", "", {"content-type": "application/x-www-form-urlencoded"}, b"a=1&b=%C3%A9"
    )
    assert read_form(form) == {"a": "1", "b": "é"}
    assert read_form(Request("POST", "/x", "", {}, b"a=1")) == {}
    assert dict(redirect("/admin/").headers)["Location"] == "/admin/"
    with pytest.raises(ValueError):
        redirect("//evil.example/")


def test_password_hash_is_salted_slow_and_checked() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second  # salted
    check_hash_format(first)
    assert verify_password("correct horse", first)
    assert not verify_password("wrong horse", first)
    assert not verify_password("correct horse", "plain text")
    with pytest.raises(ValueError):
        check_hash_format("scrypt$1024$8$1$c2FsdHNhbHRzYWx0c2FsdA$" + "A" * 43)  # too cheap
    with pytest.raises(ValueError):
        check_hash_format("hunter2")


def test_failed_logins_are_slowed_per_address_and_in_all() -> None:
    clock = [0.0]
    throttle = LoginThrottle(free=3, base_seconds=2, global_free=5, clock=lambda: clock[0])
    for _ in range(2):
        throttle.failed("10.0.0.1")
    assert throttle.wait_seconds("10.0.0.1") == 0
    throttle.failed("10.0.0.1")
    assert throttle.wait_seconds("10.0.0.1") == 2
    assert throttle.wait_seconds("10.0.0.2") == 0
    clock[0] = 2.0
    throttle.failed("10.0.0.1")
    assert throttle.wait_seconds("10.0.0.1") == 4  # doubles
    throttle.failed("10.0.0.2")  # the fifth failure in all slows everyone
    assert throttle.wait_seconds("10.0.0.3") > 0
    throttle.succeeded("10.0.0.1")
    clock[0] = 100.0
    assert throttle.wait_seconds("10.0.0.1") == 0


def test_the_server_sends_a_routes_headers_and_drops_one_with_a_line_break() -> None:
    import urllib.request

    from feedback_agendas.scheduler.service.http_server import EndpointServer, Response

    server = EndpointServer(
        "127.0.0.1", 0, ready=lambda: (True, "{}"), metrics=lambda: (b"", "text/plain")
    )

    def page(request: Request) -> Response:
        assert request.client == "127.0.0.1"
        return Response(
            200, b"hi", headers=(("X-Frame-Options", "DENY"), ("X-Evil", "a\r\nSet-Cookie: x=1"))
        )

    server.route("GET", "/page", page)
    server.start()
    try:
        with urllib.request.urlopen(f"{server.url}/page", timeout=5) as reply:
            assert reply.headers["X-Frame-Options"] == "DENY"
            assert reply.headers["X-Evil"] is None and reply.headers["Set-Cookie"] is None
            assert reply.read() == b"hi"
    finally:
        server.stop()
