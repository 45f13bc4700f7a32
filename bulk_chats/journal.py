"""The journal: a durable SQLite record of every row's progress towards its chat.

A migration of 10,000 rows runs for well over an hour, so it will meet a closed laptop, a
Ctrl-C, a `kill -9` or a power cut. The journal is what lets the same command, run again,
send only what is left and create no chat twice (PRODUCT.md › Sending).

Durability
    The sender announces every `POST /v1/chats` with `Journal.attempt` *before* the request
    goes out, and reports each outcome with `Journal.record` as soon as it is known. Each
    call is its own short transaction, committed before it returns; nothing is batched in
    memory. The file is in WAL mode with `synchronous=FULL`: WAL's usual `NORMAL` survives
    a crash of the process but may lose the last commits to a crash of the machine, and a
    lost announcement is exactly the case that duplicates a chat (the POST created it, the
    journal forgot it was ever sent, the re-run sends it again). `FULL` syncs the log at
    every commit; a few milliseconds per request is nothing next to a rate of two requests
    a second. If a write fails, `JournalError` is raised and the request it would have
    announced must not be sent.

Keys and scope
    A row is recognised by `ChatRequest.key`, a fingerprint of its chat fields (customer,
    application, assignee, department, first message), within a *scope*, the API root
    (`scope_for(base_url)`). Not by file name or row number: the user re-runs the results
    workbook (another file name), sorts or filters it, or re-exports the source, and every
    row must still be recognised. Duplicates within one input are rejected before sending,
    so within one run a key names one row. The consequences:

    - an identical row in a later, different migration to the same API root is taken as
      already created, and is not sent again unless the run is `--fresh`;
    - the scope is the API root, not the account: HelpCrunch serves every account from one
      root and the journal stores nothing about the key, so importing the same sheet into
      a second account from the same reports directory also needs `--fresh` (or another
      reports directory).

    The API key is never stored, not even hashed; `scope_for` drops any user name or
    password written into the URL.

Concurrency
    One run at a time per journal and scope: `Journal.open` takes an operating-system lock
    on one byte of `<journal>-lock` (the byte chosen by the scope) and refuses with an
    `InputError` while another run holds it, since two runs sending the same rows would
    each create the chats the other has not recorded yet. The operating system drops the
    lock when its process ends, however it ends, so a killed run never leaves a stale lock
    behind. Runs with other scopes may share the file; a busy timeout lets their short
    writes wait for each other instead of failing.

Fresh runs
    `Journal.open(..., fresh=True)` reports no earlier entries, and replaces each row's
    entry when the run first writes about it. Entries are not wiped up front, so a fresh run
    stopped at the confirmation prompt loses nothing.

Resume
    `plan_resume` turns the earlier entries into what the next run does: rows whose chat
    exists are `already_created`, rows whose chat exists without its first message get only
    the message (after a look at the chat, since the run that created it may have died
    with the message in flight), rows with an unanswered attempt are first looked for by
    search, the rest are sent.

    A results workbook fed back in says which rows an earlier run left `unknown`. When the
    journal knows those rows, it says since when to search. When it does not (the workbook
    was moved to another directory, `reports/` was deleted, the run was against another
    API root), nothing says when the request went out, and a search without that bound
    could adopt an older chat of the same customer and leave the row without its own. Such
    rows are held back as `unknown`, with a message that says how to settle them: put the
    chat's id in `chat_id` when it exists, clear the `status` cell when it does not, or
    import with `--fresh` to send them regardless.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import urlsplit

from bulk_chats.errors import InputError, JournalError
from bulk_chats.records import ChatRequest, Outcome, Status

if sys.platform == "win32":
    import msvcrt
else:
    import fcntl

JOURNAL_NAME: Final = "journal.sqlite3"
"""The journal's file name in the reports directory."""

APPLICATION_ID: Final = 0x42434A31
"""`PRAGMA application_id` of a journal ("BCJ1"), so another SQLite file is not mistaken for one."""

BUSY_TIMEOUT: Final = 10.0
"""Seconds a write waits for another process's write to the same file before failing."""

SENDING: Final = "sending"
"""The state of a row whose request was announced but not answered (yet)."""

