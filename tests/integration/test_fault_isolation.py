"""One bad thing stays small and is seen (issue 11): a failing calendar fails alone.

Real parts: the CLI as a new process (cron) or through click's runner, vdir
folders of the sample week, the Google provider against the local fake API
and a real OAuth token endpoint on loopback, SQLite through the migrations,
and, where a kernel mount is the only honest way (a read-only folder, a full
disk), a private mount namespace (``unshare -rm``) around the process.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.cli import main
from feedback_agendas.scheduler.service.commands import demo_week_start
from feedback_agendas.scheduler.service.daemon import CALENDAR_LEASE, Daemon
from feedback_agendas.scheduler.service.sample_week import write_sample_week
from feedback_agendas.scheduler.storage.store import Store
from tests.support.google_keys import service_account_file

ROOT = Path(__file__).resolve().parents[2]
OWNER = "mona@example.com"
SECRET = "s3cr3t-refresh-token-value"


def vdir_calendar(tmp: Path, name: str) -> dict[str, Any]:
    folder = tmp / "calendars" / name
    folder.mkdir(parents=True)
    write_sample_week(folder, demo_week_start(datetime.now(UTC), "Europe/Stockholm"))
    return {
        "name": name,
        "provider": "vdir",
        "path": str(folder),
        "owner": OWNER,
        "timezone": "Europe/Stockholm",
    }


def google_calendar(name: str, credentials: Path, endpoint: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "google",
        "owner": OWNER,
        "credentials": str(credentials),
        "api_endpoint": endpoint,
        **extra,
    }


def token_file(folder: Path, token_uri: str, mode: int = 0o600) -> Path:
    path = folder / "token.json"
    path.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "id.apps.googleusercontent.com",
                "client_secret": "client-secret-value",
                "refresh_token": SECRET,
                "token_uri": token_uri,
            }
        ),
        encoding="utf-8",
    )
    path.chmod(mode)
    return path


def write_config(tmp: Path, calendars: list[dict[str, Any]], **top: Any) -> Path:
    data = yaml.safe_load((ROOT / "config.example.yaml").read_text(encoding="utf-8"))
    data["storage"] = {"url": f"sqlite:///{tmp / 'fa.db'}"}
    data["calendars"] = calendars
    data.update(top)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def sync(config: Path) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(main, ["sync", "--config", str(config), "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout), result.stderr


class TokenEndpoint:
    """A real OAuth token endpoint on loopback that refuses every refresh (invalid_grant)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.dumps(
                    {"error": "invalid_grant", "error_description": "Token has been revoked."}
                ).encode()
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def token_endpoint() -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def google_api() -> Iterator[Any]:
    from tests.fakes.google_api import FakeGoogleCalendarAPI

    with FakeGoogleCalendarAPI() as api:
        api.add_calendar("primary", OWNER)
        yield api


def assert_good_calendar_synced(summary: dict[str, Any], name: str = "good") -> None:
    good = summary["calendars"][name]
    assert good["ok"] is True and good["error_kind"] is None and good["writes"] == 7


def last_run(config: Path, name: str) -> dict[str, Any]:
    with Store.open(load_config(config).storage.url) as store:
        run = store.status()[name]["last_run"]
    assert run is not None
    return dict(run)


def test_a_credentials_file_readable_by_others_fails_its_calendar_only(
    tmp_path: Path, google_api: Any
) -> None:
    creds = token_file(tmp_path, "http://127.0.0.1:9/token", 0o644)
    config = write_config(
        tmp_path,
        [google_calendar("bad", creds, google_api.endpoint), vdir_calendar(tmp_path, "good")],
    )
    code, summary, stderr = sync(config)
    assert code == 1
    assert summary["ok"] is False
    assert_good_calendar_synced(summary)
    bad = summary["calendars"]["bad"]
    assert bad["ok"] is False and bad["error_kind"] == "config"
    assert str(creds) in bad["error"] and "calendar bad" in bad["error"]
    assert "chmod 600" in bad["error"]
    assert bad["errors"] == {"config": 1} and summary["errors"] == {"config": 1}
    assert SECRET not in json.dumps(summary) + stderr
    assert "Traceback" not in stderr
    run = last_run(config, "bad")
    assert run["ok"] is False and run["error_kind"] == "config"


