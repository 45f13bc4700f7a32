"""The shared rate limiter: even pacing, 429 push-back, AIMD, default concurrency."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from bulk_chats.throttle import (
    DECREASE_FACTOR,
    DEFAULT_PAUSE,
    MAX_CONCURRENCY,
    MIN_CONCURRENCY,
    MIN_RATE_FRACTION,
    RECOVERY_RUN,
    RECOVERY_STEP,
    WINDOW,
    WINDOW_MARGIN,
    RateLimiter,
    default_concurrency,
)
from tests.fakes import FakeTime


def limiter_at(rate: float, fake: FakeTime) -> RateLimiter:
    return RateLimiter(rate, clock=fake.clock, sleep=fake.sleep)


@pytest.mark.anyio
async def test_paces_evenly_from_the_first_request(fake: FakeTime) -> None:
    """N acquires at rate R go at 0, 60/R, 2·60/R, … with no initial burst."""
    limiter = limiter_at(120, fake)
    times = [await limiter.acquire() for _ in range(5)]
    assert times == [0.0, 0.5, 1.0, 1.5, 2.0]


@pytest.mark.anyio
async def test_concurrent_tasks_share_one_schedule(fake: FakeTime) -> None:
    """Tasks acquiring at once get distinct slots, evenly spaced, in arrival order."""
    limiter = limiter_at(60, fake)
    granted: list[tuple[int, float]] = []

    async def take(n: int) -> None:
        granted.append((n, await limiter.acquire()))

    async with anyio.create_task_group() as group:
        for n in range(6):
            group.start_soon(take, n)
    assert [t for _, t in granted] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert [n for n, _ in granted] == sorted(n for n, _ in granted)


@pytest.mark.anyio
async def test_idle_time_does_not_build_up_a_burst(fake: FakeTime) -> None:
    """After a quiet spell the next requests are still spaced, not sent in a burst."""
    limiter = limiter_at(120, fake)
    await limiter.acquire()
    fake.now = 100.0
    times = [await limiter.acquire() for _ in range(3)]
    assert times == [100.0, 100.5, 101.0]


@pytest.mark.anyio
async def test_a_sleep_that_wakes_late_does_not_shift_later_slots(fake: FakeTime) -> None:
    """Timer overshoot delays only its own request: later slots stay on the 60/R grid."""

    async def oversleep(seconds: float) -> None:
        await fake.sleep(seconds + 0.01)

    limiter = RateLimiter(120, clock=fake.clock, sleep=oversleep)
    times = [await limiter.acquire() for _ in range(5)]
    assert times == pytest.approx([0.0, 0.51, 1.01, 1.51, 2.01])


@pytest.mark.anyio
async def test_a_stall_longer_than_an_interval_restarts_the_schedule(fake: FakeTime) -> None:
    """A wake-up a whole interval late counts the next slot from then: no catch-up burst."""
    stalls = [2.0]

    async def stall_once(seconds: float) -> None:
        await fake.sleep(seconds + (stalls.pop() if stalls else 0.0))

    limiter = RateLimiter(120, clock=fake.clock, sleep=stall_once)
    times = [await limiter.acquire() for _ in range(4)]
    assert times == [0.0, 2.5, 3.0, 3.5]


@pytest.mark.anyio
async def test_no_more_than_rate_requests_in_any_window_and_a_margin(fake: FakeTime) -> None:
    """At the limit, request rate+1 waits WINDOW + WINDOW_MARGIN after the first, not WINDOW."""
    limiter = limiter_at(4, fake)
    times = [await limiter.acquire() for _ in range(7)]
    shifted = WINDOW + WINDOW_MARGIN
    assert times == pytest.approx([0, 15, 30, 45, shifted, shifted + 15, shifted + 30])
    for n in range(len(times) - 4):
        assert times[n + 4] - times[n] >= WINDOW + WINDOW_MARGIN


@pytest.mark.anyio
async def test_throttled_pushes_every_later_slot_back_and_slows_down(fake: FakeTime) -> None:
    """A 429 with Retry-After holds the next request that long, then paces at a lower rate."""
    limiter = limiter_at(120, fake)
    await limiter.acquire()
    assert limiter.throttled(10.0) == 10.0
    assert limiter.rate == 120 * DECREASE_FACTOR
    times = [await limiter.acquire() for _ in range(2)]
    assert times == [10.0, pytest.approx(10.0 + 60 / (120 * DECREASE_FACTOR))]


@pytest.mark.anyio
async def test_a_waiting_request_sees_a_later_push_back(fake: FakeTime) -> None:
    """A request already waiting for its slot also waits out a 429 that comes meanwhile."""
    pushed = False

    async def sleep_then_throttle(seconds: float) -> None:
        nonlocal pushed
        if not pushed:
            pushed = True
            limiter.throttled(30.0)
        await fake.sleep(seconds)

    limiter = RateLimiter(60, clock=fake.clock, sleep=sleep_then_throttle)
    await limiter.acquire()
    assert await limiter.acquire() == 30.0
    assert fake.sleeps == [1.0, 29.0]


def test_429_without_retry_after_pauses_and_doubles(fake: FakeTime) -> None:
    """Without Retry-After the pause is DEFAULT_PAUSE, doubling per 429 in a row until a success."""
    limiter = limiter_at(120, fake)
    assert limiter.throttled(None) == DEFAULT_PAUSE
    assert limiter.throttled(None) == 2 * DEFAULT_PAUSE
    limiter.succeeded()
    assert limiter.throttled(None) == DEFAULT_PAUSE


@pytest.mark.anyio
async def test_429s_of_requests_in_flight_do_not_double_the_pause(fake: FakeTime) -> None:
    """Without Retry-After, 429s for requests sent before the first one's slow-down keep
    the pause it started; the next 429 of a later request doubles it."""
    limiter = limiter_at(120, fake)
    in_flight = [await limiter.acquire() for _ in range(4)]
    fake.now = 2.0
    assert limiter.throttled(None, sent_at=in_flight[0]) == DEFAULT_PAUSE
    for sent_at in in_flight[1:]:
        fake.now += 0.1
        limiter.throttled(None, sent_at=sent_at)
    later = await limiter.acquire()
    assert later == 2.0 + DEFAULT_PAUSE
    assert limiter.throttled(None, sent_at=later) == 2 * DEFAULT_PAUSE


def test_rate_never_drops_below_the_floor(fake: FakeTime) -> None:
    """However many 429s come, the effective rate stays at or above the floor."""
    limiter = limiter_at(120, fake)
    for _ in range(50):
        limiter.throttled(0.0)
    assert limiter.rate == pytest.approx(120 * MIN_RATE_FRACTION)


@pytest.mark.anyio
async def test_429s_from_requests_sent_before_a_slow_down_do_not_slow_down_again(
    fake: FakeTime,
) -> None:
    """Requests in flight together draw 429s together: only the first one lowers the rate."""
    limiter = limiter_at(120, fake)
    first = await limiter.acquire()
    second = await limiter.acquire()
    limiter.throttled(1.0, sent_at=first)
    limiter.throttled(1.0, sent_at=second)
    assert limiter.rate == 120 * DECREASE_FACTOR
    later = await limiter.acquire()
    limiter.throttled(1.0, sent_at=later)
    assert limiter.rate == pytest.approx(120 * DECREASE_FACTOR**2)


def test_rate_recovers_additively_after_a_run_of_successes(fake: FakeTime) -> None:
    """Each RECOVERY_RUN answers without a 429 add one step, up to the configured rate."""
    limiter = limiter_at(100, fake)
    limiter.throttled(0.0)
    assert limiter.rate == 80
    for _ in range(RECOVERY_RUN - 1):
        limiter.succeeded()
    assert limiter.rate == 80
    limiter.succeeded()
    assert limiter.rate == pytest.approx(80 + 100 * RECOVERY_STEP)
    for _ in range(RECOVERY_RUN * 20):
        limiter.succeeded()
    assert limiter.rate == 100


@pytest.mark.parametrize("rate", [0, -5, float("nan"), float("inf")])
def test_rejects_a_rate_that_is_not_a_positive_number(rate: float) -> None:
    """A rate must be a positive, finite number of requests per minute."""
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(rate)


@pytest.mark.parametrize(
    ("rate", "expected"),
    [(120, 7), (600, 31), (1, MIN_CONCURRENCY), (60, MIN_CONCURRENCY), (100_000, MAX_CONCURRENCY)],
)
def test_default_concurrency_keeps_the_rate_full_at_high_latency(rate: int, expected: int) -> None:
    """Enough requests in flight for 3 s answers at the rate, plus one, within 4..64."""
    assert default_concurrency(rate) == expected
