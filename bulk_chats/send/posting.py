"""One message of a transcript's conversation, posted exactly once (docs/transcripts.md).

The special case of the conversation sender (`send.conversations`): a message is
announced to the journal before it goes out and recorded with its id once answered; one
whose answer was lost, or which an earlier run announced without hearing back, is looked
for among the chat's messages before it is sent again (`lost_answers.find_posted`). Read
and not there, it is sent again; unreadable, it is not, and its row says so: an answer
that could not be read is never taken for "not there". The ids of the conversation's
messages known to be in tell two identical texts apart.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Protocol

from bulk_chats.errors import (
    ApiError,
    AuthenticationError,
    MaybeSentError,
    NotSentError,
    RefusedError,
)
from bulk_chats.records import ChatRequest, FirstMessage, Outcome, Status
from bulk_chats.send.chats import _Row, _Sender
from bulk_chats.send.journaling import SendJournal
from bulk_chats.send.lost_answers import MessageCheck, find_posted
from bulk_chats.send.pool import in_thread

POSTED = "posted"
FAILED = "failed"
UNKNOWN = "unknown"
NOT_SENT = "not_sent"
"""The journal's states of a message once answered (or given up); `sending` before."""


class MessageJournal(Protocol):
    """Where the messages of conversations are written as they go (`journal.messages.
    MessageStore`); called from worker threads, so it must be thread-safe."""

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
        """The message at `position` of `conversation` is about to go out (as agent
        `agent_id`, if any)."""

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
        """What became of it: `posted` with its id, `failed`, `unknown` or `not_sent`."""


class TranscriptJournal(SendJournal, Protocol):
    """The journal `send_conversations` writes to: the conversations' chats (as rows of
    `import`), their statuses (as changes of chats), and their messages."""

    @property
    def messages(self) -> MessageJournal: ...


