"""The one retry helper: capped, jittered exponential backoff that honours Retry-After.

Every backend call that may be retried goes through :func:`call_with_retry`.
Sleep, clock and randomness are arguments so tests run without waiting.
Only :class:`~feedback_agendas.agendas.errors.TransientError` (and its subclass
:class:`~feedback_agendas.agendas.errors.RateLimited`) is retried; everything else, including
:class:`~feedback_agendas.agendas.errors.QuotaExceeded` (a long cool-down, see
:mod:`feedback_agendas.integrations.ratelimit`), goes straight to the caller.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from feedback_agendas.agendas.errors import TransientError

T = TypeVar("T")

Sleep = Callable[[float], None]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try.

    ``attempts`` counts the first call. The n-th retry waits a random time in
    ``[floor * step, step]`` with ``step = min(cap, base * 2**n)`` (``floor``
    0 is "full jitter", 0.5 "equal jitter"), or the server's ``Retry-After``
    when that is longer, but never more than ``cap``. ``budget`` bounds the
    total time spent waiting in one call.
    """

    attempts: int = 5
    base: float = 0.5
    cap: float = 32.0
    budget: float = 120.0
    floor: float = 0.0


DEFAULT_POLICY = RetryPolicy()


def backoff_delay(
    retry: int, policy: RetryPolicy, rng: random.Random, retry_after: float | None = None
) -> float:
    """Seconds to wait before retry number ``retry`` (0-based).

    The one backoff of the project: provider calls (:func:`call_with_retry`)
    and the reminder outbox's resends both wait this long.
    """
    ceiling = min(policy.cap, policy.base * (2**retry))
    delay = rng.uniform(policy.floor * ceiling, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, policy.cap)


def call_with_retry(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy = DEFAULT_POLICY,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
    rng: random.Random | None = None,
    on_retry: Callable[[TransientError, float], None] | None = None,
) -> T:
    """Call ``fn`` until it returns, retrying :class:`TransientError` with backoff.

    Raises the last error when the attempts or the time budget run out.
    ``on_retry(error, delay)`` is called before each wait (for metrics).
    """
    rng = rng or random.Random()
    started = clock()
    retry = 0
    while True:
        try:
            return fn()
        except TransientError as exc:
            if retry + 1 >= policy.attempts:
                raise
            delay = backoff_delay(retry, policy, rng, exc.retry_after)
            if clock() - started + delay > policy.budget:
                raise
            if on_retry is not None:
                on_retry(exc, delay)
            sleep(delay)
            retry += 1
