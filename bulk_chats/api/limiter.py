"""One rate limiter for every request of a run, paced evenly, learning the account's limit.

The API counts all endpoints together (120 requests a minute by default) and does not
document its window, so the limiter never bursts: the first request goes at once and each
later one waits its turn, `60 / rate` seconds after the one before (docs/sending.md › Pacing).
It also never lets more than `rate` requests go in any `WINDOW + WINDOW_MARGIN` seconds,
which even pacing alone does not promise against a sliding one-minute window.

When the API answers 429 although the limiter kept to its rate, the requests it accepted
over the last minute are the account's limit: the limiter learns that number and runs at it
from then on (docs/sending.md › The account's limit). A lesson stands only once the API
confirmed it: until the window's length is known, the number is provisional, and a probe
cycle that confirms nothing gives it up rather than crawl below the rate it was told.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

import anyio

from bulk_chats.timing import Clock, Sleep

LimitListener = Callable[[float | None, bool], None]
"""Told the account's limit (requests a minute) and whether the API confirmed it, each time
either changes: a provisional lesson, its confirmation, a higher limit a check found; None
(and False) when a provisional lesson is given up and no confirmed limit is left."""

DECREASE_FACTOR = 0.8
"""A 429 that teaches nothing (no request accepted in the last minute) multiplies the
effective rate by this: someone else spends the account's requests, so slow down blindly."""

MIN_RATE_FRACTION = 0.1
"""Such blind slow-downs never take the rate below this fraction of the configured rate."""

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

PROBE_POLL = 0.1
"""Seconds between two looks at the schedule while a probe's or a check's answer is awaited."""

LOST_PROBE_PAUSE = 0.5
"""Seconds before a probe whose answer was lost (a dropped connection, a timeout, a 5xx) is
sent again; doubles for each lost in a row, at most `DEFAULT_PAUSE`. A lost answer says
nothing about the window, so the probe is simply repeated, soon: every second it waits
lowers the limit it can show."""

CHECK_INTERVAL = 300.0
"""Seconds of running at a learned limit below the rate told before checking whether the
account allows more now (plans change)."""

CHECK_LENGTH = WINDOW
"""Seconds one check lasts at most: one request at a time goes ahead of the schedule until
one is refused (the check's one 429) or this long has passed."""

