"""The shapes of time every stage is given, so that tests can hand in fake time.

A stage that waits takes a `Sleep`; one that measures takes a `Clock` (monotonic seconds)
or a `WallClock` (unix seconds, for what the API or the journal dates).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
"""Monotonic seconds."""

WallClock = Callable[[], float]
"""Unix seconds."""

Sleep = Callable[[float], Awaitable[None]]
"""Waits the given seconds."""
