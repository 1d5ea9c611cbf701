"""ConfigReloader: what a touch, an edit, a broken file and a vanished file do.

The real loader and ``check-config``'s checks on real files; the daemon is
stood in for by the ``apply`` callable the reloader is given (the daemon's
side is tests/integration/test_reload.py).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.metrics import DaemonMetrics
from feedback_agendas.scheduler.service.reload import (
    APPLIED,
    REJECTED,
    UNCHANGED,
    ConfigReloader,
    keep_running_settings,
    problem_place,
)

SECRET = "s3cret-token-value-9d2f"


def config_data(tmp: Path, goal: str = "Ship the beta") -> dict[str, Any]:
    return {
        "storage": {"url": f"sqlite:///{tmp / 'fa.db'}"},
        "calendars": [{"name": "mona", "provider": "memory", "owner": "mona@example.com"}],
        "org": {
            "internal_domains": ["example.com"],
            "teams": [
                {
                    "name": "analys",
                    "manager": "mona@example.com",
                    "members": ["sara@example.com"],
                    "goals": [goal],
                }
            ],
        },
    }


def write(path: Path, data: dict[str, Any] | str) -> None:
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")


class Applied:
    """The ``apply`` callable: records each config, answers the keys that need a restart."""

    def __init__(self, needs_restart: tuple[str, ...] = ()) -> None:
        self.configs: list[AppConfig] = []
        self.needs_restart = needs_restart

    def __call__(self, cfg: AppConfig) -> tuple[str, ...]:
        self.configs.append(cfg)
        return self.needs_restart


def sample(metrics: DaemonMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, ConfigReloader, Applied, DaemonMetrics]:
    path = tmp_path / "config.yaml"
    write(path, config_data(tmp_path))
    applied = Applied()
    metrics = DaemonMetrics()
    reloader = ConfigReloader(path, load_config(path), applied, metrics, environ={})
    return path, reloader, applied, metrics


def bump_mtime(path: Path) -> None:
    """As ``touch`` does, but certainly a different mtime (the clock's tick can be coarse)."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_a_file_that_did_not_change_is_not_read_and_a_touch_changes_nothing(
    setup: tuple[Path, ConfigReloader, Applied, DaemonMetrics],
) -> None:
    path, reloader, applied, metrics = setup
    assert reloader.check() is None  # same stat: not even read
    bump_mtime(path)
    assert reloader.check() == UNCHANGED
    assert reloader.check() is None  # the new stat is remembered
    assert applied.configs == []
    assert reloader.generation == 1
    assert sample(metrics, "feedback_agendas_config_reloads_total", result="unchanged") == 1
    assert sample(metrics, "feedback_agendas_config_generation") == 1


def test_an_edit_is_applied_and_bumps_the_generation(
    setup: tuple[Path, ConfigReloader, Applied, DaemonMetrics], tmp_path: Path
) -> None:
    path, reloader, applied, metrics = setup
    write(path, config_data(tmp_path, goal="Celebrate the launch"))
    bump_mtime(path)
    assert reloader.check() == APPLIED
    [cfg] = applied.configs
    assert cfg.org.teams[0].goals == ("Celebrate the launch",)
    assert reloader.config is cfg
    assert reloader.generation == 2
    assert sample(metrics, "feedback_agendas_config_generation") == 2
    assert sample(metrics, "feedback_agendas_config_reloads_total", result="applied") == 1
    assert sample(metrics, "feedback_agendas_config_last_reload_error", error="") == 0


def test_a_broken_edit_is_rejected_with_file_line_and_key_and_the_old_config_stays(
    setup: tuple[Path, ConfigReloader, Applied, DaemonMetrics],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path, reloader, applied, metrics = setup
    old = reloader.config
    data = config_data(tmp_path)
    data["org"]["teams"][0]["locale"] = SECRET  # not a locale; its value must not leak
    write(path, data)
    bump_mtime(path)
    with caplog.at_level(logging.WARNING):
        assert reloader.check() == REJECTED
    assert applied.configs == []
    assert reloader.config is old
    assert reloader.generation == 1
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "locale:" in text)
    place = f"config.yaml:{line}: org.teams[0].locale"
    assert reloader.last_error == place
    assert f"{path}:{line}: org.teams[0].locale: " in caplog.text  # as check-config says it
    assert "still running generation 1" in caplog.text
    assert SECRET not in caplog.text
    assert sample(metrics, "feedback_agendas_config_last_reload_error", error=place) == 1
    assert sample(metrics, "feedback_agendas_config_reloads_total", result="rejected") == 1
    assert SECRET not in metrics.render().decode()

    # The same broken bytes again: nothing new to say. Fixed: applied, the error cleared.
    bump_mtime(path)
    assert reloader.check() == UNCHANGED
    write(path, config_data(tmp_path, goal="Fixed"))
    bump_mtime(path)
    assert reloader.check() == APPLIED
    assert reloader.last_error is None
    assert sample(metrics, "feedback_agendas_config_last_reload_error", error=place) is None
    assert sample(metrics, "feedback_agendas_config_last_reload_error", error="") == 0


