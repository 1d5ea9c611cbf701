"""check-config checks what sync will meet on this machine, with file:line:key for each problem.

Each case is a config that ``load_config`` accepts but ``sync`` (or the
daemon) would then fail on, for one calendar or at start-up; ``check-config``
must not say ok for it, and must name the line and key to fix.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from feedback_agendas.scheduler.config.checks import check_config
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.cli import main as cli_main

TEAM = "    - {name: t, manager: mona@example.com, members: [alice@example.com]}\n"


def config(tmp_path: Path, calendar: str, *, org_extra: str = "", top: str = "") -> Path:
    text = (
        top
        + "calendars:\n"
        + textwrap.indent(textwrap.dedent(calendar), "  ")
        + "org:\n  internal_domains: [example.com]\n  teams:\n"
        + TEAM
        + org_extra
    )
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    load_config(path, environ={})  # valid as a file: only check-config can catch these
    return path


VDIR = """\
- name: mona
  provider: vdir
  path: {path}
  owner: mona@example.com
"""


def test_a_good_config_is_ok(tmp_path: Path) -> None:
    (tmp_path / "cal").mkdir()
    path = config(tmp_path, VDIR.format(path="cal"))
    result = CliRunner().invoke(cli_main, ["check-config", "--config", str(path)])
    assert (result.exit_code, result.output) == (0, f"{path}: ok\n")


def test_a_vdir_folder_that_does_not_exist(tmp_path: Path) -> None:
    path = config(tmp_path, VDIR.format(path="missing"))
    assert check_config(path) == [
        f"{path}:4: calendars[0].path: folder not found: {tmp_path / 'missing'}"
    ]


def test_a_vdir_path_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "cal.ics").write_text("", encoding="utf-8")
    path = config(tmp_path, VDIR.format(path="cal.ics"))
    assert check_config(path) == [
        f"{path}:4: calendars[0].path: not a folder: {tmp_path / 'cal.ics'}"
    ]


def test_a_vdir_path_too_long_for_the_file_system(tmp_path: Path) -> None:
    path = config(tmp_path, VDIR.format(path="x" * 300))
    [problem] = check_config(path)
    assert problem.startswith(f"{path}:4: calendars[0].path: folder not found: ")


GOOGLE = """\
- name: mona
  provider: google
  owner: mona@example.com
  credentials: key.json
  {subject}
