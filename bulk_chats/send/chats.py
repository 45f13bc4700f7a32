"""The sending stage of `import`: valid rows become chats, and their first messages, safely.

It owns the order of things for one row (look for what an earlier attempt may have
created, create the chat, post the message, set the status) and what becomes of the row
when something fails: which error is retried (`api.retry`), which is looked for by
search first (`send.lost_answers`), and which ends the row or the run. Rows go out
`concurrency` at a time, each request at its turn at the client's rate limiter; at most
one `POST /chats` per customer is unresolved at once, so a search for it can tell this
row's chat from the customer's others, and no chat id is adopted twice. The journal hears
of each attempt before it goes out and of each chat as soon as it exists, so a killed run
can resume. The rules themselves are in docs/sending.md.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.api.entities import Chat
from bulk_chats.api.retry import DEFAULT_ATTEMPTS, DEFAULT_MAX_WAIT, Budget, read_with_retries
from bulk_chats.errors import (
    ApiError,
    AuthenticationError,
    MaybeSentError,
    NotSentError,
    RefusedError,
)
from bulk_chats.progress import ProgressSink
from bulk_chats.records import ChatChange, ChatRequest, Outcome, Status
from bulk_chats.send.changes import apply_change
from bulk_chats.send.journaling import SendJournal
from bulk_chats.send.lost_answers import AmbiguousChat, MessageCheck, find_chat, find_message
from bulk_chats.send.pool import JournalFailure, RowRunner, SendResult, in_thread
from bulk_chats.send.stopping import STOP_GRACE
from bulk_chats.timing import Sleep

SEARCH_ATTEMPTS = 3
"""Tries of a read made to find what a lost answer did (a chat search, a chat's
messages) on 429, 503, timeouts and dropped connections."""


T = TypeVar("T")


async def send_chats(
    requests: Sequence[ChatRequest],
    client: HelpCrunchClient,
    *,
    concurrency: int,
    progress: ProgressSink,
    journal: SendJournal | None = None,
    stop: anyio.Event | None = None,
    max_attempts: int = DEFAULT_ATTEMPTS,
    max_wait: float = DEFAULT_MAX_WAIT,
    stop_grace: float = STOP_GRACE,
    claimed_chat_ids: Iterable[int] = (),
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    sleep: Sleep = anyio.sleep,
) -> SendResult:
    """Create a chat, and post its first message, for every request; see the module docs.

    `concurrency` is the number of requests in flight at once; `max_attempts` and
    `max_wait` (seconds) bound the retries of each request; `stop_grace` (seconds) is how
    long a stopped run waits at the rate limiter (see the module docs). `claimed_chat_ids`
    are chats known to belong to other rows (from earlier runs): a search for it never
    adopts them. `clock` (monotonic seconds), `wall_clock` (unix seconds, for the journal
    and the search) and `sleep` (back-off) are injectable for tests.
    """
    sender = _Sender(
        client,
        progress=progress,
        journal=journal,
        stop=stop,
        max_attempts=max_attempts,
        max_wait=max_wait,
        stop_grace=stop_grace,
        claimed=claimed_chat_ids,
        clock=clock,
        wall_clock=wall_clock,
        sleep=sleep,
    )
    return await sender.run(requests, concurrency=concurrency)


@dataclass(slots=True)
class _Row:
    """One row's state while it is being sent."""

    request: ChatRequest
    chat_id: int | None
    from_earlier_run: bool
    attempts: int = 0
    in_flight: bool = False
    message_id: int | None = None
    status_set: bool = False


