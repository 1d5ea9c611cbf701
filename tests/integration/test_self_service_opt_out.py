"""A person opts out of agendas through the link in their own reminder, and back in.

Real parts: the daemon (``run_forever``) with its HTTP endpoints on loopback and
real HTTP requests, a vdir calendar (real .ics files), SQLite, and apprise
delivering the 1:1 reminder by email to an aiosmtpd server. The link is taken
from the delivered mail.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pytest
import yaml

from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.loop import run_forever
from feedback_agendas.scheduler.service.web.security import Signer
from feedback_agendas.scheduler.service.web.self_service import LINK_TTL, PURPOSE
from feedback_agendas.scheduler.storage.opt_outs import list_opt_outs
from feedback_agendas.scheduler.storage.store import Store
from tests.support.receivers import SmtpReceiver, free_port

MONA, ALICE = "mona@example.com", "alice@example.com"
SECRET = "s3cret-for-the-opt-out-test-0123456789"
BLOCK = "feedback agenda"


def one_on_one(start: datetime) -> bytes:
    def stamp(moment: datetime) -> str:
        return moment.strftime("%Y%m%dT%H%M%SZ")

    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//test//EN",
        "BEGIN:VEVENT",
        "UID:mona-alice",
        "DTSTAMP:20261101T000000Z",
        f"DTSTART:{stamp(start)}",
        f"DTEND:{stamp(start + timedelta(minutes=30))}",
        "SUMMARY:Mona / Alice 1:1",
        "DESCRIPTION:Notes: https://docs.example.com/1on1/alice",
        f"ORGANIZER:mailto:{MONA}",
        f"ATTENDEE:mailto:{MONA}",
        f"ATTENDEE:mailto:{ALICE}",
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
    return "\r\n".join(lines).encode()


def unfolded(path: Path) -> str:
    return path.read_bytes().decode().replace("\r\n ", "")


def wait_for(what: str, check: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)  # polling a running daemon's files and mailbox


class Answer:
    def __init__(self, status: int, headers: Any, body: str) -> None:
        self.status, self.headers, self.body = status, headers, body

    def field(self, name: str) -> str:
        found = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', self.body)
        assert found, f"no field {name} in the page"
        return unescape(found.group(1))

    @property
    def cookie(self) -> str:
        raw = self.headers.get("Set-Cookie") or ""
        return raw.split(";", 1)[0]


def request(url: str, form: dict[str, str] | None = None, cookie: str = "") -> Answer:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    headers = {"Cookie": cookie} if cookie else {}
    if data is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return Answer(response.status, response.headers, response.read().decode())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.headers, exc.read().decode())


@pytest.fixture
def service(tmp_path: Path) -> Iterator[dict[str, Any]]:
    port = free_port()
    calendar = tmp_path / "cal"
    calendar.mkdir()
    # Starts in 30 minutes: its reminder (60 minutes ahead) is due at once.
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=30)
    (calendar / "alice.ics").write_bytes(one_on_one(start))
    with SmtpReceiver() as smtp:
        data = {
            "storage": {"url": f"sqlite:///{tmp_path / 'fa.db'}"},
            "calendars": [
                {"name": "mona", "provider": "vdir", "path": str(calendar), "owner": MONA}
            ],
            "org": {
                "internal_domains": ["example.com"],
                "teams": [{"name": "platform", "manager": MONA, "members": [ALICE]}],
            },
            "people": [{"email": MONA, "notify": [smtp.url(MONA)]}],
            "server": {
                "host": "127.0.0.1",
                "port": port,
                "public_url": f"http://127.0.0.1:{port}",
                "secret": SECRET,
            },
            "sync": {"interval_seconds": 1, "jitter": 0},
            "reminders": {"weekly_digest": None},
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        stop = threading.Event()
        runner = threading.Thread(
            target=run_forever,
            args=(load_config(path),),
            kwargs={"echo": lambda _s: None, "stop": stop},
        )
        runner.start()
        try:
            yield {"smtp": smtp, "ics": calendar / "alice.ics", "db": data["storage"]["url"]}
        finally:
            stop.set()
            runner.join(20)
        assert not runner.is_alive()


def opt_outs(url: str) -> list[tuple[str, str]]:
    with Store.open(url) as store:
        return [(e.address, e.via) for e in list_opt_outs(store.engine)]


@pytest.mark.slow  # `make test-fast` leaves it out: the daemon, its sender and SMTP
def test_the_link_in_a_reminder_opts_its_person_out_and_back_in(service: dict[str, Any]) -> None:
    smtp, ics, db = service["smtp"], service["ics"], service["db"]
    wait_for("the agenda", lambda: BLOCK in unfolded(ics))
    wait_for("the 1:1 reminder by email", lambda: bool(smtp.mails))
    mail = smtp.mails[0]
    assert mail.recipients == (MONA,)
    found = re.search(r"(http://127\.0\.0\.1:\d+/opt-out\?t=[A-Za-z0-9_.-]+)", mail.body)
    assert found, mail.body
    link = found.group(1)
    base, token = link.split("?t=")

    # Opening the link (as a mail scanner would) shows the choice and changes nothing.
    page = request(link)
    assert page.status == 200
    assert f"Feedback agendas for {MONA}" in page.body and "are <strong>on</strong>" in page.body
    assert "Team meetings that someone else organizes keep their praise slot" in page.body
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "no-referrer" in page.headers["Referrer-Policy"]
    assert opt_outs(db) == []
    form = {"t": page.field("t"), "csrf": page.field("csrf"), "choice": page.field("choice")}
    assert form["choice"] == "out"

    # Refused: no CSRF cookie, a forged, an expired and another purpose's token.
    assert request(base, form).status == 403
    signer = Signer(SECRET)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    long_ago = datetime.now(UTC) - LINK_TTL - timedelta(days=1)
    expired = signer.sign(PURPOSE, MONA, now=long_ago, ttl=LINK_TTL)
    session = signer.sign("session", MONA, now=datetime.now(UTC), ttl=LINK_TTL)
    other_secret = Signer("another-secret-0123456789abcdef").sign(
        PURPOSE, MONA, now=datetime.now(UTC), ttl=LINK_TTL
    )
    for bad in (forged, expired, session, other_secret):
        assert request(f"{base}?t={bad}").status == 403
        refused = request(base, {**form, "t": bad}, cookie=page.cookie)
        assert refused.status == 403 and "This link cannot be used" in refused.body
    assert opt_outs(db) == []
    assert BLOCK in unfolded(ics)

    # The button: recorded, and the next cycle takes our block out of the 1:1.
    done = request(base, form, cookie=page.cookie)
    assert done.status == 200, done.body
    assert "Done: you have opted out" in done.body and "are <strong>off</strong>" in done.body
    assert opt_outs(db) == [(MONA, "link")]
    wait_for("the block removed", lambda: BLOCK not in unfolded(ics))
    assert "Notes: https://docs.example.com/1on1/alice" in unfolded(ics)

    # And back in, from the same link.
    back = {"t": done.field("t"), "csrf": done.field("csrf"), "choice": done.field("choice")}
    assert back["choice"] == "in"
    again = request(base, back, cookie=page.cookie)
    assert again.status == 200 and "Done: feedback agendas are on" in again.body
    assert opt_outs(db) == []
    wait_for("the block back", lambda: BLOCK in unfolded(ics))
