"""The one retry policy: what may be sent again, how long to wait, when to give up."""

from __future__ import annotations

import pytest

from bulk_chats.api import retry
from bulk_chats.api.retry import BACKOFF_MAX, Budget, backoff, read_with_retries, retry_wait
from bulk_chats.errors import MaybeSentError, NotSentError, RateLimitedError, RefusedError
from tests.fakes import FakeTime


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    """Each wait lies between half and all of base × 2^(n-1), and never past the cap."""
    assert [backoff(n, draw=lambda: 0.0) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert [backoff(n, draw=lambda: 0.999) for n in (1, 2)] == pytest.approx([0.5, 1.0], 0.01)
    assert backoff(40, draw=lambda: 0.0) == BACKOFF_MAX


def test_a_429_is_not_slept_on_top_of_the_limiter() -> None:
    """After a 429 the wait is 0: the limiter already holds the next request."""
    assert retry_wait(RateLimitedError("429", retry_after=30.0), 1) == 0.0


def test_only_reads_are_sent_again_after_a_lost_answer() -> None:
    """A lost answer is retried blindly for a read only; a refusal never."""
    lost = MaybeSentError("timeout")
    assert retry_wait(lost, 1) is None
    assert retry_wait(lost, 1, read=True) is not None
    assert retry_wait(NotSentError("503"), 1) is not None
    assert retry_wait(RefusedError("400"), 1, read=True) is None


def test_a_budget_refuses_a_wait_past_its_deadline_or_tries() -> None:
    """Tries and seconds both bound a request; a 429's Retry-After counts against time."""
    fake = FakeTime()
    budget = Budget.start(attempts=3, seconds=10.0, clock=fake.clock)
    assert budget.wait_after(NotSentError("503"), 1) is not None
    assert budget.wait_after(NotSentError("503"), 3) is None
    assert budget.wait_after(RateLimitedError("429", retry_after=11.0), 1) is None
    assert budget.wait_after(RateLimitedError("429", retry_after=9.0), 1) == 0.0
    fake.now = 10.0
    assert budget.expired()
    assert budget.settle(1) == 0.0


@pytest.mark.anyio
async def test_a_read_is_tried_a_bounded_number_of_times(monkeypatch: pytest.MonkeyPatch) -> None:
    """A read failing transiently is tried `attempts` times, then its last error raised."""
    monkeypatch.setattr(retry, "BACKOFF_BASE", 0.25)
    fake = FakeTime()
    calls: list[int] = []

    async def read() -> int:
        calls.append(1)
        raise MaybeSentError(f"timeout {len(calls)}")

    with pytest.raises(MaybeSentError, match="timeout 3"):
        await read_with_retries(read, attempts=3, sleep=fake.sleep)
    assert len(calls) == 3
    assert len(fake.sleeps) == 2
    assert all(0.125 <= s <= 0.5 for s in fake.sleeps)


@pytest.mark.anyio
async def test_a_read_refused_is_not_tried_again() -> None:
    """A 4xx on a read is raised at once, without waiting."""
    fake = FakeTime()
    calls: list[int] = []

    async def read() -> int:
        calls.append(1)
        raise RefusedError("400")

    with pytest.raises(RefusedError):
        await read_with_retries(read, attempts=4, sleep=fake.sleep)
    assert (len(calls), fake.sleeps) == (1, [])
