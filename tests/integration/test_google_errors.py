"""Errors, retries and quota: the Google boundary, the retry helper and the write budget.

Time never passes for real here: the provider gets a fake clock and a sleep
that only advances it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httplib2
import pytest

from feedback_agendas.agendas.errors import (
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    TransientError,
)
from feedback_agendas.agendas.model import DescriptionWrite, EventRef
from feedback_agendas.integrations.calendars.google import GoogleProvider
from feedback_agendas.integrations.ratelimit import TokenBucket, UserRateLimiter
from feedback_agendas.integrations.retry import RetryPolicy, backoff_delay, call_with_retry
from tests.fakes.google_api import FakeGoogleCalendarAPI

OWNER = "mona@example.com"
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class FakeTime:
    """A clock that only moves when something sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def api() -> Iterator[FakeGoogleCalendarAPI]:
    with FakeGoogleCalendarAPI() as fake:
        fake.add_calendar(OWNER)
        fake.add_event(
            OWNER,
            {
                "summary": "1:1",
                "start": {"dateTime": START.isoformat()},
                "end": {"dateTime": (START + timedelta(minutes=30)).isoformat()},
                "attendees": [{"email": OWNER}, {"email": "alice@example.com"}],
            },
        )
        yield fake


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def provider_for(api: FakeGoogleCalendarAPI, fake_time: FakeTime, **kw: Any) -> GoogleProvider:
    return GoogleProvider(
        name="work",
        owner=OWNER,
        calendar_id=OWNER,
        api_endpoint=api.endpoint,
        clock=fake_time.clock,
        sleep=fake_time.sleep,
        rng=random.Random(1),
        **kw,
    )


# -- the retry helper -----------------------------------------------------------------


def test_backoff_is_capped_jittered_and_honours_retry_after() -> None:
    policy = RetryPolicy(attempts=10, base=1.0, cap=8.0)
    rng = random.Random(3)
    delays = [backoff_delay(n, policy, rng) for n in range(10)]
    assert all(0 <= d <= 8.0 for d in delays)
    assert len(set(delays)) == len(delays)  # jittered, not a fixed ladder
    assert backoff_delay(0, policy, rng, retry_after=5.0) >= 5.0
    assert backoff_delay(0, policy, rng, retry_after=600.0) == 8.0  # never past the cap


def test_call_with_retry_retries_transient_errors_only() -> None:
    fake = FakeTime()
    answers: list[Exception | str] = [TransientError("a"), RateLimited("b", 3.0), "done"]

    def flaky() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    result = call_with_retry(flaky, sleep=fake.sleep, clock=fake.clock, rng=random.Random(0))
    assert result == "done"
    assert len(fake.sleeps) == 2 and fake.sleeps[1] >= 3.0

    def denied() -> str:
        raise PermissionDenied("no")

    with pytest.raises(PermissionDenied):
        call_with_retry(denied, sleep=fake.sleep, clock=fake.clock)
    assert len(fake.sleeps) == 2


def test_call_with_retry_gives_up_after_the_attempts_or_the_budget() -> None:
    fake = FakeTime()
    calls = 0

    def always() -> None:
        nonlocal calls
        calls += 1
        raise TransientError("down")

    with pytest.raises(TransientError):
        call_with_retry(always, policy=RetryPolicy(attempts=4), sleep=fake.sleep, clock=fake.clock)
    assert calls == 4
    calls = 0
    with pytest.raises(TransientError):
        call_with_retry(
            always,
            policy=RetryPolicy(attempts=100, base=10, cap=10, budget=25),
            sleep=fake.sleep,
            clock=fake.clock,
            rng=random.Random(0),
        )
    assert sum(fake.sleeps[-(calls - 1) :]) <= 25


# -- the write budget ----------------------------------------------------------------


def test_the_token_bucket_refills_with_the_clock() -> None:
    fake = FakeTime()
    bucket = TokenBucket(rate_per_minute=60, capacity=60, clock=fake.clock)
    assert all(bucket.try_take() for _ in range(60))
    assert not bucket.try_take()
    assert bucket.wait_time() == pytest.approx(1.0)
    fake.sleep(1.0)
    assert bucket.try_take()


def test_writes_are_paced_per_user() -> None:
    fake = FakeTime()
    limiter = UserRateLimiter(60, clock=fake.clock, sleep=fake.sleep)
    limiter.acquire_writes("a@example.com", 60)
    assert fake.sleeps == []
    limiter.acquire_writes("b@example.com", 60)  # another user has their own bucket
    assert fake.sleeps == []
    limiter.acquire_writes("a@example.com", 30)
    assert sum(fake.sleeps) == pytest.approx(30.0)


