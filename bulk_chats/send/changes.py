"""The sending stage of `update` and `close`: each row's changes, one `PUT` per change.

A row's changes go out in `records.CHANGE_ORDER` (assignee, department, then status), one
at a time, each announced to the journal before it goes out and recorded once answered,
and a change whose answer was lost simply sent again (`apply_change`, which `send.chats`
also uses to set the status an import asks for). The first refusal (a 4xx: `chat_not_found`,
an `invalid_chat_value`) ends the row `failed`, naming the change; a re-run sends the
changes still missing. Rows go out `concurrency` at a time (`send.pool.RowRunner`), every
request at its turn at the client's rate limiter.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Final, Protocol

import anyio

from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.api.entities import Chat
from bulk_chats.api.retry import DEFAULT_ATTEMPTS, read_with_retries
from bulk_chats.errors import ApiError, AuthenticationError
from bulk_chats.progress import ProgressSink
from bulk_chats.records import ChangeRequest, ChatChange, Outcome, Status
from bulk_chats.send.pool import (
    JournalFailure,
    RowRunner,
    SendResult,
    in_thread,
)
from bulk_chats.send.stopping import STOP_GRACE
from bulk_chats.timing import Sleep


class ChangeJournal(Protocol):
    """Where a change of a chat (`PUT /v1/chats/...`) is written as it happens
    (`journal.changes.ChangeStore`); called from worker threads, so it must be thread-safe."""

    def attempt(self, chat_id: int, change: ChatChange, *, source_row: int) -> None:
        """`change` of chat `chat_id` is about to go out."""

    def record(
        self,
        chat_id: int,
        change: ChatChange,
        state: str,
        *,
        source_row: int,
        error: ApiError | None = None,
    ) -> None:
        """`change` ended in `state` (`APPLIED`, `FAILED`, `NOT_SENT`), by `error` if any."""


APPLIED: Final = "applied"
FAILED: Final = "failed"
NOT_SENT: Final = "not_sent"
"""The journal's states of a change once answered (or given up)."""


def put_change(client: HelpCrunchClient, chat_id: int, change: ChatChange) -> Awaitable[Chat]:
    """The `PUT /v1/chats/<field>` request that makes `change` in chat `chat_id`."""
    value = change.value
    if change.field == "assignee" and not isinstance(value, str):
        return client.set_chat_assignee(chat_id, value)
    if change.field == "department" and isinstance(value, int):
        return client.set_chat_department(chat_id, value)
    if change.field == "status" and isinstance(value, str):
        return client.set_chat_status(chat_id, value)
    raise ValueError(f"not a change the API knows: {change}")


async def apply_change(
    client: HelpCrunchClient,
    journal: ChangeJournal | None,
    chat_id: int,
    change: ChatChange,
    *,
    source_row: int,
    attempts: int,
    sleep: Sleep,
    stopping: Callable[[], bool],
) -> None:
    """Make `change` in chat `chat_id`: announced to `journal`, sent, then recorded.

    The `PUT /v1/chats/...` endpoints set a value, so unlike a `POST /chats` a change
    whose answer was lost is simply sent again: it is retried as a read is
    (`retry.read_with_retries`, `attempts` tries, `sleep` between them). Raises the
    `ApiError` that ended it, recorded as `failed` (`not_sent` when `stopping()`), and
    `JournalFailure` when the journal cannot be written.
    """
    if journal is not None:
        await in_thread(partial(journal.attempt, chat_id, change, source_row=source_row))
    try:
        await read_with_retries(
            partial(put_change, client, chat_id, change), attempts=attempts, sleep=sleep
        )
    except ApiError as exc:
        if journal is not None:
            state = NOT_SENT if stopping() else FAILED
            record = partial(journal.record, source_row=source_row, error=exc)
            await in_thread(partial(record, chat_id, change, state))
        raise
    if journal is not None:
        await in_thread(partial(journal.record, chat_id, change, APPLIED, source_row=source_row))


async def send_changes(
    requests: Sequence[ChangeRequest],
    client: HelpCrunchClient,
    *,
    concurrency: int,
    progress: ProgressSink,
    journal: ChangeJournal | None = None,
    stop: anyio.Event | None = None,
    max_attempts: int = DEFAULT_ATTEMPTS,
    stop_grace: float = STOP_GRACE,
    sleep: Sleep = anyio.sleep,
) -> SendResult:
    """Make every pending change of every request; see the module docs.

    A row ends `updated` when all its changes are made, `failed` when one was refused or
    kept failing (`max_attempts` tries each), `not_sent` when the run stopped first (Ctrl-C,
    a 401). `error_message` says which changes were made by then.
    """
    sender = _ChangeSender(
        client,
        progress=progress,
        journal=journal,
        stop=stop,
        max_attempts=max_attempts,
        stop_grace=stop_grace,
        sleep=sleep,
    )
    return await sender.run(requests, concurrency=concurrency)


class _ChangeSender(RowRunner[ChangeRequest]):
    def __init__(
        self,
        client: HelpCrunchClient,
        *,
        progress: ProgressSink,
        journal: ChangeJournal | None,
        stop: anyio.Event | None,
        max_attempts: int,
        stop_grace: float,
        sleep: Sleep,
    ) -> None:
        super().__init__(client, progress=progress, stop=stop, stop_grace=stop_grace, sleep=sleep)
        self._journal = journal
        self._max_attempts = max_attempts

    async def _run_row(self, request: ChangeRequest) -> Outcome:
        made: list[str] = []
        attempts = 0
        for change in request.pending:
            # A stopped run lets the row finish within the grace (the limiter then refuses
            # every wait); after a 401 or a journal failure nothing more goes out.
            if self._auth_failed or self._journal_error is not None:
                return self._ended(request, Status.NOT_SENT, made, attempts)
            attempts += 1
            try:
                await apply_change(
                    self._client,
                    self._journal,
                    request.chat_id,
                    change,
                    source_row=request.source_row,
                    attempts=self._max_attempts,
                    sleep=self._pause,
                    stopping=self._stopping,
                )
            except JournalFailure as failure:
                self._journal_error = self._journal_error or failure.__cause__ or failure
                return self._ended(request, Status.NOT_SENT, made, attempts)
            except ApiError as exc:
                self._auth_failed |= isinstance(exc, AuthenticationError)
                status = Status.NOT_SENT if self._stopping() else Status.FAILED
                return self._ended(request, status, made, attempts, exc, change=change)
            made.append(change.field)
        return Outcome(
            index=request.index, status=Status.UPDATED, chat_id=request.chat_id, attempts=attempts
        )

    async def _record(self, request: ChangeRequest, outcome: Outcome) -> None:
        """Each change was journaled as it happened: nothing is left to write per row."""

    def _ended(
        self,
        request: ChangeRequest,
        status: Status,
        made: list[str],
        attempts: int,
        error: ApiError | None = None,
        *,
        change: ChatChange | None = None,
    ) -> Outcome:
        """The outcome of a row cut short, naming the change that failed and those made."""
        done = f"; made before: {', '.join(made)}" if made else ""
        reason = self._not_sent_reason() if error is None else error.error_message
        text = reason + done
        code = ""
        if error is not None and change is not None:
            code = f"{change.field}:{error.error_code or 'failed'}"
        return Outcome(
            index=request.index,
            status=status,
            chat_id=request.chat_id,
            error_code=code,
            error_message=text,
            http_status=error.http_status if error is not None else None,
            attempts=attempts,
        )
