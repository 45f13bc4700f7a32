"""Fakes the tests share: time that moves only when something sleeps on it, a client of
the mocked API on that time, a progress sink that keeps what it is told, a journal that
keeps what the senders write to it, and a workbook reader that never answers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.lowlevel
import httpx
import respx

from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.api.limiter import RateLimiter
from bulk_chats.errors import ApiError
from bulk_chats.records import ChatChange, ChatRequest, Outcome
from bulk_chats.sandbox import RunningSandbox, SandboxConfig
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
    """A progress sink that keeps every event: the total, each outcome, whether closed,
    and each (done, total) of conversations."""

    total: int | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    closed: bool = False
    conversations_done: list[tuple[int, int]] = field(default_factory=list)

    def start(self, total: int) -> None:
        self.total = total

    def advance(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def limit_learned(self, rate: float | None, *, confirmed: bool) -> None:
        pass

    def conversations(self, done: int, total: int) -> None:
        self.conversations_done.append((done, total))

    def close(self) -> None:
        self.closed = True


StartSandbox = Callable[[SandboxConfig], RunningSandbox]
"""Starts a sandbox on loopback with the config given (the `start_sandbox` fixture); it
stops when the test ends."""

Event = tuple[Any, ...]


@dataclass
class RecordingChats:
    """The chat store's calls, kept as ("chat-attempt", index, started_at),
    ("chat-withdraw", index, started_at) and ("chat-record", index, outcome);
    `fail_on_attempt` makes an attempt fail as a full disk would."""

    events: list[Event]
    fail_on_attempt: bool = False

    def attempt(self, request: ChatRequest, *, started_at: float) -> None:
        if self.fail_on_attempt:
            raise OSError("disk full")
        self.events.append(("chat-attempt", request.index, started_at))

    def withdraw(self, request: ChatRequest, *, started_at: float) -> None:
        self.events.append(("chat-withdraw", request.index, started_at))

    def record(self, request: ChatRequest, outcome: Outcome) -> None:
        self.events.append(("chat-record", request.index, outcome))


@dataclass
class RecordingChanges:
    """The change store's calls, kept as ("attempt", chat, field, value) and (state, chat,
    field, value)."""

    events: list[Event]

    def attempt(self, chat_id: int, change: ChatChange, *, source_row: int) -> None:
        self.events.append(("attempt", chat_id, change.field, change.journal_value))

    def record(
        self,
        chat_id: int,
        change: ChatChange,
        state: str,
        *,
        source_row: int,
        error: ApiError | None = None,
    ) -> None:
        self.events.append((state, chat_id, change.field, change.journal_value))


@dataclass
class RecordingMessages:
    """The message store's calls, kept as ("message-attempt", position, message_key) and
    ("message-<state>", position, message_id)."""

    events: list[Event]

    def attempt(
        self,
        conversation: str,
        position: int,
        *,
        message_key: str,
        chat_id: int,
        started_at: float,
        source_row: int,
        agent_id: int | None = None,
    ) -> None:
        self.events.append(("message-attempt", position, message_key))

    def record(
        self,
        conversation: str,
        position: int,
        *,
        state: str,
        message_key: str,
        chat_id: int,
        message_id: int | None = None,
        error_code: str = "",
        error_message: str = "",
        http_status: int | None = None,
        source_row: int,
    ) -> None:
        self.events.append((f"message-{state}", position, message_id))


class RecordingJournal:
    """A journal for the senders that keeps every call of its stores, in order, in one
    list (`events`)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.chats = RecordingChats(self.events)
        self.changes = RecordingChanges(self.events)
        self.messages = RecordingMessages(self.events)

    def records(self, index: int) -> list[Outcome]:
        """The outcomes recorded for row `index`, in order."""
        return [e[2] for e in self.events if e[0] == "chat-record" and e[1] == index]


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


@dataclass
class StuckReader:
    """A workbook child that never answers, as one stuck on a zip bomb would not: each run
    of it appends its process id to `pids`, then sleeps a minute."""

    script: Path
    pids: Path

    @classmethod
    def write(cls, folder: Path) -> StuckReader:
        pids = folder / "reader-pids"
        script = folder / "stuck_reader.py"
        script.write_text(
            "import os, time\n"
            f"with open({str(pids)!r}, 'a') as out:\n"
            "    out.write(f'{os.getpid()}\\n')\n"
            "time.sleep(60)\n",
            encoding="utf-8",
        )
        return cls(script, pids)

    def assert_ended(self) -> None:
        """It ran, and every process of it is gone."""
        numbers = [int(line) for line in self.pids.read_text(encoding="utf-8").split()]
        assert numbers
        for pid in numbers:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            raise AssertionError(f"reader {pid} still runs")
