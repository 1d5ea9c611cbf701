"""The ``feedback-agendas`` command line. Thin: it parses, calls ``commands``, prints.

It runs past 400 lines only because it lists every command with its options and
help text; each command's work is a function elsewhere (``commands``,
``cli_daemon``, ``cli_opt_out``) and providers add their own commands.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import click

from feedback_agendas.agendas.decide import Decision
from feedback_agendas.agendas.errors import UserError
from feedback_agendas.integrations.calendars.registry import provider_specs
from feedback_agendas.scheduler.config.schema import AppConfig
from feedback_agendas.scheduler.service import commands
from feedback_agendas.scheduler.sync.cycle import utc_now
from feedback_agendas.scheduler.sync.report import CycleReport, summarise

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("config.yaml"),
    show_default=True,
    help="The YAML config file.",
)


CALENDAR_OPTION = click.option(
    "--calendar",
    "calendars",
    multiple=True,
    metavar="NAME",
    help="Only this calendar (its name in the config, which may be an address); repeatable.",
)


def _fail(exc: UserError) -> NoReturn:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


def _load(config_path: Path) -> AppConfig:
    try:
        cfg = commands.load(config_path)
    except UserError as exc:
        _fail(exc)
    for warning in cfg.warnings:
        click.echo(f"warning: {warning}", err=True)
    return cfg


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def main(verbose: bool) -> None:
    """feedback-agendas: feedback agendas in your team's calendar."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@main.command("check-config")
@CONFIG_OPTION
def check_config(config_path: Path) -> None:
    """Check the config and what it names here (folders, credentials, database, teams,
    templates), without the network; exit 0 if ok, 2 with every problem otherwise."""
    from feedback_agendas.scheduler.config.checks import check_config as check

    problems = check(config_path)
    if problems:
        for problem in problems:
            click.echo(problem, err=True)
        sys.exit(2)
    for warning in commands.load(config_path).warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{config_path}: ok")


@main.command()
@CONFIG_OPTION
@click.option("--dry-run", is_flag=True, help="Decide, but write nothing and store nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
@CALENDAR_OPTION
def sync(config_path: Path, dry_run: bool, as_json: bool, calendars: tuple[str, ...]) -> None:
    """Run one sync cycle over every configured calendar.

    Exit codes: 0 every calendar ok; 1 some calendar failed (the others were
    synced; see the JSON's ``calendars``); 2 bad config, or nothing could start
    (database, templates).
    """
    cfg = _load(config_path)
    try:
        reports = commands.sync_all(cfg, utc_now(), dry_run=dry_run, calendars=calendars)
    except UserError as exc:
        _fail(exc)
    except Exception as exc:
        logging.getLogger(__name__).error("sync could not start", exc_info=exc)
        click.echo(f"error: sync could not start: {type(exc).__name__}", err=True)
        sys.exit(2)
    summary = summarise(reports)
    summary["dry_run"] = dry_run
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
    else:
        for report in reports:
            click.echo(_decision_table(report))
        click.echo(_totals_line(summary))
        for report in reports:
            if report.error_message:
                click.echo(f"failed: {report.error_message}", err=True)
        for conflict in summary["privacy_conflicts"]:
            event = f"{conflict['event_id']} {conflict['recurrence_id'] or ''}".rstrip()
            click.echo(
                f"privacy conflict: {conflict['calendar']}: {event}: corrective words left "
                f"in a meeting that is no longer a 1:1 ({conflict['reason']})",
                err=True,
            )
    if any(not r.ok for r in reports):
        sys.exit(1)


@main.command()
@CONFIG_OPTION
@click.option("--dry-run", is_flag=True, help="List what would be removed; change nothing.")
@CALENDAR_OPTION
def revert(config_path: Path, dry_run: bool, calendars: tuple[str, ...]) -> None:
    """Remove every unedited agenda block we wrote; list the edited ones left alone."""
    cfg = _load(config_path)
    try:
        result = commands.revert_all(cfg, utc_now(), dry_run=dry_run, calendars=calendars)
    except UserError as exc:
        _fail(exc)
    verb = "would remove" if dry_run else "removed"
    for calendar, rep in result.items():
        click.echo(f"{calendar}: {verb} {len(rep.removed)} block(s)")
        for ref in rep.left_edited:
            click.echo(f"  left edited: {ref.event_id} {ref.recurrence_id or ''}".rstrip())
        for ref in rep.failed:
            click.echo(f"  failed: {ref.event_id} {ref.recurrence_id or ''}".rstrip())


@main.command()
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True)
def status(config_path: Path, as_json: bool) -> None:
    """Show each calendar's last run and what we hold about it, and count the opt-outs.

    ``--json`` prints the calendars only (one key per calendar, as before);
    ``opt-out list --json`` gives the opt-outs.
    """
    cfg = _load(config_path)
    try:
        data = commands.status(cfg)
        opted_out = commands.self_opt_out_count(cfg)
    except UserError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(data, sort_keys=True, default=str))
        return
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    configured = len({user.lower() for user in cfg.opt_out.users})
    click.echo(
        f"opted out: {opted_out} by themselves (feedback-agendas opt-out list), "
        f"{configured} in the config (opt_out.users)"
    )


