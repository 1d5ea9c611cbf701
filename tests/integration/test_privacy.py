"""Privacy canaries (I7): no content in logs, metrics, the database or anyone's messages.

Unique canary strings are planted in titles, attendee names, descriptions
(outside the block), a corrective note written inside a 1:1's block and the
praise entries of a team meeting's block. The daemon then runs sync cycles,
before-meeting reminders, the praise read-back with its celebration, logged
wins and both weekly digests, with every logger at DEBUG. Afterwards no
canary may appear in:

- the captured log records (message, arguments and tracebacks);
- ``/metrics``, fetched over HTTP from the real endpoint server;
- any row of any table (SQLite, and PostgreSQL when reachable);
- any message received by the webhook (the team channel) or by SMTP (the
  manager): the product's messages carry counts and times only, so the
  praise entries appear nowhere and corrective content never reaches the team.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import inspect, select, table, text

from feedback_agendas.agendas.block import END_MARKER
from feedback_agendas.agendas.errors import FeedbackAgendasError
from feedback_agendas.agendas.model import Attendee, EventRef, Meeting
from feedback_agendas.integrations.calendars.memory import MemoryProvider
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.cli import main as cli_main
from feedback_agendas.scheduler.service.daemon import Daemon
from feedback_agendas.scheduler.service.http_server import EndpointServer
from tests.integration.pg import postgres_schema
from tests.support.clock import Clock
from tests.support.logs import everything_logged_at_debug
from tests.support.receivers import SmtpReceiver, WebhookReceiver

MONDAY = datetime(2026, 3, 23, 7, 0, tzinfo=UTC)  # 08:00 in Stockholm
FRIDAY_DIGEST = datetime(2026, 3, 27, 14, 0, tzinfo=UTC)  # 15:00 in Stockholm

CANARIES = {
    "title_one": "KANARIE-t1-4b1f",
    "title_team": "KANARIE-t2-9e07",
    "attendee": "KANARIE-namn-77c2",
    "outside_one": "KANARIE-utanfor-1a5d",
    "outside_team": "KANARIE-utanfor-2c8e",
    "corrective": "KANARIE-korrigering-e3f0",
    "praise": "KANARIE-berom-5d21",
    "team_name": "KANARIE-team-0aa9",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fa.db'}"
    else:
        with postgres_schema() as url:
            yield url


def write_config(tmp: Path, url: str, smtp: SmtpReceiver, hook: WebhookReceiver) -> Path:
    data = {
        "storage": {"url": url},
        "calendars": [{"name": "mona", "provider": "memory", "owner": "mona@example.com"}],
        "org": {
            "internal_domains": ["example.com"],
            "teams": [
                {
                    "name": "analys",
                    "manager": "mona@example.com",
                    "members": ["sara@example.com", "erik@example.com"],
                    "locale": "sv",
                    "timezone": "Europe/Stockholm",
                    "goals": ["Svara kunder inom en dag"],
                    "notify": [hook.url("/team-analys")],
                }
            ],
        },
        "people": [{"email": "mona@example.com", "notify": [smtp.url("mona@example.com")]}],
        "server": {"port": 0},
        "reminders": {"weekly_digest": {"weekday": "fri", "time": "15:00"}},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def planted(event_id: str, title: str, start: datetime, people: list[str], desc: str) -> Meeting:
    return Meeting(
        ref=EventRef("mona", event_id),
        title=title,
        description=desc,
        start=start,
        end=start + timedelta(minutes=30),
        owner="mona@example.com",
        etag="",
        organizer="mona@example.com",
        attendees=tuple(Attendee(p, display_name=CANARIES["attendee"]) for p in people),
        timezone="Europe/Stockholm",
    )


def edit_description(calendar: MemoryProvider, ref: EventRef, edit: Any) -> None:
    current = calendar.get(ref)
    assert current is not None
    calendar.put(replace(current, description=edit(current.description)))


def fill_praise(description: str) -> str:
    entries = iter(
        [f"Sara sammanfattade beslutet innan vi gick {CANARIES['praise']}", "bra jobbat"]
    )
    return re.sub(
        r"(?m)^((?:- )?(?:Praise|Beröm)\s*:).*$",
        lambda m: f"{m.group(1)} {next(entries, '___')}",
        description,
    )


def dump_database(engine: Any) -> str:
    """Every row of every table, as text."""
    rows = []
    with engine.connect() as conn:
        for name in inspect(conn).get_table_names():
            columns = [c["name"] for c in inspect(conn).get_columns(name)]
            query = select(*[text(f'"{c}"') for c in columns]).select_from(table(name))
            rows += [f"{name}: {tuple(row)}" for row in conn.execute(query)]
    return "\n".join(rows)


def test_no_canary_reaches_logs_metrics_database_or_messages(
    tmp_path: Path, storage_url: str
) -> None:
    with SmtpReceiver() as smtp, WebhookReceiver() as hook, everything_logged_at_debug() as logs:
        cfg = load_config(write_config(tmp_path, storage_url, smtp, hook))
        calendar = MemoryProvider(name="mona", owner="mona@example.com")
        clock = Clock(MONDAY)
        daemon = Daemon(cfg, clock=clock, provider_factory=lambda _c: calendar)
        server = EndpointServer("127.0.0.1", 0, ready=daemon.readiness, metrics=daemon.metrics_text)
        server.start()
        try:
            one = calendar.put(
                planted(
                    "one",
                    f"Mona / Sara {CANARIES['title_one']}",
                    MONDAY + timedelta(hours=3),
                    ["mona@example.com", "sara@example.com"],
                    f"Förra gången: {CANARIES['outside_one']}",
                )
            )
            team = calendar.put(
                planted(
                    "standup",
                    f"Standup {CANARIES['title_team']}",
                    MONDAY + timedelta(hours=2),
                    ["mona@example.com", "sara@example.com", "erik@example.com"],
                    f"Länk till tavlan {CANARIES['outside_team']}",
                )
            )
            assert daemon.sync_calendar("mona", MONDAY) is not None
            # the manager writes a corrective note into the 1:1's block; the team fills praise
            edit_description(
                calendar,
                one.ref,
                lambda d: d.replace(END_MARKER, f"{CANARIES['corrective']}\n{END_MARKER}"),
            )
            edit_description(calendar, team.ref, fill_praise)
            assert CANARIES["corrective"] in calendar.get(one.ref).description  # type: ignore[union-attr]
            daemon.sync_calendar("mona", MONDAY + timedelta(minutes=5))

            clock.now = team.start - timedelta(minutes=60)
            assert daemon.send_due().sent == 1  # before the team meeting
            clock.now = one.start - timedelta(minutes=60)
            assert daemon.send_due().sent == 1  # before the 1:1, to the manager
            clock.now = team.end + timedelta(minutes=5)
            daemon.sync_calendar("mona")  # reads the praise back: wins, a celebration
            daemon.log_win("analys", "corrective")
            with pytest.raises(FeedbackAgendasError):
                daemon.log_win(CANARIES["team_name"], "praise")
            assert daemon.send_due().sent == 1  # the celebration
            clock.now = FRIDAY_DIGEST
            daemon.plan_reminders()
            assert daemon.send_due().sent == 2  # the team's digest and the manager's

            with urllib.request.urlopen(f"{server.url}/metrics") as response:
                metrics = response.read().decode()
            database = dump_database(daemon.db)
        finally:
            server.stop()
            daemon.shutdown()
            daemon.store.close()
        result = CliRunner().invoke(
            cli_main,
            [
                "log-win",
                "--config",
                str(tmp_path / "config.yaml"),
                "--team",
                CANARIES["team_name"],
                "--kind",
                "praise",
            ],
        )
        assert result.exit_code == 2
        team_messages = hook.bodies("/team-analys") + [
            str(payload.get("title", "")) for _p, payload in hook.posts
        ]
        manager_messages = [f"{m.subject}\n{m.body}" for m in smtp.mails]

    # the run did what it should, so that finding nothing means something
    assert "feedback_agendas_reminders_sent_total" in metrics
    assert 'feedback_agendas_wins_total{kind="praise"} 2.0' in metrics  # read back: 2 entries
    assert any("I dag har ni" in m for m in team_messages)  # the celebration
    assert any("korrigerande feedback på tu man hand: 1" in m for m in manager_messages)
    assert "praise_readbacks" in database and "reminder_outbox" in database
    assert len(logs.texts) > 0

    places = {
        "logs": "\n".join(logs.texts),
        "metrics": metrics,
        "database": database,
        "team channel": "\n".join(team_messages),
        "manager's mail": "\n".join(manager_messages),
    }
    leaks = [
        f"{what} in the {where}"
        for what, canary in CANARIES.items()
        for where, haystack in places.items()
        if canary in haystack
    ]
    assert leaks == []
