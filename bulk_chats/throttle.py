"""One rate limiter for every request of a run, paced evenly, slowing down on 429s.

The API counts all endpoints together (120 requests a minute by default) and does not
document its window, so the limiter never bursts: the first request goes at once and each
later one waits its turn, `60 / rate` seconds after the one before (PRODUCT.md › Sending).
It also never lets more than `rate` requests go in any `WINDOW + WINDOW_MARGIN` seconds,
which even pacing alone does not promise against a sliding one-minute window.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

import anyio

Clock = Callable[[], float]
"""Monotonic seconds."""

Sleep = Callable[[float], Awaitable[None]]
"""Waits the given seconds."""

DECREASE_FACTOR = 0.8
"""A 429 multiplies the effective rate by this."""

MIN_RATE_FRACTION = 0.1
"""The effective rate never drops below this fraction of the configured rate."""

RECOVERY_RUN = 20
"""Answers without a 429 in a row that earn one step back towards the configured rate."""

RECOVERY_STEP = 0.05
"""One recovery step, as a fraction of the configured rate."""

DEFAULT_PAUSE = 5.0
"""Seconds to hold every request after a 429 without `Retry-After`; doubles per 429 in a row."""

MAX_PAUSE = 60.0
"""The longest pause the limiter picks itself (a server's `Retry-After` is honoured in full)."""

WINDOW = 60.0
"""Seconds the rate is counted over: the API's limit is a number of requests a minute."""

WINDOW_MARGIN = 0.25
"""Seconds added to `WINDOW` before a slot counted in it frees again.

Paced at exactly the limit, request *i + rate* goes exactly `WINDOW` seconds after request
*i*; a few milliseconds of jitter on the way then put both in the server's window at once,
and a server that counts over a sliding minute answers 429, about once a minute. The
margin absorbs that jitter for a quarter of a second each minute (0.4% of the rate).
"""

LATENCY_GUESS = 3.0
"""Seconds a request may take on a slow day; the default concurrency keeps the rate full then."""

MIN_CONCURRENCY = 4
MAX_CONCURRENCY = 64


class RateLimiter:
    """Holds requests to `rate_per_minute`, evenly paced, shared by every task of a run.

    Pacing: request *i* goes at `start + i * 60 / rate` (the first at once, no burst), or
    later when requests come more slowly than that. Slots are handed out in arrival order
    under a lock, so any number of tasks may call `acquire` at once. A sleep that wakes a
    little late does not shift the schedule, so the rate holds over a long run; no request
    ever goes before its slot. Besides, at most `rate` (the configured rate, rounded down)
    requests go in any `WINDOW + WINDOW_MARGIN` seconds: at the limit, once a minute, the
    schedule slips by up to `WINDOW_MARGIN` rather than crowd the server's minute.

    Slowing down (AIMD): on a 429, `throttled` holds every later request until
    `Retry-After` seconds from now (when the server sent none, `DEFAULT_PAUSE`, doubling for
    each further 429 in a row, at most `MAX_PAUSE`), and multiplies the effective rate by
    `DECREASE_FACTOR`, never below `MIN_RATE_FRACTION` of the configured rate. Several
    requests already in flight at the old rate often draw 429s together; a 429 for a request
    sent before the last slow-down neither slows down again nor doubles the pause (its
    `Retry-After`, when sent, is still honoured). After
    `RECOVERY_RUN` answers in a row without a 429 (`succeeded`), the rate climbs back by
    `RECOVERY_STEP` of the configured rate, up to the configured rate.

    `clock` (monotonic seconds) and `sleep` are injectable so tests never wait.
    """

    def __init__(
        self,
        rate_per_minute: float,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        if not (rate_per_minute > 0 and math.isfinite(rate_per_minute)):
            raise ValueError(
                f"rate must be a positive number of requests per minute, not {rate_per_minute!r}"
            )
        self._configured = float(rate_per_minute)
        self._rate = self._configured
        self._floor = self._configured * MIN_RATE_FRACTION
        self._clock = clock
        self._sleep = sleep
        self._lock = anyio.Lock()
        self._next = -math.inf
        self._last_decrease = -math.inf
        self._successes = 0
        self._pause_streak = 0
        # The grant times of the last `rate` requests: the oldest frees a place in the
        # window `WINDOW + WINDOW_MARGIN` seconds after it went.
        self._granted: deque[float] = deque(maxlen=max(1, math.floor(self._configured)))

    @property
    def configured_rate(self) -> float:
        """The rate asked for, in requests per minute."""
        return self._configured

    @property
    def rate(self) -> float:
        """The effective rate now, in requests per minute (lower after 429s)."""
        return self._rate

    @property
    def interval(self) -> float:
        """Seconds between two requests at the effective rate."""
        return 60.0 / self._rate

    async def acquire(self) -> float:
        """Wait for this request's turn; returns the clock time it was granted."""
        async with self._lock:
            waited = False
            # Re-read the schedule after every sleep: `throttled` may have pushed it back.
            while True:
                now = self._clock()
                wait = max(self._next, self._window_frees()) - now
                if wait <= 0:
                    break
                await self._sleep(wait)
                waited = True
            # A request that waited for its slot holds it from the scheduled moment: a sleep
            # wakes a little late (timer granularity, a busy loop), and counting from the
            # wake-up would push every later slot back by that much, a few percent of the
            # rate at 20 requests a second. An overshoot of a whole interval or more, or a
            # request that came after its slot was free, starts the schedule afresh from
            # now, so no burst builds up.
            keep_schedule = waited and now - self._next < self.interval
            self._next = (self._next if keep_schedule else now) + self.interval
            self._granted.append(now)
            return now

    def _window_frees(self) -> float:
        """When the window has room for one more request: at once until it is full."""
        if len(self._granted) < (self._granted.maxlen or 0):
            return -math.inf
        return self._granted[0] + WINDOW + WINDOW_MARGIN

    def throttled(self, retry_after: float | None, *, sent_at: float | None = None) -> float:
        """Record a 429: hold every later request and slow down. Returns the pause in seconds.

        `retry_after` is the server's `Retry-After` in seconds, None when absent;
        `sent_at` is the time `acquire` granted the refused request, when known.
        """
        now = self._clock()
        self._successes = 0
        # A request sent before the last slow-down met the same full window as the 429 that
        # caused it, and the requests in flight then draw 429s together: such a 429 says
        # nothing new, so it neither slows down again nor doubles the pause (a dozen of
        # them would otherwise stretch it to MAX_PAUSE at once).
        fresh = sent_at is None or sent_at > self._last_decrease
        if retry_after is not None and retry_after >= 0:
            pause = retry_after
        elif fresh:
            pause = min(DEFAULT_PAUSE * 2**self._pause_streak, MAX_PAUSE)
            self._pause_streak += 1
        else:
            pause = max(0.0, self._next - now)
        self._next = max(self._next, now + pause)
        if fresh:
            self._rate = max(self._floor, self._rate * DECREASE_FACTOR)
            self._last_decrease = now
        return pause

    def succeeded(self) -> None:
        """Record an answer that was not a 429; a run of them restores the rate step by step."""
        self._pause_streak = 0
        self._successes += 1
        if self._successes >= RECOVERY_RUN and self._rate < self._configured:
            self._successes = 0
            self._rate = min(self._configured, self._rate + self._configured * RECOVERY_STEP)


def default_concurrency(rate_per_minute: float, *, latency: float = LATENCY_GUESS) -> int:
    """Requests in flight needed to keep `rate_per_minute` full when each takes `latency` s.

    One more than rate × latency, bounded to `MIN_CONCURRENCY`..`MAX_CONCURRENCY`: more
    would only queue at the limiter, fewer would let slow answers lower the rate.
    """
    needed = math.ceil(rate_per_minute / 60.0 * latency) + 1
    return max(MIN_CONCURRENCY, min(MAX_CONCURRENCY, needed))
