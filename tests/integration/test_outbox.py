"""The outbox: unique keys, leased claims, retries with backoff, dead letters.

Runs on SQLite and on the real PostgreSQL, delivering through apprise to real
receivers on loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine

from feedback_agendas.agendas.errors import TransientError
from feedback_agendas.integrations.notify.apprise_notifier import AppriseNotifier
from feedback_agendas.integrations.notify.base import Message, channel_id
from feedback_agendas.scheduler.reminders.outbox import (
    DEAD,
    NewReminder,
    Outbox,
    outbox_table,
)
from feedback_agendas.scheduler.storage.tables import metadata
from tests.integration.pg import postgres_engine
from tests.support.receivers import SmtpReceiver, WebhookReceiver

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = create_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
        metadata.create_all(eng)
        yield eng
        eng.dispose()
    else:
        with postgres_engine() as eng:
            metadata.create_all(eng)
            yield eng


def reminder(
    occurrence: str = "cal/ev1/2026-03-02T09:00:00Z", channel: str = "ch-a"
) -> NewReminder:
    return NewReminder(
        kind="before_team",
        occurrence=occurrence,
        recipient="team:platform",
        channel=channel,
        due_at=NOW,
        expires_at=NOW + timedelta(hours=1),
        team="platform",
        params={"locale": "en"},
    )


def test_same_key_is_enqueued_once(engine: Engine) -> None:
    outbox = Outbox(engine)
    assert outbox.enqueue([reminder(), reminder()], NOW) == 1
    assert outbox.enqueue([reminder()], NOW) == 0
    assert outbox.enqueue([reminder(channel="ch-b")], NOW) == 1
    assert outbox.counts() == {"pending": 2}


def test_a_claimed_row_is_not_claimed_again_until_its_lease_expires(engine: Engine) -> None:
    outbox = Outbox(engine)
    outbox.enqueue([reminder()], NOW)
    first = outbox.claim("replica-a", NOW, lease=timedelta(seconds=30))
    assert [item.key for item in first] == [reminder().key]
    assert outbox.claim("replica-b", NOW + timedelta(seconds=10)) == []
    # replica-a died before sending: its lease runs out and the row moves on.
    again = outbox.claim("replica-b", NOW + timedelta(seconds=31))
    assert [item.id for item in again] == [first[0].id]
    assert not again[0].maybe_sent


def test_a_row_that_died_while_sending_is_flagged_as_maybe_sent(engine: Engine) -> None:
    outbox = Outbox(engine)
    outbox.enqueue([reminder()], NOW)
    item = outbox.claim("a", NOW, lease=timedelta(seconds=30))[0]
    assert outbox.begin_send(item, "a", NOW)
    # crash here: sent or not, nobody knows
    retry = outbox.claim("b", NOW + timedelta(minutes=1))[0]
    assert retry.maybe_sent
    assert outbox.begin_send(retry, "b", NOW + timedelta(minutes=1))
    assert outbox.mark_sent(retry, "b", NOW + timedelta(minutes=1))
    # the dead sender's late record is refused: it no longer holds the row
    assert not outbox.mark_sent(item, "a", NOW + timedelta(minutes=2))
    assert outbox.counts() == {"sent": 1}


def test_failures_back_off_then_dead_letter(engine: Engine) -> None:
    outbox = Outbox(engine, max_attempts=3, backoff=lambda n: timedelta(minutes=n))
    outbox.enqueue([reminder()], NOW)
    now = NOW
    states = []
    for _ in range(3):
        items = outbox.claim("a", now)
        assert len(items) == 1
        assert outbox.claim("a", now) == []  # leased
        assert outbox.begin_send(items[0], "a", now)
        states.append(outbox.mark_failed(items[0], "a", now, "TransientError"))
        assert outbox.claim("a", now) == []  # backing off
        now += timedelta(minutes=3)
    assert states == ["pending", "pending", "dead"]
    assert outbox.counts() == {DEAD: 1}
    with engine.connect() as conn:
        row = conn.execute(select(outbox_table)).one()
    assert row.attempts == 3
    assert row.last_error == "TransientError"


def test_rows_past_expiry_are_expired_not_sent(engine: Engine) -> None:
    outbox = Outbox(engine)
    outbox.enqueue([reminder()], NOW)
    late = NOW + timedelta(hours=2)
    assert outbox.claim("a", late) == []
    assert outbox.expire_overdue(late) == 1
    assert outbox.counts() == {"expired": 1}


def test_a_pending_row_follows_its_moved_meeting_but_a_sent_row_does_not(engine: Engine) -> None:
    outbox = Outbox(engine)
    outbox.enqueue([reminder()], NOW)
    moved = replace(
        reminder(), due_at=NOW + timedelta(hours=3), expires_at=NOW + timedelta(hours=4)
    )
    assert outbox.enqueue([moved], NOW) == 1
    assert outbox.claim("a", NOW) == []
    item = outbox.claim("a", NOW + timedelta(hours=3))[0]
    outbox.begin_send(item, "a", NOW + timedelta(hours=3))
    outbox.mark_sent(item, "a", NOW + timedelta(hours=3))
    assert outbox.enqueue([reminder()], NOW) == 0
    assert outbox.counts() == {"sent": 1}


def test_release_gives_back_every_lease(engine: Engine) -> None:
    outbox = Outbox(engine)
    outbox.enqueue([reminder(f"occ{i}") for i in range(5)], NOW)
    assert len(outbox.claim("a", NOW)) == 5
    assert outbox.held_by("a", NOW) == 5
    assert outbox.release("a") == 5
    assert len(outbox.claim("b", NOW)) == 5


def test_apprise_delivers_email_to_the_smtp_server_and_json_to_the_webhook() -> None:
    notifier = AppriseNotifier()
    with SmtpReceiver() as smtp, WebhookReceiver() as hook:
        notifier.send(smtp.url("mona@example.com"), Message("Förbered beröm", "Hej!"))
        notifier.send(hook.url("/team"), Message("Prepare praise", "Name the behaviour."))
        hook.fail_paths.add("/down")
        with pytest.raises(TransientError) as failed:
            notifier.send(hook.url("/down"), Message("s", "b"))
    assert [(m.recipients, m.subject) for m in smtp.mails] == [
        (("mona@example.com",), "Förbered beröm")
    ]
    assert "Hej!" in smtp.mails[0].body
    assert hook.bodies("/team") == ["Name the behaviour."]
    # the error names the channel by id, never by its URL (which may hold a token)
    assert str(hook.port) not in str(failed.value)
    assert channel_id(hook.url("/down")) in str(failed.value)
