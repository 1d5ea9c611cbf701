"""Block detection and normalisation on hostile descriptions: time against length.

Usage::

    .venv/bin/python bench/block.py [--sizes 10000,100000,1000000]

An outsider's invitation can carry any description. For each kind of
adversarial content below and each size, one ``merge_block`` (find the
markers, read and hash the block, merge) and one ``strip_markers`` are timed;
the best of three runs is printed with the time per character, and the ratio
of the largest size to the smallest tells linear (ratio near the size ratio)
from quadratic (its square). Goal (issue 11): linear, and 1M characters in
under 1 s on one core.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from feedback_agendas.agendas.block import (
    END_MARKER,
    START_MARKER,
    block_hash,
    merge_block,
    strip_markers,
)
from feedback_agendas.agendas.model import TextFormat

BODY = "This you can do better\n- Situation: ___\n- Impact: ___"


def fill(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def inside_block(unit: str, size: int) -> str:
    """Our block with ``unit`` repeated inside it, so the block is read and hashed."""
    return f"{START_MARKER}\n{fill(unit, size)}\n{END_MARKER}"


# name -> (description of that many characters, its format)
CASES: dict[str, Callable[[int], tuple[str, TextFormat]]] = {
    "dash run": lambda n: (fill("─", n), TextFormat.TEXT),
    "entity dash run": lambda n: (fill("&#9472;", n), TextFormat.HTML),
    "hex entity dashes": lambda n: (fill("&#x0002500;&boxh;", n), TextFormat.HTML),
    "start marker, no end dash": lambda n: (fill("── feedback agenda \n", n), TextFormat.TEXT),
    "markers in a sentence": lambda n: (fill("x ── feedback agenda ── ", n), TextFormat.TEXT),
    "dashes and gaps": lambda n: (fill("─ &nbsp;<b>─", n), TextFormat.HTML),
    "open comments in a block": lambda n: (inside_block("<!--", n), TextFormat.HTML),
    "unclosed tags in a block": lambda n: (inside_block("<b <a href='", n), TextFormat.HTML),
    "entities in a block": lambda n: (inside_block("&amp;&#9472;&nbsp;&lt;", n), TextFormat.HTML),
    "many copies of a block": lambda n: (
        fill(f"{START_MARKER}\n{BODY}\n{END_MARKER}\n\n", n),
        TextFormat.TEXT,
    ),
}


def best_of(runs: int, action: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        began = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - began)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    known = block_hash(BODY)
    print(f"{'content':28} " + " ".join(f"{n:>12,}" for n in sizes) + "  ratio  ns/char")
    worst = 0.0
    for name, build in CASES.items():
        times = []
        for size in sizes:
            description, fmt = build(size)
            block_hash.cache_clear()

            def once(description: str = description, fmt: TextFormat = fmt) -> None:
                merge_block(description, fmt, BODY, known)
                strip_markers(description)

            times.append(best_of(3, once))
        worst = max(worst, times[-1])
        ratio = times[-1] / times[0] if times[0] else float("nan")
        per_char = times[-1] / sizes[-1] * 1e9
        cells = " ".join(f"{t:>11.4f}s" for t in times)
        print(f"{name:28} {cells}  {ratio:5.0f}  {per_char:7.1f}")
    print(f"slowest at {sizes[-1]:,} characters: {worst:.3f} s")


if __name__ == "__main__":
    main()
