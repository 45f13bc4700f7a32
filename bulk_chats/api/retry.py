"""When a failed request may be sent again, and how long to wait first: one policy for all.

A request that surely created nothing (`NotSentError`) may be sent again; so may a read
after any transient failure, since a read changes nothing. One that may have taken effect
(`MaybeSentError`) is never sent again blindly: the caller confirms first. A 429 is not
waited on here, because the client's rate limiter already holds every request until
`Retry-After` has passed; sleeping too would wait twice. Other waits double from
`BACKOFF_BASE` up to `BACKOFF_MAX`, each drawn from the upper half of that ("equal
jitter"), so that rows failing together do not all come back in the same instant.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from bulk_chats.errors import ApiError, MaybeSentError, NotSentError, RateLimitedError
from bulk_chats.timing import Clock, Sleep

READ_ATTEMPTS = 4
"""Tries of one read (a listing, a search) before it is given up."""

DEFAULT_ATTEMPTS = 8
"""Tries of one request that creates or changes something (`POST /chats`, `POST
/messages`, `POST /customers`, a `PUT`) before its row is given up."""

DEFAULT_MAX_WAIT = 600.0
"""Seconds one such request may spend being retried."""

BACKOFF_BASE = 1.0
"""Seconds of back-off before the first retry (at most; see `backoff`); doubles each time."""

BACKOFF_MAX = 30.0
"""The longest back-off between two tries, in seconds."""

T = TypeVar("T")


def backoff(attempt: int, *, draw: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number `attempt` (1-based): between half and all of
    `BACKOFF_BASE * 2 ** (attempt - 1)`, never more than `BACKOFF_MAX`. `draw` is a
    uniform number in [0, 1)."""
    full = min(BACKOFF_MAX, BACKOFF_BASE * 2.0 ** (attempt - 1))
    return full * (1.0 - 0.5 * draw())


def retry_wait(error: ApiError, attempt: int, *, read: bool = False) -> float | None:
    """Seconds to wait before sending again after `error` on try number `attempt`; None
    when the request must not be sent again blindly.

    0 after a 429 (the limiter holds the next request); a back-off after anything else
    that sent nothing, and, for a `read`, after an answer that may have been lost.
    """
    if isinstance(error, RateLimitedError):
        return 0.0
    if isinstance(error, NotSentError) or (read and isinstance(error, MaybeSentError)):
        return backoff(attempt)
    return None


@dataclass(frozen=True, slots=True)
class Budget:
    """What one request may spend being retried: `attempts` tries, until `deadline`
    (seconds on `clock`, a monotonic clock)."""

    attempts: int
    deadline: float
    clock: Clock

    @classmethod
    def start(cls, *, attempts: int, seconds: float, clock: Clock) -> Budget:
        """A budget of `attempts` tries over `seconds` from now."""
        return cls(attempts, clock() + seconds, clock)

    def wait_after(self, error: ApiError, attempt: int) -> float | None:
        """Seconds to wait before try `attempt + 1` after `error`; None when `error` must
        not be retried blindly, the tries are used up, or the wait (a 429's `Retry-After`
        included) would end past the deadline."""
        wait = retry_wait(error, attempt)
        if wait is None or attempt >= self.attempts:
            return None
        held = (error.retry_after or 0.0) if isinstance(error, RateLimitedError) else wait
        return None if self.clock() + held > self.deadline else wait

    def settle(self, attempt: int) -> float:
        """A back-off for try `attempt`, cut to the time left: how long to let the API finish
        what a request may have begun before looking for its effect."""
        return min(backoff(attempt), max(0.0, self.deadline - self.clock()))

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.clock() >= self.deadline


async def read_with_retries(call: Callable[[], Awaitable[T]], *, attempts: int, sleep: Sleep) -> T:
    """`call()`, a read, tried up to `attempts` times while it fails transiently; the last
    error is raised. A refusal (4xx, 401) is raised at once."""
    attempt = 1
    while True:
        try:
            return await call()
        except ApiError as exc:
            wait = retry_wait(exc, attempt, read=True)
            if wait is None or attempt >= attempts:
                raise
        if wait > 0:
            await sleep(wait)
        attempt += 1
