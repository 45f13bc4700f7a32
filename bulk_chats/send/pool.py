"""The one worker pool: work goes out `concurrency` items at a time.

`run_workers` is the pool itself: workers take the next item in order and work it until
none is left or the run stops. Every stage that sends runs on it: the customer look-ups
and creations (`lookups`), and through `RowRunner` the chats of `import` (`send.chats`)
and the changes of `update` and `close` (`send.changes`). `RowRunner` adds what is the
same for both senders: stopping (Ctrl-C, a 401, a journal that cannot be written) with
the rest `not_sent`, and telling progress. What one row is, and what the journal keeps of
it, is the subclass's.

A journal write goes through `in_thread`, which every stage uses: a failure there is a
`JournalFailure`, which stops the run once the work in flight ends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import anyio
import anyio.to_thread

from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.progress import ProgressSink
from bulk_chats.records import Outcome, Status
from bulk_chats.send.stopping import pause, waits_end_once_stopped
from bulk_chats.timing import Sleep

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SendResult:
    """What a sending stage did: an outcome for every request, by its `index`."""

    outcomes: Mapping[int, Outcome]
    auth_failed: bool = False
    interrupted: bool = False


JOURNAL_STOPPED = "not sent: the journal could not be written, so the run stopped"
"""The `error_message` of the rows a journal that could not be written kept from going."""


class JournalFailure(Exception):
    """The journal raised; carries its exception as `__cause__`. The run stops."""


async def run_workers(
    take: Callable[[], T | None],
    work: Callable[[T], Awaitable[None]],
    *,
    workers: int,
    stopping: Callable[[], bool],
) -> None:
    """Start `workers` workers; each takes the next item (`take()`, None once none is
    left) and awaits `work(item)`, until no item is left or `stopping()`.

    Taking an item involves no await, so two workers never take the same one; `take` may
    hand out items of any size (a batch of names) and `work` may give some back.
    """

    async def worker() -> None:
        while not stopping():
            item = take()
            if item is None:
                return
            await work(item)

    async with anyio.create_task_group() as group:
        for _ in range(workers):
            group.start_soon(worker)


async def in_thread(call: Callable[[], T]) -> T:
    """A journal call, on a worker thread: a commit waiting for the disk must not stall
    the event loop, and with it every request's pacing. Even when cancelled this waits for
    the thread: no write is left half-known. A failure raises `JournalFailure`."""
    try:
        return await anyio.to_thread.run_sync(call)
    except Exception as exc:
        raise JournalFailure from exc


class Indexed(Protocol):
    """A row to send: known by its 0-based position among the sheet's data rows, with
    the chat it has (from an earlier run, or the one `update` changes)."""

    @property
    def index(self) -> int: ...

    @property
    def chat_id(self) -> int | None: ...


R = TypeVar("R", bound=Indexed)


class RowRunner(Generic[R]):
    """Rows go out `concurrency` at a time until they run out or the run stops (Ctrl-C,
    a 401, a journal that cannot be written); the rest are `not_sent`. Subclasses say what
    one row is (`_run_row`) and what the journal keeps of its outcome (`_record`)."""

    def __init__(
        self,
        client: HelpCrunchClient,
        *,
        progress: ProgressSink,
        stop: anyio.Event | None,
        stop_grace: float,
        sleep: Sleep,
    ) -> None:
        self._client = client
        self._progress = progress
        self._stop = stop
        self._stop_grace = stop_grace
        self._sleep = sleep
        self._outcomes: dict[int, Outcome] = {}
        self._queue: Iterator[R] = iter(())
        self._auth_failed = False
        self._journal_error: BaseException | None = None

    async def run(self, requests: Sequence[R], *, concurrency: int) -> SendResult:
        """Run every request, `concurrency` at once; re-raises the journal's exception
        once the rows in flight finish."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self._queue = iter(requests)
        self._progress.start(self._rows_in(requests))
        try:
            async with waits_end_once_stopped(
                self._client, self._stop, grace=self._stop_grace, sleep=self._sleep
            ):
                await run_workers(
                    lambda: next(self._queue, None),
                    self._work,
                    workers=min(concurrency, len(requests)),
                    stopping=self._stopping,
                )
            reason = self._not_sent_reason()
            for request in self._queue:
                for outcome in self._not_reached(request, reason):
                    self._outcomes[outcome.index] = outcome
                    self._progress.advance(outcome)
        finally:
            self._progress.close()
        if self._journal_error is not None:
            raise self._journal_error
        return SendResult(
            outcomes=dict(self._outcomes),
            auth_failed=self._auth_failed,
            interrupted=self._stop is not None and self._stop.is_set(),
        )

    async def _run_row(self, request: R) -> Outcome:
        raise NotImplementedError

    def _rows_in(self, requests: Sequence[R]) -> int:
        """The rows `requests` stand for, each to end in one outcome: one each here."""
        return len(requests)

    def _not_reached(self, request: R, reason: str) -> list[Outcome]:
        """The outcomes of the rows of `request`, which the run stopped before: `not_sent`,
        keeping the chat an earlier run made."""
        return [
            Outcome(
                index=request.index,
                status=Status.NOT_SENT,
                chat_id=request.chat_id,
                error_message=reason,
            )
        ]

    async def _record(self, request: R, outcome: Outcome) -> None:
        raise NotImplementedError

    async def _pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less when the run is told to stop: no retry follows then."""
        await pause(seconds, stop=self._stop, sleep=self._sleep)

    def _stopping(self) -> bool:
        stopped = self._stop is not None and self._stop.is_set()
        return stopped or self._auth_failed or self._journal_error is not None

    def _not_sent_reason(self) -> str:
        if self._auth_failed:
            return "not sent: the API refused the key (401), so the run stopped"
        if self._journal_error is not None:
            return JOURNAL_STOPPED
        return "not sent: the run was interrupted"

    async def _work(self, request: R) -> None:
        outcome = await self._run_row(request)
        self._outcomes[request.index] = outcome
        await self._record(request, outcome)
        self._progress.advance(outcome)