STATES: Final = frozenset(
    {
        SENDING,
        Status.CREATED.value,
        Status.MESSAGE_FAILED.value,
        Status.FAILED.value,
        Status.UNKNOWN.value,
        Status.NOT_SENT.value,
    }
)
"""Every state an entry can be in."""

RECORDED_STATUSES: Final = frozenset(
    {Status.CREATED, Status.MESSAGE_FAILED, Status.FAILED, Status.UNKNOWN, Status.NOT_SENT}
)
"""The outcomes the journal keeps. The others (`valid`, `invalid`, `duplicate`,
`already_created`) say nothing new about the account and are ignored by `Journal.record`."""

_STATE_LIST = ", ".join(f"'{state}'" for state in sorted(STATES))

# Each migration brings a journal from version i to i + 1, in one transaction. Only append.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # What resume reads: one entry per row and scope, overwritten as the row progresses.
        f"""
        CREATE TABLE entries (
            scope            TEXT    NOT NULL,  -- the API root, from scope_for()
            row_key          TEXT    NOT NULL,  -- ChatRequest.key
            state            TEXT    NOT NULL CHECK (state IN ({_STATE_LIST})),
            chat_id          INTEGER,           -- once known, kept until a fresh run
            message_id       INTEGER,
            attempts         INTEGER NOT NULL DEFAULT 0,  -- POST /v1/chats announced
            first_started_at REAL,              -- unix seconds, the first attempt
            last_started_at  REAL,              -- unix seconds, the latest attempt
            unresolved_since REAL,              -- earliest attempt not yet answered
            created_at       REAL,              -- unix seconds, when chat_id became known
            error_code       TEXT    NOT NULL DEFAULT '',
            error_message    TEXT    NOT NULL DEFAULT '',
            http_status      INTEGER,
            source_row       INTEGER,           -- informational: the latest run's row
            input_name       TEXT    NOT NULL DEFAULT '',  -- informational: file name only
            updated_at       REAL    NOT NULL,
            PRIMARY KEY (scope, row_key)
        ) WITHOUT ROWID
        """,
        # An append-only history, for answering "what happened to this row" afterwards.
        """
        CREATE TABLE events (
            id            INTEGER PRIMARY KEY,
            at            REAL    NOT NULL,
            scope         TEXT    NOT NULL,
            row_key       TEXT    NOT NULL,
            kind          TEXT    NOT NULL CHECK (kind IN ('attempt', 'record', 'fresh')),
            state         TEXT,
            chat_id       INTEGER,
            message_id    INTEGER,
            started_at    REAL,
            http_status   INTEGER,
            error_code    TEXT,
            error_message TEXT,
            source_row    INTEGER,
            input_name    TEXT
        )
        """,
        "CREATE INDEX events_by_row ON events (scope, row_key)",
    ),
)