class _Sender(RowRunner[ChatRequest]):
    def __init__(
        self,
        client: HelpCrunchClient,
        *,
        progress: ProgressSink,
        journal: SendJournal | None,
        stop: anyio.Event | None,
        max_attempts: int,
        max_wait: float,
        stop_grace: float,
        claimed: Iterable[int],
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        sleep: Sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        super().__init__(client, progress=progress, stop=stop, stop_grace=stop_grace, sleep=sleep)
        self._journal = journal
        self._max_attempts = max_attempts
        self._max_wait = max_wait
        self._claimed: set[int] = set(claimed)
        self._clock = clock
        self._wall_clock = wall_clock
        self._customer_locks: dict[int, anyio.Lock] = {}

    async def run(self, requests: Sequence[ChatRequest], *, concurrency: int) -> SendResult:
        self._claimed.update(r.chat_id for r in requests if r.chat_id is not None)
        return await super().run(requests, concurrency=concurrency)

    async def _run_row(self, request: ChatRequest) -> Outcome:
        """Send one row; whatever goes wrong ends as this row's outcome, not the run's."""
        row = _Row(
            request,
            chat_id=request.chat_id,
            from_earlier_run=request.chat_id is not None,
            message_id=request.message_id,
        )
        try:
            return await self._send_row(row)
        except JournalFailure as failure:
            self._journal_error = self._journal_error or failure.__cause__ or failure
            ended = self._broken(row, "the journal could not be written")
            # Refused by no one: what failed was the announcement, so nothing went out.
            if ended.status is Status.FAILED:
                return replace(ended, status=Status.NOT_SENT, error_message=self._not_sent_reason())
            return ended
        except Exception as exc:
            text = " ".join(str(exc).split())[:300]
            return self._broken(row, f"unexpected error: {type(exc).__name__}: {text}")

    def _broken(self, row: _Row, text: str) -> Outcome:
        """The outcome of a row cut short by `text`, from how far it got."""
        if row.chat_id is not None:
            if row.request.message is not None and row.message_id is None:
                return self._outcome(row, Status.MESSAGE_FAILED, error_message=text)
            if row.request.status is not None and not row.status_set:
                return self._outcome(row, Status.STATUS_FAILED, error_message=text)
            return self._chat_outcome(row)
        # With `search_since` an earlier run may have created the chat: `failed` would make
        # the next run send it blindly.
        maybe_exists = row.in_flight or row.request.search_since is not None
        status = Status.UNKNOWN if maybe_exists else Status.FAILED
        return self._outcome(row, status, error_message=text)

    async def _send_row(self, row: _Row) -> Outcome:
        request = row.request
        chat_id = row.chat_id
        more = request.message is not None or request.status is not None
        if chat_id is None:
            lock = self._customer_locks.setdefault(request.customer_id, anyio.Lock())
            async with lock:
                created = await self._create(row)
            if isinstance(created, Outcome):
                return created
            chat_id = row.chat_id = created
            if more:
                await self._record(request, self._chat_outcome(row))
        if request.message is not None and row.message_id is None:
            posted = await self._post_message(row, request.message.payload(chat_id))
            if request.status is None or row.message_id is None:
                return posted
            await self._record(request, posted)
        if request.status is None:
            return self._chat_outcome(row)
        return await self._set_status(row, chat_id, ChatChange("status", request.status))

    async def _set_status(self, row: _Row, chat_id: int, change: ChatChange) -> Outcome:
        """Set the row's `chat_status` once its chat and message exist (a message may
        reopen a chat); the row's final outcome: `status_failed` keeps the chat."""
        try:
            await apply_change(
                self._client,
                self._journal.changes if self._journal is not None else None,
                chat_id,
                change,
                source_row=row.request.source_row,
                attempts=self._max_attempts,
                sleep=self._pause,
                stopping=self._stopping,
            )
        except ApiError as exc:
            self._auth_failed |= isinstance(exc, AuthenticationError)
            return self._outcome(row, Status.STATUS_FAILED, exc, prefix="status not set: ")
        row.status_set = True
        return self._chat_outcome(row)

    async def _create(self, row: _Row) -> int | Outcome:
        """Get the row a chat: its id, or the row's outcome when there is none."""
        request = row.request
        if request.search_since is not None:
            try:
                found = await self._find_chat(row, since=request.search_since)
            except AmbiguousChat as ambiguous:
                return self._outcome(row, Status.UNKNOWN, error_message=str(ambiguous))
            except ApiError as exc:
                self._auth_failed |= isinstance(exc, AuthenticationError)
                return self._outcome(
                    row,
                    Status.UNKNOWN,
                    exc,
                    prefix="an earlier run may have created this chat, and the search "
                    "to confirm it failed: ",
                )
            if found is not None:
                row.from_earlier_run = True
                return found

        budget = self._budget()
        last: ApiError | None = None
        while True:
            if self._stopping():
                reason = self._not_sent_reason()
                if last is None:
                    return self._outcome(row, Status.NOT_SENT, error_message=reason)
                return self._outcome(row, Status.NOT_SENT, last, prefix=f"{reason}; last try: ")
            if row.attempts >= self._max_attempts:
                return self._gave_up(row, last)
            row.attempts += 1
            started_at = self._wall_clock()
            await self._journal_attempt(request, started_at)
            row.in_flight = True
            try:
                chat = await self._client.create_chat(request.payload())
            except AuthenticationError as exc:
                row.in_flight = False
                self._auth_failed = True
                await self._journal_attempt(request, started_at, withdraw=True)
                return self._outcome(row, Status.NOT_SENT, exc)
            except NotSentError as exc:
                row.in_flight = False
                last = exc
                await self._journal_attempt(request, started_at, withdraw=True)
                if self._stopping():
                    continue
                wait = budget.wait_after(exc, row.attempts)
                if wait is None:
                    return self._gave_up(row, last)
                await self._pause(wait)
            except MaybeSentError as exc:
                last = exc
                # Let the API finish whatever it may have begun before looking for it.
                await self._pause(budget.settle(row.attempts))
                try:
                    found = await self._find_chat(row, since=started_at)
                except AmbiguousChat as ambiguous:
                    return self._outcome(row, Status.UNKNOWN, exc, error_message=str(ambiguous))
                except ApiError as search_exc:
                    self._auth_failed |= isinstance(search_exc, AuthenticationError)
                    return self._outcome(
                        row,
                        Status.UNKNOWN,
                        exc,
                        error_message=f"{exc.error_message}; the search to confirm whether "
                        f"the chat was created failed: {search_exc.error_message}",
                    )
                row.in_flight = False
                if found is not None:
                    return found
                if budget.expired():
                    return self._gave_up(row, last)
            except RefusedError as exc:
                row.in_flight = False
                return self._outcome(row, Status.FAILED, exc)
            else:
                row.in_flight = False
                if chat.id in self._claimed:
                    # Another row's chat: reporting it here too would count one chat twice,
                    # and posting this row's message would put it into that chat.
                    return self._outcome(
                        row,
                        Status.UNKNOWN,
                        error_message=f"the API answered with chat {chat.id}, which another "
                        "row already has; check this customer's chats before re-running",
                    )
                self._claimed.add(chat.id)
                return chat.id

    def _budget(self) -> Budget:
        """What one request (a chat, or its message) may spend on retries from now."""
        return Budget.start(attempts=self._max_attempts, seconds=self._max_wait, clock=self._clock)

    async def _find_chat(self, row: _Row, *, since: float) -> int | None:
        """The id of an unclaimed chat matching the row created since `since` (unix
        seconds), claimed for it; None when there is none. Raises the search's `ApiError`."""
        clock = self._client.server_clock
        chosen = await find_chat(
            self._search, row.request, since=since, claimed=self._claimed, lead=lambda: clock.lead
        )
        if chosen is not None:
            self._claimed.add(chosen)
        return chosen

    async def _search(self, customer: int, created_since: int) -> list[Chat]:
        """The customer's chats created since `created_since` (unix seconds)."""
        return await self._read(partial(self._client.search_chats, customer, created_since))

    async def _read(self, call: Callable[[], Awaitable[T]]) -> T:
        """A read made to confirm: it changes nothing, so a transient failure is tried
        again, `SEARCH_ATTEMPTS` tries; a stopping run cuts the back-off short."""
        return await read_with_retries(call, attempts=SEARCH_ATTEMPTS, sleep=self._pause)

    async def _look_for_message(self, row: _Row) -> MessageCheck:
        """What the chat's messages show of the row's first message; with the error when
        they cannot be read (a 401 also stops the run), which is not "absent"."""
        chat_id = row.chat_id
        if chat_id is None:
            return MessageCheck()
        try:
            messages = await self._read(partial(self._client.list_messages, chat_id))
        except ApiError as exc:
            self._auth_failed |= isinstance(exc, AuthenticationError)
            return MessageCheck(error=exc)
        return find_message(messages, row.request)

    async def _post_message(self, row: _Row, payload: Mapping[str, Any]) -> Outcome:
        """Post the row's first message into its chat; the row's final outcome.

        Posted only where the chat's messages were read and it is not among them, or where
        no earlier attempt can have posted it: a look-up that could not be read leaves the
        row `message_failed`, for the next run to look again (docs/sending.md › Lost
        answers)."""
        if row.from_earlier_run and row.request.search_since is not None:
            # The earlier run may have died with this message in flight.
            seen = await self._look_for_message(row)
            if seen.message_id is not None:
                row.message_id = seen.message_id
                return self._chat_outcome(row)
            if not seen.absent:
                return self._unseen(row, seen, "an earlier run may have posted this message")
        budget = self._budget()
        tries = 0
        while True:
            tries += 1
            try:
                posted = await self._client.post_message(payload)
            except AuthenticationError as exc:
                self._auth_failed = True
                return self._outcome(row, Status.MESSAGE_FAILED, exc)
            except NotSentError as exc:
                if self._stopping():
                    return self._outcome(
                        row,
                        Status.MESSAGE_FAILED,
                        exc,
                        prefix="the run stopped before the message could be posted: ",
                    )
                wait = budget.wait_after(exc, tries)
                if wait is None:
                    return self._outcome(
                        row, Status.MESSAGE_FAILED, exc, prefix=f"gave up after {tries} tries: "
                    )
                await self._pause(wait)
            except MaybeSentError as exc:
                # Let the API finish whatever it may have begun before looking for it.
                await self._pause(budget.settle(tries))
                seen = await self._look_for_message(row)
                if seen.message_id is not None:
                    row.message_id = seen.message_id
                    return self._chat_outcome(row)
                retry = seen.absent and not self._stopping()
                if retry and tries < self._max_attempts and not budget.expired():
                    continue
                if not seen.absent:
                    why = "the message may have been posted but no answer came back"
                    return self._unseen(row, seen, f"{why} ({exc.error_message})")
                return self._outcome(
                    row,
                    Status.MESSAGE_FAILED,
                    exc,
                    prefix="the message may have been posted but no answer came back; a "
                    "re-run looks for it in the chat before posting it again: ",
                )
            except RefusedError as exc:
                return self._outcome(row, Status.MESSAGE_FAILED, exc)
            else:
                row.message_id = posted.id
                return self._chat_outcome(row)

    def _unseen(self, row: _Row, seen: MessageCheck, why: str) -> Outcome:
        """`message_failed` for a first message that may be in the chat, whose messages
        could not be read: not posted, so that it is never posted twice."""
        error = seen.error
        reason = error.error_message if error is not None else "no answer to read"
        return self._outcome(
            row,
            Status.MESSAGE_FAILED,
            error,
            error_message=f"{why}, and the chat's messages could not be read to see ({reason}); "
            "not posted again: a re-run looks for it first",
        )

    def _gave_up(self, row: _Row, last: ApiError | None) -> Outcome:
        return self._outcome(
            row, Status.FAILED, last, prefix=f"gave up after {row.attempts} attempts: "
        )

    def _chat_outcome(self, row: _Row) -> Outcome:
        status = Status.ALREADY_CREATED if row.from_earlier_run else Status.CREATED
        return self._outcome(row, status)

    def _outcome(
        self,
        row: _Row,
        status: Status,
        error: ApiError | None = None,
        *,
        prefix: str = "",
        error_message: str | None = None,
    ) -> Outcome:
        """An outcome for `row` in its current state, with `error`'s fields when given."""
        if error_message is None:
            error_message = prefix + error.error_message if error is not None else ""
        return Outcome(
            index=row.request.index,
            status=status,
            chat_id=row.chat_id,
            message_id=row.message_id,
            error_code=error.error_code if error is not None else "",
            error_message=error_message,
            http_status=error.http_status if error is not None else None,
            attempts=row.attempts,
        )

    async def _journal_attempt(
        self, request: ChatRequest, started_at: float, *, withdraw: bool = False
    ) -> None:
        """Announce the attempt starting at `started_at`, or `withdraw` it."""
        journal = self._journal
        if journal is None:
            return
        call = journal.chats.withdraw if withdraw else journal.chats.attempt
        await in_thread(partial(call, request, started_at=started_at))

    async def _record(self, request: ChatRequest, outcome: Outcome) -> None:
        journal = self._journal
        if journal is None:
            return
        try:
            await anyio.to_thread.run_sync(journal.chats.record, request, outcome)
        except Exception as exc:
            self._journal_error = self._journal_error or exc
