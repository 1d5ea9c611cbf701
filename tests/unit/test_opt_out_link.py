"""The opt-out link in messages: only in messages to one person, only with public_url and secret."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from feedback_agendas.agendas.policy import Team
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.reminders.outbox import OutboxItem
from feedback_agendas.scheduler.reminders.planning import (
    BEFORE_ONE_ON_ONE,
    BEFORE_TEAM,
    CELEBRATION,
    DIGEST_MANAGER,
    DIGEST_TEAM,
    PRIVACY_CONFLICT,
    ReminderRenderer,
)
from feedback_agendas.scheduler.service.web.security import BadToken, Signer
from feedback_agendas.scheduler.service.web.self_service import LINK_TTL, PURPOSE, opt_out_links

NOW = datetime(2026, 3, 23, 7, 0, tzinfo=UTC)
LINK = "https://agendas.example.com/opt-out?t=TOKEN"
SECRET = "a-secret-of-enough-length-0123456789"
PARAMS = {
    BEFORE_ONE_ON_ONE: {"start": NOW.isoformat(), "focus": "better"},
    BEFORE_TEAM: {"start": NOW.isoformat()},
    CELEBRATION: {"day": "2026-03-23"},
    DIGEST_TEAM: {"week": "2026-W13", "week_start": "2026-03-23"},
    DIGEST_MANAGER: {"week": "2026-W13", "week_start": "2026-03-23"},
    PRIVACY_CONFLICT: {"start": NOW.isoformat(), "reason": "third_person", "calendar": "mona"},
}


@pytest.mark.parametrize("locale", ["en", "sv"])
@pytest.mark.parametrize("kind", sorted(PARAMS))
def test_only_messages_to_one_person_carry_the_link(kind: str, locale: str) -> None:
    team = Team(name="platform", manager="mona@example.com", members=frozenset(), locale=locale)
    recipient = (
        "mona@example.com"
        if kind in (BEFORE_ONE_ON_ONE, DIGEST_MANAGER, PRIVACY_CONFLICT)
        else "team:platform"
    )
    item = OutboxItem(
        1,
        kind,
        "o",
        recipient,
        "c",
        "platform",
        {"locale": locale, **PARAMS[kind]},
        NOW,
        NOW,
        0,
        False,
    )
    with_link = ReminderRenderer().render(item, team, {}, opt_out_url=LINK)
    without = ReminderRenderer().render(item, team, {})
    assert (LINK in with_link.body) is recipient.startswith("mona")
    assert "opt-out" not in without.body


def config(tmp_path: Path, server: dict[str, object]) -> Path:
    path = tmp_path / "config.yaml"
    data = {
        "calendars": [{"name": "mona", "provider": "memory", "owner": "mona@example.com"}],
        "org": {"internal_domains": ["example.com"]},
        "server": server,
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_links_need_public_url_and_secret_and_are_purpose_bound(tmp_path: Path) -> None:
    public = "https://agendas.example.com/"
    assert opt_outs_for(tmp_path, {"public_url": public}) is None
    assert opt_outs_for(tmp_path, {"secret": SECRET}) is None
    make = opt_outs_for(tmp_path, {"public_url": public, "secret": SECRET})
    assert make is not None
    link = make("Mona@Example.com", NOW)
    base, token = link.split("?t=")
    assert base == "https://agendas.example.com/opt-out"
    signer = Signer(SECRET)
    assert signer.verify(token, PURPOSE, now=NOW + timedelta(days=29)) == "mona@example.com"
    with pytest.raises(BadToken):
        signer.verify(token, PURPOSE, now=NOW + LINK_TTL)
    with pytest.raises(BadToken):
        signer.verify(token, "session", now=NOW)
    assert make("team:platform", NOW) == ""


def opt_outs_for(tmp_path: Path, server: dict[str, object]):  # type: ignore[no-untyped-def]
    return opt_out_links(load_config(config(tmp_path, server)))
