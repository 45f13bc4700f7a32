"""The sending stage of `update` and `close`: each row's changes, one `PUT` per change.

A row's changes go out in `records.CHANGE_ORDER` (assignee, department, then status), one
at a time, each announced to the journal before it goes out and recorded once answered,
and a change whose answer was lost simply sent again (`sending.apply_change`). The first
refusal (a 4xx: `chat_not_found`, an `invalid_chat_value`) ends the row `failed`, naming
the change; a re-run sends the changes still missing. Rows go out `concurrency` at a time
(`sending.RowRunner`), every request at its turn at the client's rate limiter.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from bulk_chats.client import HelpCrunchClient
from bulk_chats.errors import ApiError, AuthenticationError
from bulk_chats.progress import ProgressSink
from bulk_chats.records import ChangeRequest, ChatChange, Outcome, Status
from bulk_chats.sending import (
    DEFAULT_MAX_ATTEMPTS,
    ChangeJournal,
    JournalFailure,
    RowRunner,
    SendResult,
    Sleep,
    apply_change,
)
from bulk_chats.stopping import STOP_GRACE


async def send_changes(
    requests: Sequence[ChangeRequest],
    client: HelpCrunchClient,
    *,
    concurrency: int,
    progress: ProgressSink,
    journal: ChangeJournal | None = None,
    stop: anyio.Event | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    stop_grace: float = STOP_GRACE,
    sleep: Sleep = anyio.sleep,
) -> SendResult:
    """Make every pending change of every request; see the module docs.

    A row ends `updated` when all its changes are made, `failed` when one was refused or
    kept failing (`max_attempts` tries each), `not_sent` when the run stopped first (Ctrl-C,
    a 401). `error_message` says which changes were made by then.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
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
