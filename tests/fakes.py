"""Fakes the tests share: time that moves only when something sleeps on it."""

from __future__ import annotations

import anyio.lowlevel

WALL0 = 1_700_000_000.0


class FakeTime:
    """Monotonic and wall clocks that move only when something sleeps on them.

    `now` starts at 0 and `wall()` reads `WALL0 + now`; `sleeps` keeps every wait asked for.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL0 + self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()
