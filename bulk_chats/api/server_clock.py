"""The API's clock as its answers tell it: how far ahead of ours it runs.

A chat is dated by the API's clock, an attempt to create it by ours. To tell the chat an
attempt made from one somebody made a moment before it, the search for an answer that
was lost needs the attempt's start on the API's clock. Every answer carries a `Date`
header (RFC 9110 › Date): its time, to the second, when the answer was made, before it
reached us. So `Date` less the time it arrived is at most the API's lead on our clock, and
at least that less a second and the answer's travel; the largest of the recent ones is
the closest.
"""

from __future__ import annotations

import email.utils
import math
from collections import deque
from typing import Final

SAMPLES: Final = 64
"""The latest answers whose `Date` is kept: a clock set anew is followed within as many."""


class ServerClock:
    """The API's clock against ours, from the `Date` of its answers (`observe`)."""

    def __init__(self) -> None:
        self._leads: deque[float] = deque(maxlen=SAMPLES)

    def observe(self, date: str | None, received_at: float) -> None:
        """Take the `Date` header of an answer received at `received_at` (unix seconds,
        our clock); one that is absent or unreadable is passed over."""
        if not date:
            return
        try:
            sent = email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            return
        if sent.tzinfo is None:
            return
        lead = sent.timestamp() - received_at
        if math.isfinite(lead):
            self._leads.append(lead)

    @property
    def lead(self) -> float | None:
        """Seconds the API's clock is at least ahead of ours (negative: behind), or None
        before any answer gave its `Date`."""
        return max(self._leads) if self._leads else None
