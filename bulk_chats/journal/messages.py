"""The journal's messages of transcripts: each message a conversation's chat was sent.

One entry per scope, conversation and position (the message's place in the
conversation's order, 0 first): announced (`sending`) before its `POST /v1/messages`
goes out, then `posted` with its id, or `failed`, `unknown` (no answer, and the look in
the chat could not tell) or `not_sent`. So a killed run resumes at the first message not
yet in, and one whose answer was lost is looked for before it is sent again. Two
identical texts of one conversation are two positions: the journal knows which of them
are in, and their ids, so a look in the chat takes neither for the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from bulk_chats.journal.file import JournalFile

POSTED: Final = "posted"
"""The state of a message the API confirmed: `message_id` holds its id."""

UNANSWERED: Final = frozenset({"sending", "unknown"})
"""The states of a message that may be in its chat though no answer said so."""


@dataclass(frozen=True, slots=True)
class MessageEntry:
    """What the journal knows of the message at one position of a conversation.

    `message_key` is `ChatRequest.message_key` of the message announced there; `chat_id`
    the chat it was sent to (a `--fresh` run's new chat makes the old chat's entries
    stale); `message_id` is set once `state` is `POSTED`; `agent_id` is the agent the
    message was sent as, if any (None in entries written before it was kept). Times are
    unix seconds.
    """

    state: str
    message_key: str
    chat_id: int
    message_id: int | None
    attempts: int
    first_started_at: float | None
    agent_id: int | None = None


class MessageStore:
    """The messages of conversations the journal keeps; part of `journal.Journal`.
    Thread-safe, as its file is."""

    def __init__(self, file: JournalFile) -> None:
        self._file = file

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
        """Announce a `POST /v1/messages` of the message at `position` of `conversation`
        (the conversation's `ChatRequest.key`) into chat `chat_id`, started at
        `started_at`, sent as agent `agent_id` if any; on disk when this returns, so call
        it before the request goes out. An earlier entry at the position is replaced, its
        message id with it."""
        with self._file.writing() as connection:
            connection.execute(
                """
                INSERT INTO messages (
                    scope, conversation_key, position, message_key, state, chat_id,
                    attempts, first_started_at, last_started_at, source_row, input_name,
                    updated_at, agent_id
                ) VALUES (
                    :scope, :conversation, :position, :message_key, 'sending', :chat_id,
                    1, :started_at, :started_at, :source_row, :input_name, :now, :agent_id
                )
                ON CONFLICT (scope, conversation_key, position) DO UPDATE SET
                    state = 'sending',
                    attempts = CASE
                        WHEN message_key = excluded.message_key AND chat_id = excluded.chat_id
                        THEN attempts + 1 ELSE 1 END,
                    first_started_at = CASE
                        WHEN message_key = excluded.message_key AND chat_id = excluded.chat_id
                        THEN COALESCE(first_started_at, excluded.first_started_at)
                        ELSE excluded.first_started_at END,
                    message_key = excluded.message_key,
                    chat_id = excluded.chat_id,
                    message_id = NULL,
                    agent_id = excluded.agent_id,
                    last_started_at = excluded.last_started_at,
                    error_code = '',
                    error_message = '',
                    http_status = NULL,
                    source_row = excluded.source_row,
                    input_name = excluded.input_name,
                    updated_at = excluded.updated_at
                """,
                {
                    "scope": self._file.scope,
                    "conversation": conversation,
                    "position": position,
                    "message_key": message_key,
                    "chat_id": chat_id,
                    "started_at": started_at,
                    "source_row": source_row,
                    "input_name": self._file.input_name,
                    "now": self._file.now(),
                    "agent_id": agent_id,
                },
            )

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
        """Keep what became of the message at `position` of `conversation`: `state` is
        `POSTED` (with its `message_id`), `failed`, `unknown` or `not_sent`. A message
        found in the chat after a lost answer, or by a later run, is recorded `POSTED`
        too. On disk when this returns."""
        with self._file.writing() as connection:
            connection.execute(
                """
                INSERT INTO messages (
                    scope, conversation_key, position, message_key, state, chat_id,
                    message_id, error_code, error_message, http_status, source_row,
                    input_name, updated_at
                ) VALUES (
                    :scope, :conversation, :position, :message_key, :state, :chat_id,
                    :message_id, :error_code, :error_message, :http_status, :source_row,
                    :input_name, :now
                )
                ON CONFLICT (scope, conversation_key, position) DO UPDATE SET
                    state = excluded.state,
                    message_key = excluded.message_key,
                    chat_id = excluded.chat_id,
                    message_id = excluded.message_id,
                    error_code = excluded.error_code,
                    error_message = excluded.error_message,
                    http_status = excluded.http_status,
                    source_row = excluded.source_row,
                    input_name = excluded.input_name,
                    updated_at = excluded.updated_at
                """,
                {
                    "scope": self._file.scope,
                    "conversation": conversation,
                    "position": position,
                    "message_key": message_key,
                    "state": state,
                    "chat_id": chat_id,
                    "message_id": message_id,
                    "error_code": error_code,
                    "error_message": error_message,
                    "http_status": http_status,
                    "source_row": source_row,
                    "input_name": self._file.input_name,
                    "now": self._file.now(),
                },
            )

    def entries(self, conversations: Iterable[str]) -> Mapping[str, dict[int, MessageEntry]]:
        """The messages earlier runs sent of each of `conversations` in this scope, by
        position; none in a fresh run."""
        if self._file.fresh:
            return {}
        rows = self._file.select(
            """
            SELECT conversation_key, position, state, message_key, chat_id, message_id,
                   attempts, first_started_at, agent_id
            FROM messages WHERE scope = ? AND conversation_key IN ({marks})
            """,
            conversations,
        )
        found: dict[str, dict[int, MessageEntry]] = {}
        for conversation, position, *fields in rows:
            found.setdefault(conversation, {})[int(position)] = MessageEntry(*fields)
        return found
