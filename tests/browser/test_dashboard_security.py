"""The dashboard's access rules and privacy, over real HTTP against the real daemon.

- no login on a non-loopback address: the daemon refuses to start;
- a POST without a valid CSRF token is refused and changes nothing;
- a wrong password is rate-limited, and so is the right one while it waits;
- every answer carries the security headers; the session cookie its flags;
- with no login on loopback, only this machine's names are let in (DNS rebinding);
- privacy canaries: description text, praise text and secrets appear in no
  page but the live preview, in no log line and in no database row.
"""

from __future__ import annotations

import http.cookiejar
import logging
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import icalendar
import pytest
from sqlalchemy import inspect, select, table, text

from feedback_agendas.scheduler.service.web.passwords import hash_password
from feedback_agendas.scheduler.service.web.security import Signer
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.storage.tables import run_log
from tests.fakes.google_api import FakeGoogleCalendarAPI
from tests.support.dashboard import (
    PASSWORD,
    SECRET,
    Client,
    LiveDaemon,
    RefusingTokenEndpoint,
    start_daemon,
    sync_once,
    wait_for,
    write_config,
)

PAGES = (
    "/admin/",
    "/admin/?state=failing&sort=name&q=a",
    "/admin/calendars/mona",
    "/admin/calendars/a-broken",
    "/admin/calendars/bob-google",
    "/admin/teams",
    "/admin/opt-outs",
    "/admin/preview",
)


def runs(live: LiveDaemon, calendar: str) -> int:
    with Store.open(live.cfg.storage.url) as store, store.engine.connect() as conn:
        return len(conn.execute(select(run_log.c.id).where(run_log.c.calendar == calendar)).all())


