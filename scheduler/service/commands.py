"""What the CLI commands do, as functions that return data. Only ``cli`` prints."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import feedback_agendas
from feedback_agendas.agendas.block import read_block
from feedback_agendas.agendas.decide import ActionKind, Decision
from feedback_agendas.agendas.errors import UserError
from feedback_agendas.agendas.render import AgendaRenderer
from feedback_agendas.scheduler.config.schema import AppConfig, CalendarConfig
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.storage.opt_outs import opted_out_addresses
from feedback_agendas.scheduler.storage.store import Store
from feedback_agendas.scheduler.sync.cycle import run_calendar
from feedback_agendas.scheduler.sync.discovery import (
    DiscoveryOutcome,
    accept_pending,
    former_calendar,
    refresh_sources,
    resolve_calendars,
    with_calendars,
)
from feedback_agendas.scheduler.sync.fingerprint import rules_fingerprint
from feedback_agendas.scheduler.sync.org_directory import resolve_rules
from feedback_agendas.scheduler.sync.providers import build_provider
from feedback_agendas.scheduler.sync.report import CycleReport
from feedback_agendas.scheduler.sync.revert import RevertReport, revert_calendar


def _example_config() -> Path:
    """The repo's config.example.yaml; an installed package carries a copy in ``examples``."""
    package = Path(feedback_agendas.__file__).resolve().parent
    in_repo = package.parent / "config.example.yaml"
    return in_repo if in_repo.exists() else package / "examples" / "config.example.yaml"


EXAMPLE_CONFIG = _example_config()


def make_renderer(cfg: AppConfig) -> AgendaRenderer:
    """The renderer for ``cfg``; admin templates run with a time limit on this clock."""
    return AgendaRenderer(
        cfg.policy.templates, opt_out_marker=cfg.opt_out.marker, clock=time.monotonic
    )


@contextmanager
def open_store(cfg: AppConfig) -> Iterator[Store]:
    store = Store.open(cfg.storage.url)
    try:
        yield store
    finally:
        store.close()


def select_calendars(cfg: AppConfig, names: Sequence[str] = ()) -> list[CalendarConfig]:
    """The configured calendars named in ``names`` (all of them when empty), in config order.

    Names (which may be addresses) match regardless of case, as the config keeps
    them unique regardless of case. Raises UserError naming every unknown one.
    """
    if not names:
        return list(cfg.calendars)
    wanted = {name.lower() for name in names}
    known = {c.name.lower() for c in cfg.calendars}
    unknown = sorted(n for n in names if n.lower() not in known)
    if unknown:
        raise UserError(
            f"no calendar named {', '.join(map(repr, unknown))} in the config "
            f"(known: {some_names(c.name for c in cfg.calendars)})"
        )
    return [c for c in cfg.calendars if c.name.lower() in wanted]


def some_names(names: Iterable[str], shown: int = 20) -> str:
    """A list of names for a message: the first ``shown``, then how many more."""
    listed = list(names)
    if not listed:
        return "none"
    more = f" and {len(listed) - shown} more" if len(listed) > shown else ""
    return ", ".join(listed[:shown]) + more


def sync_all(
    cfg: AppConfig, now: datetime, *, dry_run: bool = False, calendars: Sequence[str] = ()
) -> list[CycleReport]:
    """One cycle over every configured calendar (or only those named in ``calendars``).

    A calendar that fails, in any way, fails alone: its report says how
    (:mod:`feedback_agendas.scheduler.sync.failures`) and the others go on. Raises only when
    nothing can start (the database, the rules, the templates).
    """
    reports = []
    with open_store(cfg) as store:
        # The sources' people (refreshed when due; a dry run stores nothing).
        cfg = resolve_calendars(cfg, store, now, dry_run=dry_run)
        selected = select_calendars(cfg, calendars)
        rules = resolve_rules(cfg).with_opted_out_users(opted_out_addresses(store.engine))
        renderer = make_renderer(cfg)
        fingerprint = rules_fingerprint(rules, renderer)
        for calendar in selected:
            reports.append(
                run_calendar(
                    calendar.name,
                    partial(build_provider, calendar, store),
                    store,
                    rules,
                    renderer,
                    now,
                    dry_run=dry_run,
                    fingerprint=fingerprint,
                )
            )
        if not dry_run:
            # This run read changes that the daemon will not read again: the
            # managers' private messages about privacy conflicts are queued
            # here too, for the daemon's sender.
            from feedback_agendas.scheduler.reminders.after_sync import enqueue_privacy_alerts
            from feedback_agendas.scheduler.reminders.outbox import Outbox

            outbox = Outbox(store.engine)
            teams = {team.name: team for team in rules.org.teams}
            enqueue_privacy_alerts(outbox, teams, cfg.personal_channels(), reports, now)
    return reports


