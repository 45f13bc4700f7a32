"""The journal's file: opening it, telling it from any other SQLite file, upgrading it.

Every journal carries `PRAGMA application_id` and its schema version in `user_version`,
so a newer bulk-chats's journal or someone else's database is refused untouched, and an
older journal is upgraded in place, in one transaction, by appending to `_MIGRATIONS`.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from typing import Final

from bulk_chats.errors import InputError
from bulk_chats.records import Status
from bulk_chats.results import owner_only

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
    (
        # The account's request limit as a run learned it from a 429, per API root: the next
        # run against the same root starts at it unless told a rate.
        """
        CREATE TABLE limits (
            scope      TEXT PRIMARY KEY,  -- the API root, from scope_for()
            per_minute REAL NOT NULL,     -- requests a minute the API accepted
            learned_at REAL NOT NULL      -- unix seconds
        ) WITHOUT ROWID
        """,
    ),
    (
        # The customers `import --create-customers` made, one per distinct name and scope:
        # `sending` is on disk before `POST /v1/customers` goes out, so a run killed before
        # the answer looks for the customer before creating it again.
        """
        CREATE TABLE customers (
            scope            TEXT    NOT NULL,  -- the API root, from scope_for()
            name_key         TEXT    NOT NULL,  -- customer_email:<trimmed, lower case>
                                                -- or customer_user_id:<trimmed>
            state            TEXT    NOT NULL
                CHECK (state IN ('sending', 'created', 'failed', 'unknown')),
            customer_id      INTEGER,           -- once known
            attempts         INTEGER NOT NULL DEFAULT 0,  -- POST /v1/customers announced
            first_started_at REAL,              -- unix seconds
            last_started_at  REAL,
            error_code       TEXT    NOT NULL DEFAULT '',
            error_message    TEXT    NOT NULL DEFAULT '',
            http_status      INTEGER,
            updated_at       REAL    NOT NULL,
            PRIMARY KEY (scope, name_key)
        ) WITHOUT ROWID
        """,
    ),
    (
        # The changes of `update`, `close` and an import's `chat_status`: one entry per
        # change asked of a chat, announced before its PUT goes out. Only `applied` says
        # it is done; a change of the same field to another value applied later replaces it.
        """
        CREATE TABLE changes (
            scope         TEXT    NOT NULL,  -- the API root, from scope_for()
            chat_id       INTEGER NOT NULL,
            field         TEXT    NOT NULL CHECK (field IN ('assignee', 'department', 'status')),
            value         TEXT    NOT NULL,  -- ChatChange.journal_value: '' unassigns
            state         TEXT    NOT NULL
                          CHECK (state IN ('sending', 'applied', 'failed', 'not_sent')),
            attempts      INTEGER NOT NULL DEFAULT 0,  -- announced, over every run
            error_code    TEXT    NOT NULL DEFAULT '',
            error_message TEXT    NOT NULL DEFAULT '',
            http_status   INTEGER,
            source_row    INTEGER,           -- informational: the latest run's row
            input_name    TEXT    NOT NULL DEFAULT '',  -- informational: file name only
            updated_at    REAL    NOT NULL,
            PRIMARY KEY (scope, chat_id, field, value)
        ) WITHOUT ROWID
        """,
    ),
    (
        # The messages of transcripts: one entry per conversation and position (its place
        # in the conversation's order), announced before its POST /v1/messages goes out.
        # `posted` carries the message's id; two identical texts are two positions.
        """
        CREATE TABLE messages (
            scope            TEXT    NOT NULL,  -- the API root, from scope_for()
            conversation_key TEXT    NOT NULL,  -- ChatRequest.key of the conversation
            position         INTEGER NOT NULL,  -- 0 for the conversation's first message
            message_key      TEXT    NOT NULL,  -- ChatRequest.message_key: text, type, agent
            state            TEXT    NOT NULL
                CHECK (state IN ('sending', 'posted', 'failed', 'unknown', 'not_sent')),
            chat_id          INTEGER NOT NULL,  -- the chat it was sent to
            message_id       INTEGER,           -- once posted
            attempts         INTEGER NOT NULL DEFAULT 0,  -- announced, over every run
            first_started_at REAL,              -- unix seconds
            last_started_at  REAL,
            error_code       TEXT    NOT NULL DEFAULT '',
            error_message    TEXT    NOT NULL DEFAULT '',
            http_status      INTEGER,
            source_row       INTEGER,           -- informational: the latest run's row
            input_name       TEXT    NOT NULL DEFAULT '',  -- informational: file name only
            updated_at       REAL    NOT NULL,
            PRIMARY KEY (scope, conversation_key, position)
        ) WITHOUT ROWID
        """,
    ),
    (
        # The last value sent for each chat's field: an `applied` change stands only while
        # it is still the last one sent for its field, so a later change of the same
        # field whose answer was lost (or that failed) leaves the field unknown rather
        # than let the older value pass for what the chat holds.
        """
        CREATE TABLE change_heads (
            scope      TEXT    NOT NULL,  -- the API root, from scope_for()
            chat_id    INTEGER NOT NULL,
            field      TEXT    NOT NULL CHECK (field IN ('assignee', 'department', 'status')),
            value      TEXT    NOT NULL,  -- ChatChange.journal_value of the last PUT announced
            updated_at REAL    NOT NULL,
            PRIMARY KEY (scope, chat_id, field)
        ) WITHOUT ROWID
        """,
        # An earlier journal's last send of a field is its latest entry (an applied one
        # dropped the others, so any other left was sent after it).
        """
        INSERT INTO change_heads (scope, chat_id, field, value, updated_at)
        SELECT scope, chat_id, field, value, max(updated_at) FROM changes
        GROUP BY scope, chat_id, field
        """,
        # The customer each row's chat was sent for: a finished row shows it again.
        "ALTER TABLE entries ADD COLUMN customer_id INTEGER",
    ),
    (
        # The web page's runs, so that its list "Runs" survives a restart of the page: one
        # row each, begun when the run starts and ended with its counts. A row never ended
        # is a run whose page stopped first. Nothing here is read to decide what to send.
        """
        CREATE TABLE page_runs (
            id          INTEGER PRIMARY KEY,          -- the run's number, across restarts
            kind        TEXT    NOT NULL,             -- validate, dry_run, import, ...
            input_name  TEXT    NOT NULL DEFAULT '',  -- the file as the user chose it
            api_root    TEXT    NOT NULL DEFAULT '',  -- scope_for(), '' when offline
            started_at  REAL    NOT NULL,             -- unix seconds
            ended_at    REAL,                         -- NULL: running, or its page stopped
            outcome     TEXT    NOT NULL DEFAULT '',  -- the page's sentence for its end
            counts      TEXT    NOT NULL DEFAULT '{}',  -- JSON: rows by status
            total       INTEGER NOT NULL DEFAULT 0,
            results     TEXT    NOT NULL DEFAULT '',  -- its results file, in the reports folder
            page        INTEGER NOT NULL DEFAULT 0    -- the page's process id
        )
        """,
    ),
    (
        # The other ids each row's chat (and a transcript's message) was sent with: a
        # finished row shows them again in its `resolved_*` columns without a look-up.
        "ALTER TABLE entries ADD COLUMN assignee_id INTEGER",
        "ALTER TABLE entries ADD COLUMN department_id INTEGER",
        "ALTER TABLE entries ADD COLUMN message_agent_id INTEGER",
        "ALTER TABLE messages ADD COLUMN agent_id INTEGER",
    ),
)


def connect(path: Path) -> sqlite3.Connection:
    """Open the journal file, in WAL mode with full sync, creating or upgrading its schema.

    The file is created owner-only before SQLite opens it; SQLite gives its `-wal` and
    `-shm` files the same mode. A journal of an earlier version is made owner-only too.
    """
    try:
        owner_only.make_folder(path.parent)
        created = owner_only.create_file(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot create the journal ({exc.strerror})") from None
    if not created:
        for suffix in ("", "-wal", "-shm"):
            owner_only.restrict(path.with_name(path.name + suffix))
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