SCHEMA_VERSION: Final = len(_MIGRATIONS)
"""The schema this module writes, kept in `PRAGMA user_version`."""

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
class Earlier:
    """What the journal knows of one row from earlier runs.

    `state` is one of `STATES`. Times are unix seconds. `chat_id` set means the chat exists,
    whatever the state says (a message-only retry may end `not_sent` and still keeps it).
    `unresolved_since` is the start of the earliest attempt that got no answer, set while a
    chat may exist that the journal does not know of.
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
class ResumePlan:
    """What a run does with rows that earlier runs saw.

    `already_created` holds finished outcomes (status `already_created`, `attempts` 0: this
    run sent nothing for them). `to_send` holds the requests to give the sender, in input
    order: `confirm_since` set without `chat_id` when an earlier attempt may have created
    the chat (search for it first); `chat_id` set when only the first message is left, with
    `confirm_since` too when an earlier run may have posted it (look at the chat first).
    `held` holds `unknown` outcomes for rows not sent at all (see the module docs).
    """

    already_created: list[Outcome]
    to_send: list[ChatRequest]
    last_created_at: float | None = None
    """When the latest of the `already_created` chats was created (unix seconds)."""
    held: list[Outcome] = field(default_factory=list)

    @property
    def message_only(self) -> int:
        """Rows whose chat exists and only the first message is left."""
        return sum(1 for request in self.to_send if request.chat_id is not None)

    @property
    def to_confirm(self) -> int:
        """Rows to look for by search before sending, since an attempt got no answer."""
        return sum(
            1
            for request in self.to_send
            if request.chat_id is None and request.confirm_since is not None
        )

    def describe(self) -> str:
        """One line for the start of a run, e.g. `312 rows were already created ...`."""
        return describe_resume(
            finished=len(self.already_created),
            last_created_at=self.last_created_at,
            to_send=len(self.to_send),
            message_only=self.message_only,
            to_confirm=self.to_confirm,
            held=len(self.held),
        )


def describe_resume(
    *,
    finished: int,
    last_created_at: float | None,
    to_send: int,
    message_only: int,
    to_confirm: int,
    held: int,
) -> str:
    """What earlier runs left, in one line: `312 rows were already created (the latest on
    2026-11-25 14:12); 88 to send (5 only the first message)`."""
    parts = []
    if finished:
        when = ""
        if last_created_at is not None:
            stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(last_created_at))
            when = f" (the latest on {stamp})"
        parts.append(
            f"{_rows(finished)} {'was' if finished == 1 else 'were'} already created{when}"
        )
    notes = []
    if message_only:
        notes.append(f"{message_only} only the first message")
    if to_confirm:
        notes.append(f"{to_confirm} first looked for, as an earlier attempt got no answer")
    text = f"{to_send} to send"
    parts.append(f"{text} ({'; '.join(notes)})" if notes else text)
    if held:
        parts.append(
            f"{held} held back: an earlier run left {'it' if held == 1 else 'them'} unknown "
            "and the journal does not know when it was sent (see error_message)"
        )
    return "; ".join(parts)


HELD_UNKNOWN = (
    "an earlier run left this row unknown: its chat may exist, and this journal does not "
    "know when it was sent, so it is not sent again; look for the chat in HelpCrunch and "
    "put its id in chat_id if it exists, or clear this status cell if it does not, then "
    "run again (or import with --fresh to send it regardless)"
)
"""The `error_message` of a row `plan_resume` holds back."""


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def plan_resume(
    requests: Sequence[ChatRequest],
    earlier: Mapping[str, Earlier],
    *,
    unknown_before: Collection[int] = (),
) -> ResumePlan:
    """Sort `requests` by what earlier runs left of them.

    - a chat exists and its first message was posted, or it has none: `already_created`;
    - a chat exists but the message is missing: sent with `chat_id` set, so only the
      message goes out, never a second chat, and `confirm_since` set to the chat's first
      attempt, so that the sender looks for the message in the chat before posting it;
    - an attempt got no answer (`sending`, `unknown`, or stopped mid-request): sent with
      `confirm_since` set to that attempt's start, so the sender searches for the chat
      first. It is the local clock's time: the search should allow for some clock skew;
    - no entry, but `unknown_before` (the `ChatRequest.index` of rows a results workbook
      fed back in marks `unknown`) names the row: held back, `unknown` (module docs). Give
      none in a `--fresh` run;
    - refused earlier (`failed`), `not_sent`, or no entry: sent as is.
    """
    already_created: list[Outcome] = []
    to_send: list[ChatRequest] = []
    held: list[Outcome] = []
    last_created_at: float | None = None
    for request in requests:
        entry = earlier.get(request.key)
        outcome = settled(
            request.index,
            chat_id=request.chat_id,
            has_message=request.message is not None,
            entry=entry,
            unknown_before=unknown_before,
        )
        if outcome is None:
            to_send.append(_to_send(request, entry))
        elif outcome.status is Status.UNKNOWN:
            held.append(outcome)
        else:
            already_created.append(outcome)
            last_created_at = latest(last_created_at, entry)
    return ResumePlan(already_created, to_send, last_created_at, held)


def settled(
    index: int,
    *,
    chat_id: int | None,
    has_message: bool,
    entry: Earlier | None,
    unknown_before: Collection[int] = (),
) -> Outcome | None:
    """The outcome of a row that earlier runs settled, so that nothing is sent for it, or
    None when it is to be sent (see `plan_resume`): `already_created` when its chat exists
    with its first message (if it has one); held back `unknown` when a fed-back workbook
    says `unknown` and the journal does not know the row."""
    if entry is None:
        if chat_id is None and index in unknown_before:
            return Outcome(index=index, status=Status.UNKNOWN, error_message=HELD_UNKNOWN)
        return None
    if entry.chat_id is not None and (not has_message or entry.message_id is not None):
        return Outcome(
            index=index,
            status=Status.ALREADY_CREATED,
            chat_id=entry.chat_id,
            message_id=entry.message_id,
        )
    return None


def latest(when: float | None, entry: Earlier | None) -> float | None:
    """The later of `when` and the creation time of `entry`'s chat."""
    created_at = None if entry is None else entry.created_at
    if created_at is None:
        return when
    return created_at if when is None else max(when, created_at)


