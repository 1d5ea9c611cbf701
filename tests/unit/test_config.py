"""The config file: validated once, every problem at once with file:line:key, secrets kept out."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from feedback_agendas.agendas.errors import ConfigError, UserError
from feedback_agendas.agendas.policy import Focus
from feedback_agendas.integrations.calendars.caldav import CaldavCalendar
from feedback_agendas.integrations.calendars.google import GoogleCalendar
from feedback_agendas.integrations.calendars.vdir import VdirCalendar
from feedback_agendas.scheduler.config.checks import check_config
from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.config.source import load_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.yaml"

MINIMAL = """\
calendars:
  - name: mona
    provider: memory
    owner: mona@example.com
org:
  internal_domains: [example.com]
"""


def write(folder: Path, text: str, name: str = "config.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={} if environ is None else environ)
    return caught.value.problems


def uncomment_block(text: str, first_line: str) -> str:
    """Uncomment the commented-out example that starts at the line containing ``first_line``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if first_line in line)
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    i = start
    while i < len(lines) and lines[i].startswith(indent + "# "):
        lines[i] = indent + lines[i][len(indent) + 2 :]
        i += 1
    return "\n".join(lines) + "\n"


# --- the example ------------------------------------------------------------


def test_the_example_loads_into_the_demo_org() -> None:
    cfg = load_config(EXAMPLE, environ={})

    assert cfg.storage.url == f"sqlite:///{ROOT / 'feedback-agendas.db'}"
    [calendar] = cfg.calendars
    assert isinstance(calendar, VdirCalendar)
    assert (calendar.name, calendar.owner, calendar.timezone) == (
        "mona",
        "mona@example.com",
        "Europe/Stockholm",
    )
    assert calendar.path == ROOT / "examples" / "calendars" / "mona"
    platform, analys = cfg.org.teams
    assert platform.positive_only_until is None
    assert platform.goals == ("Ship the billing API by March", "Cut on-call pages by half")
    assert analys.positive_only_until == dt.date(2027, 3, 31)
    assert analys.goals == ("Halvera tiden till insikt i dashboarden",)
    assert cfg.warnings == ()


def test_the_example_builds_the_cores_rules() -> None:
    rules = load_config(EXAMPLE, environ={}).rules()

    assert rules.org.internal_domains == frozenset({"example.com"})
    platform = rules.org.team("platform")
    analys = rules.org.team("analys")
    assert platform is not None and analys is not None
    assert platform.manager == "mona@example.com"
    assert platform.members == frozenset(
        {"alice@example.com", "bob@example.com", "dan@example.com"}
    )
    assert (platform.locale, platform.timezone) == ("en", "Europe/Stockholm")
    assert analys.members == {"sara@example.com", "lena@example.com", "erik@example.com"}
    assert (analys.locale, analys.positive_only_until) == ("sv", dt.date(2027, 3, 31))
    assert rules.policy.horizon_days == 14
    assert rules.policy.one_on_one_focus is Focus.BETTER
    assert rules.policy.team_meeting_keywords == (
        "standup",
        "stand-up",
        "team",
        "retro",
        "veckomöte",
    )
    assert rules.policy.team_norm_enabled and rules.policy.trust_checkin
    assert rules.opt_out.users == frozenset({"erik@example.com"})
    assert rules.opt_out.marker == "#no-agenda"


