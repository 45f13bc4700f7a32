"""The journal's file and its transactions, which every store of the journal writes through.

`JournalFile` holds one scope of one journal file for a run's length: the SQLite
connection (`schema.connect`), the lock that keeps other runs off the scope
(`lock.ScopeLock`), and the methods every write and read goes through. Each write is one
short transaction on disk when it returns (WAL with `synchronous=FULL`: WAL's usual
`NORMAL` may lose the last commits to a crash of the machine, and a lost announcement is
exactly the case that duplicates a chat); a failed one raises `JournalError`, and the
request it would have announced must not be sent. What is stored is the stores': the
rows' chats (`chats`), the changes of chats (`changes`), the customers made (`customers`)
and the learned limits (`limits`), which `journal.Journal` puts together.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from bulk_chats.errors import JournalError
from bulk_chats.journal.lock import ScopeLock
from bulk_chats.journal.schema import connect

_SELECT_CHUNK = 500
"""Keys per `IN (...)` query, well under SQLite's limit on bound parameters."""


class JournalFile:
    """One scope of one journal file, held for a run's length. Safe to call from several
    threads; each write blocks until it is on disk (a few milliseconds)."""

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
        """Use `JournalFile.open`."""
        self._connection: sqlite3.Connection | None = connection
        self._lock = lock
        self._mutex = threading.Lock()
        self._path = path
        self._scope = scope
        self._fresh = fresh
        self._input_name = input_name
        self._clock = clock

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        scope: str,
        fresh: bool = False,
        input_name: str = "",
        clock: Callable[[], float] = time.time,
    ) -> Self:
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

    def select(self, query: str, keys: Iterable[str | int]) -> list[tuple[Any, ...]]:
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
        name = type(self).__name__
        return f"{name}({str(self._path)!r}, scope={self._scope!r}, fresh={self._fresh})"

    @property
    def path(self) -> Path:
        """Where the journal file is."""
        return self._path

    @property
    def scope(self) -> str:
        """The API root this run holds, from `scope_for`."""
        return self._scope

    @property
    def fresh(self) -> bool:
        """`--fresh`: earlier entries are ignored."""
        return self._fresh

    @property
    def input_name(self) -> str:
        """The input file's name, stored beside each entry for information."""
        return self._input_name

    def now(self) -> float:
        """The journal's clock: unix seconds."""
        return self._clock()

    def read_one(self, query: str, parameters: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """The first row `query` finds, or None; `JournalError` when it cannot be read."""
        with self._mutex:
            try:
                row: tuple[Any, ...] | None = (
                    self._open_connection().execute(query, parameters).fetchone()
                )
            except sqlite3.Error as exc:
                raise JournalError(f"{self._path}: cannot read the journal ({exc})") from exc
        return row

    def _open_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise JournalError(f"{self._path}: the journal is closed")
        return self._connection

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
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
