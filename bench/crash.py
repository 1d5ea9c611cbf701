"""Crash test: ``kill -9`` the real daemon again and again while a user edits the calendars.

Usage::

    .venv/bin/python -m bench.crash [--kills 500] [--seed 7]

Runs ``feedback-agendas run --config F`` as a subprocess on a SQLite database
and vdir calendars in a temporary folder, with a one-second sync interval. Each
round starts the daemon, waits for its start-up line, then a random 50-400 ms
(its first reminder sends and sync cycles run in that time), and kills it with
SIGKILL. Meanwhile a "user" appends notes outside agenda blocks, edits text
inside blocks and adds team meetings (each one makes due reminders for two
webhook channels of its team). After the last kill the daemon runs until it is
quiet, then gets SIGTERM. Then it checks:

- I1: at most one agenda block in every description;
- I3: every note the user appended is still there, every edit the user made
  inside a block is still there (the block was never overwritten);
- every team meeting without a user edit carries our block (it converged);
- every reminder was delivered; a key delivered twice must belong to a row
  that was being sent when a daemon died (``attempts >= 2``): the
  send-then-record window. Those duplicates are counted.

``tests/integration/test_crash.py`` runs this with 50+ kills in CI.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from icalendar import Calendar

from feedback_agendas.agendas.block import END_MARKER, START_MARKER
from feedback_agendas.agendas.model import Attendee, EventRef, Meeting
from feedback_agendas.integrations.calendars.ics import calendar_from_meetings, serialise
from feedback_agendas.integrations.notify.base import channel_id

REPO = Path(__file__).resolve().parent.parent
# The installed console script next to this interpreter (the venv's), as an admin runs it.
_SCRIPT = Path(sys.executable).parent / "feedback-agendas"
DAEMON = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "feedback_agendas"]
TEAMS = 3
CHANNELS_PER_TEAM = 2
BEFORE_MINUTES = 600  # every meeting in the next 10 hours is due for a reminder now


@dataclass
class CrashFigures:
    kills: int = 0
    kills_while_sending: int = 0  # a row was left 'sending': killed inside the window
    kills_while_writing: int = 0  # a vdir temp file was left: killed inside a write
    cycles: int = 0
    meetings: int = 0
    reminders: int = 0
    deliveries: int = 0
    duplicates: int = 0
    window_rows: int = 0  # rows started more than once (send-then-record window)
    outside_edits: int = 0
    inside_edits: int = 0
    duplicate_blocks: int = 0
    lost_outside_edits: int = 0
    overwritten_inside_edits: int = 0
    missing_blocks: int = 0
    undelivered: int = 0
    unexplained_duplicates: int = 0
    unexplained: list[str] = field(default_factory=list)  # what they were, to look into
    shutdown_code: int | None = None
    seconds: float = 0.0
    startup_ms: list[float] = field(default_factory=list)

    def report(self) -> str:
        startup = sorted(self.startup_ms)
        median = startup[len(startup) // 2] if startup else 0.0
        return (
            f"kills {self.kills} ({self.kills_while_sending} inside a send,"
            f" {self.kills_while_writing} inside a file write), sync cycles {self.cycles},"
            f" {self.seconds:.0f}s, start-up median {median:.0f} ms\n"
            f"user: {self.meetings} meetings added, {self.outside_edits} notes outside blocks,"
            f" {self.inside_edits} edits inside blocks\n"
            f"I1 duplicate blocks {self.duplicate_blocks}; I3 lost notes"
            f" {self.lost_outside_edits}, overwritten block edits"
            f" {self.overwritten_inside_edits}; meetings without a block {self.missing_blocks}\n"
            f"reminders {self.reminders}: deliveries {self.deliveries}, undelivered"
            f" {self.undelivered}, duplicates {self.duplicates} (rows in the send-then-record"
            f" window {self.window_rows}, duplicates outside it {self.unexplained_duplicates});"
            f" SIGTERM exit code {self.shutdown_code}"
            + "".join(f"\n  unexplained: {line}" for line in self.unexplained)
        )


class CrashWorld:
    """The calendars, the config and the user of one crash run."""

    def __init__(self, root: Path, receiver_url: Any, rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.receiver_url = receiver_url  # path -> apprise URL
        self.db = root / "fa.db"
        self.config = root / "config.yaml"
        self.lock = threading.Lock()
        self.notes: list[tuple[Path, str, str]] = []  # (file, uid, text) outside blocks
        self.inside: list[tuple[Path, str, str]] = []  # (file, uid, text) inside blocks
        self.edited_uids: set[str] = set()
        self.meetings = 0
        self.now = datetime.now(UTC).replace(second=0, microsecond=0)
        # Each team's meetings start on distinct minutes: a message's title names its key.
        self.free_minutes = {
            t: rng.sample(range(15, BEFORE_MINUTES - 5), 560) for t in range(TEAMS)
        }
        self.channels: dict[str, str] = {}  # channel id -> receiver path
        self._write_config()
        for team in range(TEAMS):
            self.add_team_meeting(team)
            self._add_one_on_one(team)

    def folder(self, team: int) -> Path:
        return self.root / "calendars" / f"cal{team}"

    def _write_config(self) -> None:
        teams = []
        for t in range(TEAMS):
            urls = []
            for c in range(CHANNELS_PER_TEAM):
                path = f"/team-{t}/{c}"
                url = self.receiver_url(path)
                self.channels[channel_id(url)] = path
                urls.append(url)
            teams.append(
                {
                    "name": f"t{t}",
                    "manager": f"m{t}@example.com",
                    "members": [f"a{t}@example.com", f"b{t}@example.com"],
                    "notify": urls,
                }
            )
            self.folder(t).mkdir(parents=True)
        config = {
            "storage": {"url": f"sqlite:///{self.db}"},
            "calendars": [
                {
                    "name": f"cal{t}",
                    "provider": "vdir",
                    "path": str(self.folder(t)),
                    "owner": f"m{t}@example.com",
                }
                for t in range(TEAMS)
            ],
            "org": {"internal_domains": ["example.com"], "teams": teams},
            "server": {"port": 0},
            "sync": {"interval_seconds": 1, "jitter": 0},
            "reminders": {"before_team_meeting_minutes": BEFORE_MINUTES, "weekly_digest": None},
        }
        self.config.write_text(yaml.safe_dump(config), encoding="utf-8")

    # -- the user ----------------------------------------------------------------

    def _new_event(self, team: int, title: str, people: list[str], start: datetime) -> None:
        uid = f"ev-{uuid.uuid4().hex[:12]}"
        manager = f"m{team}@example.com"
        meeting = Meeting(
            ref=EventRef(f"cal{team}", uid),
            title=title,
            description=f"Agenda of the user {uuid.uuid4().hex[:6]}.",
            start=start,
            end=start + timedelta(minutes=30),
            owner=manager,
            etag="",
            organizer=manager,
            attendees=tuple(Attendee(p) for p in people),
            timezone="UTC",
        )
        path = self.folder(team) / f"{uid}.ics"
        tmp = path.with_name(f".{path.name}.user")
        tmp.write_bytes(serialise(calendar_from_meetings([meeting])))
        os.replace(tmp, path)

    def add_team_meeting(self, team: int | None = None) -> None:
        """A new team meeting within the reminder lead: its reminders are due at once."""
        team = self.rng.randrange(TEAMS) if team is None else team
        minute = self.free_minutes[team].pop()
        people = [f"m{team}@example.com", f"a{team}@example.com", f"b{team}@example.com"]
        self._new_event(team, "Team standup", people, self.now + timedelta(minutes=minute))
        self.meetings += 1

    def _add_one_on_one(self, team: int) -> None:
        people = [f"m{team}@example.com", f"a{team}@example.com"]
        self._new_event(team, "1:1", people, self.now + timedelta(days=2))

    def user_edit(self) -> None:
        """Append a note outside the block, or (once per event) edit inside a block."""
        files = sorted(p for t in range(TEAMS) for p in self.folder(t).glob("*.ics"))
        path = self.rng.choice(files)
        inside = self.rng.random() < 0.3
        text = f"{'inside' if inside else 'note'}-{uuid.uuid4().hex[:10]}"
        for _attempt in range(5):
            data = path.read_bytes()
            cal = Calendar.from_ical(data)
            [event] = cal.walk("VEVENT")
            uid = str(event["UID"])
            description = str(event.get("DESCRIPTION", ""))
            if inside:
                end = description.find(END_MARKER)
                if end < 0 or uid in self.edited_uids or description.find(START_MARKER) < 0:
                    return
                description = f"{description[:end]}{text}\n{description[end:]}"
            else:
                description = f"{description}\n\n{text}"
            event["DESCRIPTION"] = description
            new = cal.to_ical()
            tmp = path.with_name(f".{path.name}.user")
            tmp.write_bytes(new)
            if path.read_bytes() != data:  # the daemon wrote meanwhile: edit its version
                tmp.unlink()
                continue
            os.replace(tmp, path)
            with self.lock:
                (self.inside if inside else self.notes).append((path, uid, text))
                if inside:
                    self.edited_uids.add(uid)
            return

    # -- checks --------------------------------------------------------------------

    def descriptions(self) -> dict[str, tuple[str, str]]:
        """uid -> (title, description) of every event."""
        found = {}
        for t in range(TEAMS):
            for path in self.folder(t).glob("*.ics"):
                for event in Calendar.from_ical(path.read_bytes()).walk("VEVENT"):
                    found[str(event["UID"])] = (
                        str(event.get("SUMMARY", "")),
                        str(event.get("DESCRIPTION", "")),
                    )
        return found

    def check_calendars(self, figures: CrashFigures) -> None:
        events = self.descriptions()
        for _title, description in events.values():
            if description.count(START_MARKER) > 1 or description.count(END_MARKER) > 1:
                figures.duplicate_blocks += 1
        for _path, uid, text in self.notes:
            if text not in events[uid][1]:
                figures.lost_outside_edits += 1
        for _path, uid, text in self.inside:
            description = events[uid][1]
            start, end = description.find(START_MARKER), description.find(END_MARKER)
            if not start < description.find(text) < end:
                figures.overwritten_inside_edits += 1
        for uid, (title, description) in events.items():
            if title == "Team standup" and uid not in self.edited_uids:
                figures.missing_blocks += START_MARKER not in description
        figures.meetings = self.meetings
        figures.outside_edits = len(self.notes)
        figures.inside_edits = len(self.inside)

    def check_reminders(self, figures: CrashFigures, posts: list[tuple[str, str]]) -> None:
        """Deliveries (path, title) against the outbox rows."""
        with closing_db(self.db) as conn:
            rows = conn.execute(
                "select channel, params, state, attempts from reminder_outbox"
                " where kind = 'before_team'"
            ).fetchall()
            figures.cycles = conn.execute("select count(*) from run_log").fetchone()[0]
        import json

        by_key = {}
        for channel, params, state, attempts in rows:
            start = datetime.fromisoformat(json.loads(params)["start"]).astimezone(UTC)
            title = f"Team meeting at {start:%H:%M}: prepare one concrete praise"
            by_key[(self.channels[channel], title)] = (state, attempts)
        received = Counter(posts)
        figures.reminders = len(by_key)
        figures.deliveries = sum(received.values())
        figures.window_rows = sum(1 for _s, a in by_key.values() if a > 1)
        for key, (state, _attempts) in by_key.items():
            if state != "sent" or key not in received:
                figures.undelivered += 1
        for key, n in received.items():
            if n > 1:
                figures.duplicates += n - 1
            row = by_key.get(key)
            if row is None:  # every delivery of it is unexplained
                figures.unexplained_duplicates += n
                figures.unexplained.append(f"{key} delivered {n}x with no before_team row")
            elif n > 1 and row[1] < 2:  # sent again, yet never caught mid-send
                figures.unexplained_duplicates += n - 1
                figures.unexplained.append(f"{key} delivered {n}x, row {row}")


@contextmanager
def closing_db(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        yield conn
    finally:
        conn.close()


def start_daemon(world: CrashWorld, log_file: Any) -> tuple[subprocess.Popen[str], float]:
    """Start the daemon; return it once it printed its start-up lines, and the start-up ms."""
    began = time.monotonic()
    process = subprocess.Popen(
        [*DAEMON, "run", "--config", str(world.config)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=log_file,
        text=True,
    )
    assert process.stdout is not None
    while True:
        line = process.stdout.readline()
        if not line:
            code = process.wait()
            process.stdout.close()
            tail = ""
            if hasattr(log_file, "name"):
                log_file.flush()
                tail = "".join(Path(log_file.name).read_text().splitlines(True)[-20:])
            raise RuntimeError(f"the daemon exited with {code} before starting:\n{tail}")
        if line.startswith("replica "):
            return process, (time.monotonic() - began) * 1000


def kill_hard(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.stdout is not None
    process.stdout.close()


def inspect_after_kill(world: CrashWorld, figures: CrashFigures) -> None:
    figures.kills += 1
    try:
        with closing_db(world.db) as conn:
            sending = conn.execute(
                "select count(*) from reminder_outbox where state = 'sending'"
            ).fetchone()[0]
    except sqlite3.OperationalError:  # killed before the first migration finished
        sending = 0
    figures.kills_while_sending += sending > 0
    leftovers = [p for t in range(TEAMS) for p in world.folder(t).glob(".*.tmp")]
    figures.kills_while_writing += bool(leftovers)
    for leftover in leftovers:  # what a cleanup on boot would do; vdir ignores them anyway
        leftover.unlink()


def wait_until_quiet(world: CrashWorld, since: str, timeout: float) -> None:
    """Until every calendar had two cycles since ``since``, the last without writes,
    and no reminder is waiting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        with closing_db(world.db) as conn:
            waiting = conn.execute(
                "select count(*) from reminder_outbox where state in ('pending', 'sending')"
            ).fetchone()[0]
            quiet = 0
            for t in range(TEAMS):
                runs = conn.execute(
                    "select writes, ok from run_log where calendar = ? and started_at > ?"
                    " order by id desc limit 2",
                    (f"cal{t}", since),
                ).fetchall()
                quiet += len(runs) == 2 and runs[0] == (0, 1)
        if waiting == 0 and quiet == TEAMS:
            return
    raise TimeoutError("the daemon did not become quiet")