class MessagePoster(_Sender):
    """The import sender (`send.chats`), able to post the messages of a conversation into
    its chat, each exactly once; `send.conversations` puts them in order."""

    _messages: MessageJournal | None = None
    """Where each message is announced and recorded; None: nowhere (tests)."""

    async def _post(self, row: _Row, known: set[int], message: ChatRequest) -> Outcome:
        """Post one message of the conversation into its chat; its row's outcome. Its id,
        once it is in, joins `known`, the ids of the conversation's messages in the chat.

        Retried as `send.chats` retries a first message: blindly only after what surely
        posted nothing; after a lost answer, only once a read of the chat shows it is
        not there. `max_attempts` tries within `max_wait` seconds."""
        chat_id = chat_of(row)
        sent = _message(message)
        text = sent.text
        if message.search_since is not None:
            # An earlier run may have posted it without hearing back.
            seen = await self._look(known, chat_id, text)
            if seen.message_id is not None:
                return await self._posted(row, known, message, seen.message_id, earlier=True)
            if not seen.absent:
                return await self._unconfirmed(
                    row,
                    message,
                    None,
                    f"an earlier run may have posted this message, and {self._unread(seen)} "
                    "to tell; not posted again, so as not to post it twice: run again to "
                    "look once more",
                )
        payload = sent.payload(chat_id)
        budget = self._budget()
        tries = 0
        while True:
            tries += 1
            await self._announce(row, message)
            try:
                posted = await self._client.post_message(payload)
            except AuthenticationError as exc:
                self._auth_failed = True
                return await self._ended(row, message, NOT_SENT, Status.NOT_SENT, exc)
            except NotSentError as exc:
                if self._stopping():
                    return await self._ended(
                        row,
                        message,
                        NOT_SENT,
                        Status.NOT_SENT,
                        exc,
                        prefix="the run stopped before this message could be posted: ",
                    )
                wait = budget.wait_after(exc, tries)
                if wait is None:
                    return await self._ended(
                        row,
                        message,
                        FAILED,
                        Status.MESSAGE_FAILED,
                        exc,
                        prefix=f"gave up after {tries} tries: ",
                    )
                await self._pause(wait)
            except MaybeSentError as exc:
                # Let the API finish whatever it may have begun before looking for it.
                await self._pause(budget.settle(tries))
                seen = await self._look(known, chat_id, text)
                if seen.message_id is not None:
                    return await self._posted(row, known, message, seen.message_id)
                retry = seen.absent and not self._stopping()
                if retry and tries < self._max_attempts and not budget.expired():
                    continue
                why = (
                    "and it is not in the chat"
                    if seen.absent
                    else f"and {self._unread(seen)} to tell"
                )
                return await self._unconfirmed(
                    row,
                    message,
                    exc,
                    f"the message may have been posted but no answer came back, {why}; the "
                    "next run looks for it in the chat before posting it: ",
                )
            except RefusedError as exc:
                return await self._ended(row, message, FAILED, Status.MESSAGE_FAILED, exc)
            else:
                return await self._posted(row, known, message, posted.id)

    async def _look(self, known: set[int], chat_id: int, text: str) -> MessageCheck:
        """What the chat's messages show of a message with `text` that none of the
        conversation's known ones is; nothing when they cannot be read (a 401 also stops
        the run)."""
        try:
            listed = await self._read(partial(self._client.list_messages, chat_id))
        except ApiError as exc:
            self._auth_failed |= isinstance(exc, AuthenticationError)
            return MessageCheck(error=exc)
        return find_posted(listed, text, known=known)

    def _unread(self, seen: MessageCheck) -> str:
        """Why a look at the chat's messages showed nothing: a stop before it, or a read
        that failed."""
        if isinstance(seen.error, NotSentError) and self._stopping():
            return "the run stopped before the chat's messages could be read"
        return "the chat's messages could not be read"

    async def _announce(self, row: _Row, message: ChatRequest) -> None:
        journal = self._messages
        if journal is None:
            return
        attempt = partial(
            journal.attempt,
            row.request.key,
            message.position,
            message_key=message.message_key,
            chat_id=chat_of(row),
            started_at=self._wall_clock(),
            source_row=message.source_row,
            agent_id=message.message.agent if message.message is not None else None,
        )
        await in_thread(attempt)

    async def _write(self, row: _Row, message: ChatRequest, state: str, **fields: object) -> None:
        journal = self._messages
        if journal is None:
            return
        record = partial(
            journal.record,
            row.request.key,
            message.position,
            state=state,
            message_key=message.message_key,
            chat_id=chat_of(row),
            source_row=message.source_row,
            **fields,  # type: ignore[arg-type]
        )
        await in_thread(record)

    async def _posted(
        self,
        row: _Row,
        known: set[int],
        message: ChatRequest,
        message_id: int,
        *,
        earlier: bool = False,
    ) -> Outcome:
        """The message is in the chat, as `message_id`: journalled, known, `created` (or
        `already_created` when an earlier run posted it)."""
        await self._write(row, message, POSTED, message_id=message_id)
        known.add(message_id)
        status = Status.ALREADY_CREATED if earlier else Status.CREATED
        return self._row_outcome(row, message, status, None, message_id)

    async def _ended(
        self,
        row: _Row,
        message: ChatRequest,
        state: str,
        status: Status,
        error: ApiError,
        *,
        prefix: str = "",
    ) -> Outcome:
        """The message is surely not in the chat: journalled as `state`; its row's outcome."""
        await self._write(
            row,
            message,
            state,
            error_code=error.error_code,
            error_message=prefix + error.error_message,
            http_status=error.http_status,
        )
        return self._row_outcome(row, message, status, error, None, prefix=prefix)

    async def _unconfirmed(
        self, row: _Row, message: ChatRequest, error: ApiError | None, text: str
    ) -> Outcome:
        """The message may be in the chat and nobody could tell: journalled `unknown`, so
        that the next run looks for it before posting it; its row is `message_failed`."""
        detail = text + (error.error_message if error is not None else "")
        await self._write(
            row,
            message,
            UNKNOWN,
            error_code=error.error_code if error is not None else "",
            error_message=detail,
            http_status=error.http_status if error is not None else None,
        )
        return self._row_outcome(
            row, message, Status.MESSAGE_FAILED, error, None, error_message=detail
        )

    def _row_outcome(
        self,
        row: _Row,
        message: ChatRequest,
        status: Status,
        error: ApiError | None,
        message_id: int | None,
        *,
        prefix: str = "",
        error_message: str | None = None,
    ) -> Outcome:
        """The outcome of the row of `message`, in the conversation's chat."""
        outcome = self._outcome(row, status, error, prefix=prefix, error_message=error_message)
        return replace(outcome, index=message.index, message_id=message_id)


def _message(row: ChatRequest) -> FirstMessage:
    if row.message is None:  # validation lets no row of a transcript without one by
        raise ValueError(f"row {row.source_row}: no message")
    return row.message


def chat_of(row: _Row) -> int:
    """The id of the chat of `row`'s conversation, which exists by the time a message goes."""
    if row.chat_id is None:
        raise ValueError(f"row {row.request.source_row}: the conversation has no chat yet")
    return row.chat_id