@main.command()
@CONFIG_OPTION
@click.option("--user", "address", required=True, metavar="ADDRESS", help="Whose meetings.")
@click.option(
    "--days",
    type=click.IntRange(min=1, max=366),
    default=14,
    show_default=True,
    help="How far ahead to look.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
def preview(config_path: Path, address: str, days: int, as_json: bool) -> None:
    """Show what we would write into ADDRESS's meetings, and why; write nothing.

    For each meeting of the calendars whose owner or name is ADDRESS in the
    next DAYS days: its time and title, the kind, the slots, the reason in
    words, and the agenda text. Nothing is written or stored.
    """
    from feedback_agendas.scheduler.sync.preview import preview_user

    cfg = _load(config_path)
    try:
        now = utc_now()
        result = preview_user(commands.stored_calendars(cfg, now), address, now, days)
    except UserError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(result.as_json(), sort_keys=True))
        return
    click.echo(
        f"Meetings of {result.user} ({', '.join(result.calendars)}) from "
        f"{result.window_start:%Y-%m-%d %H:%M} UTC for {days} day(s); nothing is written.\n"
    )
    for item in result.items:
        zone = ZoneInfo(item.timezone)
        when = f"{item.start.astimezone(zone):%a %d %b %H:%M} ({item.timezone})"
        if item.series:
            when += ", next of a series"
        click.echo(click.style(f"=== {terminal_safe(item.title)}", bold=True))
        kind = item.kind if item.reason is None else f"{item.kind} ({item.reason})"
        click.echo(f"when:     {when}")
        click.echo(f"calendar: {item.calendar}")
        click.echo(f"kind:     {kind}")
        click.echo(f"slots:    {', '.join(item.slots) or '-'}")
        click.echo(f"why:      {item.why}")
        if item.notices:
            click.echo(f"updates:  writing it sends {item.notices} attendee(s) a meeting update")
        if item.agenda is not None:
            click.echo("agenda:")
            for line in item.agenda.splitlines():
                click.echo(f"  {terminal_safe(line)}")
        click.echo("")
    for calendar, event_id, why in result.unreadable:
        click.echo(f"unreadable: {calendar}: {_short_id(event_id)}: {why}")
    if not result.items and not result.unreadable:
        click.echo("No meetings in this window.")
    if result.notices:
        click.echo(
            f"A sync now would send {result.notices} meeting update(s) to attendees: Outlook"
            " notifies every attendee when a meeting's body changes."
        )


@main.command()
@CONFIG_OPTION
@click.option(
    "--accept",
    is_flag=True,
    help="Apply the change a refresh refused (it would have removed too many at once).",
)
@click.option("--dry-run", is_flag=True, help="List the directory and show; store nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
def discover(config_path: Path, accept: bool, dry_run: bool, as_json: bool) -> None:
    """List the people of every calendar source (discover:) now, and show what changes.

    A change within the source's max_removal_share is applied; one that would
    stop syncing more people at once is kept pending until --accept. People
    who are no longer listed stop being synced; their records stay until
    `revert --calendar ADDRESS`. Exit 1 when a source could not be listed or
    a change waits for --accept.
    """
    from feedback_agendas.scheduler.sync.discovery import FAILED, REFUSED

    if accept and dry_run:
        _fail(UserError("--accept and --dry-run do not go together"))
    cfg = _load(config_path)
    try:
        outcomes = commands.discover(cfg, utc_now(), accept=accept, dry_run=dry_run)
    except UserError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps({"sources": [o.as_json() for o in outcomes]}, sort_keys=True))
    else:
        if accept and not outcomes:
            click.echo("No pending change to accept.")
        for outcome in outcomes:
            for line in _discovery_lines(outcome):
                click.echo(line)
    if any(o.state in (FAILED, REFUSED) for o in outcomes):
        sys.exit(1)


def _discovery_lines(outcome: Any) -> list[str]:
    """One source's outcome in words, with every address added or removed."""
    lines = [
        f"[{outcome.discover}] {outcome.state}: {len(outcome.people)} people; "
        f"{outcome.requests} list request(s) in {outcome.seconds:.2f}s"
    ]
    lines += [f"  + {address}" for address in outcome.added]
    lines += [f"  - {address} (no longer synced)" for address in outcome.removed]
    if outcome.error_kind:
        lines.append(f"  could not list the directory ({outcome.error_kind}); the last list stays")
    if outcome.pending_added or outcome.pending_removed:
        share = len(outcome.pending_removed) / max(1, len(outcome.people))
        lines.append(
            f"  waiting for `discover --accept`: would stop syncing "
            f"{len(outcome.pending_removed)} of {len(outcome.people)} ({share:.0%}, more than "
            f"{outcome.max_removal_share:.0%} at once) and add {len(outcome.pending_added)}:"
        )
        lines += [f"  + {address}" for address in outcome.pending_added]
        lines += [f"  - {address}" for address in outcome.pending_removed]
    return lines


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@CONFIG_OPTION
def db_upgrade(config_path: Path) -> None:
    """Apply the database migrations (they are also applied on start)."""
    from feedback_agendas.scheduler.storage.store import upgrade

    cfg = _load(config_path)
    click.echo(f"database at revision {upgrade(cfg.storage.url)}")