def test_without_a_login_on_a_non_loopback_address_the_daemon_refuses_to_start(
    tmp_path: Path, google_api: FakeGoogleCalendarAPI, token_endpoint: RefusingTokenEndpoint
) -> None:
    config = write_config(
        tmp_path, google_api.endpoint, token_endpoint.url, server={"host": "0.0.0.0", "port": 0}
    )
    done = subprocess.run(
        [sys.executable, "-m", "feedback_agendas", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "server.host: the dashboard on 0.0.0.0" in done.stderr
    assert "server.admin" in done.stderr and "Traceback" not in done.stderr
    assert "endpoints on" not in done.stdout  # it never listened


def test_a_post_without_the_csrf_token_is_refused(live: LiveDaemon) -> None:
    client = Client(live.url)
    assert client.log_in() == 303
    token = client.csrf("/admin/calendars/mona")
    other = Client(live.url)
    other.log_in()
    foreign = other.csrf("/admin/calendars/mona")  # valid, but for another browser
    before = runs(live, "mona")
    for form in ({}, {"csrf": ""}, {"csrf": token + "x"}, {"csrf": foreign}):
        status, _h, body = client.request("POST", "/admin/calendars/mona/sync", form)
        assert status == 403 and "Refused" in body
    # Not even a login form posts without its token.
    status, _h, _b = Client(live.url).request(
        "POST", "/admin/login", {"username": "admin", "password": PASSWORD}
    )
    assert status == 403
    assert runs(live, "mona") == before
    status, headers, _b = client.request("POST", "/admin/calendars/mona/sync", {"csrf": token})
    assert status == 303 and headers["Location"] == "/admin/calendars/mona?sync=asked"
    wait_for(lambda: runs(live, "mona") == before + 1, 30)


def test_a_wrong_password_is_rate_limited(
    live: LiveDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    client = Client(live.url)
    assert client.get("/admin/")[0] == 303  # to the login page
    statuses = [client.log_in("wrong password") for _ in range(3)]
    assert statuses == [401, 401, 429]
    status, headers, body = client.request(
        "POST",
        "/admin/login",
        {"csrf": client.csrf("/admin/login"), "username": "admin", "password": PASSWORD},
    )
    assert status == 429 and int(headers["Retry-After"]) >= 1 and "wait" in body
    assert client.get("/admin/")[0] == 303  # still not in
    assert "wrong password" not in caplog.text and PASSWORD not in caplog.text
    assert "failed login" in caplog.text


def test_every_answer_carries_the_security_headers(live: LiveDaemon) -> None:
    client = Client(live.url)
    answers = [client.get("/admin/login"), client.get("/admin/"), client.get("/static/x.css")]
    client.log_in()
    session = next(c for c in client.cookies if c.name == "fa_session")
    assert session.has_nonstandard_attr("HttpOnly") and session.path == "/admin/"
    answers += [client.get(path) for path in PAGES]
    answers += [client.get("/admin/nothing"), client.get("/static/dashboard.css")]
    for status, headers, _body in answers:
        assert status in (200, 303, 404)
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Content-Type-Options"] == "nosniff"
    _status, headers, _body = client.get("/admin/login")
    cookie = headers.get("Set-Cookie", "")
    assert cookie == "" or ("HttpOnly" in cookie and "SameSite=Strict" in cookie)


def test_a_forged_session_cookie_is_refused(live: LiveDaemon) -> None:
    client = Client(live.url)
    assert client.log_in() == 303
    assert client.get("/admin/")[0] == 200
    forged = Signer("another secret, not the daemon's").sign(
        "session", "admin", now=datetime.now(UTC), ttl=timedelta(hours=1)
    )
    stranger = Client(live.url)
    stranger.cookies.set_cookie(
        http.cookiejar.Cookie(
            0, "fa_session", forged, None, False, "127.0.0.1", False, False, "/admin/", True,
            False, None, False, None, None, {},
        )
    )  # fmt: skip
    assert stranger.get("/admin/")[0] == 303


def test_open_on_loopback_without_a_login_but_only_to_this_machines_names(
    tmp_path: Path, google_api: FakeGoogleCalendarAPI, token_endpoint: RefusingTokenEndpoint
) -> None:
    config = write_config(
        tmp_path,
        google_api.endpoint,
        token_endpoint.url,
        server={"host": "127.0.0.1", "port": 0, "secret": SECRET},
    )
    with start_daemon(config) as live:
        client = Client(live.url)
        status, _h, body = client.get("/admin/")
        assert status == 200 and "a-broken" in body
        assert client.get("/admin/", headers={"Host": "localhost:1"})[0] == 200
        # A page of another site whose name now resolves to 127.0.0.1 (DNS rebinding).
        status, _h, body = client.get("/admin/", headers={"Host": "evil.example"})
        assert status == 403 and "a-broken" not in body
        assert client.get("/admin/login")[0] == 303  # nothing to log in to


@pytest.mark.parametrize(
    ("trusted", "expected"), [(["127.0.0.1", "::1"], 200), (["10.9.9.9"], 403)]
)
def test_a_trusted_proxys_header_lets_its_user_in_only_from_its_address(
    tmp_path: Path,
    google_api: FakeGoogleCalendarAPI,
    token_endpoint: RefusingTokenEndpoint,
    trusted: list[str],
    expected: int,
) -> None:
    config = write_config(
        tmp_path,
        google_api.endpoint,
        token_endpoint.url,
        server={
            "host": "127.0.0.1",
            "port": 0,
            "secret": SECRET,
            "trusted_proxy_header": "X-Forwarded-User",
            "trusted_proxy_addresses": trusted,
        },
    )
    with start_daemon(config, first_sync=False) as live:
        client = Client(live.url)
        status, _h, body = client.get("/admin/")
        assert status == 403 and "sign-in proxy" in body  # no header, no entry
        status, _h, body = client.get("/admin/", headers={"X-Forwarded-User": "kim@example.com"})
        assert status == expected
        assert ("kim@example.com" in body) == (expected == 200)


# -- privacy canaries ------------------------------------------------------------------

OUTSIDE = "KANARIE-beskrivning-3c9d"
PRAISE = "KANARIE-berom-81aa"
NOTIFY_PASSWORD = "KANARIE-smtp-pw-5e6f"


def plant(folder: Path) -> None:
    """Description text outside the block and filled praise entries, as people would write."""
    for path in folder.glob("*.ics"):
        cal = icalendar.Calendar.from_ical(path.read_bytes())
        changed = False
        for event in cal.walk("VEVENT"):
            description = str(event.get("DESCRIPTION", ""))
            if "Praise: ___" in description:
                description = description.replace("Praise: ___", f"Praise: {PRAISE} shipped", 1)
            if description:
                event["DESCRIPTION"] = f"{OUTSIDE} agenda notes\n{description}"
                changed = True
        if changed:
            path.write_bytes(cal.to_ical())


def dump_database(url: str) -> str:
    with Store.open(url) as store, store.engine.connect() as conn:
        names = inspect(conn).get_table_names()
        return "\n".join(
            repr(row)
            for name in names
            for row in conn.execute(select(text("*")).select_from(table(name)))
        )


def test_no_description_praise_or_secret_leaves_the_live_preview(
    tmp_path: Path,
    google_api: FakeGoogleCalendarAPI,
    token_endpoint: RefusingTokenEndpoint,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    hashed = hash_password(PASSWORD)
    config = write_config(tmp_path, google_api.endpoint, token_endpoint.url)
    text_config = config.read_text()
    # A channel URL with a password in it: a secret of the config.
    text_config = text_config.replace(
        "notify: []", f"notify: ['mailtos://bot:{NOTIFY_PASSWORD}@127.0.0.1:9?to=x@example.com']", 1
    )
    text_config = re.sub(r"password_hash: .*", f"password_hash: '{hashed}'", text_config)
    config.write_text(text_config)
    sync_once(config)
    plant(tmp_path / "calendars" / "mona")
    secrets = (SECRET, PASSWORD, NOTIFY_PASSWORD, hashed.split("$")[-1])
    with start_daemon(config) as live:
        client = Client(live.url)
        client.log_in()
        token = client.csrf("/admin/calendars/mona")
        client.request("POST", "/admin/calendars/mona/sync", {"csrf": token})
        wait_for(lambda: client.get("/admin/calendars/mona")[2].count("run ok") >= 3, 30)
        pages = {path: client.get(path)[2] for path in PAGES}
        status, _h, preview = client.get("/admin/preview?user=mona%40example.com&days=14")
    assert status == 200
    # The live preview shows what is in the meetings (so the canaries were there to leak) ...
    assert PRAISE in preview and OUTSIDE not in preview  # only our block is shown
    # ... and nothing else does.
    for path, body in pages.items():
        for canary in (OUTSIDE, PRAISE, *secrets):
            assert canary not in body, (path, canary)
    logged = (
        caplog.text
        + "\n".join(str(r.args) + str(r.exc_info) for r in caplog.records)
        + "\n".join(live.printed)
    )
    database = dump_database(live.cfg.storage.url)
    for canary in (OUTSIDE, PRAISE, *secrets):
        assert canary not in logged, canary
        assert canary not in database, canary
