"""What the senders write to the journal as they go: the calls the stores of
`journal.Journal` answer, seen from the sending stage (`send.chats`, `send.conversations`).

Calls come from worker threads (a commit that waits for the disk must not stall the event
loop, and with it the pacing of every request), one at a time for any one row but possibly
for several rows at once: an implementation must be thread-safe. An exception from the
journal stops the run like Ctrl-C and is re-raised once rows in flight finish: without the
journal a later run could not know what this one sent.
"""

from __future__ import annotations

from typing import Protocol

from bulk_chats.records import ChatRequest, Outcome
from bulk_chats.send.changes import ChangeJournal


class ChatJournal(Protocol):
    """Where the sending stage writes what it does to rows, as it happens, so a killed run
    can resume (`journal.chats.ChatStore`); thread-safe (module docs)."""

    def attempt(self, request: ChatRequest, *, started_at: float) -> None:
        """A `POST /chats` for `request` is about to go out; `started_at` is unix seconds.

        Called before every attempt: if the run dies before the answer, the next run
        searches from `started_at` (`ChatRequest.search_since`).
        """

    def withdraw(self, request: ChatRequest, *, started_at: float) -> None:
        """The attempt announced at `started_at` surely created nothing (no turn, or a 429,
        503 or 401): unless an earlier one may have, the next run need not search first."""

    def record(self, request: ChatRequest, outcome: Outcome) -> None:
        """`request` reached `outcome`: `created` with its `chat_id` before the first message
        is posted (and with its `message_id` before the status is set), then the row's
        final outcome."""


class SendJournal(Protocol):
    """The journal `send_chats` writes to: the rows' chats, and the statuses it sets as
    changes of chats (`journal.Journal`)."""

    @property
    def chats(self) -> ChatJournal: ...

    @property
    def changes(self) -> ChangeJournal: ...
