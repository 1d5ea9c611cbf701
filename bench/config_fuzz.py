"""Fuzz the config loader: mutated configs must give a config or FILE:LINE problems.

Usage::

    .venv/bin/python -m bench.config_fuzz [--cases 10000] [--seed 1]

Each case is one of the seed configs (``config.example.yaml`` as shipped and
with its commented examples on, and a small config with every section) after
one to four random edits (``tests/config_mutations.py``), checked with
``check_config`` as ``feedback-agendas check-config`` does. Prints how many
cases gave a config, gave problems, or crashed, and each distinct crash cause
(exception type and the place in our code) with a count and a shortest
example. Exits 1 when anything crashed. ``tests/unit/test_config_fuzz.py``
runs the same mutations with Hypothesis, fewer of them.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.config_mutations import mutate, outcome, seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    rnd = random.Random(args.seed)
    texts = seeds()
    results: Counter[str] = Counter()
    examples: dict[str, str] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="config-fuzz-") as tmp:
        path = Path(tmp) / "config.yaml"
        for _ in range(args.cases):
            text = mutate(rnd.choice(texts), rnd)
            result = outcome(path, text)
            results[result] += 1
            if result.startswith("crash") and len(text) < len(examples.get(result, text + " ")):
                examples[result] = text
    elapsed = time.perf_counter() - started

    crashes = {k: v for k, v in results.items() if k.startswith("crash")}
    print(f"cases: {args.cases} (seed {args.seed}, {elapsed:.1f} s)")
    print(f"  gave a config:   {results['config']}")
    print(f"  gave problems:   {results['problems']}")
    print(f"  crashed:         {sum(crashes.values())} ({len(crashes)} distinct causes)")
    for cause, count in sorted(crashes.items(), key=lambda item: -item[1]):
        print(f"    {count:6d}  {cause.removeprefix('crash: ')}")
        print(f"            shortest example ({len(examples[cause])} chars): "
              f"{examples[cause][:200]!r}")  # fmt: skip
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
