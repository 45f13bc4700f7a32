"""The journal: a durable SQLite record of every row's progress towards its chat.

It is what lets the same command, run again after a Ctrl-C, a `kill -9` or a power cut,
send only what is left and create no chat twice (PRODUCT.md › Sending); `resume` reads it
to plan the next run. This module only stores: one entry per row and scope, overwritten
as the row progresses, plus an append-only history of events.

Each `attempt` is on disk before its request goes out, and each `record` as soon as the
outcome is known: one short transaction per call, in WAL mode with `synchronous=FULL`.
WAL's usual `NORMAL` may lose the last commits to a crash of the machine, and a lost
announcement is exactly the case that duplicates a chat. A failed write raises
`JournalError`, and the request it would have announced must not be sent.

A row is known by `ChatRequest.key` within a scope, the API root (`scope_for`), never by
file name or row number: the user re-runs the results workbook, sorts it or re-exports it.
The API key is never stored. One run at a time holds a scope (`lock.ScopeLock`).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import urlsplit

from bulk_chats.errors import ApiError, JournalError
from bulk_chats.journal_schema import SENDING, connect
from bulk_chats.lock import ScopeLock
from bulk_chats.records import ChatChange, ChatRequest, Outcome, Status

JOURNAL_NAME: Final = "journal.sqlite3"
"""The journal's file name in the reports directory."""

RECORDED_STATUSES: Final = frozenset(
    {Status.CREATED, Status.MESSAGE_FAILED, Status.FAILED, Status.UNKNOWN, Status.NOT_SENT}
)
"""The outcomes the journal keeps. The others (`valid`, `invalid`, `duplicate`,
`already_created`) say nothing new about the account and are ignored by `Journal.record`."""

_SELECT_CHUNK = 500
"""Keys per `IN (...)` query, well under SQLite's limit on bound parameters."""


def journal_path(reports_dir: Path) -> Path:
    """Where the journal lives in `reports_dir`."""
    return reports_dir / JOURNAL_NAME


