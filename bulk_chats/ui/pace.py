"""The pace of a run as the page shows it: rows a minute lately, and the time left.

An average since the start promises too much once the pace drops: a run that went at 600
requests a minute until a 429 taught it the account allows 120 would say "about 8s left"
with a minute to go. So the rate is the one achieved over the last `WINDOW` seconds, and
the time left never beats what the limit allows: the rows left, at the requests a row
costs (from the plan), at the limit the run keeps to (the one learned, else its rate).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

WINDOW = 60.0
"""Seconds of the recent past the rate is measured over."""


@dataclass(frozen=True, slots=True)
class Budget:
    """What the plan says a row costs: `requests_per_row` (at least 1) at `rate` requests
    a minute."""

    requests_per_row: float
    rate: float


class Pace:
    """Rows done over time: (seconds, rows done) samples of the last `WINDOW` seconds."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()

    def restart(self, now: float) -> None:
        """Counting begins again at 0 rows, `now`."""
        self._samples.clear()
        self._samples.append((now, 0))

    def add(self, now: float, done: int) -> None:
        """`done` rows are done at `now` (seconds)."""
        self._samples.append((now, done))
        # Keep one sample at or before the window's start, to measure the window whole.
        while len(self._samples) > 2 and self._samples[1][0] <= now - WINDOW:
            self._samples.popleft()

    def per_minute(self, now: float) -> float | None:
        """Rows a minute over the last `WINDOW` seconds (or since the start, if shorter);
        None before the first row."""
        if len(self._samples) < 2:
            return None
        then, before = self._samples[0]
        done = self._samples[-1][1]
        if done == before:
            return None
        return (done - before) / max(now - then, 1e-6) * 60


def time_left(
    rows_left: int,
    per_minute: float | None,
    *,
    budget: Budget | None,
    learned_limit: float | None,
) -> float | None:
    """Seconds until `rows_left` rows are done: at the rate achieved lately, but never
    faster than the limit allows a row (the learned limit, else the plan's rate); None
    when neither is known."""
    allowed = None
    if budget is not None:
        limit = learned_limit or budget.rate
        allowed = limit / max(budget.requests_per_row, 1.0)
    rates = [rate for rate in (per_minute, allowed) if rate]
    if not rates:
        return None
    return rows_left / min(rates) * 60
