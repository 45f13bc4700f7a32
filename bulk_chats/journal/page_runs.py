"""The web page's runs, kept in the journal file so that its list "Runs" survives a
restart of the page (docs/reference.md › The web page).

A row is begun when a run starts and ended with its counts and results file; one never
ended is a run whose page stopped first (a `kill -9`, a power cut). Unlike the other
stores, this one holds no scope's lock: it records what the page did, and nothing here is
read to decide what to send. Each call opens the file, does its one thing and closes it.
The API key is never stored.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bulk_chats.errors import JournalError
from bulk_chats.journal.schema import connect


@dataclass(frozen=True, slots=True)
class PageRun:
    """One run of the page as the journal has it. `ended_at` None: it is running, or its
    page stopped before it ended (`page` is the process that ran it). `results` is the
    name of its results file in the reports folder ("" when it wrote none). Times are
    unix seconds."""

    id: int
    kind: str
    input_name: str
    api_root: str
    started_at: float
    ended_at: float | None
    outcome: str
    counts: dict[str, int] = field(default_factory=dict)
    total: int = 0
    results: str = ""
    page: int = 0


_COLUMNS = (
    "id, kind, input_name, api_root, started_at, ended_at, outcome, counts, total, results, page"
)


class PageRuns:
    """The page's runs in the journal file at `path`. Safe from any thread; raises
    `JournalError` when the file cannot be read or written."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock

    def begin(self, *, kind: str, input_name: str, api_root: str, page: int) -> int:
        """Record a run that starts now; its number."""
        with self._connection() as connection:
            cursor = connection.execute(
                "INSERT INTO page_runs (kind, input_name, api_root, started_at, page) "
                "VALUES (?, ?, ?, ?, ?)",
                (kind, input_name, api_root, self._clock(), page),
            )
            number = cursor.lastrowid
        assert number is not None  # an INSERT into a rowid table always has one
        return number

    def end(
        self,
        run: int,
        *,
        outcome: str,
        counts: Mapping[str, int] | None = None,
        total: int = 0,
        results: str = "",
    ) -> None:
        """Record how run `run` ended: the page's sentence, its rows by status, and the
        name of its results file in the reports folder."""
        with self._connection() as connection:
            connection.execute(
                "UPDATE page_runs SET ended_at = ?, outcome = ?, counts = ?, total = ?, "
                "results = ? WHERE id = ?",
                (self._clock(), outcome, json.dumps(dict(counts or {})), total, results, run),
            )

    def latest(self, limit: int) -> list[PageRun]:
        """The `limit` latest runs, newest first; none while the journal does not exist."""
        if not self._path.exists():
            return []
        with self._connection(write=False) as connection:
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM page_runs ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_run(row) for row in rows]

    def get(self, run: int) -> PageRun | None:
        """Run number `run`, if the journal has it."""
        if not self._path.exists():
            return None
        with self._connection(write=False) as connection:
            row = connection.execute(
                f"SELECT {_COLUMNS} FROM page_runs WHERE id = ?", (run,)
            ).fetchone()
        return None if row is None else _run(row)

    @contextmanager
    def _connection(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One short use of the journal file, a committed transaction when it writes;
        errors as `JournalError` (and `InputError` for a file that is not a journal)."""
        connection = connect(self._path)
        try:
            # A read takes no write lock: WAL lets it read beside a run that writes.
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield connection
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            if connection.in_transaction:
                connection.rollback()
            raise JournalError(f"{self._path}: cannot use the journal ({exc})") from exc
        finally:
            connection.close()


def _run(row: tuple[object, ...]) -> PageRun:
    (number, kind, input_name, api_root, started, ended, outcome, counts, total, results, page) = (
        row
    )
    try:
        parsed = json.loads(str(counts))
    except ValueError:
        parsed = {}
    return PageRun(
        id=int(str(number)),
        kind=str(kind),
        input_name=str(input_name),
        api_root=str(api_root),
        started_at=float(str(started)),
        ended_at=None if ended is None else float(str(ended)),
        outcome=str(outcome),
        counts={str(k): int(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {},
        total=int(str(total)),
        results=str(results),
        page=int(str(page)),
    )
