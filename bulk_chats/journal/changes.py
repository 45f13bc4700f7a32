"""The journal's changes of chats (`update`, `close`, an import's `chat_status`).

One entry per scope, chat, field and value: announced (`sending`) before its `PUT` goes
out, then `applied`, `failed` or `not_sent`; and per chat and field the last value
announced (`change_heads`). A later run leaves out what was applied and is still the last
value sent for its field: a later send of another value, whatever became of it, leaves
the field unknown, so the change is sent again (it is idempotent, cheap and safe).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from bulk_chats.errors import ApiError
from bulk_chats.journal.file import JournalFile
from bulk_chats.records import ChatChange


class ChangeStore:
    """The changes of chats the journal keeps (`send.changes.ChangeJournal`); part of
    `journal.Journal`. Thread-safe, as its file is."""

    def __init__(self, file: JournalFile) -> None:
        self._file = file

    def attempt(self, chat_id: int, change: ChatChange, *, source_row: int) -> None:
        """Announce `change` of chat `chat_id`; on disk when this returns, so call it before
        the request goes out. The change counts as done only once `record` says so, and
        only while no other value of its field is announced after it."""
        with self._file.writing() as connection:
            self._sent_last(connection, chat_id, change)
            connection.execute(
                """
                INSERT INTO changes (
                    scope, chat_id, field, value, state, attempts, source_row, input_name,
                    updated_at
                ) VALUES (?, ?, ?, ?, 'sending', 1, ?, ?, ?)
                ON CONFLICT (scope, chat_id, field, value) DO UPDATE SET
                    state = 'sending',
                    attempts = attempts + 1,
                    error_code = '',
                    error_message = '',
                    http_status = NULL,
                    source_row = excluded.source_row,
                    input_name = excluded.input_name,
                    updated_at = excluded.updated_at
                """,
                (
                    self._file.scope,
                    chat_id,
                    change.field,
                    change.journal_value,
                    source_row,
                    self._file.input_name,
                    self._file.now(),
                ),
            )

    def record(
        self,
        chat_id: int,
        change: ChatChange,
        state: str,
        *,
        source_row: int,
        error: ApiError | None = None,
    ) -> None:
        """Keep what became of `change` of chat `chat_id`: `state` is `applied`, `failed`
        or `not_sent`, with the fields of the `error` that ended it. An applied change drops the
        entries of the same field's other values: the chat holds this one now, so a later
        run asking for one of those again sends it."""
        with self._file.writing() as connection:
            # Announced just before, the change is its field's last send already; recorded
            # unannounced (never the sender's way), it is so now.
            self._sent_last(connection, chat_id, change)
            if state == "applied":
                connection.execute(
                    "DELETE FROM changes WHERE scope = ? AND chat_id = ? AND field = ? "
                    "AND value != ?",
                    (self._file.scope, chat_id, change.field, change.journal_value),
                )
            connection.execute(
                """
                INSERT INTO changes (
                    scope, chat_id, field, value, state, error_code, error_message,
                    http_status, source_row, input_name, updated_at
                ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (scope, chat_id, field, value) DO UPDATE SET
                    state = excluded.state,
                    error_code = excluded.error_code,
                    error_message = excluded.error_message,
                    http_status = excluded.http_status,
                    source_row = excluded.source_row,
                    input_name = excluded.input_name,
                    updated_at = excluded.updated_at
                """,
                (
                    self._file.scope,
                    chat_id,
                    change.field,
                    change.journal_value,
                    state,
                    error.error_code if error is not None else "",
                    error.error_message if error is not None else "",
                    error.http_status if error is not None else None,
                    source_row,
                    self._file.input_name,
                    self._file.now(),
                ),
            )

    def _sent_last(self, connection: sqlite3.Connection, chat_id: int, change: ChatChange) -> None:
        """Keep `change` as the last value sent for its field of chat `chat_id`."""
        connection.execute(
            """
            INSERT INTO change_heads (scope, chat_id, field, value, updated_at)
            VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (scope, chat_id, field) DO UPDATE SET
                value = excluded.value, updated_at = excluded.updated_at
            """,
            (self._file.scope, chat_id, change.field, change.journal_value, self._file.now()),
        )

    def applied(self, chat_ids: Iterable[int]) -> set[tuple[int, str, str]]:
        """(chat id, field, `ChatChange.journal_value`) of every change earlier runs applied
        to `chat_ids` in this scope and that is still the last value sent for its field;
        none in a fresh run. An applied change followed by a send of another value is not
        among them, whether that send was answered or not: the journal cannot tell what
        the chat holds then."""
        if self._file.fresh:
            return set()
        rows = self._file.select(
            """
            SELECT c.chat_id, c.field, c.value FROM changes AS c
            JOIN change_heads AS h
                ON h.scope = c.scope AND h.chat_id = c.chat_id AND h.field = c.field
            WHERE c.scope = ? AND c.state = 'applied' AND h.value = c.value
                AND c.chat_id IN ({marks})
            """,
            chat_ids,
        )
        return {(int(c), str(f), str(v)) for c, f, v in rows}
