"""CLI commands of the long-running service: ``run`` and ``log-win``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from feedback_agendas.agendas.errors import UserError

CONFIG = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("config.yaml"),
    show_default=True,
    help="The YAML config file.",
)


def _config(config_path: Path):  # type: ignore[no-untyped-def]
    from feedback_agendas.scheduler.config.source import load_config

    try:
        return load_config(config_path)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


@click.command()
@CONFIG
@click.option("--interval", type=float, default=None, help="Seconds between cycles of a calendar.")
def run(config_path: Path, interval: float | None) -> None:
    """Keep agendas current and send reminders until stopped (SIGTERM/SIGINT).

    SIGHUP, or a change of the config file, reloads the config.
    """
    from feedback_agendas.scheduler.service.loop import run_forever

    cfg = _config(config_path)
    try:
        code = run_forever(cfg, config_path=config_path, interval_seconds=interval, echo=click.echo)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    sys.exit(code)


@click.command("log-win")
@CONFIG
@click.option("--team", required=True, help="The team the win belongs to.")
@click.option("--kind", type=click.Choice(["praise", "corrective"]), required=True)
def log_win(config_path: Path, team: str, kind: str) -> None:
    """Record one feedback win given outside a meeting (no free text is stored)."""
    from feedback_agendas.scheduler.reminders.after_sync import reminder_settings
    from feedback_agendas.scheduler.reminders.outbox import Outbox
    from feedback_agendas.scheduler.reminders.wins import Wins, log_win_today
    from feedback_agendas.scheduler.storage.store import Store
    from feedback_agendas.scheduler.sync.cycle import utc_now

    cfg = _config(config_path)
    found = cfg.teams().get(team)
    if found is None:
        click.echo(f"error: no team named {team!r}", err=True)
        sys.exit(2)
    try:
        store = Store.open(cfg.storage.url)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    with store:
        outbox = Outbox(store.engine, max_attempts=cfg.reminders.max_attempts)
        log_win_today(Wins(store.engine), outbox, found, kind, reminder_settings(cfg), utc_now())
    if kind == "praise":
        click.echo(f"logged a praise win for {team}; the team will be celebrated today")
    else:
        click.echo(f"logged a corrective win for {team}; it counts in the manager's private digest")


DAEMON_COMMANDS: list[click.Command] = [run, log_win]
