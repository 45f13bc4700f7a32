"""Progress sinks: the library reports each finished row and the account's limit once
learned; the CLI picks how it is shown.

A tqdm bar on a terminal, a periodic log line on stderr otherwise, nothing with
`--no-progress` (docs/reference.md › Options).
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import NoReturn, Protocol, TextIO

from tqdm import tqdm

from bulk_chats.records import Outcome, Status

LOG_INTERVAL = 30.0
"""Seconds between progress lines when stderr is not a terminal."""


class ProgressSink(Protocol):
    """Receives the sending stage's progress. Called from the event loop thread only."""

    def start(self, total: int) -> None:
        """Sending begins (or its next phase); `total` rows will each end in one
        `advance` (0: not known)."""

    def advance(self, outcome: Outcome) -> None:
        """One row reached its final outcome in this run."""

    def limit_learned(self, rate: float | None, *, confirmed: bool) -> None:
        """The rate limiter learned the account's limit, `rate` requests a minute, and runs
        at it from now on (`RateLimiter(on_learned=...)`); `confirmed` says whether the API
        confirmed it or it is provisional while the API's window is probed; None (never
        confirmed) when a provisional limit was given up. May come before `start`."""

    def conversations(self, done: int, total: int) -> None:
        """A transcript's sending: `done` of its `total` conversations are over (each row
        is one message). First called with 0 done, after `start`."""

    def close(self) -> None:
        """Sending is over (finished, interrupted or stopped)."""


class NullProgress:
    """Shows nothing."""

    def start(self, total: int) -> None:
        pass

    def advance(self, outcome: Outcome) -> None:
        pass

    def limit_learned(self, rate: float | None, *, confirmed: bool) -> None:
        pass

    def conversations(self, done: int, total: int) -> None:
        pass

    def close(self) -> None:
        pass


_FAILURES = (Status.FAILED, Status.MESSAGE_FAILED, Status.STATUS_FAILED, Status.UNKNOWN)


def _counts_text(
    counts: Counter[Status],
    limit: float | None,
    conversations: tuple[int, int] | None = None,
    *,
    confirmed: bool,
) -> str:
    # `update` and `close` create nothing: their rows are counted as updated; `export`
    # counts the chats it wrote.
    done = next((s for s in (Status.EXPORTED, Status.UPDATED) if counts[s]), Status.CREATED)
    failed = sum(counts[s] for s in _FAILURES)
    text = f"{done}={counts[Status(done)]} failed={failed}"
    if conversations is not None:
        text = f"{text} conversations={conversations[0]}/{conversations[1]}"
    if limit is None:
        return text
    return f"{text}, account limit {limit:g}/min{'' if confirmed else ' (unconfirmed)'}"


def duration_text(seconds: float) -> str:
    """`seconds` as a person reads a duration: `45s`, `2m 05s`, `3h 20m`, rounded up (an
    estimate that promises less than it takes is worse than one that promises more)."""
    minutes, rest = divmod(math.ceil(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {rest:02d}s" if minutes else f"{rest}s"


def limit_text(rate: float | None, *, confirmed: bool = True) -> str:
    """What the user is told when the limiter learns the account's limit, confirmed or
    not, or gives up one it could not confirm (`rate` None)."""
    if rate is None:
        return "the account's limit could not be confirmed; back to the rate asked for"
    if confirmed:
        return (
            f"the account allows {rate:g} requests a minute (the API confirmed it); running at that"
        )
    return (
        f"the account seems to allow {rate:g} requests a minute (not confirmed yet: "
        "probing how long the API counts); running at that meanwhile"
    )


class BarProgress:
    """A tqdm bar: rows done of total, created and failed counts, rate and ETA."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._bar: tqdm[NoReturn] | None = None
        self._counts: Counter[Status] = Counter()
        self._limit: float | None = None
        self._conversations: tuple[int, int] | None = None
        self._confirmed = False

    def start(self, total: int) -> None:
        # A second phase (an export's messages after its chats) counts afresh. No total
        # (0) is an unknown one: the bar counts and shows the rate.
        self._counts.clear()
        self._bar = tqdm(total=total or None, unit="row", file=self._stream, dynamic_ncols=True)

    def advance(self, outcome: Outcome) -> None:
        self._counts[outcome.status] += 1
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(), refresh=False)
            self._bar.update(1)

    def limit_learned(self, rate: float | None, *, confirmed: bool) -> None:
        self._limit, self._confirmed = rate, confirmed
        # A line above the bar, which stays; the bar's postfix shows the limit from now on.
        tqdm.write(limit_text(rate, confirmed=confirmed), file=self._stream)
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix())

    def conversations(self, done: int, total: int) -> None:
        self._conversations = (done, total)
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix())

    def _postfix(self) -> str:
        return _counts_text(
            self._counts, self._limit, self._conversations, confirmed=self._confirmed
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class LogProgress:
    """One line on `stream` every `interval` seconds and at the end, for logs and pipes."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream or sys.stderr
        self._interval = interval
        self._clock = clock
        self._counts: Counter[Status] = Counter()
        self._limit: float | None = None
        self._conversations: tuple[int, int] | None = None
        self._confirmed = False
        self._total = 0
        self._done = 0
        self._started = 0.0
        self._last = 0.0
        self._reported = -1

    def start(self, total: int) -> None:
        self._total = total
        self._done, self._reported = 0, -1
        self._counts.clear()
        self._started = self._last = self._clock()

    def advance(self, outcome: Outcome) -> None:
        self._done += 1
        self._counts[outcome.status] += 1
        now = self._clock()
        if now - self._last >= self._interval:
            self._last = now
            self._write(now)

    def limit_learned(self, rate: float | None, *, confirmed: bool) -> None:
        self._limit, self._confirmed = rate, confirmed
        print(f"progress: {limit_text(rate, confirmed=confirmed)}", file=self._stream, flush=True)

    def conversations(self, done: int, total: int) -> None:
        self._conversations = (done, total)

    def close(self) -> None:
        if (self._total or self._done) and self._reported != self._done:
            self._write(self._clock())

    def _write(self, now: float) -> None:
        self._reported = self._done
        elapsed = max(now - self._started, 1e-9)
        per_minute = self._done / elapsed * 60
        left = self._total - self._done
        eta = f"{left / (per_minute / 60):.0f}s" if per_minute > 0 and left >= 0 else "?"
        done = f"{self._done}/{self._total}" if self._total else str(self._done)
        print(
            f"progress: {done} rows, "
            + _counts_text(
                self._counts, self._limit, self._conversations, confirmed=self._confirmed
            )
            + f", {per_minute:.0f}/min, eta {eta}",
            file=self._stream,
            flush=True,
        )
