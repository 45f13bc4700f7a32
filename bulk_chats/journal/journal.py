"""The journal: a durable SQLite record of what every run sent, and what came of it.

It is what lets the same command, run again after a Ctrl-C, a `kill -9` or a power cut,
send only what is left and create no chat twice (docs/sending.md). One file in the
reports folder holds every API root's entries, each root a scope that one run at a time
holds (`lock`). `Journal` puts the file's stores together: `chats` (each row's progress
towards its chat), `changes` (the changes of chats), `customers` (the customers
`--create-customers` made), `messages` (the messages of transcripts) and `limits` (the
account's limit a run learned). The API key is never stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Final, Self
from urllib.parse import urlsplit

from bulk_chats.journal.changes import ChangeStore
from bulk_chats.journal.chats import ChatStore
from bulk_chats.journal.customers import CustomerStore
from bulk_chats.journal.file import JournalFile
from bulk_chats.journal.messages import MessageStore

JOURNAL_NAME: Final = "journal.sqlite3"
"""The journal's file name in the reports directory."""


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


class LimitStore:
    """The account's limit a run learned, per scope: the next run against the same API
    root starts at it unless told a rate."""

    def __init__(self, file: JournalFile) -> None:
        self._file = file

    def learned(self) -> float | None:
        """The account's limit (requests a minute) a run against this scope learned, if any."""
        row = self._file.read_one(
            "SELECT per_minute FROM limits WHERE scope = ?", (self._file.scope,)
        )
        return None if row is None else float(row[0])

    def remember(self, per_minute: float) -> None:
        """Keep the account's limit (requests a minute) for the next run against this scope."""
        with self._file.writing() as connection:
            connection.execute(
                """
                INSERT INTO limits (scope, per_minute, learned_at) VALUES (?, ?, ?)
                ON CONFLICT (scope) DO UPDATE SET
                    per_minute = excluded.per_minute, learned_at = excluded.learned_at
                """,
                (self._file.scope, per_minute, self._file.now()),
            )


class Journal:
    """The journal of one run: one scope of one journal file, held for the run's length.

    Its stores share the file: `chats`, `changes`, `customers`, `messages`, `limits`. Safe
    to call from several threads; each write blocks until it is on disk (a few
    milliseconds).
    """

    def __init__(self, file: JournalFile) -> None:
        """Use `Journal.open`."""
        self.file = file
        self.chats = ChatStore(file)
        self.changes = ChangeStore(file)
        self.customers = CustomerStore(file)
        self.messages = MessageStore(file)
        self.limits = LimitStore(file)

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
        """Open the journal at `path` for `scope`: `JournalFile.open` says how, and what it
        raises."""
        return cls(
            JournalFile.open(path, scope=scope, fresh=fresh, input_name=input_name, clock=clock)
        )

    def close(self) -> None:
        """Close the file and let another run take the scope. Safe to call twice."""
        self.file.close()

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
        return f"Journal({str(self.file.path)!r}, scope={self.file.scope!r})"