@main.command("admin-password")
@click.option(
    "--env",
    "env_var",
    default="FA_ADMIN_PASSWORD",
    show_default=True,
    metavar="VAR",
    help="Read the password from this environment variable; without it, ask for it.",
)
def admin_password(env_var: str) -> None:
    """Print a slow hash (scrypt) of the dashboard password for server.admin.password_hash."""
    import os

    from feedback_agendas.scheduler.service.web.passwords import hash_password

    password = os.environ.get(env_var) or click.prompt(
        "Dashboard password", hide_input=True, confirmation_prompt=True
    )
    if len(password) < 8:
        click.echo("error: use a password of at least 8 characters", err=True)
        sys.exit(2)
    click.echo(hash_password(password))


@main.command()
@click.option(
    "--folder",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where to put the sample calendar and database (default: a temporary folder).",
)
@click.option(
    "--serve",
    is_flag=True,
    help="Then keep running as the daemon on the demo calendar (endpoints, reminders).",
)
def demo(folder: Path | None, serve: bool) -> None:
    """Zero-config demo: one cycle over a bundled sample week."""
    with tempfile.TemporaryDirectory(prefix="feedback-agendas-demo-") as tmp:
        where = folder or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        run = commands.run_demo(where, utc_now())
        _print_demo(run)
        if serve:
            from feedback_agendas.scheduler.service.loop import run_forever

            click.echo("\nNow running as the daemon on the demo calendar; Ctrl-C stops it.")
            sys.exit(run_forever(run.config, echo=click.echo))


def _print_demo(run: Any) -> None:
    click.echo(f"Sample week of mona@example.com starting {run.week_start}, in {run.folder}\n")
    click.echo(_decision_table(run.report))
    click.echo("")
    for decision in run.report.decisions:
        text = commands.agenda_text(decision)
        if text is None:
            continue
        heading = f"=== {terminal_safe(decision.meeting.title)} ({_when(decision)})"
        click.echo(click.style(heading, bold=True))
        click.echo(text)
        click.echo("")
    second = run.second_report
    click.echo(
        f"First cycle: {run.report.writes} write(s). "
        f"A second cycle with no changes: {second.writes} write(s)."
    )


def _decision_table(report: CycleReport) -> str:
    rows = [("meeting", "when", "kind", "action", "slots", "reason")]
    for d in report.decisions:
        rows.append(
            (
                terminal_safe(d.meeting.title)[:40],
                _when(d),
                d.classification.kind.value,
                report.final_action(d),
                ",".join(d.slots) or "-",
                d.reason or "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.extend(
        f"skipped {_short_id(ref.event_id)}: {reason}: {terminal_safe(detail)}"
        for ref, reason, detail in report.unreadable
    )
    return f"[{report.calendar}]\n" + "\n".join(lines)


def _short_id(event_id: str) -> str:
    event_id = terminal_safe(event_id)
    return event_id if len(event_id) <= 60 else event_id[:59] + "…"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """``text`` with control characters shown as ``\\xNN`` escapes.

    Titles and ids come from anyone who can send an invitation: an escape
    sequence in one must not retitle the admin's terminal or hide a line.
    """
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _when(decision: Decision) -> str:
    """When a meeting is, in its own time zone: a series, one moved occurrence, or a date."""
    meeting = decision.meeting
    zone = ZoneInfo(meeting.timezone or "UTC")
    start = meeting.start.astimezone(zone)
    when = start.strftime("%a %d %b") if meeting.all_day else start.strftime("%a %d %b %H:%M")
    if meeting.is_series:
        if decision.plan is not None:
            upcoming = decision.plan.occurrence_start.astimezone(zone)
            return f"series, next {upcoming:%a %d %b %H:%M}"
        return "series"
    if meeting.ref.recurrence_id:
        return f"{when}, one occurrence"
    return when


def _totals_line(summary: dict[str, Any]) -> str:
    actions = ", ".join(f"{k}={v}" for k, v in summary["actions"].items())
    line = f"writes={summary['writes']} {actions}"
    if summary["notices"]:
        verb = "would send" if summary.get("dry_run") else "sent"
        line += (
            f"\nthese writes {verb} {summary['notices']} meeting update(s) to attendees"
            " (Outlook notifies every attendee of a change to a meeting's body)"
        )
    return line


def _add_daemon_commands() -> None:
    from feedback_agendas.scheduler.service.cli_daemon import DAEMON_COMMANDS
    from feedback_agendas.scheduler.service.cli_opt_out import OPT_OUT_COMMANDS

    for command in (*DAEMON_COMMANDS, *OPT_OUT_COMMANDS):
        main.add_command(command)


_add_daemon_commands()


def _add_provider_commands() -> None:
    """Commands a provider contributes (an OAuth flow, say), from the registry."""
    for spec in provider_specs():
        for command in spec.commands:
            main.add_command(command)


_add_provider_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
