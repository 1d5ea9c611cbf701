"""What one process keeps per calendar: whose turn it is, and the calendar's provider.

- :class:`Turns`: at most one cycle of a calendar runs at a time in this
  process, whatever asked for it (the interval job, a push notification, a
  direct call). A request that arrives while a cycle runs is not lost: that
  cycle runs once more when it ends.
- :class:`ProviderCache`: a calendar's provider is built once and kept while
  its config entry is unchanged. It carries what a calendar's cycles learn:
  rate limits and quota cool-downs, credentials and tokens, discovered URLs,
  open connections.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from feedback_agendas.integrations.calendars.base import CalendarProvider

log = logging.getLogger(__name__)

R = TypeVar("R")


@dataclass
class _Turn:
    """Whether a cycle of one calendar runs in this process, and whether another was asked for."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    running: bool = False
    again: bool = False


class Turns:
    """One cycle per calendar at a time; any number of requests meanwhile make one more."""

    def __init__(self, stopping: threading.Event) -> None:
        self.stopping = stopping
        self._turns: dict[str, _Turn] = {}
        self._lock = threading.Lock()

    def run(self, name: str, first: Callable[[], R], again: Callable[[], object]) -> R | None:
        """Run ``first`` as ``name``'s turn, then ``again`` while more were asked for meanwhile.

        Returns what ``first`` returned; None at once when a turn of ``name``
        is running already (it will run once more when it ends). No more
        rounds once the process is stopping.
        """
        with self._lock:
            turn = self._turns.setdefault(name, _Turn())
        with turn.lock:
            if turn.running:
                turn.again = True
                return None
            turn.running = True
        try:
            result = first()
            while True:
                with turn.lock:
                    if not turn.again or self.stopping.is_set():
                        turn.running = turn.again = False
                        return result
                    turn.again = False
                again()
        except BaseException:
            with turn.lock:
                turn.running = turn.again = False
            raise


class ProviderCache:
    """Each calendar's provider, built by ``factory`` from its config entry and kept."""

    def __init__(self, factory: Callable[[Any], CalendarProvider]) -> None:
        self.factory = factory
        self._providers: dict[str, tuple[Any, CalendarProvider]] = {}

    def get(self, name: str, entry: Any) -> CalendarProvider:
        """The provider of calendar ``name``; a new one when its config ``entry`` changed.

        Call only inside the calendar's turn.
        """
        cached = self._providers.get(name)
        if cached is not None and cached[0] == entry:
            return cached[1]
        self.drop(name)
        provider = self.factory(entry)
        self._providers[name] = (entry, provider)
        return provider

    def drop(self, name: str) -> None:
        """Close and forget ``name``'s provider: the next cycle builds a new one."""
        cached = self._providers.pop(name, None)
        if cached is None:
            return
        try:
            cached[1].close()
        except Exception as exc:  # closing must not hide the cycle's outcome
            log.warning("calendar %s: closing the provider failed: %s", name, type(exc).__name__)

    def close(self) -> None:
        """Close every provider."""
        for name in list(self._providers):
            self.drop(name)