def test_the_commented_examples_in_the_example_are_valid(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for first_line in (
        "- name: mona-google",
        "- name: mona-caldav",
        "- discover: google_directory",
        "- discover: microsoft_directory",
        "# directory:",
        "# team_defaults:",
        "# email:",
        "# quiet_hours:",
        "# text:",
    ):
        text = uncomment_block(text, first_line)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "service-account.json").write_text("{}", encoding="utf-8")
    path = write(tmp_path, text)

    cfg = load_config(
        path,
        environ={"CALDAV_PASSWORD": "pw-from-env", "SMTP_PASSWORD": "pw", "MS_CLIENT_SECRET": "s"},
    )

    _vdir, google, caldav = cfg.calendars
    assert isinstance(google, GoogleCalendar)
    assert google.credentials == tmp_path / "secrets" / "service-account.json"
    assert (google.calendar_id, google.batch_size, google.writes_per_minute) == ("primary", 50, 60)
    assert isinstance(caldav, CaldavCalendar)
    assert caldav.password is not None
    assert caldav.password.get_secret_value() == "pw-from-env"
    source, microsoft = cfg.calendar_sources
    assert source.credentials == google.credentials
    assert (microsoft.discover, microsoft.write_mode) == ("microsoft_directory", "reminder")
    assert (source.org_units, source.exclude) == (("/Engineering",), ("ceo@example.com",))
    assert cfg.org.directory is not None
    assert cfg.org.team_defaults.goals == ("Ask for feedback every week",)
    assert cfg.reminders.email is not None
    assert cfg.reminders.email.get_secret_value().endswith("?to={address}")
    assert cfg.reminders.quiet_hours is not None
    assert cfg.reminders.quiet_hours.start == dt.time(20, 0)
    assert set(cfg.rules().policy.team_norm_text) == {"en", "sv"}


def test_daemon_sections_have_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL), environ={})

    assert (cfg.server.host, cfg.server.port, cfg.server.public_url) == ("127.0.0.1", 8787, None)
    assert (cfg.sync.interval_seconds, cfg.sync.jitter) == (300, 0.25)
    assert cfg.reminders.before_one_on_one_minutes == 60
    assert cfg.reminders.weekly_digest is not None
    assert cfg.reminders.weekly_digest.weekday == "fri"
    assert cfg.reminders.max_attempts == 5
    assert cfg.storage.url == f"sqlite:///{tmp_path / 'feedback-agendas.db'}"


# --- problems, with file, line and key --------------------------------------


def test_an_unknown_key_is_rejected_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        calendars:
          - name: mona
            provider: memory
            owner: mona@example.com
          - name: work
            provider: memory
            colour: red
            owner: work@example.com
        org:
          internal_domains: [example.com]
        """,
    )

    assert problems_of(path) == [f"{path}:7: calendars[1].colour: unknown key"]


def test_every_problem_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        storage: {url: "mysql://db.example.com/agendas"}
        calendars:
          - name: mona
            provider: vdir
            owner: mona@example.com
          - name: cloud
            provider: exchange
            owner: x@example.com
        org:
          internal_domains: [example.com]
          teams:
            - name: platform
              manager: mona@example.com
              locale: de
              timezone: Mars/Olympus
              positive_only_until: 2026-13-01
        policy:
          one_on_one_focus: sometimes
          horizon_days: 0
        server: {port: 70000}
        """,
    )

    assert problems_of(path) == [
        f"{path}:1: storage.url: use sqlite:///FILE or postgresql+psycopg://USER@HOST/DB",
        f"{path}:3: calendars[0].path: missing required key",
        f"{path}:7: calendars[1].provider: "
        "should be one of: vdir, google, caldav, memory, microsoft",
        f"{path}:14: org.teams[0].locale: Input should be 'en' or 'sv'",
        f"{path}:15: org.teams[0].timezone: unknown time zone 'Mars/Olympus'"
        " (use an IANA name such as Europe/Stockholm)",
        f"{path}:16: org.teams[0].positive_only_until: Input should be a valid date or"
        " datetime, month value is outside expected range of 1-12",
        f"{path}:18: policy.one_on_one_focus: Input should be 'well', 'better', 'stop' or 'rotate'",
        f"{path}:19: policy.horizon_days: Input should be greater than or equal to 1",
        f"{path}:20: server.port: Input should be less than or equal to 65535",
    ]


