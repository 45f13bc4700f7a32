"""Fakes the tests share: time that moves only when something sleeps on it, and a
progress sink that keeps what it is told."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio.lowlevel

from bulk_chats.records import Outcome

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


@dataclass
class RecordingProgress:
    """A progress sink that keeps every event: the total, each outcome, whether closed."""

    total: int | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    closed: bool = False

    def start(self, total: int) -> None:
        self.total = total

    def advance(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def limit_learned(self, rate: float) -> None:
        pass

    def close(self) -> None:
        self.closed = True
