"""Fakes the tests share: time that moves only when something sleeps on it, a client of
the mocked API on that time, and a progress sink that keeps what it is told."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio.lowlevel
import httpx
import respx

from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.api.limiter import RateLimiter
from bulk_chats.records import Outcome
from bulk_chats.settings import ApiKey

WALL0 = 1_700_000_000.0

API_ROOT = "https://api.test/v1"
"""The API root the HTTP unit tests mock (the `api` fixture)."""


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


@asynccontextmanager
async def fake_client(api: respx.MockRouter, fake: FakeTime) -> AsyncIterator[HelpCrunchClient]:
    """A client of the mocked `API_ROOT` at 6000 requests a minute on `fake` time."""
    limiter = RateLimiter(6000, clock=fake.clock, sleep=fake.sleep)
    async with HelpCrunchClient(
        API_ROOT,
        ApiKey("sk-test"),
        limiter=limiter,
        transport=httpx.MockTransport(api.async_handler),
        wall_clock=fake.wall,
    ) as client:
        yield client
