"""A password in a URL never reaches a log, an error, a repr or the CLI's output (I7).

An admin may write ``url: http://mona:PASSWORD@host/`` for a CalDAV calendar
(with ``verify_tls: false`` on a test server, which logs a warning naming the
URL) and ``postgresql+psycopg://user:PASSWORD@host/db`` for storage. The CLI
then runs against a real Radicale with every logger (ours, caldav's, urllib3's)
at DEBUG, through a good calendar and one whose calendar is missing; the
password must appear nowhere.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from caldav.davclient import DAVClient
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from feedback_agendas.integrations.redact import mask_url, mask_urls_in, split_userinfo
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.cli import main as cli_main
from tests.integration.radicale import RadicaleServer, radicale_server  # noqa: F401
from tests.support.logs import everything_logged_at_debug

PASSWORD = "KANARIE-losen-8c3e"
OWNER = "mona@example.com"


def one_on_one_tomorrow(uid: str) -> str:
    start = (datetime.now(UTC) + timedelta(days=1)).replace(hour=9, minute=0, second=0)
    end = start + timedelta(minutes=30)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261101T120000Z\r\nDTSTART:{start:%Y%m%dT%H%M%SZ}\r\n"
        f"DTEND:{end:%Y%m%dT%H%M%SZ}\r\nSUMMARY:Mona / Alice 1:1\r\n"
        f"ORGANIZER:mailto:{OWNER}\r\nATTENDEE:mailto:{OWNER}\r\n"
        "ATTENDEE:mailto:alice@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


@pytest.fixture
def work_calendar(radicale_server: RadicaleServer) -> Any:  # noqa: F811
    client = DAVClient(url=radicale_server.url + "/", username="mona", password="x")
    principal: Any = client.get_principal()
    name = f"Work {uuid.uuid4().hex[:6]}"
    calendar = principal.make_calendar(name=name, cal_id=uuid.uuid4().hex)
    calendar.save_event(one_on_one_tomorrow(f"{uuid.uuid4().hex}@t"))
    client.close()
    return name


def test_a_password_in_a_caldav_url_is_never_logged_or_printed(
    tmp_path: Path,
    radicale_server: RadicaleServer,  # noqa: F811
    work_calendar: str,
) -> None:
    host = radicale_server.url.removeprefix("http://")
    url = f"http://mona:{PASSWORD}@{host}/"
    config = {
        "storage": {"url": f"sqlite:///{tmp_path / 'fa.db'}"},
        "calendars": [
            {
                "name": "work",
                "provider": "caldav",
                "url": url,
                "calendar": work_calendar,
                "owner": OWNER,
                "verify_tls": False,
            },
            {
                "name": "gone",
                "provider": "caldav",
                "url": url,
                "calendar": "No such calendar",
                "owner": OWNER,
                "verify_tls": False,
            },
        ],
        "org": {
            "internal_domains": ["example.com"],
            "teams": [{"name": "t", "manager": OWNER, "members": ["alice@example.com"]}],
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    runner = CliRunner()

    with everything_logged_at_debug() as logs:
        checked = runner.invoke(cli_main, ["check-config", "--config", str(path)])
        synced = runner.invoke(cli_main, ["-v", "sync", "--json", "--config", str(path)])
        again = runner.invoke(cli_main, ["sync", "--config", str(path)])

    # It really ran: the good calendar's 1:1 got an agenda, the missing one failed.
    assert '"writes": 1' in synced.output, synced.output
    assert synced.exit_code == 1
    assert again.exit_code == 1
    texts = [*logs.texts, checked.output, synced.output, again.output]
    assert any(f"verification is off for http://{host}/" in text for text in logs.texts)
    assert not [text for text in texts if PASSWORD in text]
    assert PASSWORD not in repr(load_config(path)) + str(load_config(path))


def test_a_password_in_the_storage_url_is_never_printed(tmp_path: Path) -> None:
    config = {
        "storage": {"url": f"postgresql+psycopg://fa:{PASSWORD}@127.0.0.1:1/fa"},
        "calendars": [{"name": "m", "provider": "memory", "owner": OWNER}],
        "org": {"internal_domains": ["example.com"]},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")

    with everything_logged_at_debug() as logs:
        result = CliRunner().invoke(cli_main, ["status", "--config", str(path)])

    assert result.exit_code == 2
    assert "cannot open the database at postgresql+psycopg://fa:***@127.0.0.1:1/fa" in (
        result.output
    )
    assert not [text for text in [*logs.texts, result.output] if PASSWORD in text]


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("http://mona:pw@dav.example.com/x", "http://mona:***@dav.example.com/x"),
        ("http://mona:p@ss/w@dav.example.com/x", "http://mona:***@ss/w@dav.example.com/x"),
        ("https://TOKEN@example.com/hook", "https://***@example.com/hook"),
        ("postgresql+psycopg://u:p@h:5432/db?x=1", "postgresql+psycopg://u:***@h:5432/db?x=1"),
        ("http://dav.example.com/cal/mona@example.com/", "http://dav.example.com/cal/mona@example.com/"),
        ("sqlite:///a@b.db", "sqlite:///a@b.db"),
        ("not a url: user:pw@host", "not a url: user:pw@host"),
        ("http://[::1:pw@h/", "http://[:***@h/"),  # urlsplit raises on this one
        ("http://u:p#ss?w@h/x?y#z", "http://u:***@h/x?y#z"),  # a raw '#' in the password
    ],
)  # fmt: skip
def test_mask_url_masks_userinfo_only(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_masking_urls_in_text_and_splitting_credentials_off() -> None:
    assert mask_urls_in("PUT http://a:b@h/x failed; see https://h/y") == (
        "PUT http://a:***@h/x failed; see https://h/y"
    )
    assert split_userinfo("http://m%40x:p%3Aw@h/c/", None, None) == ("http://h/c/", "m@x", "p:w")
    # An explicit user name discards the URL's credentials (another account); a password alone
    # overrides only the password.
    assert split_userinfo("http://bob:hunter2@h/", "alice", None) == ("http://h/", "alice", None)
    assert split_userinfo("http://bob:hunter2@h/", None, "pw") == ("http://h/", "bob", "pw")
    assert split_userinfo("http://h/", "alice", "pw") == ("http://h/", "alice", "pw")


def test_a_failure_message_quoting_a_url_masks_its_password() -> None:
    from feedback_agendas.agendas.errors import ProviderError
    from feedback_agendas.scheduler.sync.failures import describe_failure

    failure = describe_failure(
        ProviderError(f"PUT http://mona:{PASSWORD}@dav.example.com/c/1.ics: 507"), calendar="dav"
    )
    assert PASSWORD not in failure.message
    assert "http://mona:***@dav.example.com/c/1.ics" in failure.message


# In free text a URL ends at whitespace, so a raw space in a password is not covered there.
_PART = st.text(
    alphabet=st.characters(
        blacklist_characters="/@", blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")
    ),
    min_size=1,
    max_size=20,
)


@given(user=_PART, host=st.from_regex(r"[a-z0-9.-]{1,20}", fullmatch=True), tail=_PART)
def test_no_password_survives_masking(user: str, host: str, tail: str) -> None:
    secret = f"{PASSWORD}{tail}"
    for url in (f"https://{user}:{secret}@{host}/p", f"postgresql://{user}:{secret}@{host}"):
        assert PASSWORD not in mask_url(url)
        assert PASSWORD not in mask_urls_in(f"GET {url} failed")
