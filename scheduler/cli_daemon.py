"""CLI commands of the long-running service: ``run`` (and, later, ``log-win``)."""

from __future__ import annotations

from pathlib import Path

import click

from agendas.errors import UserError


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              default=Path("config.yaml"), show_default=True, help="The YAML config file.")
@click.option("--interval", type=float, default=None, help="Seconds between cycles.")
def run(config_path: Path, interval: float | None) -> None:
    """Keep agendas current: run a sync cycle on an interval until stopped."""
    from scheduler.config import load_config
    from scheduler.loop import run_forever

    try:
        cfg = load_config(config_path)
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    run_forever(cfg, interval_seconds=interval, echo=click.echo)


DAEMON_COMMANDS: list[click.Command] = [run]