def test_a_missing_key_points_at_the_mapping_it_is_missing_from(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        calendars:
          - name: mona
            provider: memory
            owner: mona@example.com
        org:
          teams: []
        """,
    )

    assert problems_of(path) == [f"{path}:5: org.internal_domains: missing required key"]


def test_a_bad_locale_names_the_allowed_ones(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL
        + "  teams:\n    - {name: platform, manager: mona@example.com, locale: fr}\n"
        + "policy:\n  team_norm:\n    text: {en: Our way, de: Unser Weg}\n",
    )

    assert problems_of(path) == [
        f"{path}:8: org.teams[0].locale: Input should be 'en' or 'sv'",
        f"{path}:11: policy.team_norm.text.de: Input should be 'en' or 'sv'",
    ]


@pytest.mark.parametrize("zone", ["Europe/Stokholm", "CEST", "../../etc/passwd", ""])
def test_a_timezone_must_be_a_known_iana_zone(tmp_path: Path, zone: str) -> None:
    path = write(
        tmp_path,
        MINIMAL
        + f"  teams:\n    - name: a\n      manager: mona@example.com\n      timezone: '{zone}'\n",
    )

    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:10: org.teams[0].timezone: unknown time zone")


def test_a_valid_timezone_is_kept(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL + "  teams:\n    - {name: a, manager: mona@example.com, timezone: Asia/Kolkata}\n",
    )

    assert load_config(path, environ={}).org.teams[0].timezone == "Asia/Kolkata"


def test_invalid_yaml_syntax_gives_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        calendars:
          - name: mona
            provider: memory
            owner: mona@example.com
        org:
          internal_domains: [example.com
          teams: []
        """,
    )

    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:7: YAML syntax error:")


def test_a_tab_indent_is_a_syntax_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(MINIMAL + "policy:\n\thorizon_days: 3\n", encoding="utf-8")

    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:8: YAML syntax error:")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "1: the file is empty"), ("- a\n- b\n", "1: the file must be a mapping of sections")],
)
def test_a_file_that_is_not_a_mapping(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)

    assert problems_of(path) == [f"{path}:{expected}"]


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"

    assert problems_of(path) == [f"{path}: cannot read the file: No such file or directory"]


def test_a_config_error_is_a_user_error(tmp_path: Path) -> None:
    """The CLI prints user errors without a traceback."""
    with pytest.raises(UserError):
        load_config(write(tmp_path, "org: [\n"), environ={})


# --- uniqueness and references ----------------------------------------------


def test_duplicate_names_and_keys_are_rejected(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        calendars:
          - {name: mona, provider: memory, owner: mona@example.com}
          - {name: Mona, provider: memory, owner: other@example.com}
        org:
          internal_domains: [example.com]
          teams:
            - {name: platform, manager: mona@example.com}
            - {name: platform, manager: other@example.com}
        policy:
          horizon_days: 7
          horizon_days: 21
        """,
    )

    assert problems_of(path) == [
        f"{path}:3: calendars[1].name: duplicate calendar name (also calendars[0])",
        f"{path}:8: org.teams[1].name: duplicate team name (also org.teams[0])",
        f"{path}:11: policy.horizon_days: duplicate key",
    ]


def test_team_people_must_be_in_the_internal_domains(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        calendars:
          - {name: mona, provider: memory, owner: mona@example.com}
        org:
          internal_domains: [Example.COM]
          teams:
            - name: platform
              manager: boss@partner.org
              members:
                - alice@EXAMPLE.com
                - bob@gmail.com
        """,
    )

    assert problems_of(path) == [
        f"{path}:7: org.teams[0].manager: boss@partner.org is not in org.internal_domains",
        f"{path}:10: org.teams[0].members[1]: bob@gmail.com is not in org.internal_domains",
    ]


def test_opt_outs_must_name_configured_teams_and_calendars(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL
        + """\
  teams: [{name: platform, manager: mona@example.com}]
opt_out:
  teams: [platform, plattform]
  calendars: [mona, work]
""",
    )

    assert problems_of(path) == [
        f"{path}:9: opt_out.teams[1]: no team named 'plattform'",
        f"{path}:10: opt_out.calendars[1]: no calendar named 'work'",
    ]


