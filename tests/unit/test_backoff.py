"""The one backoff (integrations.retry.backoff_delay) as the outbox uses it for resends."""

from __future__ import annotations

import random
from datetime import timedelta

from feedback_agendas.scheduler.reminders.outbox import exponential_backoff


def test_a_failed_send_waits_the_upper_half_of_a_doubling_step_capped_at_an_hour() -> None:
    rng = random.Random(7)
    for attempt, step in [(1, 30), (2, 60), (3, 120), (8, 3600), (30, 3600)]:
        waits = [exponential_backoff(attempt, rng=rng) for _ in range(200)]
        assert all(timedelta(seconds=step / 2) <= w <= timedelta(seconds=step) for w in waits)
        assert len(set(waits)) > 100  # jittered, not a fixed ladder
        # the draws cover the whole upper half, not a corner of it
        assert min(waits) < timedelta(seconds=step * 0.6)
        assert max(waits) > timedelta(seconds=step * 0.9)