def _to_send(request: ChatRequest, entry: Earlier | None) -> ChatRequest:
    """`request` as the sender gets it: with the chat id when only the message is left,
    and `confirm_since` when an earlier attempt (or message) may have gone through."""
    if entry is None:
        return request
    if entry.chat_id is not None:
        since = entry.first_started_at if entry.first_started_at is not None else entry.created_at
        return replace(request, chat_id=entry.chat_id, confirm_since=since)
    if entry.unresolved_since is not None:
        return replace(request, confirm_since=entry.unresolved_since)
    return request


class Journal:
    """The journal of one run: one scope of one journal file, held for the run's length.

    Implements the sender's `JournalSink` (`attempt`, `record`). Safe to call from several
    threads; each call blocks until its write is on disk (a few milliseconds).
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        lock: _ScopeLock,
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
        lock = _ScopeLock.acquire(path, scope)
        try:
            connection = _connect(path)
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

    @property
    def path(self) -> Path:
        """The journal file."""
        return self._path

    @property
    def scope(self) -> str:
        """The API root whose rows this journal reads and writes."""
        return self._scope

    @property
    def fresh(self) -> bool:
        """Whether earlier entries are ignored and replaced."""
        return self._fresh

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

    def earlier(self, keys: Iterable[str]) -> dict[str, Earlier]:
        """The entries of `keys` in this scope that earlier runs left; none in a fresh run."""
        if self._fresh:
            return {}
        found: dict[str, Earlier] = {}
        wanted = list(dict.fromkeys(keys))
        with self._mutex:
            connection = self._open_connection()
            for start in range(0, len(wanted), _SELECT_CHUNK):
                chunk = wanted[start : start + _SELECT_CHUNK]
                marks = ", ".join("?" * len(chunk))
                try:
                    rows = connection.execute(
                        f"""
                        SELECT row_key, state, chat_id, message_id, attempts, first_started_at,
                               last_started_at, unresolved_since, created_at, error_code,
                               error_message, http_status, source_row, input_name, updated_at
                        FROM entries WHERE scope = ? AND row_key IN ({marks})
                        """,
                        (self._scope, *chunk),
                    ).fetchall()
                except sqlite3.Error as exc:
                    raise JournalError(f"{self._path}: cannot read the journal ({exc})") from exc
                for key, *fields in rows:
                    found[key] = Earlier(*fields)
        return found

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


def _connect(path: Path) -> sqlite3.Connection:
    """Open the journal file, in WAL mode with full sync, creating or upgrading its schema."""
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    try:
        # Autocommit (isolation_level=None): every write opens and commits its own
        # transaction explicitly, so none is left open between the sender's calls.
        connection = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise InputError(f"{path}: cannot open the journal ({exc})") from None
    try:
        # Identify the file before changing anything, so another SQLite file stays untouched.
        _schema_version(connection, path)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        _migrate(connection, path)
    except sqlite3.OperationalError as exc:
        connection.close()
        raise InputError(f"{path}: cannot open the journal ({exc})") from None
    except sqlite3.DatabaseError as exc:
        connection.close()
        raise InputError(
            f"{path}: not a bulk-chats journal ({exc}); move it away or name another"
        ) from None
    except BaseException:
        connection.close()
        raise
    if created:
        _sync_directory(path.parent)
    return connection


def _schema_version(connection: sqlite3.Connection, path: Path) -> int:
    """The journal's schema version, 0 for an empty file; `InputError` for any other file."""
    version: int = connection.execute("PRAGMA user_version").fetchone()[0]
    application_id: int = connection.execute("PRAGMA application_id").fetchone()[0]
    has_tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
    if application_id != APPLICATION_ID and (has_tables or version or application_id):
        raise InputError(f"{path}: not a bulk-chats journal; move it away or name another")
    if version > len(_MIGRATIONS):
        raise InputError(
            f"{path}: the journal was written by a newer bulk-chats (schema {version}, "
            f"this one knows {len(_MIGRATIONS)}); upgrade bulk-chats"
        )
    return version


