"""Config of the dashboard: server.admin, server.secret, and the loopback rule."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from feedback_agendas.agendas.errors import ConfigError
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.cli import main
from feedback_agendas.scheduler.service.web.passwords import verify_password

BASE = """\
calendars:
  - name: mona
    provider: memory
    owner: mona@example.com
org:
  internal_domains: [example.com]
"""


def load(tmp_path: Path, server: str, environ: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    path = tmp_path / "config.yaml"
    path.write_text(BASE + "server:\n" + textwrap.indent(textwrap.dedent(server), "  "))
    return path, (lambda: load_config(path, environ=environ or {}))


def problems(tmp_path: Path, server: str, environ: dict[str, str] | None = None) -> list[str]:
    _path, loader = load(tmp_path, server, environ)
    with pytest.raises(ConfigError) as caught:
        loader()
    return caught.value.problems


def test_the_dashboard_off_loopback_without_a_login_is_refused_with_its_line(
    tmp_path: Path,
) -> None:
    path, _ = load(tmp_path, "host: 0.0.0.0\n")
    (problem,) = problems(tmp_path, "host: 0.0.0.0\n")
    assert problem.startswith(f"{path}:8: server.host: the dashboard on 0.0.0.0")
    assert "server.admin" in problem and "trusted_proxy_header" in problem


@pytest.mark.parametrize(
    "server",
    [
        "host: 0.0.0.0\ndashboard: false\n",
        "host: 0.0.0.0\ntrusted_proxy_header: X-Forwarded-User\n",
        "host: 127.0.0.1\n",
        "host: localhost\n",
    ],
)
def test_a_login_a_proxy_or_loopback_lets_it_start(tmp_path: Path, server: str) -> None:
    _path, loader = load(tmp_path, server)
    loader()


def test_admin_password_hashes_the_password_from_the_environment(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["admin-password"], env={"FA_ADMIN_PASSWORD": "s3cret pass"})
    assert result.exit_code == 0, result.output
    hashed = result.output.strip()
    assert "s3cret" not in hashed and verify_password("s3cret pass", hashed)
    _path, loader = load(
        tmp_path,
        "host: 0.0.0.0\nadmin: {username: admin, password_hash: '${HASH}'}\n",
        environ={"HASH": hashed},
    )
    cfg = loader()
    assert cfg.server.admin is not None and cfg.server.admin.username == "admin"
    assert "scrypt" not in repr(cfg)  # kept as a secret


def test_a_bad_hash_or_a_short_secret_is_a_problem(tmp_path: Path) -> None:
    found = problems(tmp_path, "admin: {username: admin, password_hash: hunter2}\nsecret: short\n")
    assert any("server.admin.password_hash" in p and "admin-password" in p for p in found)
    assert any("server.secret" in p and "16 characters" in p for p in found)
