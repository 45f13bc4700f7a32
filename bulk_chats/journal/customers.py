"""The journal's customers: those `import --create-customers` set out to make.

One entry per scope and customer (`name_key`), announced before its `POST /customers`
goes out and kept once answered: what a later run reads before creating it again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bulk_chats.journal.file import JournalFile


@dataclass(frozen=True, slots=True)
class CustomerEntry:
    """What the journal knows of a customer `import --create-customers` set out to make.

    `state` is `sending` (announced, no answer yet), `created` (`customer_id` is the
    customer the tool made), `failed` or `unknown`.
    """

    state: str
    customer_id: int | None
    attempts: int


class CustomerStore:
    """The customers the journal keeps; part of `journal.Journal`. Thread-safe, as its
    file is."""

    def __init__(self, file: JournalFile) -> None:
        self._file = file

    def attempt(self, name_key: str, *, started_at: float) -> None:
        """Announce a `POST /v1/customers` for the customer `name_key` names; on disk when
        this returns, so call it before the request goes out."""
        with self._file.writing() as connection:
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
                    "scope": self._file.scope,
                    "key": name_key,
                    "started_at": started_at,
                    "now": self._file.now(),
                },
            )

    def record(
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
        with self._file.writing() as connection:
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
                    "scope": self._file.scope,
                    "key": name_key,
                    "state": state,
                    "customer_id": customer_id,
                    "error_code": error_code,
                    "error_message": error_message,
                    "http_status": http_status,
                    "now": self._file.now(),
                },
            )

    def entries(self, name_keys: Iterable[str]) -> dict[str, CustomerEntry]:
        """The customers of `name_keys` earlier runs set out to create. `--fresh` does not
        hide them: a customer made stays in the account whatever the journal forgets."""
        rows = self._file.select(
            """
            SELECT name_key, state, customer_id, attempts FROM customers
            WHERE scope = ? AND name_key IN ({marks})
            """,
            name_keys,
        )
        return {key: CustomerEntry(*fields) for key, *fields in rows}
