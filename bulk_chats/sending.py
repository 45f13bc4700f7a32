"""The sending stage: turn valid rows into chats (and their first messages), safely.

Policy (PRODUCT.md › Sending):

- `concurrency` workers take the rows in order; every request waits at the client's shared
  rate limiter, which also absorbs 429s (it holds all requests for `Retry-After` and slows
  down), so a 429 here is just retried.
- `POST /chats` is sent again blindly only when it surely created nothing: 429, 503, a
  connection that could not be made. Those retries are bounded by `max_attempts` POSTs
  and `max_wait` seconds; 503s and failed connections back off exponentially
  (`BACKOFF_BASE` doubling up to `BACKOFF_MAX`). When retries run out the row is `failed`.
- After a timeout, another 5xx or a dropped connection the chat may exist. The row is
  confirmed: after a short back-off, `POST /chats/search` for the customer's chats created
  since the attempt began (less `CONFIRM_SKEW` for clock skew); an unclaimed chat matching
  the row (customer, application, assignee and department where the answer shows them)
  is adopted as `created`. If none matches the row is sent again (another attempt). If the
  search itself fails (after `SEARCH_ATTEMPTS` tries for transient failures) the row is
  `unknown` and not sent again in this run.
- A row with `confirm_since` (an earlier run may have created its chat) is confirmed the
  same way before any POST; a match makes it `already_created`.
- At most one `POST /chats` per customer is unresolved at a time, so a confirmation can
  tell this row's chat from the customer's other chats of this run: every chat id this run
  created or adopted (and `claimed_chat_ids` from earlier runs) is never adopted again.
- Any other 4xx: `failed` with the API's codes and messages, never retried.
- 401: the run stops starting rows; the row is `not_sent` (a 401 created nothing), rows in
  flight finish, rows not started are `not_sent`, and `SendResult.auth_failed` is set.
- `stop` (Ctrl-C): no new rows, no further retries, and back-offs end at once; requests
  already sent finish (bounded by the client's timeout); rows in flight get `stop_grace`
  seconds to have their next request's turn at the rate limiter, after which every wait
  there ends (`HelpCrunchClient.stop_waiting`): a request that has not had its turn has sent
  nothing, so a long `Retry-After` no longer holds the run up. Rows not started are
  `not_sent` and `SendResult.interrupted` is set.
- The first message is posted once the chat exists (also for a row whose `chat_id` an
  earlier run found). 429, 503 and failed connections are retried as above. A refusal or
  exhausted retries make the row `message_failed`, keeping its `chat_id`.
- A message is never posted blindly when it may be in the chat already: after a timeout,
  a 5xx or a dropped connection, and for a row whose chat an earlier run created when
  the request carries `confirm_since` (that run may have died with the message in
  flight), the chat is looked at first (`POST /chats/search` for the customer's chats
  since its creation, less `CONFIRM_SKEW`). The message is adopted when it is the chat's
  last message (`lastMessageId`, `lastMessageText`), posted when the chat is still
  `empty`; when the answer cannot tell, an earlier run's message is posted (a duplicate
  message at worst, less harmful than none) and this run's is `message_failed`.
- An unexpected exception ends only its row: `failed` if nothing was sent for it,
  `unknown` if a `POST /chats` was in flight or an earlier run may have created the chat,
  `message_failed` once the chat existed.

The journal hears of every `POST /chats` before it goes out (`attempt`), of the chat as
soon as it exists (`record` with `created`, before the message), and of each row's final
outcome (`record`). Rows never started are not journaled. The progress sink hears
`start`, one `advance` per row (never-started rows included) and `close`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import anyio
import anyio.to_thread

from bulk_chats.client import HelpCrunchClient
from bulk_chats.errors import (
    ApiError,
    AuthenticationError,
    MaybeSentError,
    NotSentError,
    RateLimitedError,
    RefusedError,
)
from bulk_chats.progress import ProgressSink
from bulk_chats.records import ChatRequest, Outcome, Status

DEFAULT_MAX_ATTEMPTS = 8
"""`POST /chats` attempts per row (and `POST /messages` attempts per message)."""

DEFAULT_MAX_WAIT = 600.0
"""Seconds one request (a chat, or its message) may spend being retried."""

BACKOFF_BASE = 1.0
"""Seconds before the first retry after a 503 or failed connection; doubles each time."""

BACKOFF_MAX = 60.0
"""The longest back-off between two attempts, in seconds."""

CONFIRM_SKEW = 120.0
"""Seconds subtracted from an attempt's start when searching for its chat: our clock and
the API's may disagree, and a chat created a little "before" the attempt must be found."""