def _migrate(connection: sqlite3.Connection, path: Path) -> None:
    """Bring the schema to the latest version, in one transaction.

    The version is read again inside the transaction: two runs creating the journal at
    once take turns, and the second finds it done.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = _schema_version(connection, path)
        for number in range(version, len(_MIGRATIONS)):
            for statement in _MIGRATIONS[number]:
                connection.execute(statement)
        if version < len(_MIGRATIONS):
            # PRAGMAs take no placeholders; both values are integers of this module.
            connection.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
            connection.execute(f"PRAGMA user_version = {len(_MIGRATIONS):d}")
        connection.execute("COMMIT")
    except BaseException:
        connection.rollback()
        raise


def _sync_directory(directory: Path) -> None:
    """Make a new file's directory entry durable too (POSIX; Windows has no such call)."""
    if sys.platform == "win32":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_LOCKS_GUARD = threading.Lock()
_HELD_LOCKS: dict[Path, tuple[int, set[int]]] = {}
"""Per lock file: this process's one descriptor of it and the bytes it holds locked."""


class _ScopeLock:
    """An exclusive OS lock on one byte of `<journal>-lock`, the byte chosen by the scope.

    The operating system releases it when the process ends, even by `kill -9` or a power
    cut, so it never goes stale. POSIX record locks do not conflict within one process and
    are all dropped when any descriptor of the file closes, so this process keeps one
    descriptor per lock file and its own table of held bytes.
    """

    def __init__(self, lock_path: Path, offset: int) -> None:
        self._lock_path = lock_path
        self._offset = offset
        self._released = False

    @classmethod
    def acquire(cls, path: Path, scope: str) -> _ScopeLock:
        """Take the scope's lock on the journal at `path`, or raise `InputError`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = path.with_name(path.name + "-lock").resolve()
        digest = hashlib.sha256(scope.encode("utf-8")).digest()
        offset = int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
        busy = InputError(
            f"{path}: another bulk-chats run is sending to {scope} with this journal; "
            "wait for it to finish (two runs at once could create the same chat twice)"
        )
        with _LOCKS_GUARD:
            fd, offsets = _HELD_LOCKS.get(lock_path, (-1, set()))
            if offset in offsets:
                raise busy
            if fd < 0:
                try:
                    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
                except OSError as exc:
                    raise InputError(
                        f"{lock_path}: cannot open the journal's lock file ({exc.strerror})"
                    ) from None
            try:
                taken = _lock_byte(fd, offset)
            except OSError as exc:
                if not offsets:
                    os.close(fd)
                raise InputError(f"{lock_path}: cannot lock the journal ({exc.strerror})") from None
            if not taken:
                if not offsets:
                    os.close(fd)
                raise busy
            offsets.add(offset)
            _HELD_LOCKS[lock_path] = (fd, offsets)
        return cls(lock_path, offset)

    def release(self) -> None:
        """Let another run take the scope."""
        with _LOCKS_GUARD:
            if self._released:
                return
            self._released = True
            fd, offsets = _HELD_LOCKS[self._lock_path]
            _unlock_byte(fd, self._offset)
            offsets.discard(self._offset)
            if not offsets:
                os.close(fd)
                del _HELD_LOCKS[self._lock_path]


if sys.platform == "win32":

    def _lock_byte(fd: int, offset: int) -> bool:
        """Lock byte `offset` of `fd`; False when another process holds it."""
        os.lseek(fd, offset, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EDEADLK):
                return False
            raise
        return True

    def _unlock_byte(fd: int, offset: int) -> None:
        os.lseek(fd, offset, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:

    def _lock_byte(fd: int, offset: int) -> bool:
        """Lock byte `offset` of `fd`; False when another process holds it."""
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset, os.SEEK_SET)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                return False
            raise
        return True

    def _unlock_byte(fd: int, offset: int) -> None:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset, os.SEEK_SET)
