"""The journal's rows: each row's progress towards its chat (`import`).

One entry per row and scope, overwritten as the row progresses, plus an append-only
history of events. Each `attempt` is on disk before its `POST /v1/chats` goes out, and
each `record` as soon as the outcome is known, so a killed run loses nothing: the next
run reads `entries` to plan what is left (`jobs.resume`).

A row is known by `ChatRequest.key` within a scope, the API root (`journal.scope_for`),
never by file name or row number: the user re-runs the results workbook, sorts it or
re-exports it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from bulk_chats.journal.file import JournalFile
from bulk_chats.journal.schema import SENDING
from bulk_chats.records import ChatRequest, Outcome, Status

RECORDED_STATUSES: Final = frozenset(
    {
        Status.CREATED,
        Status.ALREADY_CREATED,
        Status.MESSAGE_FAILED,
        Status.FAILED,
        Status.UNKNOWN,
        Status.NOT_SENT,
    }
)
"""The outcomes the journal keeps. The others (`valid`, `invalid`, `duplicate`) never
reach the sender and are ignored by `ChatStore.record`. `already_created` does when a
resumed run settles a row (a chat adopted by search, a message or status completed): it
is kept as `created`, so that the next run need not look the row up again."""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """What the journal knows of one row from earlier runs (a row of `entries`).

    `state` is one of `journal.schema.STATES`. Times are unix seconds. `chat_id` set means
    the chat exists, whatever the state says (a message-only retry may end `not_sent` and
    still keeps it). `unresolved_since` is the start of the earliest attempt that got no
    answer, set while a chat may exist that the journal does not know of. `customer_id`,
    `assignee_id`, `department_id` and `message_agent_id` are the ids the chat was sent
    with (None when not given, and in entries written before they were kept): a finished
    row shows them again without a look-up.
    """

    state: str
    chat_id: int | None
    message_id: int | None
    attempts: int
    first_started_at: float | None
    last_started_at: float | None
    unresolved_since: float | None
    created_at: float | None
    error_code: str
    error_message: str
    http_status: int | None
    source_row: int | None
    input_name: str
    updated_at: float
    customer_id: int | None = None
    assignee_id: int | None = None
    department_id: int | None = None
    message_agent_id: int | None = None

    @property
    def ids_used(self) -> dict[str, int]:
        """The ids the chat was sent with, by id field, where the journal knows them."""
        used = {
            "customer": self.customer_id,
            "assignee": self.assignee_id,
            "department": self.department_id,
            "message_agent": self.message_agent_id,
        }
        return {field: value for field, value in used.items() if value is not None}


class ChatStore:
    """The rows' chats the journal keeps: what the sender announces and records
    (`send.journaling.ChatJournal`) and what the next run reads. Thread-safe, as its file is."""

    def __init__(self, file: JournalFile) -> None:
        self._file = file
        self._renewed: set[str] = set()
        """Row keys whose earlier entry a fresh run has dropped."""

    def attempt(self, request: ChatRequest, *, started_at: float) -> None:
        """Announce a `POST /v1/chats` for `request`, started at `started_at` (unix seconds).

        On disk when this returns, so call it before the request goes out: until an answer
        is recorded, a later run looks for the chat before sending it again.
        """
        key = request.key
        with self._file.writing() as connection:
            now = self._file.now()
            self._renew(connection, key, now)
            connection.execute(
                """
                INSERT INTO entries (
                    scope, row_key, state, attempts, first_started_at, last_started_at,
                    unresolved_since, source_row, input_name, updated_at,
                    customer_id, assignee_id, department_id, message_agent_id
                ) VALUES (
                    :scope, :key, :state, 1, :started_at, :started_at,
                    :started_at, :source_row, :input_name, :now,
                    :customer_id, :assignee_id, :department_id, :message_agent_id
                )
                ON CONFLICT (scope, row_key) DO UPDATE SET
                    state = excluded.state,
                    customer_id = excluded.customer_id,
                    assignee_id = excluded.assignee_id,
                    department_id = excluded.department_id,
                    message_agent_id = excluded.message_agent_id,
                    attempts = attempts + 1,
                    first_started_at = MIN(
                        COALESCE(first_started_at, excluded.first_started_at),
                        excluded.first_started_at
                    ),
                    last_started_at = excluded.last_started_at,
                    unresolved_since = MIN(
                        COALESCE(unresolved_since, excluded.unresolved_since),
                        excluded.unresolved_since
                    ),
                    error_code = '',
                    error_message = '',
                    http_status = NULL,
                    source_row = excluded.source_row,
                    input_name = excluded.input_name,
                    updated_at = excluded.updated_at
                """,
                {
                    "scope": self._file.scope,
                    "key": key,
                    "state": SENDING,
                    "started_at": started_at,
                    "source_row": request.source_row,
                    "input_name": self._file.input_name,
                    "now": now,
                    **_ids_sent(request),
                },
            )
            self._event(
                connection,
                key,
                now,
                "attempt",
                state=SENDING,
                started_at=started_at,
                source_row=request.source_row,
            )

    def withdraw(self, request: ChatRequest, *, started_at: float) -> None:
        """The attempt announced at `started_at` surely created nothing: the row is no
        longer unanswered, unless an earlier attempt left it so (its start is earlier).
        On disk when this returns."""
        with self._file.writing() as connection:
            connection.execute(
                """
                UPDATE entries SET unresolved_since = NULL, updated_at = :now
                WHERE scope = :scope AND row_key = :key AND unresolved_since = :started_at
                """,
                {
                    "scope": self._file.scope,
                    "key": request.key,
                    "started_at": started_at,
                    "now": self._file.now(),
                },
            )

    def record(self, request: ChatRequest, outcome: Outcome) -> None:
        """Keep `outcome` as `request`'s latest state; on disk when this returns.

        Call it with `created` and the `chat_id` as soon as the chat exists (before its first
        message is posted), then with the final outcome. A known `chat_id` or `message_id` is
        never cleared by a later outcome without one. An attempt counts as answered once a
        chat id is known or the API refused it (`failed`); after `unknown` or `not_sent` it
        stays unanswered, so the next run searches before sending. `already_created` (a
        row an earlier run began, settled now) is kept as `created`. Outcomes other than
        `RECORDED_STATUSES` are ignored.
        """
        if outcome.status not in RECORDED_STATUSES:
            return
        state = Status.CREATED if outcome.status is Status.ALREADY_CREATED else outcome.status
        key = request.key
        answered = outcome.chat_id is not None or outcome.status is Status.FAILED
        with self._file.writing() as connection:
            now = self._file.now()
            self._renew(connection, key, now)
            connection.execute(
                """
                INSERT INTO entries (
                    scope, row_key, state, chat_id, message_id, unresolved_since,
                    created_at, error_code, error_message, http_status, source_row,
                    input_name, updated_at,
                    customer_id, assignee_id, department_id, message_agent_id
                ) VALUES (
                    :scope, :key, :state, :chat_id, :message_id,
                    CASE WHEN :state = 'unknown' THEN :now END,
                    CASE WHEN :chat_id IS NOT NULL THEN :now END,
                    :error_code, :error_message, :http_status, :source_row,
                    :input_name, :now,
                    :customer_id, :assignee_id, :department_id, :message_agent_id
                )
                ON CONFLICT (scope, row_key) DO UPDATE SET
                    state = excluded.state,
                    customer_id = COALESCE(customer_id, excluded.customer_id),
                    assignee_id = COALESCE(assignee_id, excluded.assignee_id),
                    department_id = COALESCE(department_id, excluded.department_id),
                    message_agent_id = COALESCE(message_agent_id, excluded.message_agent_id),
                    chat_id = COALESCE(excluded.chat_id, chat_id),
                    message_id = COALESCE(excluded.message_id, message_id),
                    unresolved_since = CASE
                        WHEN :answered THEN NULL
                        WHEN excluded.state = 'unknown'
                            THEN COALESCE(unresolved_since, last_started_at, excluded.updated_at)
                        ELSE unresolved_since
                    END,
                    created_at = COALESCE(created_at, excluded.created_at),
                    error_code = excluded.error_code,
                    error_message = excluded.error_message,
                    http_status = excluded.http_status,
                    source_row = excluded.source_row,
                    input_name = excluded.input_name,
                    updated_at = excluded.updated_at
                """,
                {
                    "scope": self._file.scope,
                    "key": key,
                    "state": state.value,
                    "chat_id": outcome.chat_id,
                    "message_id": outcome.message_id,
                    "answered": answered,
                    "error_code": outcome.error_code,
                    "error_message": outcome.error_message,
                    "http_status": outcome.http_status,
                    "source_row": request.source_row,
                    "input_name": self._file.input_name,
                    "now": now,
                    **_ids_sent(request),
                },
            )
            self._event(
                connection,
                key,
                now,
                "record",
                state=state.value,
                chat_id=outcome.chat_id,
                message_id=outcome.message_id,
                http_status=outcome.http_status,
                error_code=outcome.error_code,
                error_message=outcome.error_message,
                source_row=request.source_row,
            )

    def entries(self, keys: Iterable[str]) -> dict[str, JournalEntry]:
        """The entries of `keys` in this scope that earlier runs left; none in a fresh run."""
        if self._file.fresh:
            return {}
        rows = self._file.select(
            """
            SELECT row_key, state, chat_id, message_id, attempts, first_started_at,
                   last_started_at, unresolved_since, created_at, error_code,
                   error_message, http_status, source_row, input_name, updated_at,
                   customer_id, assignee_id, department_id, message_agent_id
            FROM entries WHERE scope = ? AND row_key IN ({marks})
            """,
            keys,
        )
        return {key: JournalEntry(*fields) for key, *fields in rows}

    def _renew(self, connection: sqlite3.Connection, key: str, now: float) -> None:
        """In a fresh run, drop the row's earlier entry the first time the run writes it."""
        if not self._file.fresh or key in self._renewed:
            return
        connection.execute(
            "DELETE FROM entries WHERE scope = ? AND row_key = ?", (self._file.scope, key)
        )
        self._event(connection, key, now, "fresh")
        self._renewed.add(key)

    def _event(
        self,
        connection: sqlite3.Connection,
        key: str,
        now: float,
        kind: str,
        **fields: Any,
    ) -> None:
        columns = ["at", "scope", "row_key", "kind", "input_name", *fields]
        values = [now, self._file.scope, key, kind, self._file.input_name, *fields.values()]
        connection.execute(
            f"INSERT INTO events ({', '.join(columns)}) VALUES ({', '.join('?' * len(values))})",
            values,
        )


def _ids_sent(request: ChatRequest) -> dict[str, int | None]:
    """The ids `request` sends, as the journal's columns name them."""
    return {
        "customer_id": request.customer,
        "assignee_id": request.assignee,
        "department_id": request.department,
        "message_agent_id": request.message.agent if request.message is not None else None,
    }