SEARCH_ATTEMPTS = 3
"""Tries of a confirming search on 429, 503, timeouts and dropped connections."""

STOP_GRACE = 3.0
"""Seconds a stopped run lets rows in flight wait for their next turn at the rate limiter
(a confirming search, a first message) before every wait there is refused."""

EMPTY_CHAT = "empty"
"""A chat's `status` while it has no message (the API documents it for a new chat)."""


class JournalSink(Protocol):
    """Where the sending stage writes what it does, as it happens, so a killed run can resume.

    Calls come from worker threads (a commit that waits for the disk must not stall the
    event loop, and with it the pacing of every request), one at a time for any one row
    but possibly for several rows at once: an implementation must be thread-safe, as
    `bulk_chats.journal.Journal` is. An exception from the journal stops the run like
    Ctrl-C and is re-raised from `send_chats` once rows in flight finish: without the
    journal a later run could not know what this one sent.
    """

    def attempt(self, request: ChatRequest, *, started_at: float) -> None:
        """A `POST /chats` for `request` is about to go out; `started_at` is unix seconds.

        Called before every attempt: if the run dies before the answer, the next run
        confirms by search from `started_at` (`ChatRequest.confirm_since`).
        """

    def record(self, request: ChatRequest, outcome: Outcome) -> None:
        """`request` reached `outcome`: `created` with its `chat_id` before the first message
        is posted, then the row's final outcome."""


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the sending stage did: an outcome for every request, by `ChatRequest.index`."""

    outcomes: Mapping[int, Outcome]
    auth_failed: bool = False
    interrupted: bool = False


Sleep = Callable[[float], Awaitable[None]]


async def send_chats(
    requests: Sequence[ChatRequest],
    client: HelpCrunchClient,
    *,
    concurrency: int,
    progress: ProgressSink,
    journal: JournalSink | None = None,
    stop: anyio.Event | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
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
    are chats known to belong to other rows (from earlier runs): a confirming search never
    adopts them. `clock` (monotonic seconds), `wall_clock` (unix seconds, for the journal
    and the search) and `sleep` (back-off) are injectable for tests.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
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


class _JournalFailure(Exception):
    """The journal raised; carries its exception as `__cause__`."""


@dataclass(slots=True)
class _Row:
    """One row's state while it is being sent."""

    request: ChatRequest
    chat_id: int | None
    from_earlier_run: bool
    attempts: int = 0
    in_flight: bool = False
    message_id: int | None = None
    chat_since: float | None = None
    """Unix seconds no later than the chat's creation, once known: where a search for the
    chat (to see whether its message is in it) begins, less `CONFIRM_SKEW`."""