"""
SERVICE_ACCOUNT = {
    "type": "service_account",
    "client_email": "sa@p.iam.gserviceaccount.com",
    "token_uri": "https://oauth2.googleapis.com/token",
    "private_key_id": "k",
}


def service_account_key(tmp_path: Path, mode: int) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    file = tmp_path / "key.json"
    file.write_text(json.dumps({**SERVICE_ACCOUNT, "private_key": pem}), encoding="utf-8")
    file.chmod(mode)
    return file


def test_private_loadable_credentials_are_ok(tmp_path: Path) -> None:
    service_account_key(tmp_path, 0o600)
    assert check_config(config(tmp_path, GOOGLE.format(subject="subject: mona@example.com"))) == []


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_credentials_readable_by_others(tmp_path: Path, mode: int) -> None:
    key = service_account_key(tmp_path, mode)
    path = config(tmp_path, GOOGLE.format(subject="subject: mona@example.com"))
    assert check_config(path) == [
        f"{path}:5: calendars[0].credentials: credentials file {key} is readable by other "
        f"users; run: chmod 600 {key}"
    ]


def test_credentials_that_sync_cannot_load(tmp_path: Path) -> None:
    key = service_account_key(tmp_path, 0o600)
    no_subject = config(tmp_path, GOOGLE.format(subject=""))
    assert check_config(no_subject) == [
        f"{no_subject}:5: calendars[0].credentials: credentials file {key} is a service "
        "account: set subject"
    ]
    key.write_text("not json", encoding="utf-8")
    path = config(tmp_path, GOOGLE.format(subject="subject: mona@example.com"))
    assert check_config(path) == [
        f"{path}:5: calendars[0].credentials: credentials file {key} is not a readable JSON file"
    ]


def test_the_directorys_credentials_are_checked_too(tmp_path: Path) -> None:
    (tmp_path / "cal").mkdir()
    key = service_account_key(tmp_path, 0o644)
    directory = "  directory: {provider: google, credentials: key.json, subject: a@example.com}\n"
    path = config(tmp_path, VDIR.format(path="cal"), org_extra=directory)
    assert check_config(path) == [
        f"{path}:10: org.directory.credentials: credentials file {key} is readable by other "
        f"users; run: chmod 600 {key}"
    ]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("sqlite:///no/such/folder/fa.db", "the database's folder not found: {tmp}/no/such/folder"),
        ("sqlite:///a-file/fa.db", "the database's not a folder: {tmp}/a-file"),
        ("sqlite:///a-folder", "the database {tmp}/a-folder is not a file"),
    ],
)
def test_the_sqlite_database_folder_must_exist(tmp_path: Path, url: str, problem: str) -> None:
    (tmp_path / "cal").mkdir()
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    (tmp_path / "a-folder").mkdir()
    path = config(tmp_path, VDIR.format(path="cal"), top=f"storage:\n  url: {url}\n")
    assert check_config(path) == [f"{path}:2: storage.url: {problem.format(tmp=tmp_path)}"]


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/unshare").exists(),
                    reason="needs a read-only bind mount (unshare -rm)")  # fmt: skip
def test_a_read_only_folder(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "cal").mkdir()
    path = config(tmp_path, VDIR.format(path="cal"))
    script = (
        f"mount --bind {tmp_path / 'cal'} {tmp_path / 'cal'} && "
        f"mount -o remount,bind,ro {tmp_path / 'cal'} && "
        f"{sys.executable} -c 'from feedback_agendas.scheduler.config.checks import check_config; "
        f'print(check_config(__import__("pathlib").Path("{path}")))\''
    )
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True,
                            text=True, cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    if result.returncode != 0 and "mount" in result.stderr:
        pytest.skip(f"no bind mounts here: {result.stderr.strip()[:80]}")
    assert "cannot write to the folder" in result.stdout, result.stderr


def test_teams_that_make_no_sense(tmp_path: Path) -> None:
    (tmp_path / "cal").mkdir()
    path = tmp_path / "config.yaml"
    path.write_text(
        "calendars:\n"
        + textwrap.indent(VDIR.format(path="cal"), "  ")
        + "org:\n  internal_domains: [example.com]\n  teams: []\n",
        encoding="utf-8",
    )
    assert check_config(path) == [
        f"{path}:8: org.teams: no teams and no org.directory: no 1:1 would ever get an agenda "
        "(list a team, or set org.directory)"
    ]
    path.write_text(
        path.read_text().replace(
            "teams: []",
            "teams:\n    - name: t\n      manager: mona@example.com\n"
            "      members: [alice@example.com, Mona@example.com]",
        ),
        encoding="utf-8",
    )
    assert check_config(path) == [
        f"{path}:11: org.teams[0].members[1]: Mona@example.com is this team's manager; "
        "list the manager only as manager"
    ]


def test_admin_templates_are_compiled_and_rendered(tmp_path: Path) -> None:
    (tmp_path / "cal").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "team.txt.j2").write_text(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        encoding="utf-8",
    )
    (tmp_path / "templates" / "team.html.j2").write_text("{% if %}", encoding="utf-8")
    path = config(tmp_path, VDIR.format(path="cal"), top="policy:\n  templates: templates\n")
    html, txt = tmp_path / "templates" / "team.html.j2", tmp_path / "templates" / "team.txt.j2"
    assert check_config(path) == [
        f"{path}:2: policy.templates: {html}:1: Expected an expression, got 'end of statement "
        "block'",
        f"{path}:2: policy.templates: {txt}: line 1: over a limit: range: an argument of 100000",
    ]


def test_an_opt_out_marker_found_in_our_own_wording(tmp_path: Path) -> None:
    (tmp_path / "cal").mkdir()
    path = config(tmp_path, VDIR.format(path="cal"), top="opt_out:\n  marker: feedback\n")
    problems = check_config(path)
    assert problems and all(p.startswith(f"{path}:2: opt_out.marker: ") for p in problems)
    assert "opt-out marker" in problems[0]


def test_check_config_exits_2_and_prints_each_problem(tmp_path: Path) -> None:
    path = config(tmp_path, VDIR.format(path="missing"))
    result = CliRunner().invoke(cli_main, ["check-config", "--config", str(path)])
    assert result.exit_code == 2
    assert result.output == (
        f"{path}:4: calendars[0].path: folder not found: {tmp_path / 'missing'}\n"
    )


def test_a_storage_file_that_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "cal").mkdir()
    (tmp_path / "notes.txt").write_text("not a database, but a longer text " * 10)
    path = config(tmp_path, VDIR.format(path="cal"), top="storage:\n  url: sqlite:///notes.txt\n")
    assert check_config(path) == [
        f"{path}:2: storage.url: {tmp_path / 'notes.txt'} is not a SQLite database"
    ]


def test_a_notify_url_apprise_cannot_use_is_named_by_its_place_not_its_secret(
    tmp_path: Path,
) -> None:
    (tmp_path / "cal").mkdir()
    people = (
        "people:\n  - email: alice@example.com\n"
        "    notify: ['json://127.0.0.1:9/ok', 'nosuchscheme://user:SECRET@host/']\n"
    )
    path = config(tmp_path, VDIR.format(path="cal"), top=people)
    assert check_config(path) == [
        f"{path}:3: people[0].notify[1]: apprise cannot use this URL (check its scheme and parts)"
    ]


def test_a_database_migrated_by_a_newer_version(tmp_path: Path) -> None:
    import sqlite3

    (tmp_path / "cal").mkdir()
    path = config(tmp_path, VDIR.format(path="cal"), top="storage:\n  url: sqlite:///fa.db\n")
    assert check_config(path) == []  # no database yet: sync creates it
    from feedback_agendas.scheduler.storage.store import Store

    Store.open(f"sqlite:///{tmp_path / 'fa.db'}").close()
    assert check_config(path) == []  # ours, at head
    with sqlite3.connect(tmp_path / "fa.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    [problem] = check_config(path)
    assert problem.startswith(f"{path}:2: storage.url: the database is at revision 9999, which")


def test_one_discovery_source_needs_no_teams_and_the_email_channel_is_checked(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    text = textwrap.dedent(
        """\
        calendars:
          - discover: google_directory
            credentials: anonymous
            api_endpoint: http://127.0.0.1:9/
            domain: example.com
        org:
          internal_domains: [example.com]
        reminders:
          email: "{url}"
        """
    )
    good = "mailto://127.0.0.1:2525?from=agendas@example.com&to={address}"
    path.write_text(text.format(url=good), encoding="utf-8")
    assert check_config(path) == []
    path.write_text(text.format(url="nosuchscheme://x/{address}"), encoding="utf-8")
    assert check_config(path) == [
        f"{path}:9: reminders.email: apprise cannot use this URL (check its scheme and parts)"
    ]
