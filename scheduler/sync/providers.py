"""Build calendar providers from the validated config (config -> constructor kwargs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from feedback_agendas.integrations.calendars.base import CalendarProvider, provider_class


def build_provider(
    calendar: Any, store: Any = None, *, clock: Callable[[], float] | None = None
) -> CalendarProvider:
    """Instantiate the provider for one ``calendars[]`` entry of the config.

    ``store`` (a :class:`~scheduler.storage.store.Store`) lets a CalDAV provider reuse
    the collection URL an earlier process discovered. ``clock`` (seconds) times
    a Google calendar's write budget, quota cool-down and retry deadlines;
    default: ``time.monotonic``.
    """
    cls = provider_class(calendar.provider)
    kind = calendar.provider
    if kind == "memory":
        provider: CalendarProvider = cls(name=calendar.name, owner=calendar.owner)
    elif kind == "vdir":
        provider = cls(
            name=calendar.name,
            path=calendar.path,
            owner=calendar.owner,
            default_timezone=calendar.timezone or "UTC",
        )
    elif kind == "google":
        provider = cls(
            name=calendar.name,
            owner=calendar.owner,
            calendar_id=calendar.calendar_id,
            credentials=calendar.credentials,
            subject=calendar.subject,
            api_endpoint=calendar.api_endpoint,
            batch_size=calendar.batch_size,
            writes_per_minute=calendar.writes_per_minute,
            **({"clock": clock} if clock is not None else {}),
        )
    elif kind == "caldav":
        provider = cls(
            name=calendar.name,
            url=calendar.url,
            username=calendar.username,
            password=calendar.password.get_secret_value() if calendar.password else None,
            calendar=calendar.calendar,
            owner=calendar.owner,
            verify_tls=calendar.verify_tls,
            default_timezone=getattr(calendar, "timezone", None) or "UTC",
            collections=store,
        )
    else:  # pragma: no cover - config validation rejects unknown providers
        raise ValueError(f"unknown provider {kind!r}")
    return provider