class _Sender:
    def __init__(
        self,
        client: HelpCrunchClient,
        *,
        progress: ProgressSink,
        journal: JournalSink | None,
        stop: anyio.Event | None,
        max_attempts: int,
        max_wait: float,
        stop_grace: float,
        claimed: Iterable[int],
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        sleep: Sleep,
    ) -> None:
        self._client = client
        self._progress = progress
        self._journal = journal
        self._stop = stop
        self._max_attempts = max_attempts
        self._max_wait = max_wait
        self._stop_grace = stop_grace
        self._claimed: set[int] = set(claimed)
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._customer_locks: dict[int, anyio.Lock] = {}
        self._outcomes: dict[int, Outcome] = {}
        self._queue: Iterator[ChatRequest] = iter(())
        self._auth_failed = False
        self._journal_error: BaseException | None = None

    async def run(self, requests: Sequence[ChatRequest], *, concurrency: int) -> SendResult:
        self._claimed.update(r.chat_id for r in requests if r.chat_id is not None)
        self._queue = iter(requests)
        self._progress.start(len(requests))
        try:
            async with anyio.create_task_group() as watch:
                if self._stop is not None:
                    watch.start_soon(self._end_waits_once_stopped, self._stop)
                async with anyio.create_task_group() as group:
                    for _ in range(min(concurrency, len(requests))):
                        group.start_soon(self._worker)
                watch.cancel_scope.cancel()
            reason = self._not_sent_reason()
            for request in self._queue:
                outcome = Outcome(index=request.index, status=Status.NOT_SENT, error_message=reason)
                self._outcomes[request.index] = outcome
                self._progress.advance(outcome)
        finally:
            self._progress.close()
        if self._journal_error is not None:
            raise self._journal_error
        return SendResult(
            outcomes={r.index: self._outcomes[r.index] for r in requests},
            auth_failed=self._auth_failed,
            interrupted=self._stop is not None and self._stop.is_set(),
        )

    async def _end_waits_once_stopped(self, stop: anyio.Event) -> None:
        """Once `stop` is set, give rows in flight `stop_grace` seconds, then make the rate
        limiter refuse every wait: those requests have sent nothing, so nothing is lost."""
        await stop.wait()
        await self._sleep(self._stop_grace)
        self._client.stop_waiting()

    async def _pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less when the run is told to stop: no retry follows then."""
        stop = self._stop
        if stop is None:
            await self._sleep(seconds)
            return
        if stop.is_set():
            return
        async with anyio.create_task_group() as group:

            async def wake() -> None:
                await stop.wait()
                group.cancel_scope.cancel()

            group.start_soon(wake)
            await self._sleep(seconds)
            group.cancel_scope.cancel()

    def _stopping(self) -> bool:
        stopped = self._stop is not None and self._stop.is_set()
        return stopped or self._auth_failed or self._journal_error is not None

    def _not_sent_reason(self) -> str:
        if self._auth_failed:
            return "not sent: the API refused the key (401), so the run stopped"
        if self._journal_error is not None:
            return "not sent: the journal could not be written, so the run stopped"
        return "not sent: the run was interrupted"

    async def _worker(self) -> None:
        # Taking the next request involves no await, so workers never take the same one.
        while not self._stopping():
            request = next(self._queue, None)
            if request is None:
                return
            outcome = await self._run_row(request)
            self._outcomes[request.index] = outcome
            await self._record(request, outcome)
            self._progress.advance(outcome)

    async def _run_row(self, request: ChatRequest) -> Outcome:
        """Send one row; whatever goes wrong ends as this row's outcome, not the run's."""
        row = _Row(
            request,
            chat_id=request.chat_id,
            from_earlier_run=request.chat_id is not None,
            chat_since=request.confirm_since if request.chat_id is not None else None,
        )
        try:
            return await self._send_row(row)
        except _JournalFailure as failure:
            self._journal_error = self._journal_error or failure.__cause__ or failure
            return self._broken(row, "the journal could not be written")
        except Exception as exc:
            text = " ".join(str(exc).split())[:300]
            return self._broken(row, f"unexpected error: {type(exc).__name__}: {text}")

    def _broken(self, row: _Row, text: str) -> Outcome:
        """The outcome of a row cut short by `text`, from how far it got."""
        if row.chat_id is not None:
            if row.request.message is not None and row.message_id is None:
                return self._outcome(row, Status.MESSAGE_FAILED, error_message=text)
            return self._chat_outcome(row)
        # With `confirm_since` an earlier run may have created the chat: `failed` would make
        # the next run send it blindly.
        maybe_exists = row.in_flight or row.request.confirm_since is not None
        status = Status.UNKNOWN if maybe_exists else Status.FAILED
        return self._outcome(row, status, error_message=text)

    async def _send_row(self, row: _Row) -> Outcome:
        request = row.request
        chat_id = row.chat_id
        if chat_id is None:
            lock = self._customer_locks.setdefault(request.customer_id, anyio.Lock())
            async with lock:
                created = await self._create(row)
            if isinstance(created, Outcome):
                return created
            chat_id = row.chat_id = created
            if request.message is not None:
                await self._record(request, self._chat_outcome(row))
        if request.message is None:
            return self._chat_outcome(row)
        return await self._post_message(row, request.message.payload(chat_id))

    async def _create(self, row: _Row) -> int | Outcome:
        """Get the row a chat: its id, or the row's outcome when there is none."""
        request = row.request
        if request.confirm_since is not None:
            try:
                found = await self._confirm(row, since=request.confirm_since)
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
                row.chat_since = request.confirm_since
                return found

        deadline = self._clock() + self._max_wait
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
                return self._outcome(row, Status.NOT_SENT, exc)
            except RateLimitedError as exc:
                # The limiter already holds every request until Retry-After has passed.
                row.in_flight = False
                last = exc
                if self._clock() + (exc.retry_after or 0.0) > deadline:
                    return self._gave_up(row, last)
            except NotSentError as exc:
                row.in_flight = False
                last = exc
                if self._stopping():
                    continue
                if not await self._backoff(row.attempts, deadline):
                    return self._gave_up(row, last)
            except MaybeSentError as exc:
                last = exc
                # Let the API finish whatever it may have begun before looking for it.
                await self._pause(min(_delay(row.attempts), max(0.0, deadline - self._clock())))
                try:
                    found = await self._confirm(row, since=started_at)
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
                    row.chat_since = started_at
                    return found
                if self._clock() >= deadline:
                    return self._gave_up(row, last)
            except RefusedError as exc:
                row.in_flight = False
                return self._outcome(row, Status.FAILED, exc)
            else:
                row.in_flight = False
                chat_id = int(chat["id"])
                self._claimed.add(chat_id)
                row.chat_since = started_at
                return chat_id

    async def _confirm(self, row: _Row, *, since: float) -> int | None:
        """The id of an unclaimed chat matching the row created since `since` (unix
        seconds, less `CONFIRM_SKEW`), claimed for it; None when there is none.

        Raises the search's `ApiError` when it cannot be done.
        """
        created_since = math.floor(since - CONFIRM_SKEW)
        chats = await self._search(row.request.customer_id, created_since)
        chosen = _pick_chat(chats, row.request, created_since, self._claimed)
        if chosen is not None:
            self._claimed.add(chosen)
        return chosen

    async def _search(self, customer: int, created_since: int) -> list[dict[str, Any]]:
        """The customer's chats created since `created_since` (unix seconds); a transient
        failure is tried `SEARCH_ATTEMPTS` times, since a search changes nothing."""
        attempt = 1
        while True:
            try:
                return await self._client.search_chats(customer, created_since)
            except (NotSentError, MaybeSentError):
                if attempt >= SEARCH_ATTEMPTS:
                    raise
                await self._pause(_delay(attempt))
                attempt += 1

    async def _look_for_message(self, row: _Row) -> tuple[int | None, bool]:
        """Whether the row's first message is in its chat already, by search: the message's
        id when it is the chat's last message, and whether the chat was seen empty. (None,
        False) when the search cannot tell."""
        message = row.request.message
        if row.chat_id is None or row.chat_since is None or message is None:
            return None, False
        try:
            chats = await self._search(
                row.request.customer_id, math.floor(row.chat_since - CONFIRM_SKEW)
            )
        except ApiError as exc:
            self._auth_failed |= isinstance(exc, AuthenticationError)
            return None, False
        for chat in chats:
            if _ref_id(chat.get("id")) != row.chat_id:
                continue
            if chat.get("status") == EMPTY_CHAT:
                return None, True
            text = chat.get("lastMessageText")
            if isinstance(text, str) and text.strip() == message.text.strip():
                return _ref_id(chat.get("lastMessageId")), False
        return None, False

    async def _post_message(self, row: _Row, payload: Mapping[str, Any]) -> Outcome:
        """Post the row's first message into its chat; the row's final outcome."""
        if row.from_earlier_run and row.chat_since is not None:
            # The earlier run may have died with this message in flight.
            message_id, _ = await self._look_for_message(row)
            if message_id is not None:
                row.message_id = message_id
                return self._chat_outcome(row)
        deadline = self._clock() + self._max_wait
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
                if tries >= self._max_attempts:
                    return self._outcome(
                        row, Status.MESSAGE_FAILED, exc, prefix=f"gave up after {tries} tries: "
                    )
                if isinstance(exc, RateLimitedError):
                    waited = self._clock() + (exc.retry_after or 0.0) <= deadline
                else:
                    waited = await self._backoff(tries, deadline)
                if not waited:
                    return self._outcome(
                        row, Status.MESSAGE_FAILED, exc, prefix=f"gave up after {tries} tries: "
                    )
            except MaybeSentError as exc:
                # Let the API finish whatever it may have begun before looking for it.
                await self._pause(min(_delay(tries), max(0.0, deadline - self._clock())))
                message_id, empty = await self._look_for_message(row)
                if message_id is not None:
                    row.message_id = message_id
                    return self._chat_outcome(row)
                retry = empty and not self._stopping()
                if retry and tries < self._max_attempts and self._clock() < deadline:
                    continue
                return self._outcome(
                    row,
                    Status.MESSAGE_FAILED,
                    exc,
                    prefix="the message may have been posted but no answer came back; check "
                    "the chat before re-running, which posts the message again: ",
                )
            except RefusedError as exc:
                return self._outcome(row, Status.MESSAGE_FAILED, exc)
            else:
                row.message_id = int(posted["id"])
                return self._chat_outcome(row)

    async def _backoff(self, attempt: int, deadline: float) -> bool:
        """Wait before retry number `attempt`; False (without waiting) past the deadline."""
        delay = _delay(attempt)
        if self._clock() + delay > deadline:
            return False
        await self._pause(delay)
        return True

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

    async def _journal_attempt(self, request: ChatRequest, started_at: float) -> None:
        journal = self._journal
        if journal is None:
            return
        try:
            # Even when cancelled this waits for the thread: no write is left half-known.
            await anyio.to_thread.run_sync(partial(journal.attempt, request, started_at=started_at))
        except Exception as exc:
            raise _JournalFailure from exc

    async def _record(self, request: ChatRequest, outcome: Outcome) -> None:
        journal = self._journal
        if journal is None:
            return
        try:
            await anyio.to_thread.run_sync(journal.record, request, outcome)
        except Exception as exc:
            self._journal_error = self._journal_error or exc


