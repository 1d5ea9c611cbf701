"""Imports go one way only: scheduler -> integrations -> agendas; the core stays pure."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What each layer may not import (by top-level module name).
FORBIDDEN = {
    "agendas": {
        "integrations",
        "scheduler",
        "sqlalchemy",
        "alembic",
        "googleapiclient",
        "google",
        "caldav",
        "requests",
        "httplib2",
        "apprise",
        "apscheduler",
        "socket",
        "subprocess",
        "urllib",
        "http",
        "time",
        "random",
    },
    "integrations": {"scheduler"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def layer_of(module: str) -> str:
    """``feedback_agendas.scheduler.x`` -> ``scheduler``; a library's top-level name as it is."""
    parts = module.split(".")
    return parts[1] if parts[0] == "feedback_agendas" and len(parts) > 1 else parts[0]


def layer_files(layer: str) -> list[Path]:
    return sorted((ROOT / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_downwards(layer: str) -> None:
    files = layer_files(layer)
    assert files, f"no files found for layer {layer}"
    violations = []
    for path in files:
        for module in imported_modules(path):
            if layer_of(module) in FORBIDDEN[layer]:
                violations.append(f"{path.relative_to(ROOT)} imports {module}")
    assert violations == []


def test_our_modules_are_imported_through_the_one_package() -> None:
    """The layers are installed as ``feedback_agendas.*``; a bare ``scheduler`` would not exist."""
    bare = {"agendas", "integrations", "scheduler", "templates", "examples"}
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for folder in ("agendas", "integrations", "scheduler", "tests", "bench")
        for path in layer_files(folder)
        for module in imported_modules(path)
        if module.split(".")[0] in bare
    ]
    assert offenders == []


def test_core_reads_no_clock() -> None:
    """Time is an argument in the core: no datetime.now(), date.today() or utcnow()."""
    offenders = []
    for path in layer_files("agendas"):
        source = path.read_text(encoding="utf-8")
        for needle in (".now(", ".today(", "utcnow(", "open("):
            if needle in source:
                offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert offenders == []


def test_the_checker_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import sqlalchemy\nfrom feedback_agendas.scheduler.storage.store import Store\n",
        encoding="utf-8",
    )
    assert {"sqlalchemy", "feedback_agendas.scheduler.storage.store"} <= imported_modules(bad)