def test_rules_lower_case_every_address(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        calendars:
          - {name: mona, provider: memory, owner: Mona@Example.com}
        org:
          internal_domains: ["@Example.COM"]
          teams:
            - name: platform
              manager: Mona@Example.com
              members: [Alice@EXAMPLE.com]
        opt_out: {users: [Erik@Example.com]}
        """,
    )

    rules = load_config(path, environ={}).rules()

    team = rules.org.team("platform")
    assert team is not None
    assert (team.manager, team.members) == ("mona@example.com", frozenset({"alice@example.com"}))
    assert rules.org.internal_domains == frozenset({"example.com"})
    assert rules.opt_out.users == frozenset({"erik@example.com"})
    assert rules.org.is_internal("alice@example.com")


# --- environment variables ---------------------------------------------------

CALDAV = MINIMAL.replace(
    "calendars:\n",
    """\
calendars:
  - name: dav
    provider: caldav
    url: ${DAV_URL}
    username: mona
    password: ${DAV_PASSWORD}
    calendar: "work ($${NOT_A_VAR})"
    owner: mona@example.com
""",
)


def test_env_vars_are_substituted_into_strings(tmp_path: Path) -> None:
    path = write(tmp_path, CALDAV)

    cfg = load_config(
        path, environ={"DAV_URL": "https://dav.example.com/", "DAV_PASSWORD": "s3cret-pw"}
    )

    dav = cfg.calendars[0]
    assert isinstance(dav, CaldavCalendar)
    assert dav.url == "https://dav.example.com/"
    assert dav.password is not None and dav.password.get_secret_value() == "s3cret-pw"
    assert dav.calendar == "work (${NOT_A_VAR})"


def test_env_vars_default_to_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FA_TEST_DOMAIN", "example.org")
    path = write(tmp_path, MINIMAL.replace("[example.com]", "[example.com, '${FA_TEST_DOMAIN}']"))

    assert load_config(path).org.internal_domains == ("example.com", "example.org")


def test_a_substituted_value_is_validated_like_a_written_one(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "server:\n  port: ${PORT}\n")

    assert load_config(path, environ={"PORT": "9000"}).server.port == 9000
    assert problems_of(path, {"PORT": "lots"}) == [
        f"{path}:8: server.port: Input should be a valid integer, unable to parse string as an"
        " integer"
    ]


def test_a_missing_env_var_names_file_line_and_key_but_no_secret(tmp_path: Path) -> None:
    path = write(tmp_path, CALDAV)

    problems = problems_of(path, {"DAV_URL": "https://admin:url-secret@dav.example.com/"})

    assert problems == [
        f"{path}:6: calendars[0].password: environment variable DAV_PASSWORD is not set"
    ]
    assert "url-secret" not in "\n".join(problems)


def test_no_problem_message_carries_a_secret_value(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL
        + "server:\n  port: ${SECRET}\n  public_url: ${SECRET}\nsync: {jitter: '${SECRET}'}\n",
    )

    problems = problems_of(path, {"SECRET": "hunter2-token"})

    assert len(problems) == 3
    assert "hunter2" not in "\n".join(problems)


# --- paths --------------------------------------------------------------------


def test_relative_paths_are_relative_to_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc" / "agendas"
    (folder / "secrets").mkdir(parents=True)
    (folder / "secrets" / "key.json").write_text("{}", encoding="utf-8")
    (folder / "my-templates").mkdir()
    write(
        folder,
        """\
        storage: {url: "sqlite:///state/agendas.db"}
        calendars:
          - {name: mona, provider: vdir, path: cals/mona, owner: mona@example.com}
          - name: g
            provider: google
            owner: mona@example.com
            credentials: secrets/key.json
        org:
          internal_domains: [example.com]
        policy: {templates: my-templates}
        """,
    )
    monkeypatch.chdir(tmp_path)  # the working directory must not matter

    cfg = load_config(Path("etc/agendas/config.yaml"), environ={})

    vdir, google = cfg.calendars
    assert isinstance(vdir, VdirCalendar) and isinstance(google, GoogleCalendar)
    assert vdir.path == folder / "cals" / "mona"
    assert google.credentials == folder / "secrets" / "key.json"
    assert cfg.policy.templates == folder / "my-templates"
    assert cfg.storage.url == f"sqlite:///{folder / 'state' / 'agendas.db'}"


def test_absolute_paths_and_memory_sqlite_stay_as_written(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL.replace("provider: memory", "provider: vdir\n    path: /srv/cals/mona")
        + 'storage: {url: "sqlite:///:memory:"}\n',
    )

    cfg = load_config(path, environ={})

    assert cfg.storage.url == "sqlite:///:memory:"
    assert isinstance(cfg.calendars[0], VdirCalendar)
    assert cfg.calendars[0].path == Path("/srv/cals/mona")


def test_a_missing_template_folder_is_a_config_problem_a_missing_credentials_file_is_not(
    tmp_path: Path,
) -> None:
    """A credentials file that is missing fails its calendar at run time, not every calendar
    (tests/integration/test_fault_isolation.py); check-config reports it."""
    path = write(
        tmp_path,
        """\
        calendars:
          - {name: g, provider: google, owner: mona@example.com, credentials: missing.json}
        org:
          internal_domains: [example.com]
        policy: {templates: nowhere}
        """,
    )

    assert problems_of(path) == [
        f"{path}:5: policy.templates: folder not found: {tmp_path / 'nowhere'}",
    ]


def test_postgres_urls_use_psycopg_3(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + 'storage: {url: "postgresql://postgres@127.0.0.1/test"}\n')

    assert load_config(path, environ={}).storage.url == (
        "postgresql+psycopg://postgres@127.0.0.1/test"
    )


# --- google ---------------------------------------------------------------------

GOOGLE = """\
calendars:
  - name: g
    provider: google
    owner: mona@example.com
    credentials: anonymous
{endpoint}
org:
  internal_domains: [example.com]
"""


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8080/calendar/v3/",
        "http://localhost:9/calendar/v3/",
        "http://[::1]:8080/calendar/v3/",
        "http://127.0.0.2/calendar/v3/",
    ],
)
def test_anonymous_credentials_are_allowed_on_loopback(tmp_path: Path, endpoint: str) -> None:
    path = write(tmp_path, GOOGLE.format(endpoint=f"    api_endpoint: {endpoint}"))

    google = load_config(path, environ={}).calendars[0]

    assert isinstance(google, GoogleCalendar)
    assert (google.credentials, google.api_endpoint) == ("anonymous", endpoint)


@pytest.mark.parametrize(
    "endpoint",
    [
        "",
        "    api_endpoint: https://www.googleapis.com/calendar/v3/",
        "    api_endpoint: http://127.0.0.1.example.com/calendar/v3/",
        "    api_endpoint: http://10.0.0.1/calendar/v3/",
    ],
)
def test_anonymous_credentials_are_refused_elsewhere(tmp_path: Path, endpoint: str) -> None:
    path = write(tmp_path, GOOGLE.format(endpoint=endpoint))

    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:5: calendars[0].credentials: 'anonymous' is allowed only")


@pytest.mark.parametrize("size", [0, 1001])
def test_google_batch_size_is_bounded(tmp_path: Path, size: int) -> None:
    text = GOOGLE.format(endpoint=f"    api_endpoint: http://127.0.0.1:1/\n    batch_size: {size}")
    path = write(tmp_path, text)

    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:7: calendars[0].batch_size: Input should be")


# --- secrets and immutability --------------------------------------------------------


def test_secrets_never_appear_in_repr_or_str(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        CALDAV.replace("  teams", "")
        + """\
  teams:
    - name: platform
      manager: mona@example.com
      notify: ["json://127.0.0.1:9/hook?token=${HOOK_TOKEN}"]
storage: {url: "postgresql+psycopg://agendas:${PGPASSWORD}@127.0.0.1/test"}
people:
  - {email: mona@example.com, notify: ["mailto://mona:${SMTP_PASSWORD}@127.0.0.1:2525"]}
""",
    )
    secrets = {
        "DAV_URL": "https://dav.example.com/",
        "DAV_PASSWORD": "caldav-secret-1",
        "HOOK_TOKEN": "hook-secret-2",
        "PGPASSWORD": "pg-secret-3",
        "SMTP_PASSWORD": "smtp-secret-4",
    }

    cfg = load_config(path, environ=secrets)

    shown = repr(cfg) + str(cfg) + repr(cfg.storage) + str(cfg.calendars) + repr(cfg.people)
    for name in ("DAV_PASSWORD", "HOOK_TOKEN", "PGPASSWORD", "SMTP_PASSWORD"):
        assert secrets[name] not in shown
    assert "agendas:***@127.0.0.1" in repr(cfg.storage)
    # The values are still there for the code that needs them.
    assert cfg.storage.url == "postgresql+psycopg://agendas:pg-secret-3@127.0.0.1/test"
    assert cfg.rules().org.teams[0].notify == ("json://127.0.0.1:9/hook?token=hook-secret-2",)


def test_the_config_is_frozen(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL), environ={})

    with pytest.raises(ValidationError):
        cfg.policy.horizon_days = 99
    assert isinstance(cfg, AppConfig)


# --- daemon sections and warnings ------------------------------------------------------


def test_unquoted_clock_times_are_times_not_base_60_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL
        + "reminders:\n  quiet_hours: {start: 20:00, end: 07:30}\n"
        + "  weekly_digest: {weekday: mon, time: 09:15}\n",
    )

    reminders = load_config(path, environ={}).reminders

    assert reminders.quiet_hours is not None
    assert (reminders.quiet_hours.start, reminders.quiet_hours.end) == (
        dt.time(20, 0),
        dt.time(7, 30),
    )
    assert reminders.weekly_digest is not None
    assert reminders.weekly_digest.time == dt.time(9, 15)


def test_turning_tls_verification_off_is_a_warning(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        calendars:
          - name: dav
            provider: caldav
            url: https://dav.test/
            calendar: work
            owner: mona@example.com
            verify_tls: false
          - name: local
            provider: caldav
            url: http://127.0.0.1:5232/
            password: pw
            calendar: work
            owner: mona@example.com
        org:
          internal_domains: [example.com]
        """,
    )

    cfg = load_config(path, environ={})

    assert cfg.warnings == (
        "calendars[0] (dav): verify_tls is off; the server's certificate is not checked",
    )