def test_the_provider_waits_for_its_write_budget(
    api: FakeGoogleCalendarAPI, fake_time: FakeTime
) -> None:
    for n in range(14):
        api.add_event(OWNER, api.event(OWNER, "ev00000001") | {"id": f"more{n:04d}"})
    provider = provider_for(api, fake_time, writes_per_minute=10)
    meetings = provider.read_changes(None).meetings
    outcomes = provider.write([DescriptionWrite(m.ref, m.etag, "x", "h") for m in meetings])
    assert all(o.ok for o in outcomes) and len(outcomes) == 15
    # 10 at once, then 5 more at 10 per minute: 30 seconds of waiting.
    assert sum(fake_time.sleeps) == pytest.approx(30.0)
    provider.close()


# -- the provider over HTTP ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (429, "rateLimitExceeded"),
        (403, "rateLimitExceeded"),
        (403, "userRateLimitExceeded"),
        (500, "backendError"),
        (503, "backendError"),
    ],
)
def test_reads_retry_rate_limits_and_server_errors(
    api: FakeGoogleCalendarAPI, fake_time: FakeTime, status: int, reason: str
) -> None:
    api.faults.inject("list", status, reason, retry_after=7 if status == 429 else None)
    api.faults.inject("list", status, reason)
    provider = provider_for(api, fake_time)
    changes = provider.read_changes(None)
    assert len(changes.meetings) == 1
    assert provider.requests["list"] == 3
    assert len(fake_time.sleeps) == 2
    if status == 429:
        assert fake_time.sleeps[0] >= 7
    provider.close()


def test_a_quota_exceeded_starts_a_cool_down_without_further_requests(
    api: FakeGoogleCalendarAPI, fake_time: FakeTime
) -> None:
    provider = provider_for(api, fake_time)
    api.faults.inject("list", 403, "quotaExceeded")
    with pytest.raises(QuotaExceeded):
        provider.read_changes(None)
    assert provider.requests["list"] == 1 and fake_time.sleeps == []
    with pytest.raises(QuotaExceeded):
        provider.read_changes(None)
    assert provider.requests["list"] == 1  # no request during the cool-down
    fake_time.now += 3601
    assert len(provider.read_changes(None).meetings) == 1
    provider.close()


def test_a_permission_error_is_not_retried(api: FakeGoogleCalendarAPI, fake_time: FakeTime) -> None:
    provider = provider_for(api, fake_time)
    api.faults.inject("list", 403, "forbidden")
    with pytest.raises(PermissionDenied):
        provider.read_changes(None)
    assert fake_time.sleeps == []
    provider.close()


def test_a_write_that_keeps_failing_ends_in_its_outcome_not_in_an_endless_loop(
    api: FakeGoogleCalendarAPI, fake_time: FakeTime
) -> None:
    provider = provider_for(api, fake_time, retry_policy=RetryPolicy(attempts=3))
    (meeting,) = provider.read_changes(None).meetings
    for _ in range(3):
        api.faults.inject("patch", 503, "backendError")
    (outcome,) = provider.write([DescriptionWrite(meeting.ref, meeting.etag, "x", "h")])
    assert isinstance(outcome.error, TransientError)
    assert api.requests["patch"] == 3  # bounded, unlike the client's num_retries
    assert all(c.headers.get("if-match") for c in api.calls if c.kind == "patch")
    provider.close()


def test_a_whole_batch_failing_is_retried_as_a_batch(
    api: FakeGoogleCalendarAPI, fake_time: FakeTime
) -> None:
    provider = provider_for(api, fake_time)
    (meeting,) = provider.read_changes(None).meetings
    api.faults.inject("batch", 503, "backendError")
    (outcome,) = provider.write([DescriptionWrite(meeting.ref, meeting.etag, "x", "h")])
    assert outcome.ok
    assert provider.requests["batch"] == 2 and len(fake_time.sleeps) == 1
    provider.close()


def test_a_slow_answer_times_out_and_is_retried(
    api: FakeGoogleCalendarAPI, fake_time: FakeTime
) -> None:
    http = httplib2.Http(timeout=0.2)
    provider = provider_for(api, fake_time, http=http)
    api.faults.inject("get", delay=0.5)
    meeting = provider.get(EventRef("work", "ev00000001"))
    assert meeting is not None
    assert provider.requests["get"] == 2 and len(fake_time.sleeps) == 1
    provider.close()
