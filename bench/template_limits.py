"""How long and how much memory a hostile admin template costs before its limit stops it.

Usage::

    .venv/bin/python -m bench.template_limits

Builds an ``AgendaRenderer`` (which renders every template once, as at
start-up and in ``check-config``) over a folder holding one hostile
``team.txt.j2`` from ``tests/support/hostile_templates.py``, and prints for
each: the seconds it took, the peak memory Python allocated (tracemalloc),
and the problem reported. Without the limits several of them never finish or
need gigabytes. For scale it prints the same figures for our own templates.
"""

from __future__ import annotations

import tempfile
import time
import tracemalloc
from pathlib import Path

from feedback_agendas.agendas.errors import ConfigError
from feedback_agendas.agendas.render import AgendaRenderer
from tests.support.hostile_templates import HOSTILE


def measure(folder: Path | None) -> tuple[float, int, str]:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        AgendaRenderer(folder, clock=time.monotonic)
        outcome = "ok"
    except ConfigError as exc:
        outcome = exc.problems[0].rpartition("team.txt.j2: ")[2][:70]
    elapsed = time.perf_counter() - started
    _size, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed, peak, outcome


def main() -> int:
    rows = [("(our templates)", *measure(None))]
    with tempfile.TemporaryDirectory(prefix="template-limits-") as tmp:
        for name, source in HOSTILE.items():
            folder = Path(tmp) / name
            folder.mkdir()
            (folder / "team.txt.j2").write_text(source, encoding="utf-8")
            rows.append((name, *measure(folder)))
    print(f"{'template':22} {'seconds':>8} {'peak MiB':>9}  outcome")
    for name, seconds, peak, outcome in rows:
        print(f"{name:22} {seconds:8.3f} {peak / 2**20:9.1f}  {outcome}")
    worst = max(rows[1:], key=lambda row: row[1])
    print(f"slowest: {worst[0]} {worst[1]:.3f} s; "
          f"largest peak: {max(row[2] for row in rows) / 2**20:.1f} MiB")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
