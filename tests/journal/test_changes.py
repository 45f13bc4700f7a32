"""The journal's changes of chats: announced, then applied or not, per scope."""

from __future__ import annotations

from pathlib import Path

from bulk_chats.errors import ApiError
from bulk_chats.journal.journal import Journal
from bulk_chats.records import ChatChange

SCOPE = "https://api.helpcrunch.com/v1"
CLOSED = ChatChange("status", "closed")


def test_only_an_applied_change_counts_as_done(journal: Journal) -> None:
    """Announced, failed and not_sent changes are sent again; an applied one is not."""
    journal.changes.attempt(1, CLOSED, source_row=2)
    journal.changes.attempt(2, CLOSED, source_row=3)
    journal.changes.record(2, CLOSED, "failed", source_row=3, error=ApiError("no", http_status=400))
    journal.changes.attempt(3, CLOSED, source_row=4)
    journal.changes.record(3, CLOSED, "not_sent", source_row=4)
    journal.changes.attempt(4, CLOSED, source_row=5)
    journal.changes.record(4, CLOSED, "applied", source_row=5)
    assert journal.changes.applied([1, 2, 3, 4]) == {(4, "status", "closed")}


def test_applying_a_value_forgets_the_fields_other_values(journal: Journal) -> None:
    """The chat holds the value applied last: asking for an earlier one again sends it."""
    for agent in (5, 6):
        journal.changes.record(9, ChatChange("assignee", agent), "applied", source_row=2)
    journal.changes.record(9, CLOSED, "applied", source_row=2)
    assert journal.changes.applied([9]) == {(9, "assignee", "6"), (9, "status", "closed")}


def test_a_fresh_run_and_another_scope_see_no_applied_change(journal: Journal, path: Path) -> None:
    """--fresh forgets applied changes, and each API root has its own."""
    journal.changes.record(9, CLOSED, "applied", source_row=2)
    journal.close()
    with Journal.open(path, scope=SCOPE, fresh=True) as fresh:
        assert fresh.changes.applied([9]) == set()
    with Journal.open(path, scope="http://127.0.0.1:8765/v1") as other:
        assert other.changes.applied([9]) == set()
    with Journal.open(path, scope=SCOPE) as again:
        assert again.changes.applied([9]) == {(9, "status", "closed")}