def scope_for(base_url: str) -> str:
    """The journal scope of an API root: the URL normalised, without user name or password.

    Scheme and host are lower-cased, the default port and a trailing slash dropped, so
    `HTTPS://API.helpcrunch.com:443/v1/` and `https://api.helpcrunch.com/v1` are one scope.
    """
    parts = urlsplit(base_url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is not None and (scheme, port) not in (("https", 443), ("http", 80)):
        host = f"{host}:{port}"
    return f"{scheme}://{host}{parts.path.rstrip('/')}"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """What the journal knows of one row from earlier runs (a row of `entries`).

    `state` is one of `journal_schema.STATES`. Times are unix seconds. `chat_id` set means
    the chat exists, whatever the state says (a message-only retry may end `not_sent` and
    still keeps it). `unresolved_since` is the start of the earliest attempt that got no
    answer, set while a chat may exist that the journal does not know of.
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


@dataclass(frozen=True, slots=True)
class CustomerEntry:
    """What the journal knows of a customer `import --create-customers` set out to make.

    `state` is `sending` (announced, no answer yet), `created` (`customer_id` is the
    customer the tool made), `failed` or `unknown`.
    """

    state: str
    customer_id: int | None
    attempts: int


class Journal:
    """The journal of one run: one scope of one journal file, held for the run's length.

    Implements the sender's `JournalSink` (`attempt`, `record`). Safe to call from several
    threads; each call blocks until its write is on disk (a few milliseconds).
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        lock: ScopeLock,
        *,
        path: Path,
        scope: str,
        fresh: bool,
        input_name: str,
        clock: Callable[[], float],
    ) -> None:
        """Use `Journal.open`."""
        self._connection: sqlite3.Connection | None = connection
        self._lock = lock
        self._mutex = threading.Lock()
        self._path = path
        self._scope = scope
        self._fresh = fresh
        self._input_name = input_name
        self._clock = clock
        self._renewed: set[str] = set()

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        scope: str,
        fresh: bool = False,
        input_name: str = "",
        clock: Callable[[], float] = time.time,
    ) -> Journal:
        """Open (creating it on first use) the journal at `path` for `scope`.

        `scope` is `scope_for(base_url)`. `fresh` ignores earlier entries (`--fresh`).
        `input_name` is the input file's name, stored for information; any directory part
        is dropped. `clock` gives unix seconds for `updated_at`.

        Raises `InputError` when another run holds the same scope, or when the file is not
        a journal, is from a newer bulk-chats, or cannot be opened.
        """
        if not scope:
            raise ValueError("scope must not be empty")
        lock = ScopeLock.acquire(path, scope)
        try:
            connection = connect(path)
        except BaseException:
            lock.release()
            raise
        return cls(
            connection,
            lock,
            path=path,
            scope=scope,
            fresh=fresh,
            input_name=Path(input_name).name,
            clock=clock,
        )

    def attempt(self, request: ChatRequest, *, started_at: float) -> None:
        """Announce a `POST /v1/chats` for `request`, started at `started_at` (unix seconds).

        On disk when this returns, so call it before the request goes out: until an answer
        is recorded, a later run looks for the chat before sending it again.
        """
        key = request.key
        with self._writing() as connection:
            now = self._clock()
            self._renew(connection, key, now)
            connection.execute(
                """
                INSERT INTO entries (
                    scope, row_key, state, attempts, first_started_at, last_started_at,
                    unresolved_since, source_row, input_name, updated_at
                ) VALUES (
                    :scope, :key, :state, 1, :started_at, :started_at,
                    :started_at, :source_row, :input_name, :now
                )
                ON CONFLICT (scope, row_key) DO UPDATE SET
                    state = excluded.state,
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
                    "scope": self._scope,
                    "key": key,
                    "state": SENDING,
                    "started_at": started_at,
                    "source_row": request.source_row,
                    "input_name": self._input_name,
                    "now": now,
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

    def record(self, request: ChatRequest, outcome: Outcome) -> None:
        """Keep `outcome` as `request`'s latest state; on disk when this returns.

        Call it with `created` and the `chat_id` as soon as the chat exists (before its first
        message is posted), then with the final outcome. A known `chat_id` or `message_id` is
        never cleared by a later outcome without one. An attempt counts as answered once a
        chat id is known or the API refused it (`failed`); after `unknown` or `not_sent` it
        stays unanswered, so the next run searches before sending. Outcomes other than
        `RECORDED_STATUSES` are ignored.
        """
        if outcome.status not in RECORDED_STATUSES:
            return
        key = request.key
        answered = outcome.chat_id is not None or outcome.status is Status.FAILED
        with self._writing() as connection:
            now = self._clock()
            self._renew(connection, key, now)
            connection.execute(
                """
                INSERT INTO entries (
                    scope, row_key, state, chat_id, message_id, unresolved_since,
                    created_at, error_code, error_message, http_status, source_row,
                    input_name, updated_at
                ) VALUES (
                    :scope, :key, :state, :chat_id, :message_id,
                    CASE WHEN :state = 'unknown' THEN :now END,
                    CASE WHEN :chat_id IS NOT NULL THEN :now END,
                    :error_code, :error_message, :http_status, :source_row,
                    :input_name, :now
                )
                ON CONFLICT (scope, row_key) DO UPDATE SET
                    state = excluded.state,
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
                    "scope": self._scope,
                    "key": key,
                    "state": outcome.status.value,
                    "chat_id": outcome.chat_id,
                    "message_id": outcome.message_id,
                    "answered": answered,
                    "error_code": outcome.error_code,
                    "error_message": outcome.error_message,
                    "http_status": outcome.http_status,
                    "source_row": request.source_row,
                    "input_name": self._input_name,
                    "now": now,
                },
            )
            self._event(
                connection,
                key,
                now,
                "record",
                state=outcome.status.value,
                chat_id=outcome.chat_id,
                message_id=outcome.message_id,
                http_status=outcome.http_status,
                error_code=outcome.error_code,
                error_message=outcome.error_message,
                source_row=request.source_row,
            )

    def change_attempt(self, chat_id: int, change: ChatChange, *, source_row: int) -> None:
        """Announce `change` of chat `chat_id`; on disk when this returns, so call it before
        the request goes out. The change counts as done only once `change_record` says so."""
        with self._writing() as connection:
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
                    self._scope,
                    chat_id,
                    change.field,
                    change.journal_value,
                    source_row,
                    self._input_name,
                    self._clock(),
                ),
            )

    def change_record(
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
        with self._writing() as connection:
            if state == "applied":
                connection.execute(
                    "DELETE FROM changes WHERE scope = ? AND chat_id = ? AND field = ? "
                    "AND value != ?",
                    (self._scope, chat_id, change.field, change.journal_value),
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
                    self._scope,
                    chat_id,
                    change.field,
                    change.journal_value,
                    state,
                    error.error_code if error is not None else "",
                    error.error_message if error is not None else "",
                    error.http_status if error is not None else None,
                    source_row,
                    self._input_name,
                    self._clock(),
                ),
            )

    def applied_changes(self, chat_ids: Iterable[int]) -> set[tuple[int, str, str]]:
        """(chat id, field, `ChatChange.journal_value`) of every change earlier runs applied
        to `chat_ids` in this scope; none in a fresh run."""
        if self._fresh:
            return set()
        rows = self._select(
            """
            SELECT chat_id, field, value FROM changes
            WHERE scope = ? AND state = 'applied' AND chat_id IN ({marks})
            """,
            chat_ids,
        )
        return {(int(c), str(f), str(v)) for c, f, v in rows}

    def entries(self, keys: Iterable[str]) -> dict[str, JournalEntry]:
        """The entries of `keys` in this scope that earlier runs left; none in a fresh run."""
        if self._fresh:
            return {}
        rows = self._select(
            """
            SELECT row_key, state, chat_id, message_id, attempts, first_started_at,
                   last_started_at, unresolved_since, created_at, error_code,
                   error_message, http_status, source_row, input_name, updated_at
            FROM entries WHERE scope = ? AND row_key IN ({marks})
            """,
            keys,
        )
        return {key: JournalEntry(*fields) for key, *fields in rows}

    def customer_attempt(self, name_key: str, *, started_at: float) -> None:
        """Announce a `POST /v1/customers` for the customer `name_key` names; on disk when
        this returns, so call it before the request goes out."""
        with self._writing() as connection:
            connection.execute(
                """
                INSERT INTO customers (
                    scope, name_key, state, attempts, first_started_at, last_started_at,
                    updated_at
                ) VALUES (:scope, :key, 'sending', 1, :started_at, :started_at, :now)
                ON CONFLICT (scope, name_key) DO UPDATE SET
                    state = 'sending',
                    attempts = attempts + 1,
                    last_started_at = excluded.last_started_at,
                    error_code = '',
                    error_message = '',
                    http_status = NULL,
                    updated_at = excluded.updated_at
                """,
                {
                    "scope": self._scope,
                    "key": name_key,
                    "started_at": started_at,
                    "now": self._clock(),
                },
            )

    def customer_record(
        self,
        name_key: str,
        *,
        state: str,
        customer_id: int | None = None,
        error_code: str = "",
        error_message: str = "",
        http_status: int | None = None,
    ) -> None:
        """Keep what became of the customer `name_key` names; a known `customer_id` is
        never cleared. On disk when this returns."""
        with self._writing() as connection:
            connection.execute(
                """
                INSERT INTO customers (
                    scope, name_key, state, customer_id, error_code, error_message,
                    http_status, updated_at
                ) VALUES (
                    :scope, :key, :state, :customer_id, :error_code, :error_message,
                    :http_status, :now
                )
                ON CONFLICT (scope, name_key) DO UPDATE SET
                    state = CASE WHEN customer_id IS NULL THEN excluded.state ELSE state END,
                    customer_id = COALESCE(customer_id, excluded.customer_id),
                    error_code = excluded.error_code,
                    error_message = excluded.error_message,
                    http_status = excluded.http_status,
                    updated_at = excluded.updated_at
                """,
                {
                    "scope": self._scope,
                    "key": name_key,
                    "state": state,
                    "customer_id": customer_id,
                    "error_code": error_code,
                    "error_message": error_message,
                    "http_status": http_status,
                    "now": self._clock(),
                },
            )

    def customers(self, name_keys: Iterable[str]) -> dict[str, CustomerEntry]:
        """The customers of `name_keys` earlier runs set out to create. `--fresh` does not
        hide them: a customer made stays in the account whatever the journal forgets."""
        rows = self._select(
            """
            SELECT name_key, state, customer_id, attempts FROM customers
            WHERE scope = ? AND name_key IN ({marks})
            """,
            name_keys,
        )
        return {key: CustomerEntry(*fields) for key, *fields in rows}

    def _select(self, query: str, keys: Iterable[str | int]) -> list[tuple[Any, ...]]:
        """The rows `query` finds for `keys` in this scope, asked `_SELECT_CHUNK` at a time;
        `query` has `scope = ?` and an `IN ({marks})` for the keys."""
        found: list[tuple[Any, ...]] = []
        wanted = list(dict.fromkeys(keys))
        with self._mutex:
            connection = self._open_connection()
            for start in range(0, len(wanted), _SELECT_CHUNK):
                chunk = wanted[start : start + _SELECT_CHUNK]
                try:
                    found += connection.execute(
                        query.format(marks=", ".join("?" * len(chunk))), (self._scope, *chunk)
                    ).fetchall()
                except sqlite3.Error as exc:
                    raise JournalError(f"{self._path}: cannot read the journal ({exc})") from exc
        return found

    def learned_limit(self) -> float | None:
        """The account's limit (requests a minute) a run against this scope learned, if any."""
        with self._mutex:
            try:
                row = (
                    self._open_connection()
                    .execute("SELECT per_minute FROM limits WHERE scope = ?", (self._scope,))
                    .fetchone()
                )
            except sqlite3.Error as exc:
                raise JournalError(f"{self._path}: cannot read the journal ({exc})") from exc
        return None if row is None else float(row[0])

    def remember_limit(self, per_minute: float) -> None:
        """Keep the account's limit (requests a minute) for the next run against this scope."""
        with self._writing() as connection:
            connection.execute(
                """
                INSERT INTO limits (scope, per_minute, learned_at) VALUES (?, ?, ?)
                ON CONFLICT (scope) DO UPDATE SET
                    per_minute = excluded.per_minute, learned_at = excluded.learned_at
                """,
                (self._scope, per_minute, self._clock()),
            )

    def close(self) -> None:
        """Close the file and let another run take the scope. Safe to call twice."""
        with self._mutex:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
                self._lock.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self._path)!r}, scope={self._scope!r}, fresh={self._fresh})"

    def _open_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise JournalError(f"{self._path}: the journal is closed")
        return self._connection

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction; the journal's lock held, errors as `JournalError`."""
        with self._mutex:
            connection = self._open_connection()
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    yield connection
                except BaseException:
                    connection.rollback()
                    raise
                connection.execute("COMMIT")
            except sqlite3.Error as exc:
                if connection.in_transaction:
                    connection.rollback()
                raise JournalError(
                    f"{self._path}: cannot write the journal ({exc}); "
                    "stopping so that no request goes out unrecorded"
                ) from exc

    def _renew(self, connection: sqlite3.Connection, key: str, now: float) -> None:
        """In a fresh run, drop the row's earlier entry the first time the run writes it."""
        if not self._fresh or key in self._renewed:
            return
        connection.execute(
            "DELETE FROM entries WHERE scope = ? AND row_key = ?", (self._scope, key)
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
        values = [now, self._scope, key, kind, self._input_name, *fields.values()]
        connection.execute(
            f"INSERT INTO events ({', '.join(columns)}) VALUES ({', '.join('?' * len(values))})",
            values,
        )
