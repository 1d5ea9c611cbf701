"""Build calendar providers from the validated config, through the provider registry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from feedback_agendas.integrations.calendars.base import BuildContext, CalendarProvider
from feedback_agendas.integrations.calendars.registry import provider_spec


def build_provider(
    calendar: Any,
    store: Any = None,
    *,
    clock: Callable[[], float] | None = None,
    now: Callable[[], datetime] | None = None,
) -> CalendarProvider:
    """Instantiate the provider for one ``calendars[]`` entry of the config.

    ``store`` (a :class:`~feedback_agendas.scheduler.storage.store.Store`) lets a
    provider reuse what an earlier process discovered (a collection URL).
    ``clock`` (seconds) times a provider's budgets and retry deadlines;
    default: ``time.monotonic``. ``now`` is the wall clock a provider reads
    dates from (default: ``datetime.now(UTC)``).
    """
    spec = provider_spec(calendar.provider)
    return spec.build(calendar, BuildContext(collections=store, clock=clock, now=now))