def revert_all(
    cfg: AppConfig, now: datetime, *, dry_run: bool = False, calendars: Sequence[str] = ()
) -> dict[str, RevertReport]:
    """Remove every unedited block we wrote (in ``calendars`` only, if named);
    report the edited ones left alone."""
    result = {}
    with open_store(cfg) as store:
        selected = select_calendars_to_revert(cfg, store, calendars, now)
        for calendar in selected:
            provider = build_provider(calendar, store)
            try:
                result[calendar.name] = revert_calendar(provider, store, now, dry_run=dry_run)
            finally:
                provider.close()
    return result


def select_calendars_to_revert(
    cfg: AppConfig, store: Store, names: Sequence[str], now: datetime
) -> list[CalendarConfig]:
    """As :func:`select_calendars`, over the sources' stored people too.

    A named address that no source lists any more (someone who left) is
    reverted as its source would have made its calendar, so that their
    records can be cleaned up.
    """
    if not cfg.calendar_sources:
        return select_calendars(cfg, names)
    resolved = resolve_calendars(cfg, store, now, refresh=False)
    known = {c.name.lower() for c in resolved.calendars}
    former = [former_calendar(cfg, n) for n in names if "@" in n and n.lower() not in known]
    extra = tuple(c for c in former if c is not None)
    resolved = with_calendars(resolved, extra)
    return select_calendars(resolved, names)


def stored_calendars(cfg: AppConfig, now: datetime) -> AppConfig:
    """``cfg`` with the sources' stored people as calendars; the directory is not asked."""
    if not cfg.calendar_sources:
        return cfg
    with open_store(cfg) as store:
        return resolve_calendars(cfg, store, now, refresh=False)


def discover(
    cfg: AppConfig, now: datetime, *, accept: bool = False, dry_run: bool = False
) -> list[DiscoveryOutcome]:
    """List every calendar source now and apply what is safe (``discover``).

    A change that would stop syncing too many at once is kept pending and
    shown; ``accept`` applies the pending changes instead of listing again;
    ``dry_run`` lists and stores nothing.
    """
    if not cfg.calendar_sources:
        raise UserError("the config has no calendar source (a calendars entry with discover:)")
    with open_store(cfg) as store:
        if accept:
            return accept_pending(cfg, store, now)
        return refresh_sources(cfg, store, now, force=True, dry_run=dry_run)


def status(cfg: AppConfig) -> dict[str, Any]:
    with open_store(cfg) as store:
        return store.status()


def self_opt_out_count(cfg: AppConfig) -> int:
    """How many people opted out of agendas themselves (or through the admin's CLI)."""
    with open_store(cfg) as store:
        return len(opted_out_addresses(store.engine))


@dataclass(frozen=True)
class DemoRun:
    """The demo's outcome: the folder it ran in and the cycle's decisions."""

    folder: Path
    week_start: date
    report: CycleReport
    second_report: CycleReport
    config: AppConfig  # the example config, pointed at ``folder``


def demo_week_start(now: datetime, timezone: str) -> date:
    """The next Monday (today if it is Monday), so the whole sample week lies ahead."""
    today = now.astimezone(ZoneInfo(timezone)).date()
    return today + timedelta(days=(7 - today.weekday()) % 7)


def run_demo(folder: Path, now: datetime, config_path: Path = EXAMPLE_CONFIG) -> DemoRun:
    """Copy the sample week into ``folder``, run one cycle on it, then a second one.

    The example config is used as it is, except that storage and the calendar
    folder point into ``folder``; nothing outside it is touched.
    """
    from feedback_agendas.scheduler.service.sample_week import write_sample_week

    cfg = load_config(config_path)
    calendar = cfg.calendars[0]
    timezone = getattr(calendar, "timezone", None) or "UTC"
    week_start = demo_week_start(now, timezone)
    cal_dir = folder / "calendars" / calendar.name
    if cal_dir.exists():
        shutil.rmtree(cal_dir)
    cal_dir.mkdir(parents=True)
    write_sample_week(cal_dir, week_start)
    cfg = cfg.model_copy(
        update={
            "storage": cfg.storage.model_copy(update={"url": f"sqlite:///{folder / 'demo.db'}"}),
            "calendars": [calendar.model_copy(update={"path": cal_dir})],
        }
    )
    first = sync_all(cfg, now)[0]
    second = sync_all(cfg, now)[0]
    return DemoRun(
        folder=folder, week_start=week_start, report=first, second_report=second, config=cfg
    )


def agenda_text(decision: Decision) -> str | None:
    """The agenda block a decision put (or keeps) in its event, as plain text."""
    if decision.action in (ActionKind.SKIPPED, ActionKind.REMOVED):
        return None
    description = decision.description or decision.meeting.description
    return read_block(description)


def load(config: Path) -> AppConfig:
    return load_config(config)
