"""Self-service opt-outs: the people who chose, themselves, to get no agendas.

A person opts out (or back in) through the signed link in their private
messages, an admin through ``feedback-agendas opt-out add|remove`` or the
dashboard. The choice applies alongside ``opt_out.users`` from the config,
with the same scope: that person's 1:1s and the meetings they organize.

One row per opted-out address (lower case), with how it was recorded and
when; opting back in deletes the row. Nothing else about the person is kept.

The API is four functions on an engine: :func:`list_opt_outs`,
:func:`add_opt_out`, :func:`remove_opt_out` and :func:`is_opted_out`
(:func:`opted_out_addresses` gives the set the sync cycle needs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError

from feedback_agendas.agendas.errors import UserError
from feedback_agendas.scheduler.storage.db import write_transaction
from feedback_agendas.scheduler.storage.tables import self_opt_outs

# The longest address SMTP allows (RFC 5321: 64 + 1 + 255): the column's width.
MAX_ADDRESS = 320
# How a choice was recorded: the person's own link, the CLI, the dashboard.
VIA_LINK = "link"
VIA_CLI = "cli"
VIA_DASHBOARD = "dashboard"
VIAS = frozenset({VIA_LINK, VIA_CLI, VIA_DASHBOARD})

_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class OptOutEntry:
    """One self-service opt-out: who, how it was recorded, since when."""

    address: str
    via: str
    opted_out_at: datetime


def normalise_address(address: str) -> str:
    """``address`` stripped and in lower case; UserError when it is not an address."""
    folded = address.strip().lower()
    if len(folded) > MAX_ADDRESS or not _ADDRESS.match(folded):
        raise UserError(f"not an email address: {address[:80]!r}")
    return folded


def list_opt_outs(engine: Engine) -> list[OptOutEntry]:
    """Every self-service opt-out, by address."""
    t = self_opt_outs.c
    with engine.connect() as conn:
        rows = conn.execute(select(t.address, t.via, t.opted_out_at).order_by(t.address)).all()
    return [OptOutEntry(row.address, row.via, row.opted_out_at) for row in rows]


def opted_out_addresses(engine: Engine) -> frozenset[str]:
    """The addresses opted out by self-service, lower case."""
    with engine.connect() as conn:
        return frozenset(conn.scalars(select(self_opt_outs.c.address)))


def is_opted_out(engine: Engine, address: str) -> bool:
    """True when ``address`` opted out by self-service (``opt_out.users`` is not consulted)."""
    folded = normalise_address(address)
    with engine.connect() as conn:
        found = conn.scalar(
            select(self_opt_outs.c.address).where(self_opt_outs.c.address == folded)
        )
    return found is not None


def add_opt_out(engine: Engine, address: str, now: datetime, *, via: str) -> bool:
    """Record that ``address`` wants no agendas; False when it already had opted out.

    An existing opt-out keeps its first time and way.
    """
    if via not in VIAS:
        raise ValueError(f"unknown way of opting out: {via!r}")
    folded = normalise_address(address)
    t = self_opt_outs
    try:
        with write_transaction(engine) as conn:
            if conn.scalar(select(t.c.address).where(t.c.address == folded)) is not None:
                return False
            conn.execute(t.insert().values(address=folded, via=via, opted_out_at=now))
    except IntegrityError:  # another replica recorded the same choice first
        return False
    return True


def remove_opt_out(engine: Engine, address: str) -> bool:
    """Opt ``address`` back in; False when it had not opted out by self-service."""
    folded = normalise_address(address)
    with write_transaction(engine) as conn:
        result = conn.execute(delete(self_opt_outs).where(self_opt_outs.c.address == folded))
    return bool(result.rowcount)
