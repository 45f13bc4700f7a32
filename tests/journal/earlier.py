"""Journals as an earlier bulk-chats left them, for the tests of their upgrade."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bulk_chats.journal import schema


def journal_before(path: Path, marker: str) -> sqlite3.Connection:
    """A journal at `path` of the schema just before the migration whose SQL holds
    `marker`, open for the test to fill (and to commit and close)."""
    before = next(
        number
        for number, statements in enumerate(schema._MIGRATIONS)
        if any(marker in statement for statement in statements)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    for statements in schema._MIGRATIONS[:before]:
        for statement in statements:
            connection.execute(statement)
    connection.execute(f"PRAGMA application_id = {schema.APPLICATION_ID:d}")
    connection.execute(f"PRAGMA user_version = {before:d}")
    return connection
