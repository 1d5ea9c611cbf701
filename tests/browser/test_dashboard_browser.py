"""The dashboard in a real browser (headless Chromium), against the real daemon.

Every test runs twice, with JavaScript on and turned off (the pages use
none), and saves a screenshot of what it checked under its own output folder
(``tmp_path``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
from sqlalchemy import select

from feedback_agendas.agendas.block import read_block
from feedback_agendas.scheduler.reminders.wins import Wins, week_start
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.storage.tables import run_log
from tests.support.browser import all_css, by_css, click, log_in, screenshot
from tests.support.dashboard import LiveDaemon, wait_for


def test_log_in_and_the_broken_calendar_is_first_failing_with_its_error(
    browser: Any, live: LiveDaemon, tmp_path: Path
) -> None:
    log_in(browser, live)
    wait_for(lambda: all_css(browser, "#calendars"), 10)
    rows = all_css(browser, "#calendars tbody tr")
    names = [row.get_attribute("data-calendar") for row in rows]
    assert names[0] == "a-broken"
    assert set(names) == {"a-broken", "mona", "bob-google"}
    first = rows[0]
    assert first.get_attribute("data-state") == "failing"
    assert "failing" in first.text and "auth" in first.text
    # The message this process logged: what failed and what to do.
    wait_for(lambda: "invalid_grant" in by_css(browser, "#calendars tbody tr").text, 20)
    assert "google-auth" in by_css(browser, "#calendars tbody tr").text
    for row in rows[1:]:
        assert row.get_attribute("data-state") == "ok"
    assert "1" in by_css(browser, "#count-failing").text
    assert "Generation 1" in by_css(browser, "#config").text
    screenshot(browser, tmp_path, "overview")


def test_filter_by_state_and_name(browser: Any, live: LiveDaemon, tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import Select

    log_in(browser, live)
    wait_for(lambda: all_css(browser, "#calendars"), 10)
    Select(by_css(browser, "#state")).select_by_value("ok")
    click(browser, "#apply")
    names = {r.get_attribute("data-calendar") for r in all_css(browser, "#calendars tbody tr")}
    assert names == {"mona", "bob-google"}
    by_css(browser, "#q").send_keys("bob")
    click(browser, "#apply")
    names = {r.get_attribute("data-calendar") for r in all_css(browser, "#calendars tbody tr")}
    assert names == {"bob-google"}
    assert "state=ok" in browser.current_url and "q=bob" in browser.current_url
    screenshot(browser, tmp_path, "filtered")


def _runs(live: LiveDaemon, calendar: str) -> int:
    with Store.open(live.cfg.storage.url) as store, store.engine.connect() as conn:
        return len(conn.execute(select(run_log.c.id).where(run_log.c.calendar == calendar)).all())


def test_sync_now_runs_a_cycle_and_the_page_shows_it(
    browser: Any, live: LiveDaemon, tmp_path: Path
) -> None:
    log_in(browser, live)
    wait_for(lambda: all_css(browser, "#calendars"), 10)
    # mona is not first by name, so with a one-hour interval only the click syncs it now.
    before = _runs(live, "mona")
    click(browser, 'tr[data-calendar="mona"] a')
    shown_before = len(all_css(browser, "#timeline .run"))
    assert shown_before == before
    click(browser, "#sync-now")
    assert by_css(browser, "#asked").is_displayed()
    wait_for(lambda: _runs(live, "mona") == before + 1, 30)

    def shown() -> bool:
        browser.refresh()
        return len(all_css(browser, "#timeline .run")) == before + 1

    wait_for(shown, 10, every=0.5)
    assert "ok" in by_css(browser, "#runs tbody tr").text
    screenshot(browser, tmp_path, "calendar-after-sync")


def test_preview_shows_a_one_on_one_agenda_and_a_skip_in_words(
    browser: Any, live: LiveDaemon, tmp_path: Path
) -> None:
    log_in(browser, live)
    click(browser, 'a[href$="/admin/preview"]')
    by_css(browser, "#user").send_keys("mona@example.com")
    days = by_css(browser, "#days")
    days.clear()
    days.send_keys("14")
    click(browser, "#show-preview")
    meetings = all_css(browser, "#meetings tr.meeting")
    assert meetings
    one_on_ones = [m for m in meetings if m.get_attribute("data-kind") == "one_on_one"]
    assert one_on_ones
    agenda = by_css(one_on_ones[0], "pre.agenda").text
    assert agenda.strip()  # the agenda text we would write
    skips = [m for m in meetings if m.get_attribute("data-action") == "skipped"]
    assert skips
    # The reason in words, not only the code.
    whys = " ".join(by_css(m, ".why").text for m in skips)
    assert "outside the organisation" in whys or "out-of-office" in whys
    screenshot(browser, tmp_path, "preview")


def test_the_team_chart_shows_the_wins_recorded(
    browser: Any, live: LiveDaemon, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    with Store.open(live.cfg.storage.url) as store:
        for weeks_ago, wins in ((0, 3), (1, 2), (2, 4), (5, 1)):
            day = now.date() - timedelta(weeks=weeks_ago)
            Wins(store.engine).record_meeting_praise(
                team="platform",
                occurrence=f"test-{weeks_ago}",
                day=day,
                filled=wins,
                vague=0,
                now=now,
            )
    log_in(browser, live)
    # A cycle of mona's calendar by the daemon puts its team meetings on the read-back list.
    before = _runs(live, "mona")
    click(browser, 'tr[data-calendar="mona"] a')
    click(browser, "#sync-now")
    wait_for(lambda: _runs(live, "mona") == before + 1, 30)
    click(browser, 'a[href$="/admin/teams"]')
    team = by_css(browser, 'section[data-team="platform"]')
    coming = [li.text for li in all_css(team, "ul.next li")]
    assert coming and all("(Europe/Stockholm)" in text for text in coming)
    assert by_css(team, ".total").text == "10"
    assert by_css(team, ".streak").text == "3"
    cells = [c.text for c in all_css(team, "table.weeks tbody td")]
    assert len(cells) == 12
    assert cells[-1] == "3" and cells[-2] == "2" and cells[-3] == "4" and cells[-6] == "1"
    labels = [e.text for e in all_css(team, "svg text.value")]
    assert labels[-3:] == ["4", "2", "3"]
    title = by_css(team, "svg title").get_attribute("textContent")
    this_week = f"W{week_start(now.date()).isocalendar().week:02d}: 3"
    assert this_week in title
    other = by_css(browser, 'section[data-team="analys"]')
    assert by_css(other, ".total").text == "0"
    screenshot(browser, tmp_path, "teams")


def blocks_in(path: Path) -> int:
    """How many events of the .ics file at ``path`` carry an agenda block of ours."""
    calendar = icalendar.Calendar.from_ical(path.read_bytes())
    return sum(
        read_block(str(event.get("DESCRIPTION", ""))) is not None
        for event in calendar.walk("VEVENT")
    )


def test_an_opt_out_added_on_the_page_removes_the_persons_blocks_at_the_next_cycle(
    browser: Any, live: LiveDaemon, tmp_path: Path
) -> None:
    alice = live.config_path.parent / "calendars" / "mona" / "mona-alice-1on1.ics"
    assert blocks_in(alice) > 0
    log_in(browser, live)
    click(browser, 'a[href$="/admin/opt-outs"]')
    by_css(browser, "#address").send_keys("Alice@example.com")
    click(browser, "#add")
    assert "Opted out" in by_css(browser, "#done").text
    assert by_css(browser, 'tr[data-address="alice@example.com"]')
    screenshot(browser, tmp_path, "opt-outs")
    before = _runs(live, "mona")
    browser.get(live.admin + "calendars/mona")
    click(browser, "#sync-now")
    wait_for(lambda: _runs(live, "mona") == before + 1, 30)
    assert blocks_in(alice) == 0  # removed from alice's 1:1
    assert blocks_in(live.config_path.parent / "calendars" / "mona" / "platform-retro.ics") > 0
    # And back in: the next cycle writes it again.
    browser.get(live.admin + "opt-outs")
    click(browser, "button.remove", within=by_css(browser, 'tr[data-address="alice@example.com"]'))
    assert "Opted back in" in by_css(browser, "#done").text
    assert not all_css(browser, 'tr[data-address="alice@example.com"]')
    browser.get(live.admin + "calendars/mona")
    click(browser, "#sync-now")
    wait_for(lambda: _runs(live, "mona") == before + 2, 30)
    assert blocks_in(alice) > 0
