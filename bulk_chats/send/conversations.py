"""The sending stage of a transcript: each conversation one chat, then its messages one at
a time, in order, then its status (docs/transcripts.md).

A conversation's chat is made as a row's chat of `import` is (`send.chats`: looked for
first when an earlier attempt got no answer, at most one unresolved `POST /v1/chats` per
customer, no chat adopted twice): this sender is that one, with a whole conversation in
place of one first message, each message posted exactly once (`send.posting`). Each
message goes after the previous one's answer; conversations go side by side,
`concurrency` at a time on the one worker pool, every request at its turn at the
client's rate limiter.

In order, always: a message the API refuses for good, or one that could not be
confirmed, holds back the later ones of its conversation (`not_sent`, naming its row),
and a stopped run (Ctrl-C, a 401, the journal) posts no further message of a
conversation under way. The status is set only after the last message, since a message
may reopen a chat; its outcome is the last row's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import anyio

from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.api.retry import DEFAULT_ATTEMPTS, DEFAULT_MAX_WAIT
from bulk_chats.errors import ApiError, AuthenticationError
from bulk_chats.progress import ProgressSink
from bulk_chats.records import ChatChange, ChatRequest, Conversation, Outcome, Status
from bulk_chats.send.changes import apply_change
from bulk_chats.send.chats import _Row
from bulk_chats.send.pool import JournalFailure, SendResult
from bulk_chats.send.posting import MessagePoster, TranscriptJournal, chat_of
from bulk_chats.send.stopping import STOP_GRACE
from bulk_chats.timing import Sleep

_DONE = frozenset({Status.CREATED, Status.ALREADY_CREATED})
"""The outcomes of a message that is in its chat."""


async def send_conversations(
    conversations: Sequence[Conversation],
    client: HelpCrunchClient,
    *,
    concurrency: int,
    progress: ProgressSink,
    journal: TranscriptJournal | None = None,
    stop: anyio.Event | None = None,
    max_attempts: int = DEFAULT_ATTEMPTS,
    max_wait: float = DEFAULT_MAX_WAIT,
    stop_grace: float = STOP_GRACE,
    claimed_chat_ids: Iterable[int] = (),
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    sleep: Sleep = anyio.sleep,
) -> SendResult:
    """Make each conversation's chat (unless it exists), post its messages in order and set
    its status; see the module docs. An outcome for every row of every conversation.

    `concurrency` conversations go at once; `max_attempts` and `max_wait` (seconds) bound
    the retries of each request; a stopped run (`stop`, Ctrl-C) starts no new
    conversation and no further message of one under way, and waits `stop_grace` seconds
    at the rate limiter. `claimed_chat_ids`, `clock` (monotonic seconds), `wall_clock`
    (unix seconds) and `sleep` are those of `send_chats`. `progress` hears of each row
    (message) and of each conversation over.
    """
    sender = _ConversationSender(
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
    return await sender.send(conversations, journal, concurrency=concurrency)


def _rows(conversation: Conversation) -> tuple[ChatRequest, ...]:
    """The rows a conversation's sending ends: its messages to post, or, when only its
    status is left, its last row."""
    return conversation.messages or (conversation.last,)


@dataclass(slots=True)
class _Going:
    """One conversation while it is being sent: the ids of its messages known to be in
    its chat, and the rows that have their outcome."""

    conversation: Conversation
    known: set[int] = field(default_factory=set)
    ended: set[int] = field(default_factory=set)


class _ConversationSender(MessagePoster):
    _conversations: dict[int, Conversation]
    """The conversations to send, by the index of their chat's row."""
    _over: int = 0

    async def send(
        self,
        conversations: Sequence[Conversation],
        journal: TranscriptJournal | None,
        *,
        concurrency: int,
    ) -> SendResult:
        """Send `conversations`, writing their messages to `journal`."""
        self._conversations = {c.index: c for c in conversations}
        self._messages = journal.messages if journal is not None else None
        self._progress.conversations(0, len(conversations))
        return await self.run([c.chat for c in conversations], concurrency=concurrency)

    def _rows_in(self, requests: Sequence[ChatRequest]) -> int:
        return sum(len(_rows(self._conversations[r.index])) for r in requests)

    def _not_reached(self, request: ChatRequest, reason: str) -> list[Outcome]:
        conversation = self._conversations[request.index]
        return [
            Outcome(
                index=row.index,
                status=Status.NOT_SENT,
                chat_id=request.chat_id,
                message_id=row.message_id,
                error_message=reason,
            )
            for row in _rows(conversation)
        ]

    async def _work(self, request: ChatRequest) -> None:
        """Send one conversation; its rows' outcomes go out as they come, the chat's to
        the journal at the end."""
        outcome = await self._run_row(request)
        await self._record(request, outcome)
        self._over += 1
        self._progress.conversations(self._over, len(self._conversations))

    async def _run_row(self, request: ChatRequest) -> Outcome:
        """Send one conversation; whatever goes wrong ends its rows, not the run. The
        chat's outcome, for the journal."""
        going = _Going(self._conversations[request.index])
        going.known.update(going.conversation.posted)
        row = _Row(request, chat_id=request.chat_id, from_earlier_run=request.chat_id is not None)
        try:
            return await self._send_conversation(row, going)
        except JournalFailure as failure:
            self._journal_error = self._journal_error or failure.__cause__ or failure
            text = "the journal could not be written"
        except Exception as exc:
            detail = " ".join(str(exc).split())[:300]
            text = f"unexpected error: {type(exc).__name__}: {detail}"
        if row.chat_id is None:
            status = Status.UNKNOWN if row.in_flight else Status.FAILED
            return self._end_all(row, going, self._outcome(row, status, error_message=text))
        # The row of the message under way, if one was, may be in: the next run looks.
        left = [rest for rest in _rows(going.conversation) if rest.index not in going.ended]
        if left:
            cut = self._row_outcome(row, left[0], Status.MESSAGE_FAILED, None, left[0].message_id)
            self._emit(going, replace(cut, error_message=text))
        self._end_rest(row, going, Status.NOT_SENT, f"not sent: {text}")
        return self._outcome(row, Status.MESSAGE_FAILED, error_message=text)

    async def _send_conversation(self, row: _Row, going: _Going) -> Outcome:
        conversation = going.conversation
        request = row.request
        if row.chat_id is None:
            lock = self._customer_locks.setdefault(request.customer_id, anyio.Lock())
            async with lock:
                created = await self._create(row)
            if isinstance(created, Outcome):
                return self._end_all(row, going, created)
            row.chat_id = created
            # On disk before any message goes, whoever made the chat: a chat an earlier
            # run made, found by search now, must not be searched for (and its messages
            # taken for unsent) by the next run.
            known = replace(self._chat_outcome(row), status=Status.CREATED)
            await self._record(request, known)
        last = conversation.last
        # The last row's outcome, when it is not posted now: an earlier run posted it.
        ending = self._row_outcome(row, last, Status.ALREADY_CREATED, None, last.message_id)
        look = False
        for message in conversation.messages:
            if self._stopping():
                self._end_rest(row, going, Status.NOT_SENT, self._not_sent_reason())
                return self._chat_outcome(row)
            if look and message.search_since is None:
                # The message before was in the chat already, posted by a run this journal
                # does not know of: so may this one be.
                message = replace(message, search_since=0.0)
            outcome = await self._post(row, going.known, message)
            look = outcome.status is Status.ALREADY_CREATED
            if outcome.status not in _DONE:
                self._emit(going, outcome)
                held = (
                    f"not sent: held back behind row {message.source_row}, whose message is "
                    "not in; a conversation's messages go in order"
                )
                if outcome.status is Status.NOT_SENT:
                    held = outcome.error_message
                self._end_rest(row, going, Status.NOT_SENT, held)
                return self._outcome(row, Status.MESSAGE_FAILED, error_message=held)
            if message.index == last.index:
                ending = outcome
            else:
                self._emit(going, outcome)
        if request.status is not None:
            ending = await self._set_conversation_status(row, ending, request.status)
        self._emit(going, ending)
        return self._chat_outcome(row)

    async def _set_conversation_status(self, row: _Row, ending: Outcome, status: str) -> Outcome:
        """Set the conversation's status after its last message; the outcome of its last
        row, `ending` once the status is set: `status_failed` keeps the chat and the
        message."""
        try:
            await apply_change(
                self._client,
                self._journal.changes if self._journal is not None else None,
                chat_of(row),
                ChatChange("status", status),
                source_row=row.request.source_row,
                attempts=self._max_attempts,
                sleep=self._pause,
                stopping=self._stopping,
            )
        except ApiError as exc:
            self._auth_failed |= isinstance(exc, AuthenticationError)
            failed = self._outcome(row, Status.STATUS_FAILED, exc, prefix="status not set: ")
            return replace(failed, index=ending.index, message_id=ending.message_id)
        return ending

    def _emit(self, going: _Going, outcome: Outcome) -> None:
        """A row's outcome: kept for the results, told to progress."""
        going.ended.add(outcome.index)
        self._outcomes[outcome.index] = outcome
        self._progress.advance(outcome)

    def _end_rest(self, row: _Row, going: _Going, status: Status, text: str) -> None:
        """Every row of the conversation without an outcome yet ends `status`, saying
        `text`, keeping the chat (and a message an earlier run posted)."""
        for rest in _rows(going.conversation):
            if rest.index not in going.ended:
                self._emit(
                    going,
                    self._row_outcome(row, rest, status, None, rest.message_id, error_message=text),
                )

    def _end_all(self, row: _Row, going: _Going, chat: Outcome) -> Outcome:
        """Every row of a conversation whose chat was not made ends as `chat` says."""
        for rest in _rows(going.conversation):
            if rest.index not in going.ended:
                self._emit(going, replace(chat, index=rest.index, message_id=None))
        return chat