def run_crash(root: Path, receiver: Any, *, kills: int, seed: int, log_file: Any) -> CrashFigures:
    """The whole crash run against ``receiver`` (a WebhookReceiver); returns the figures."""
    rng = random.Random(seed)
    world = CrashWorld(root, receiver.url, rng)
    figures = CrashFigures()
    began = time.monotonic()
    for _round in range(kills):
        world.add_team_meeting()
        world.add_team_meeting()
        process, startup = start_daemon(world, log_file)
        figures.startup_ms.append(startup)
        wait = rng.uniform(0.05, 0.4)
        edit_at = rng.uniform(0, wait)
        time.sleep(edit_at)  # real time on purpose: the kill lands wherever the daemon is
        world.user_edit()
        time.sleep(max(0.0, wait - edit_at))
        kill_hard(process)
        inspect_after_kill(world, figures)
    since = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    process, _startup = start_daemon(world, log_file)
    try:
        # the sender runs every 15 s: give it two turns after the last cycle's rows
        wait_until_quiet(world, since, timeout=60)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            figures.shutdown_code = process.wait(timeout=15)
        finally:
            kill_hard(process)
    figures.seconds = time.monotonic() - began
    world.check_calendars(figures)
    world.check_reminders(figures, [(p, payload.get("title", "")) for p, payload in receiver.posts])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    from tests.support.receivers import WebhookReceiver

    with (
        tempfile.TemporaryDirectory() as tmp,
        WebhookReceiver() as receiver,
        open(Path(tmp) / "daemon.log", "w") as log_file,
    ):
        figures = run_crash(
            Path(tmp), receiver, kills=args.kills, seed=args.seed, log_file=log_file
        )
    print(figures.report())


if __name__ == "__main__":
    main()