def _delay(attempt: int) -> float:
    """Seconds of back-off before retry number `attempt` (1-based)."""
    return float(min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (attempt - 1)))


def _pick_chat(
    chats: Iterable[Mapping[str, Any]],
    request: ChatRequest,
    created_since: int,
    claimed: set[int],
) -> int | None:
    """The earliest created chat among `chats` that matches `request` and is unclaimed."""
    best: tuple[float, int] | None = None
    for chat in chats:
        chat_id = _ref_id(chat.get("id"))
        if chat_id is None or chat_id in claimed or not _matches(chat, request, created_since):
            continue
        created = _timestamp(chat.get("createdAt"))
        key = (created if created is not None else math.inf, chat_id)
        if best is None or key < best:
            best = key
    return best[1] if best is not None else None


def _matches(chat: Mapping[str, Any], request: ChatRequest, created_since: int) -> bool:
    """Whether a searched chat could be the one `request` asked for.

    A field the answer leaves out is not held against it; an assignee or department the
    row left blank may have been set by the account's routing rules, so any will do.
    """
    if "customer" in chat and _ref_id(chat["customer"]) != request.customer:
        return False
    for key in ("applicationId", "application"):
        if key in chat and _ref_id(chat[key]) != request.application:
            return False
    for key, wanted in (("assignee", request.assignee), ("department", request.department)):
        if wanted is not None and key in chat and _ref_id(chat[key]) != wanted:
            return False
    created = _timestamp(chat.get("createdAt"))
    return created is None or created >= created_since


def _ref_id(value: object) -> int | None:
    """The id in a chat field: an int, a string of digits, or an object with an `id`."""
    if isinstance(value, Mapping):
        value = value.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.strip().isdigit():
        return int(value)
    return None


def _timestamp(value: object) -> float | None:
    """Unix seconds from `createdAt`, which the API writes as a number or a string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None