def test_a_missing_credentials_file_fails_its_calendar_only(
    tmp_path: Path, google_api: Any
) -> None:
    missing = tmp_path / "not-there.json"
    config = write_config(
        tmp_path,
        [google_calendar("bad", missing, google_api.endpoint), vdir_calendar(tmp_path, "good")],
    )
    code, summary, stderr = sync(config)
    assert code == 1
    assert_good_calendar_synced(summary)
    bad = summary["calendars"]["bad"]
    assert bad["ok"] is False and bad["error_kind"] == "config"
    assert str(missing) in bad["error"] and "calendar bad" in bad["error"]
    assert "Traceback" not in stderr
    checked = CliRunner().invoke(main, ["check-config", "--config", str(config)])
    assert checked.exit_code == 2
    assert "calendars[0].credentials" in checked.output and str(missing) in checked.output


def test_refused_and_unreachable_google_credentials_fail_their_calendar_only(
    tmp_path: Path, google_api: Any, token_endpoint: TokenEndpoint
) -> None:
    refused = tmp_path / "refused"
    refused.mkdir()
    unreachable = tmp_path / "unreachable"
    unreachable.mkdir()
    config = write_config(
        tmp_path,
        [
            google_calendar(
                "revoked",
                service_account_file(refused, token_endpoint.url),
                google_api.endpoint,
                subject=OWNER,
            ),
            google_calendar(
                "offline",
                service_account_file(unreachable, "http://127.0.0.1:9/token"),
                google_api.endpoint,
                subject=OWNER,
            ),
            vdir_calendar(tmp_path, "good"),
        ],
    )
    code, summary, stderr = sync(config)
    assert code == 1
    assert_good_calendar_synced(summary)
    revoked = summary["calendars"]["revoked"]
    assert revoked["error_kind"] == "auth" and "invalid_grant" in revoked["error"]
    assert "google-auth" in revoked["error"]  # what to do about it
    assert summary["calendars"]["offline"]["error_kind"] == "network"
    assert "PRIVATE KEY" not in json.dumps(summary) + stderr and "Traceback" not in stderr
    assert last_run(config, "revoked")["error_kind"] == "auth"


def test_a_vdir_folder_that_disappeared_is_reported_with_its_path(tmp_path: Path) -> None:
    gone = vdir_calendar(tmp_path, "gone")
    config = write_config(tmp_path, [gone, vdir_calendar(tmp_path, "good")])
    assert sync(config)[0] == 0
    shutil.rmtree(gone["path"])
    code, summary, _stderr = sync(config)
    assert code == 1
    assert summary["calendars"]["good"]["ok"] is True
    failed = summary["calendars"]["gone"]
    assert failed["error_kind"] == "not_found" and gone["path"] in failed["error"]


