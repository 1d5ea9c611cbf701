"""The wheel installs one package, ``feedback_agendas``, with its templates and examples."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(ROOT)],
        check=True, capture_output=True, cwd=out,
    )  # fmt: skip
    (built,) = out.glob("feedback_agendas-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_installs_one_package_with_its_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"feedback_agendas", wheel.name.split("-")[0] + "-0.1.0.dist-info"}
    for expected in (
        "feedback_agendas/__main__.py",
        "feedback_agendas/scheduler/service/cli.py",
        "feedback_agendas/agendas/block.py",
        "feedback_agendas/templates/agenda/strings/en.j2",
        "feedback_agendas/templates/reminders/",
        "feedback_agendas/examples/config.example.yaml",
        "feedback_agendas/examples/calendars/mona/",
        "feedback_agendas/scheduler/storage/migrations/versions/0001_initial.py",
        "feedback_agendas/scheduler/storage/migrations/script.py.mako",
    ):
        assert any(name.startswith(expected) for name in names), expected
    assert not any(
        name.startswith(("feedback_agendas/tests", "feedback_agendas/bench")) for name in names
    )
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "feedback-agendas = feedback_agendas.scheduler.service.cli:main" in text


@pytest.mark.slow
def test_an_installed_wheel_renders_sends_and_demos_from_its_own_files(
    wheel: Path, tmp_path: Path
) -> None:
    """Unpacked wheel first on the path: templates, reminders and the sample come from it."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    script = (
        "import feedback_agendas as f, feedback_agendas.agendas.render as r;"
        " from feedback_agendas.scheduler.reminders.planning import TEMPLATES;"
        " from feedback_agendas.scheduler.service.commands import EXAMPLE_CONFIG;"
        " print(f.__file__); print(TEMPLATES.is_dir()); print(EXAMPLE_CONFIG);"
        " print(r.AgendaRenderer().fingerprint)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    where, templates_found, example, fingerprint = done.stdout.split()
    assert where.startswith(str(site))
    assert templates_found == "True"
    assert example == str(site / "feedback_agendas/examples/config.example.yaml")
    assert Path(example).is_file()
    from feedback_agendas.agendas.render import AgendaRenderer

    assert fingerprint == AgendaRenderer().fingerprint
