"""The rules fingerprint: a short hash of everything that changes what a sync writes.

It is stored with each calendar's cursor; a cycle whose fingerprint differs
from the stored one lists its calendar in full (see
:mod:`feedback_agendas.scheduler.sync.cycle`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from datetime import date, time
from enum import Enum
from typing import Any

from feedback_agendas.agendas.policy import Rules
from feedback_agendas.agendas.render import AgendaRenderer


def rules_fingerprint(rules: Rules, renderer: AgendaRenderer) -> str:
    """A short hash of everything that changes what we would write.

    Stored with the cursor: when an admin edits the config (an opt-out, a
    new team member, a reworded norm), the next cycle lists the calendar in
    full and re-decides every event, even though no event changed.

    It is computed from a canonical serialisation (:func:`canonical_rules`),
    so the same config gives the same value in every process, on every
    machine and Python version: a new ``sync`` process (cron), a restarted
    daemon and every replica keep the stored cursor. ``repr()`` would not do:
    the order of a frozenset changes with the per-process hash seed.
    Callers that run many cycles with the same rules compute it once and pass
    it to :func:`run_cycle`.
    """
    canonical = {
        "rules": canonical_rules(rules),
        "templates": getattr(renderer, "fingerprint", ""),
    }
    raw = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(raw.encode("ascii")).hexdigest()[:12]


def canonical_rules(value: Any) -> Any:
    """``value`` (the frozen rules objects) as plain JSON data in one canonical order.

    Dataclasses become objects keyed by field name (their type named too);
    sets and frozensets become sorted lists; mappings get sorted keys; tuples
    keep their order (the config's order, the same in every process); dates
    and enums become text. Fields kept out of ``repr`` (notification URLs,
    which may hold tokens) never change what we write and are left out.
    """
    if is_dataclass(value) and not isinstance(value, type):
        data = {f.name: canonical_rules(getattr(value, f.name)) for f in fields(value) if f.repr}
        return {"type": type(value).__name__, **data}
    if isinstance(value, Enum):
        return canonical_rules(value.value)
    if isinstance(value, (set, frozenset)):
        members = [canonical_rules(v) for v in value]
        return sorted(members, key=lambda m: json.dumps(m, sort_keys=True))
    if isinstance(value, (list, tuple)):
        return [canonical_rules(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): canonical_rules(v) for k, v in value.items()}
    if isinstance(value, (date, time)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"no canonical form for {type(value).__name__} in the rules")
