"""Vague praise: praise that names no behaviour ("good job", "bra jobbat").

The read-back counts how many filled praise entries are vague, as a number
only, so that the digest can nudge a team towards specific praise. The text
itself never leaves :func:`feedback_agendas.agendas.block.count_praise`.
"""

from __future__ import annotations

import re

# Praise that names no behaviour. Compared after folding case, punctuation and
# emoji away, so "Good job!!" and "bra jobbat :)" both count.
VAGUE_PRAISE = frozenset(
    {
        "good job",
        "great job",
        "nice job",
        "well done",
        "good work",
        "great work",
        "nice work",
        "awesome",
        "great",
        "good",
        "nice",
        "thanks",
        "thank you",
        "kudos",
        "bra jobbat",
        "bra jobbat allihop",
        "snyggt",
        "snyggt jobbat",
        "bra gjort",
        "grymt",
        "grymt jobbat",
        "tack",
        "tack så mycket",
        "toppen",
        "kanon",
        "bra",
        "fint jobbat",
        "härligt",
        "strålande",
    }
)
_NOT_WORD = re.compile(r"[^\w\s]+")
_MIN_SPECIFIC_WORDS = 4


def is_vague_praise(entry: str) -> bool:
    """True when a praise entry names no behaviour: a stock phrase or a few words only."""
    words = _NOT_WORD.sub(" ", entry.casefold()).split()
    folded = " ".join(words)
    if folded in VAGUE_PRAISE:
        return True
    # "bra jobbat Kim", "good job team": a stock phrase plus a name is still vague.
    if len(words) < _MIN_SPECIFIC_WORDS:
        return any(folded.startswith(phrase) for phrase in VAGUE_PRAISE if " " in phrase)
    return False