def test_a_template_failing_at_run_time_skips_only_the_events_it_renders(
    tmp_path: Path,
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    shipped = (ROOT / "templates" / "agenda" / "team.txt.j2").read_text(encoding="utf-8")
    # Passes the start-up check (team "team"), fails for the platform team only.
    broken = '{% if team == "platform" %}{{ no_such_value }}{% endif %}' + shipped
    (templates / "team.txt.j2").write_text(broken, encoding="utf-8")
    data = yaml.safe_load((ROOT / "config.example.yaml").read_text(encoding="utf-8"))
    policy = {**data["policy"], "templates": str(templates)}
    config = write_config(tmp_path, [vdir_calendar(tmp_path, "good")], policy=policy)
    code, summary, stderr = sync(config)
    assert code == 1
    failed = [e for e in summary["events"] if e["reason"] == "error_template"]
    assert failed and all(e["kind"] == "unreadable" for e in failed)
    assert all("template" in e["detail"] for e in failed)
    assert summary["actions"]["inserted"] >= 5  # the 1:1s and the other team's meetings
    calendar = summary["calendars"]["good"]
    assert calendar["ok"] is False and calendar["error_kind"] == "template"
    assert calendar["errors"] == {"template": len(failed)}
    assert "Traceback" not in stderr
    # The events did not change, but the failure is not hidden: it is reported
    # again every cycle until the template is fixed, and then they get agendas.
    code, again, _ = sync(config)
    assert code == 1 and again["calendars"]["good"]["error_kind"] == "template"
    retried = [e for e in again["events"] if e["reason"] == "error_template"]
    assert sorted(e["event_id"] for e in retried) == sorted(e["event_id"] for e in failed)
    (templates / "team.txt.j2").write_text(shipped, encoding="utf-8")
    code, fixed, _ = sync(config)
    assert code == 0 and fixed["calendars"]["good"]["ok"] is True
    assert fixed["actions"].get("inserted", 0) >= 1
    assert not [e for e in fixed["events"] if e["reason"] == "error_template"]


def test_the_daemon_releases_the_lease_of_a_calendar_it_cannot_build(
    tmp_path: Path, google_api: Any
) -> None:
    creds = token_file(tmp_path, "http://127.0.0.1:9/token", 0o600)
    config = write_config(
        tmp_path,
        [google_calendar("bad", creds, google_api.endpoint), vdir_calendar(tmp_path, "good")],
    )
    daemon = Daemon(load_config(config))
    try:
        # After start-up, the file becomes readable by others, then goes away.
        creds.chmod(0o644)
        report = daemon.sync_calendar("bad")
        assert report is not None and report.error == "config"
        assert report.error_message is not None and "chmod 600" in report.error_message
        assert daemon.leases.holders(CALENDAR_LEASE)["calendar:bad"] is None
        creds.unlink()
        report = daemon.sync_calendar("bad")
        assert report is not None and report.error == "config"
        assert daemon.leases.holders(CALENDAR_LEASE)["calendar:bad"] is None
        good = daemon.sync_calendar("good")
        assert good is not None and good.ok and good.writes == 7
        text = daemon.metrics.render().decode()
        assert 'feedback_agendas_cycles_total{result="error"} 2.0' in text
        assert 'feedback_agendas_errors_total{kind="config"} 2.0' in text
        runs = [r for r in daemon.store.recent_runs(5) if r.calendar == "bad"]
        assert [(r.ok, r.error_kind) for r in runs] == [(False, "config")] * 2
    finally:
        daemon.shutdown()
        daemon.store.close()


# -- a read-only folder and a full disk, in a private mount namespace -----------


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    return probe.returncode == 0


needs_namespace = pytest.mark.skipif(
    not _unshare_works(), reason="needs unshare -rm (user and mount namespaces)"
)


def sync_in_namespace(config: Path, setup: str) -> tuple[int, dict[str, Any], str]:
    """``feedback-agendas sync --json`` as a new process, after ``setup`` in its namespace."""
    command = f"{setup} && exec {sys.executable} -m feedback_agendas sync --json --config {config}"
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-ec", command],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    return done.returncode, json.loads(done.stdout or "{}"), done.stderr


@needs_namespace
def test_a_read_only_calendar_folder_fails_with_its_path_and_cause(tmp_path: Path) -> None:
    frozen = vdir_calendar(tmp_path, "frozen")
    config = write_config(tmp_path, [frozen, vdir_calendar(tmp_path, "good")])
    folder = frozen["path"]
    before = {p.name: p.read_bytes() for p in Path(folder).iterdir()}
    code, summary, stderr = sync_in_namespace(
        config, f"mount --bind {folder} {folder} && mount -o remount,ro,bind {folder}"
    )
    assert code == 1, stderr
    assert_good_calendar_synced(summary)
    calendar = summary["calendars"]["frozen"]
    assert calendar["ok"] is False and calendar["error_kind"] == "permission"
    assert summary["errors"] == {"permission": 7}
    assert f"cannot write {folder}/" in stderr and "Read-only file system" in stderr
    assert {p.name: p.read_bytes() for p in Path(folder).iterdir()} == before


@needs_namespace
def test_a_full_disk_at_commit_fails_the_cycle_with_a_storage_error(tmp_path: Path) -> None:
    db_dir = tmp_path / "db"
    db_dir.mkdir()
    config = write_config(tmp_path, [vdir_calendar(tmp_path, "good")])
    config.write_text(
        config.read_text().replace(str(tmp_path / "fa.db"), str(db_dir / "fa.db")),
        encoding="utf-8",
    )
    migrate = f"{sys.executable} -m feedback_agendas db upgrade --config {config}"
    fill = f"(dd if=/dev/zero of={db_dir}/filler bs=4096 2>/dev/null || true)"
    fill += f" && truncate -s -48K {db_dir}/filler"  # room to open, none to commit
    code, summary, stderr = sync_in_namespace(
        config, f"mount -t tmpfs -o size=2m tmpfs {db_dir} && {migrate} >/dev/null && {fill}"
    )
    assert code == 1, stderr
    calendar = summary["calendars"]["good"]
    assert calendar["ok"] is False and calendar["error_kind"] == "storage"
    assert "disk is full" in calendar["error"] and "free space" in calendar["error"]
    assert "Traceback" not in stderr


# -- one bad event never stalls a calendar ------------------------------------------


def hostile_copies(folder: Path) -> dict[str, bytes]:
    """Copies of Alice's weekly 1:1 that an outsider's invitation could look like."""
    alice = (folder / "mona-alice-1on1.ics").read_bytes()
    uid = b"UID:mona-alice-1on1@example.com"
    return {
        "long-uid.ics": alice.replace(uid, b"UID:" + b"x" * 2000 + b"@evil.example"),
        "nul-uid.ics": alice.replace(uid, b"UID:evil\x00uid@example.com"),
        "until-9999.ics": alice.replace(uid, b"UID:until-9999@example.com").replace(
            b"RRULE:FREQ=WEEKLY;BYDAY=TU", b"RRULE:FREQ=DAILY;UNTIL=99991231T235959Z"
        ),
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fa.db'}"
        return
    from tests.integration.pg import postgres_schema

    with postgres_schema() as url:
        yield url


def test_hostile_events_are_skipped_alone_and_the_cycle_commits(
    tmp_path: Path, storage_url: str
) -> None:
    calendar = vdir_calendar(tmp_path, "good")
    folder = Path(calendar["path"])
    hostile = hostile_copies(folder)
    for name, data in hostile.items():
        (folder / name).write_bytes(data)
    config = write_config(tmp_path, [calendar], storage={"url": storage_url})
    code, first, stderr = sync(config)
    assert code == 0, stderr
    assert first["calendars"]["good"]["ok"] is True
    events = first["events"]
    skipped = {e["event_id"][:8]: e["reason"] for e in events if e["kind"] == "unreadable"}
    assert skipped == {"x" * 8: "unstorable_id", "evil\x00uid": "unstorable_id"}
    until = [e for e in first["events"] if e["event_id"] == "until-9999@example.com"]
    # A rule to year 9999 is a rule: the series and its moved occurrence get agendas.
    assert [e["action"] for e in until] == ["inserted", "inserted"]
    assert first["writes"] == 7 + 2
    assert first["skipped"]["unstorable_id"] == 4  # two series, each with a moved occurrence
    # The cursor and the records were committed: the next cycle reads nothing again.
    code, second, _stderr = sync(config)
    assert code == 0 and second["writes"] == 0 and second["full_resync"] == []
    assert second["actions"] == {"unchanged": 9}
    for name in ("long-uid.ics", "nul-uid.ics"):  # skipped events are never written
        assert (folder / name).read_bytes() == hostile[name]


def test_long_ids_and_a_long_host_name_still_get_reminders_sent_on_postgresql(
    tmp_path: Path,
) -> None:
    """An event id of 1,000 characters (occurrence key > 512) and a 64-character host name."""
    from datetime import timedelta

    from feedback_agendas.agendas.model import Attendee, EventRef, Meeting
    from feedback_agendas.integrations.calendars.memory import MemoryProvider
    from tests.integration.pg import postgres_schema
    from tests.support.receivers import WebhookReceiver

    monday = datetime(2026, 3, 23, 7, 0, tzinfo=UTC)
    with postgres_schema() as url, WebhookReceiver() as hook:
        data = {
            "storage": {"url": url},
            "calendars": [{"name": "mona", "provider": "memory", "owner": OWNER}],
            "org": {
                "internal_domains": ["example.com"],
                "teams": [
                    {
                        "name": "analys",
                        "manager": OWNER,
                        "members": ["sara@example.com", "erik@example.com"],
                        "timezone": "Europe/Stockholm",
                        "notify": [hook.url("/analys")],
                    }
                ],
            },
        }
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(data), encoding="utf-8")
        calendar = MemoryProvider(name="mona", owner=OWNER)
        start = monday + timedelta(hours=3)
        calendar.put(
            Meeting(
                ref=EventRef("mona", "x" * 1000 + "@outsider.example"),
                title="Veckomöte",
                description="",
                start=start,
                end=start + timedelta(minutes=30),
                owner=OWNER,
                etag="",
                organizer=OWNER,
                attendees=tuple(
                    Attendee(a) for a in (OWNER, "sara@example.com", "erik@example.com")
                ),
                timezone="Europe/Stockholm",
            )
        )
        now = [monday]
        host = "h" * 64  # HOST_NAME_MAX on Linux
        daemon = Daemon(
            load_config(config),
            clock=lambda: now[0],
            provider_factory=lambda _cfg: calendar,
            replica_id=f"{host}-4194304-0a1b2c",
        )
        try:
            report = daemon.sync_calendar("mona")
            assert report is not None and report.ok and report.writes == 1
            assert daemon.outbox.counts().get("pending") == 1
            now[0] = start - timedelta(minutes=30)
            sent = daemon.send_due()
            assert sent.sent == 1 and sent.failed == 0
            assert len(hook.bodies("/analys")) == 1
            assert all(len(key[1]) <= 512 for key in sent.keys)
        finally:
            daemon.shutdown()
            daemon.store.close()


def test_a_bug_hit_by_many_events_is_one_traceback_and_counted_as_internal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from feedback_agendas.agendas.render import AgendaRenderer
    from feedback_agendas.integrations.calendars.vdir import VdirProvider
    from feedback_agendas.scheduler.sync.cycle import run_cycle
    from feedback_agendas.scheduler.sync.org_directory import resolve_rules

    class BuggyRenderer(AgendaRenderer):
        """Our renderer with a bug in the team agendas (not a template error: Python's own)."""

        def render_block(self, plan, fmt):  # type: ignore[no-untyped-def]
            if plan.kind.value == "team":
                raise ZeroDivisionError("integer division or modulo by zero")
            return super().render_block(plan, fmt)

    calendar = vdir_calendar(tmp_path, "good")
    cfg = load_config(write_config(tmp_path, [calendar]))
    provider = VdirProvider("good", Path(calendar["path"]), OWNER, "Europe/Stockholm")
    with Store.open(cfg.storage.url) as store, caplog.at_level(logging.WARNING):
        now = datetime.combine(
            demo_week_start(datetime.now(UTC), "Europe/Stockholm"), datetime.min.time(), UTC
        )
        report = run_cycle(provider, store, resolve_rules(cfg), BuggyRenderer(), now)
    failed = [(ref, reason) for ref, reason, _detail in report.unreadable]
    assert len(failed) >= 3 and {reason for _ref, reason in failed} == {"error_internal"}
    assert report.errors == {"internal": len(failed)} and not report.ok
    assert report.error is None  # the cycle itself finished and committed
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "ZeroDivisionError" in caplog.text
    assert report.actions["inserted"] >= 4  # the 1:1s


def test_a_failing_job_tick_is_one_log_line_and_a_count_not_a_ticker_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import sqlite3

    from feedback_agendas.scheduler.service.daemon import housekeeping_job, register, send_job

    config = write_config(tmp_path, [vdir_calendar(tmp_path, "good")])
    daemon = Daemon(load_config(config))
    try:
        daemon_id = register(daemon)
        with sqlite3.connect(tmp_path / "fa.db") as db:  # the outbox is gone under the daemon
            db.execute("DROP TABLE reminder_outbox")
        with caplog.at_level(logging.WARNING, logger="feedback_agendas.scheduler.service.daemon"):
            send_job(daemon_id)
            housekeeping_job(daemon_id)
        assert [r.getMessage().split(":")[0] for r in caplog.records] == [
            "the send job",
            "the housekeeping job",
        ]
        assert "reminder_outbox" in caplog.text and "storage" in caplog.text
        assert "free space" not in caplog.text  # a missing table is no disk problem
        assert not any(r.exc_info for r in caplog.records)
        text = daemon.metrics.render().decode()
        assert 'feedback_agendas_job_failures_total{job="send",kind="storage"} 1.0' in text
        assert 'feedback_agendas_job_failures_total{job="housekeeping",kind="storage"} 1.0' in text
    finally:
        daemon.stopping.set()
        daemon.store.close()