def test_the_checks_of_check_config_run_too(
    setup: tuple[Path, ConfigReloader, Applied, DaemonMetrics], tmp_path: Path
) -> None:
    path, reloader, applied, _metrics = setup
    data = config_data(tmp_path)
    data["org"]["teams"][0]["members"].append("mona@example.com")  # the manager as a member
    write(path, data)
    bump_mtime(path)
    assert reloader.check() == REJECTED
    assert reloader.last_error is not None
    assert reloader.last_error.endswith(": org.teams[0].members[1]")
    assert applied.configs == []


def test_a_vanished_file_is_rejected_not_a_crash_and_its_return_is_applied(
    setup: tuple[Path, ConfigReloader, Applied, DaemonMetrics],
    caplog: pytest.LogCaptureFixture,
) -> None:
    path, reloader, applied, _metrics = setup
    text = path.read_text()
    path.unlink()
    with caplog.at_level(logging.WARNING):
        assert reloader.check() == REJECTED
    assert "cannot read the file" in caplog.text
    assert reloader.last_error == "config.yaml"
    assert reloader.check() is None  # still gone: not logged again
    write(path, text)
    assert reloader.check() == APPLIED
    assert reloader.generation == 2
    assert reloader.last_error is None
    assert len(applied.configs) == 1


def test_sighup_reloads_even_the_same_bytes_and_poll_looks_at_the_file_every_interval(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    write(path, config_data(tmp_path))
    applied = Applied()
    now = [100.0]
    reloader = ConfigReloader(
        path, load_config(path), applied, DaemonMetrics(), clock=lambda: now[0], check_every=2.0
    )
    reloader.request()  # the SIGHUP handler
    assert reloader.poll() == APPLIED
    assert reloader.generation == 2
    assert reloader.poll() is None  # the flag was taken; the file's turn is not yet due

    write(path, config_data(tmp_path, goal="Later"))
    bump_mtime(path)
    now[0] += 1.0
    assert reloader.poll() is None  # 1 s after start: not looked at yet
    now[0] += 1.5
    assert reloader.poll() == APPLIED
    assert [c.org.teams[0].goals for c in applied.configs] == [("Ship the beta",), ("Later",)]


def test_variables_are_expanded_as_at_start_and_a_missing_one_is_rejected(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    write(path, config_data(tmp_path))
    applied = Applied()
    environ = {"GOAL": "From the environment"}
    reloader = ConfigReloader(path, load_config(path), applied, DaemonMetrics(), environ=environ)
    write(path, config_data(tmp_path, goal="${GOAL}"))
    bump_mtime(path)
    assert reloader.check() == APPLIED
    assert applied.configs[-1].org.teams[0].goals == ("From the environment",)
    del environ["GOAL"]
    assert reloader.reload(forced=True) == REJECTED
    assert reloader.last_error is not None
    assert reloader.last_error.endswith(": org.teams[0].goals[0]")


def test_settings_that_need_a_restart_keep_their_running_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.yaml"
    data = config_data(tmp_path)
    data["server"] = {"port": 8787, "secret": SECRET + "-long-enough"}
    write(path, data)
    running = load_config(path)
    data["server"] = {"port": 9999, "secret": "another-secret-of-16+", "ready_after_intervals": 5}
    data["storage"] = {"url": "postgresql://fa@db.example.com/fa"}
    data["org"]["teams"][0]["goals"] = ["New goal"]
    write(path, data)
    new = load_config(path)

    effective, keys = keep_running_settings(running, new)
    assert keys == ("storage.url", "server.port", "server.secret")
    assert effective.server.port == 8787
    assert effective.server.secret == running.server.secret
    assert effective.storage == running.storage
    assert effective.server.ready_after_intervals == 5  # the rest applies
    assert effective.org.teams[0].goals == ("New goal",)
    assert keep_running_settings(running, running) == (running, ())

    metrics = DaemonMetrics()
    reloader = ConfigReloader(path, running, Applied(keys), metrics)
    with caplog.at_level(logging.WARNING):
        assert reloader.reload(forced=True) == APPLIED
    assert "server.secret changed; it takes effect after a restart" in caplog.text
    assert SECRET not in caplog.text
    assert sample(metrics, "feedback_agendas_config_needs_restart", setting="server.port") == 1


@pytest.mark.parametrize(
    ("problem", "place"),
    [
        (
            "/etc/fa/config.yaml:12: org.teams[0].goals[1]: too long",
            "config.yaml:12: org.teams[0].goals[1]",
        ),
        ("/etc/fa/config.yaml:3: YAML syntax error: mapping values", "config.yaml:3"),
        ("/etc/fa/config.yaml: cannot read the file: gone", "config.yaml"),
        (
            "/etc/fa/config.yaml:7: calendars[2].password: value 'hunter2: x'",
            "config.yaml:7: calendars[2].password",
        ),
        ("somewhere else: odd", "config.yaml"),
    ],
)
def test_the_metric_label_holds_the_place_only(problem: str, place: str) -> None:
    assert problem_place(problem, Path("/etc/fa/config.yaml")) == place