def test_a_password_over_plain_http_elsewhere_is_a_warning(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        calendars:
          - {name: dav, provider: caldav, url: "http://dav.test/", password: pw,
             calendar: work, owner: mona@example.com}
        org:
          internal_domains: [example.com]
        """,
    )

    assert load_config(path, environ={}).warnings == (
        "calendars[0] (dav): the password is sent without TLS (http://)",
    )


# --- check_config ------------------------------------------------------------------


def test_check_config_returns_no_problems_for_a_valid_file(tmp_path: Path) -> None:
    team = "  teams: [{name: t, manager: mona@example.com, members: [alice@example.com]}]\n"
    assert check_config(write(tmp_path, MINIMAL + team)) == []
    assert check_config(EXAMPLE) == []


def test_check_config_returns_every_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path, MINIMAL + "policy: {focus: better}\nopt_out: {users: [not-an-address]}\n"
    )

    assert check_config(path) == [
        f"{path}:7: policy.focus: unknown key",
        f"{path}:8: opt_out.users[0]: not an email address (name@domain)",
    ]


def test_control_characters_in_text_written_into_events_are_refused(tmp_path: Path) -> None:
    """A goal or norm with a YAML escape such as "\\0" or "\\x1b" would land in every event."""
    example = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    goal = '        - "Cut on-call pages by half"'
    assert goal in example
    path = write(
        tmp_path, example.replace(goal, '        - "Ship\\0the \\x1b[31mbilling"'), "c.yaml"
    )
    [problem] = problems_of(path)
    assert "org.teams[0].goals[1]" in problem
    assert "control character \\x00 is not allowed" in problem
    assert "\x1b" not in problem


def test_a_discovery_source_sits_in_calendars_and_its_problems_at_their_lines(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        """\
        calendars:
          - discover: google_directory
            credentials: anonymous
            api_endpoint: http://127.0.0.1:9/
            subject: not-an-address
            org_units: [Engineering]
          - name: mona
            provider: memory
            owner: mona
          - discover: someone_elses_directory
            credentials: anonymous
            api_endpoint: http://127.0.0.1:9/
        org:
          internal_domains: [example.com]
        """,
    )
    assert problems_of(path) == [
        f"{path}:5: calendars[0].subject: not an email address (name@domain)",
        f"{path}:6: calendars[0].org_units[0]: an org unit path starts with '/' "
        "(such as /Engineering) and has no quote",
        f"{path}:9: calendars[1].owner: not an email address (name@domain)",
        f"{path}:10: calendars[2].discover: should be one of: google_directory, "
        "microsoft_directory",
    ]


def test_one_discovery_source_is_a_whole_config(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        calendars:
          - discover: google_directory
            credentials: anonymous
            api_endpoint: http://127.0.0.1:9/
            domain: Example.com
            exclude: [ceo@example.com]
        org:
          internal_domains: [example.com]
        opt_out:
          calendars: [someone@example.com]
        """,
    )
    cfg = load_config(path)
    assert cfg.calendars == ()
    [source] = cfg.calendar_sources
    assert source.domain == "example.com" and source.max_removal_share == 0.1
    assert problems_of(write(tmp_path, "calendars: []\norg:\n  internal_domains: [x.org]\n")) == [
        f"{tmp_path / 'config.yaml'}:1: calendars: list at least one calendar, or a source "
        "(discover: ...)"
    ]


