"""The worker pool: concurrency, order, stopping and the journal's failure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import anyio.lowlevel
import httpx
import pytest

from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.records import Outcome, Status
from bulk_chats.send.pool import JournalFailure, RowRunner, SendResult, in_thread
from bulk_chats.settings import ApiKey
from tests.fakes import FakeTime, RecordingProgress

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Row:
    """The least a row to run is."""

    index: int
    chat_id: int | None = None


class Runner(RowRunner[Row]):
    """Each row takes a few turns of the event loop; the journal write can fail."""

    def __init__(self, client: HelpCrunchClient, *, stop: anyio.Event | None = None) -> None:
        self.progress = RecordingProgress()
        self.fake = FakeTime()
        super().__init__(
            client, progress=self.progress, stop=stop, stop_grace=0.0, sleep=self.fake.sleep
        )
        self.started: list[int] = []
        self.recorded: list[int] = []
        self.in_flight = 0
        self.peak = 0
        self.fail_record_of: int | None = None

    async def _run_row(self, request: Row) -> Outcome:
        self.started.append(request.index)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        for _ in range(20):
            await anyio.lowlevel.checkpoint()
        self.in_flight -= 1
        return Outcome(index=request.index, status=Status.UPDATED, chat_id=request.chat_id)

    async def _record(self, request: Row, outcome: Outcome) -> None:
        if request.index == self.fail_record_of:
            self._journal_error = OSError("disk full")
        self.recorded.append(request.index)


@pytest.fixture
async def client() -> AsyncIterator[HelpCrunchClient]:
    """A client whose API is never asked: the pool sends nothing itself."""
    transport = httpx.MockTransport(lambda request: httpx.Response(500))
    async with HelpCrunchClient("https://api.test/v1", ApiKey("k"), transport=transport) as c:
        yield c


async def run(runner: Runner, count: int, *, concurrency: int) -> SendResult:
    return await runner.run([Row(i, chat_id=50 + i) for i in range(count)], concurrency=concurrency)


async def test_concurrency_bounds_the_rows_in_flight(client: HelpCrunchClient) -> None:
    """Never more than `concurrency` rows are in flight, and all of them are used."""
    runner = Runner(client)
    result = await run(runner, 12, concurrency=3)
    assert runner.peak == 3
    assert {o.status for o in result.outcomes.values()} == {Status.UPDATED}


async def test_no_concurrency_is_refused_before_anything_starts(
    client: HelpCrunchClient,
) -> None:
    """A concurrency below 1 is a caller's mistake: refused before a row or progress starts."""
    runner = Runner(client)
    with pytest.raises(ValueError, match="concurrency must be at least 1, not 0"):
        await run(runner, 3, concurrency=0)
    assert (runner.started, runner.progress.total) == ([], None)


async def test_workers_take_rows_in_order(client: HelpCrunchClient) -> None:
    """Rows start in input order, and the result lists them in that order."""
    runner = Runner(client)
    result = await run(runner, 6, concurrency=2)
    assert runner.started == [0, 1, 2, 3, 4, 5]
    assert list(result.outcomes) == [0, 1, 2, 3, 4, 5]


async def test_a_stop_before_the_run_leaves_every_row_not_sent(client: HelpCrunchClient) -> None:
    """With stop set no row starts: each is not_sent with its chat kept, and progress hears
    of each before it is closed."""
    stop = anyio.Event()
    stop.set()
    runner = Runner(client, stop=stop)
    result = await run(runner, 3, concurrency=2)
    assert runner.started == []
    assert result.interrupted
    assert [(o.status, o.chat_id) for o in result.outcomes.values()] == [
        (Status.NOT_SENT, 50),
        (Status.NOT_SENT, 51),
        (Status.NOT_SENT, 52),
    ]
    assert (runner.progress.total, len(runner.progress.outcomes)) == (3, 3)
    assert runner.progress.closed


async def test_a_journal_failure_stops_the_run_and_is_raised(client: HelpCrunchClient) -> None:
    """Once the journal fails no new row starts, and its error surfaces from `run`."""
    runner = Runner(client)
    runner.fail_record_of = 1
    with pytest.raises(OSError, match="disk full"):
        await run(runner, 5, concurrency=1)
    assert runner.started == [0, 1]
    assert runner.progress.closed
    assert runner.progress.outcomes[-1].error_message == (
        "not sent: the journal could not be written, so the run stopped"
    )


async def test_a_journal_write_that_fails_raises_journal_failure() -> None:
    """`in_thread` wraps the write's exception, kept as the cause."""

    def write() -> None:
        raise OSError("disk full")

    with pytest.raises(JournalFailure) as caught:
        await in_thread(write)
    assert isinstance(caught.value.__cause__, OSError)
