"""Make the README's dashboard screenshots (docs/dashboard-*.png) with the browser tests' harness.

    .venv/bin/python -m tests.browser.make_screenshots [FOLDER]

The test config (one calendar with refused credentials, a vdir calendar, one
on the Google fake) plus two more vdir calendars, twelve weeks of praise wins
for the platform team, then the overview and the teams page, logged in, in
headless Chromium.
"""

from __future__ import annotations

import base64
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from feedback_agendas.scheduler.reminders.wins import Wins
from feedback_agendas.scheduler.service.commands import demo_week_start
from feedback_agendas.scheduler.service.sample_week import write_sample_week
from feedback_agendas.scheduler.storage.store import Store
from tests.fakes.google_api import FakeGoogleCalendarAPI
from tests.support.browser import by_css, click, log_in, new_driver, screenshot
from tests.support.dashboard import RefusingTokenEndpoint, start_daemon, write_config

WINS = (2, 3, 1, 0, 4, 2, 3, 5, 2, 4, 3, 4)  # oldest first


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeGoogleCalendarAPI() as api,
    ):
        folder = Path(tmp)
        api.add_calendar("primary", "bob@example.com")
        token = RefusingTokenEndpoint()
        try:
            config = write_config(folder, api.endpoint, token.url)
            data = yaml.safe_load(config.read_text())
            for person in ("alice", "sara"):
                path = folder / "calendars" / person
                write_sample_week(path, demo_week_start(datetime.now(UTC), "Europe/Stockholm"))
                data["calendars"].append(
                    {"name": person, "provider": "vdir", "path": str(path),
                     "owner": f"{person}@example.com", "timezone": "Europe/Stockholm"}
                )  # fmt: skip
            config.write_text(yaml.safe_dump(data))
            with start_daemon(config) as live:
                now = datetime.now(UTC)
                with Store.open(live.cfg.storage.url) as store:
                    for weeks_ago, wins in enumerate(reversed(WINS)):
                        Wins(store.engine).record_meeting_praise(
                            team="platform",
                            occurrence=f"shot-{weeks_ago}",
                            day=now.date() - timedelta(weeks=weeks_ago),
                            filled=wins,
                            vague=0,
                            now=now,
                        )
                driver = new_driver(javascript=False)
                try:
                    log_in(driver, live)
                    click(driver, 'tr[data-calendar="mona"] a')
                    click(driver, "#sync-now")  # the daemon's cycle lists the praise slots
                    time.sleep(3)
                    driver.get(live.admin)
                    by_css(driver, "#calendars")
                    screenshot(driver, out, "dashboard-overview")
                    click(driver, 'a[href$="/admin/teams"]')
                    box = by_css(driver, 'section[data-team="platform"]').rect
                    shot = driver.execute_cdp_cmd(
                        "Page.captureScreenshot",
                        {
                            "format": "png",
                            "captureBeyondViewport": True,
                            "clip": {**{k: box[k] for k in ("x", "y", "width", "height")},
                                     "scale": 1},
                        },
                    )  # fmt: skip
                    (out / "dashboard-teams.png").write_bytes(base64.b64decode(shot["data"]))
                finally:
                    driver.quit()
        finally:
            token.stop()
    print(f"wrote {out / 'dashboard-overview.png'} and {out / 'dashboard-teams.png'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs"))