def test_a_team_entry_with_only_a_manager_sets_a_directory_teams_settings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        calendars:
          - name: mona
            provider: memory
            owner: mona@example.com
        org:
          internal_domains: [example.com]
          team_defaults:
            timezone: Europe/Stockholm
            goals: [Ask weekly]
          teams:
            - manager: lena@example.com
              locale: sv
            - manager: bo@example.com
              members: [al@example.com]
        reminders:
          email: "mailto://127.0.0.1:25?to=someone@example.com"
        """,
    )
    assert problems_of(path) == [
        f"{path}:13: org.teams[1].name: a team with members needs a name (an entry with only "
        "a manager sets the settings of that manager's team from org.directory)",
        f"{path}:16: reminders.email: put {{address}} where the person's address goes "
        "(…?to={address})",
    ]
    text = path.read_text(encoding="utf-8")
    text = "".join(
        line for line in text.splitlines(True) if "bo@" not in line and "al@" not in line
    )
    cfg = load_config(write(tmp_path, text.replace("to=someone@example.com", "to={address}")))
    assert cfg.org.configured_teams == () and cfg.rules().org.teams == ()
    lena = cfg.org.directory_team_settings("Lena@example.com")
    assert (lena["locale"], lena["timezone"], lena["goals"]) == (
        "sv",
        "Europe/Stockholm",
        ("Ask weekly",),
    )
    other = cfg.org.directory_team_settings("someone@example.com")
    assert (other["locale"], other["notify"]) == ("en", ())
