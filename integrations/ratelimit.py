"""Per-user write budget: a token bucket plus a quota cool-down.

Google allows about 600 requests per minute per user and a patch costs more
than a read, so writes are paced per user (default 60 per minute). A 403
``quotaExceeded`` starts a long cool-down for that user only; until it ends
every call for the user fails fast with
:class:`~feedback_agendas.agendas.errors.QuotaExceeded`, without a request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from feedback_agendas.agendas.errors import QuotaExceeded

Clock = Callable[[], float]
Sleep = Callable[[float], None]

QUOTA_COOLDOWN_SECONDS = 3600.0


@dataclass
class TokenBucket:
    """``rate_per_minute`` tokens per minute, bursting up to ``capacity``."""

    rate_per_minute: float
    capacity: float
    clock: Clock = time.monotonic
    tokens: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        if self.rate_per_minute <= 0 or self.capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.tokens = self.capacity
        self.updated = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate_per_minute / 60.0)
        self.updated = now

    def wait_time(self, n: float = 1.0) -> float:
        """Seconds until ``n`` tokens are available (0 when they are now)."""
        self._refill()
        missing = min(n, self.capacity) - self.tokens
        return 0.0 if missing <= 0 else missing * 60.0 / self.rate_per_minute

    def try_take(self, n: float = 1.0) -> bool:
        """Take ``n`` tokens if they are there now."""
        if self.wait_time(n) > 0:
            return False
        self.tokens -= n
        return True


class UserRateLimiter:
    """Token buckets and quota cool-downs keyed by user (the impersonated address).

    Thread safe: one limiter may be shared by every provider of a process.
    """

    def __init__(
        self,
        writes_per_minute: float = 60.0,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        cooldown_seconds: float = QUOTA_COOLDOWN_SECONDS,
    ) -> None:
        self.writes_per_minute = writes_per_minute
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, TokenBucket] = {}
        self._cooldown_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def _bucket(self, user: str) -> TokenBucket:
        bucket = self._buckets.get(user)
        if bucket is None:
            bucket = TokenBucket(self.writes_per_minute, self.writes_per_minute, self._clock)
            self._buckets[user] = bucket
        return bucket

    def check_quota(self, user: str) -> None:
        """Raise :class:`QuotaExceeded` while ``user`` is cooling down."""
        with self._lock:
            until = self._cooldown_until.get(user)
            if until is None:
                return
            if self._clock() >= until:
                del self._cooldown_until[user]
                return
        raise QuotaExceeded(f"quota cool-down for this user, {until - self._clock():.0f}s left")

    def start_cooldown(self, user: str) -> None:
        """Stop calls for ``user`` for ``cooldown_seconds`` (after a 403 quotaExceeded)."""
        with self._lock:
            self._cooldown_until[user] = self._clock() + self.cooldown_seconds

    def acquire_writes(self, user: str, n: int = 1) -> None:
        """Wait (through the injected sleep) until ``n`` writes are allowed, then take them.

        ``n`` larger than the bucket is taken in bucket-sized steps.
        """
        self.check_quota(user)
        remaining = float(n)
        while remaining > 0:
            with self._lock:
                bucket = self._bucket(user)
                step = min(remaining, bucket.capacity)
                wait = bucket.wait_time(step)
                if wait <= 0:
                    bucket.tokens -= step
                    remaining -= step
                    continue
            self._sleep(wait)
