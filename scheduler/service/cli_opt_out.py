"""``feedback-agendas opt-out list|add|remove``: the admin's view of self-service opt-outs.

People opt out (and back in) through the signed link in their private
messages; these commands let an admin see and change the same choices. They
apply alongside ``opt_out.users`` in the config, with the same scope: the
person's 1:1s and the meetings they organize.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from feedback_agendas.agendas.errors import UserError
from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.service.cli_daemon import CONFIG, _config
from feedback_agendas.scheduler.service.commands import open_store
from feedback_agendas.scheduler.storage.opt_outs import (
    VIA_CLI,
    add_opt_out,
    list_opt_outs,
    normalise_address,
    remove_opt_out,
)
from feedback_agendas.scheduler.sync.cycle import utc_now

SCOPE = "their 1:1s and the meetings they organize"


def _address(address: str) -> str:
    try:
        return normalise_address(address)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


def _in_config(cfg: AppConfig, address: str) -> bool:
    return address in {user.lower() for user in cfg.opt_out.users}


@click.group("opt-out")
def opt_out() -> None:
    """See and change the self-service opt-outs (people who opted out through their link)."""


@opt_out.command("list")
@CONFIG
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
def list_command(config_path: Path, as_json: bool) -> None:
    """List the people who opted out themselves, and those in the config's opt_out.users."""
    cfg = _config(config_path)
    with open_store(cfg) as store:
        entries = list_opt_outs(store.engine)
    configured = sorted({user.lower() for user in cfg.opt_out.users})
    if as_json:
        data = {
            "self_service": [
                {"address": e.address, "via": e.via, "since": e.opted_out_at.isoformat()}
                for e in entries
            ],
            "config": configured,
        }
        click.echo(json.dumps(data, sort_keys=True))
        return
    for entry in entries:
        click.echo(f"{entry.address}  since {entry.opted_out_at:%Y-%m-%d %H:%M} UTC  ({entry.via})")
    for address in configured:
        click.echo(f"{address}  (config: opt_out.users)")
    if not entries and not configured:
        click.echo("Nobody has opted out.")


@opt_out.command("add")
@CONFIG
@click.argument("address")
def add_command(config_path: Path, address: str) -> None:
    """Opt ADDRESS out of agendas, as their own link would."""
    cfg = _config(config_path)
    folded = _address(address)
    with open_store(cfg) as store:
        added = add_opt_out(store.engine, folded, utc_now(), via=VIA_CLI)
    if added:
        click.echo(
            f"{folded} opted out: the next cycle of each calendar removes our unedited blocks "
            f"from {SCOPE}"
        )
    else:
        click.echo(f"{folded} had already opted out")


@opt_out.command("remove")
@CONFIG
@click.argument("address")
def remove_command(config_path: Path, address: str) -> None:
    """Opt ADDRESS back in (a self-service opt-out only; the config's stay)."""
    cfg = _config(config_path)
    folded = _address(address)
    with open_store(cfg) as store:
        removed = remove_opt_out(store.engine, folded)
    if removed:
        click.echo(f"{folded} opted back in: the next cycle of each calendar writes their agendas")
    else:
        click.echo(f"{folded} had not opted out themselves")
    if _in_config(cfg, folded):
        click.echo(
            f"note: {folded} is still opted out in the config (opt_out.users); edit it there",
            err=True,
        )


OPT_OUT_COMMANDS: list[click.Command] = [opt_out]