MIN_WINDOW = 1.0
"""The shortest window, in seconds, a `Retry-After` is taken to show."""

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
    ever goes before its slot. Besides, at most `rate` (rounded down) requests go in any
    `WINDOW + WINDOW_MARGIN` seconds: at the limit, once a minute, the schedule slips by up
    to `WINDOW_MARGIN` rather than crowd the server's minute.

    Learning the limit: on a 429 (`throttled`), the requests granted in the `WINDOW`
    seconds before the refused one and not answered 429 themselves are what the API
    accepted in its minute, so their number is the account's limit (`learned_limit`). From
    then on the limiter paces at it and caps every window at it, however high the
    configured rate. The 429s of requests sent before that moment met the same full window:
    they teach nothing new, so they neither lower the limit again nor double the pause.

    Confirming it: that count is the limit only if the API's window is a minute, which is
    undocumented. A `Retry-After` tells when the server's oldest counted request leaves its
    window, hence the window's length (the time since the oldest accepted request plus
    `Retry-After`, at most `WINDOW`): the count is scaled from it to a minute, and the
    lesson is confirmed (`limit_confirmed`). Without `Retry-After` the lesson is
    provisional: when the pause ends, one request (a probe) goes past the full window.
    Accepted, the window is at most as long as from the oldest request the lesson counted
    to the probe's answer, and the count scaled from that is confirmed. Refused, the next
    probe waits a pause twice as long. Lost (no answer: a dropped connection, a timeout, a
    5xx; `lost`), the probe says nothing and is sent again after `LOST_PROBE_PAUSE`,
    doubling. When the window frees on its own (its oldest request leaves the minute), the
    probe cycle ends: if the latest probe was refused, the window is a minute and the count
    is confirmed; otherwise nothing confirmed it, and the provisional limit is given up, so
    the limiter runs at the last confirmed limit, or at the configured rate, again. Only a
    confirmed limit is one to remember (`on_learned` says which). Against the documented
    minute that costs a 429 or two per lesson; against a shorter window the probe that gets
    through comes less than twice its length after the oldest request (when that went
    `DEFAULT_PAUSE` or more before the lesson), so more than half the true limit is
    learned. Either way the estimate counts from the oldest request accepted in the last
    minute: a break in sending before the 429 (a confirmation prompt after the pre-flight
    reads) makes a short window look longer, and the limit learned lower.

    Checking upward: `CHECK_INTERVAL` seconds after a limit below the configured rate was
    confirmed, a check sends one request at a time ahead of the schedule (`extra`s, at most
    at the rate the configured one leaves), for at most `CHECK_LENGTH` seconds. The first
    429 of a request sent during the check ends it (the check's one 429, which starts no
    lesson and no pause); so does the end of its time. Either way what the API accepted in
    the last minute is a limit it confirmed, learned when it is higher; a check that met
    no 429 is followed by another at once.

    A 429 when no request was accepted in the last minute teaches nothing (the account's
    requests went elsewhere): the rate is multiplied by `DECREASE_FACTOR`, never below
    `MIN_RATE_FRACTION` of the configured rate.

    Pausing: a 429 with `Retry-After` holds every later request that long. Without it the
    pause is `DEFAULT_PAUSE`, doubling for each further 429 in a row, at most `MAX_PAUSE`:
    after a lesson it only says when the probe may go, since the window is full and the
    cap holds every other request until it frees; after a 429 that teaches nothing it holds
    every later request. A 429 of a request sent before the last lesson changes no pause.

    `learned` starts the limiter from a limit remembered from an earlier run (requests a
    minute), taken as confirmed: it paces at the lower of that and `rate_per_minute` from
    the first request. `on_learned` is told every change of the limit and of whether it is
    confirmed (a progress line shows it; the journal remembers only confirmed ones).
    `clock` (monotonic seconds) and `sleep` are injectable so tests never wait.
    """

    def __init__(
        self,
        rate_per_minute: float,
        *,
        learned: float | None = None,
        on_learned: LimitListener | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        _check_rate("rate", rate_per_minute)
        if learned is not None:
            _check_rate("learned limit", learned)
        self._configured = float(rate_per_minute)
        self._learned = None if learned is None else float(learned)
        self._confirmed = learned is not None
        self._settled = self._learned  # the last limit confirmed: what a lesson falls back to
        self._rate = min(self._configured, self._learned or math.inf)
        self._floor = self._configured * MIN_RATE_FRACTION
        self._on_learned = on_learned
        self._clock = clock
        self._sleep = sleep
        self._lock = anyio.Lock()
        self._last = -math.inf  # the slot of the last request granted
        self._next = -math.inf  # the earliest slot of the next, by pacing
        self._hold = -math.inf  # no request before this: a 429's pause
        self._last_lesson = -math.inf
        self._pause_streak = 0
        # Grant times of the last `WINDOW + WINDOW_MARGIN` seconds, oldest first, those of
        # them answered 429, and those a check sent ahead of the schedule: the window's cap
        # counts all but the extras, the lesson all but the refused.
        self._granted: deque[float] = deque()
        self._refused: set[float] = set()
        self._extras: set[float] = set()
        # A provisional lesson, probing for its window's length without Retry-After: what
        # it counted since when; when the next probe may go; the probe out; whether the
        # latest probe answered was refused; the probes lost in a row.
        self._lesson: tuple[int, float] | None = None
        self._probe_at: float | None = None
        self._probe: float | None = None
        self._probe_refused = False
        self._lost_probes = 0
        # Checking upward: when the next check may start (set by the first request), when
        # this one started, the extra request out and when the last one went.
        self._check_at: float | None = None
        self._check_began: float | None = None
        self._extra: float | None = None
        self._last_extra = -math.inf

    @property
    def learned_limit(self) -> float | None:
        """The account's limit in requests per minute, learned or remembered; None if unknown."""
        return self._learned

    @property
    def limit_confirmed(self) -> bool:
        """Whether the API confirmed `learned_limit` (a remembered one counts as confirmed)."""
        return self._learned is not None and self._confirmed

    @property
    def rate(self) -> float:
        """The effective rate now, in requests per minute (the learned limit when lower)."""
        return self._rate

    @property
    def interval(self) -> float:
        """Seconds between two requests at the effective rate."""
        return 60.0 / self._rate

    async def acquire(self) -> float:
        """Wait for this request's turn; returns the clock time it was granted."""
        async with self._lock:
            if self._check_at is None:
                self._check_at = self._clock() + CHECK_INTERVAL
            waited_for = -math.inf
            # Re-read the schedule after every sleep: `throttled` may have pushed it back.
            while True:
                now = self._clock()
                self._end_check_if_over(now)
                slot = self._slot(now)
                if slot <= now:
                    break
                if self._may_go_ahead(now):
                    return self._go_ahead(now)
                waited_for = slot
                # The probe's or a check's answer may free the way long before the cap
                # would: look again every PROBE_POLL seconds while one is out or due.
                watching = self._probe is not None or self._checking(now)
                await self._sleep(min(slot - now, PROBE_POLL if watching else math.inf))
            if self._lesson is not None:
                if now < self._window_frees(now):
                    self._probe = now  # past a full window: the probe for its length
                else:
                    # The window freed on its own: the probe cycle is over, and the answer
                    # of a probe still out (perhaps admitted only because the window had
                    # freed by then, perhaps lost) would tell nothing sure.
                    self._end_probing()
            # A request that waited for its slot holds it from the scheduled moment: a sleep
            # wakes a little late (timer granularity, a busy loop), and counting from the
            # wake-up would push every later slot back by that much, a few percent of the
            # rate at 20 requests a second. An overshoot of a whole interval or more, or a
            # request that came after its slot was free, starts the schedule afresh from
            # now, so no burst builds up.
            keep_schedule = 0 <= now - waited_for < self.interval
            self._last = waited_for if keep_schedule else now
            self._next = self._last + self.interval
            self._granted.append(now)
            return now

    def _slot(self, now: float) -> float:
        """The earliest moment the next request may go by pacing, pause and window; a
        probe due goes at its time, whatever the pace of the provisional limit."""
        slot = max(self._next, self._window_frees(now))
        if self._probe_at is not None and self._probe is None:
            slot = min(slot, self._probe_at)
        return max(slot, self._hold)

    def _window_frees(self, now: float) -> float:
        """When the window has room for one more request: at once until it is full."""
        span = WINDOW + WINDOW_MARGIN
        while self._granted and self._granted[0] <= now - span:
            old = self._granted.popleft()
            self._refused.discard(old)
            self._extras.discard(old)
        cap = max(1, math.floor(self._rate)) + len(self._extras)
        if len(self._granted) < cap:
            return -math.inf
        return self._granted[len(self._granted) - cap] + span

    def _checking(self, now: float) -> bool:
        """Whether a check may send a request ahead of the schedule now (see the class)."""
        return (
            self._lesson is None
            and self._settled is not None
            and self._rate < self._configured
            and self._check_at is not None
            and now >= self._check_at
        )

    def _may_go_ahead(self, now: float) -> bool:
        """Whether the waiting request goes now as a check's extra: none is out, no pause
        holds, and extras stay within what the configured rate leaves."""
        spare = self._configured - self._rate
        return (
            self._checking(now)
            and self._extra is None
            and now >= self._hold
            and now >= self._last_extra + 60.0 / spare
        )

    def _go_ahead(self, now: float) -> float:
        """Grant the waiting request now as an extra, outside the schedule."""
        if self._check_began is None:
            self._check_began = now
        self._extra = self._last_extra = now
        self._granted.append(now)
        self._extras.add(now)
        return now

    def _end_check_if_over(self, now: float) -> None:
        """End a check that has run `CHECK_LENGTH` seconds with no 429 and no extra out."""
        began = self._check_began
        if began is not None and self._extra is None and now - began >= CHECK_LENGTH:
            self._end_check(now, refused_at=None)

    def _end_check(self, now: float, *, refused_at: float | None) -> None:
        """End the check: what the API accepted in the minute before (`refused_at`, the
        check's 429, or now) is a limit it confirmed; learned when higher. A check that met
        no 429 is followed by another at once."""
        accepted = len(self._accepted_before(now if refused_at is None else refused_at))
        self._check_began = self._extra = None
        self._extras.clear()
        # 429s of requests sent during the check met the same full window: none teaches.
        self._last_lesson = now
        if accepted > (self._settled or 0):
            self._confirm(accepted)
        self._check_at = now + CHECK_INTERVAL if refused_at is not None else now

    def throttled(self, retry_after: float | None, *, sent_at: float | None = None) -> float:
        """Record a 429: hold every later request, learn the limit. Returns the pause in seconds.

        `retry_after` is the server's `Retry-After` in seconds, None when absent;
        `sent_at` is the time `acquire` granted the refused request, when known.
        """
        now = self._clock()
        if sent_at is not None and self._granted and sent_at >= self._granted[0]:
            self._refused.add(sent_at)  # still in the window, where the lesson counts
        began = self._check_began
        if began is not None and sent_at is not None and sent_at >= began:
            self._end_check(now, refused_at=sent_at)  # the check's one 429
            return max(0.0, self._hold - now)
        probe_refused = self._probe is not None and sent_at in (None, self._probe)
        if probe_refused:
            self._probe = None  # refused: the window is longer; the next probe waits longer
            self._lost_probes = 0
        # A request sent before the last lesson met the same full window as the 429 that
        # taught it, and the requests in flight then draw 429s together: such a 429 says
        # nothing new, so it neither lowers the limit again nor doubles the pause (a dozen
        # of them would otherwise stretch it to MAX_PAUSE at once).
        fresh = sent_at is None or sent_at > self._last_lesson
        told = retry_after is not None and retry_after >= 0
        if retry_after is not None and told:
            pause = retry_after
            self._hold = max(self._hold, now + pause)
        elif fresh:
            pause = min(DEFAULT_PAUSE * 2**self._pause_streak, MAX_PAUSE)
            self._pause_streak += 1
        else:
            return max(0.0, self._hold - now)
        if not fresh:
            return pause
        self._last_lesson = now
        accepted = self._accepted_before(now if sent_at is None else sent_at)
        if not accepted:
            self._hold = max(self._hold, now + pause)
            self._rate = min(self._rate, max(self._floor, self._rate * DECREASE_FACTOR))
            return pause
        if retry_after is not None and told:
            self._confirm(_per_minute(len(accepted), now - accepted[0] + retry_after))
        else:
            # The window is full until its oldest request leaves it, and the cap at the
            # limit holds every request till then; the pause only says when to probe.
            self._lesson = (len(accepted), accepted[0])
            self._probe_at = now + pause
            self._probe_refused = probe_refused
            self._set_limit(len(accepted), confirmed=False)
        return pause

    def _accepted_before(self, refused_at: float) -> list[float]:
        """Grant times in the `WINDOW` seconds before `refused_at` not answered 429."""
        return [
            t
            for t in self._granted
            if refused_at - WINDOW < t < refused_at and t not in self._refused
        ]

    def succeeded(self, *, sent_at: float | None = None) -> None:
        """Record an answer that was not a 429: the next 429 pauses `DEFAULT_PAUSE` again.

        `sent_at` is the time `acquire` granted the request, when known; without it an
        answer that comes while a probe is out is taken for the probe's.
        """
        self._pause_streak = 0
        if self._probe is not None and self._lesson is not None and sent_at in (None, self._probe):
            # Accepted past the lesson's full window: the server decided between the probe
            # going and its answer coming, so the window is at most this long.
            count, since = self._lesson
            self._confirm(_per_minute(count, self._clock() - since))
        elif self._extra is not None and sent_at == self._extra:
            self._extra = None  # the next may go ahead

    def lost(self, *, sent_at: float) -> None:
        """Record a request whose answer never came, or told nothing of the rate (a dropped
        connection, a timeout, a 5xx): a probe's is sent again after `LOST_PROBE_PAUSE`
        (doubling for each lost in a row); a check's lets the next extra go.

        `sent_at` is the time `acquire` granted the request.
        """
        if self._probe is not None and sent_at == self._probe:
            self._probe = None
            pause = min(LOST_PROBE_PAUSE * 2**self._lost_probes, DEFAULT_PAUSE)
            self._lost_probes += 1
            self._probe_at = self._clock() + pause
        elif self._extra is not None and sent_at == self._extra:
            self._extra = None

    def _end_probing(self) -> None:
        """The window freed on its own: confirm a minute's count if the latest probe was
        refused, else give the provisional lesson up."""
        if self._lesson is not None and self._probe_refused and self._probe is None:
            self._confirm(self._lesson[0])
            return
        self._clear_lesson()
        self._set_limit(self._settled, confirmed=self._settled is not None)

    def _confirm(self, limit: int) -> None:
        """The API confirmed `limit` requests a minute: run at it, and check upward later."""
        self._clear_lesson()
        self._settled = limit
        self._check_at = self._clock() + CHECK_INTERVAL
        self._set_limit(limit, confirmed=True)

    def _clear_lesson(self) -> None:
        self._lesson = self._probe = self._probe_at = None
        self._probe_refused = False
        self._lost_probes = 0

    def _set_limit(self, limit: float | None, *, confirmed: bool) -> None:
        """Run at `limit` requests a minute from now on (at most the configured rate; the
        configured rate when None), and say so when it or its confirmation changed."""
        self._rate = min(self._configured, limit or math.inf)
        self._next = self._last + self.interval
        if (limit, confirmed) != (self._learned, self._confirmed):
            self._learned, self._confirmed = limit, confirmed
            if self._on_learned is not None:
                self._on_learned(limit, confirmed)


def _per_minute(accepted: int, window: float) -> int:
    """`accepted` requests in a window of `window` seconds (at most `WINDOW`), a minute."""
    return math.floor(accepted * WINDOW / min(WINDOW, max(window, MIN_WINDOW)))


def _check_rate(what: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{what} must be a positive number of requests per minute, not {value!r}")


def default_concurrency(rate_per_minute: float, *, latency: float = LATENCY_GUESS) -> int:
    """Requests in flight needed to keep `rate_per_minute` full when each takes `latency` s.

    One more than rate × latency, bounded to `MIN_CONCURRENCY`..`MAX_CONCURRENCY`: more
    would only queue at the limiter, fewer would let slow answers lower the rate.
    """
    needed = math.ceil(rate_per_minute / 60.0 * latency) + 1
    return max(MIN_CONCURRENCY, min(MAX_CONCURRENCY, needed))
