"""The journal's changes of chats: announced, then applied or not, per scope."""

from __future__ import annotations

from pathlib import Path

from bulk_chats.errors import ApiError
from bulk_chats.journal.journal import Journal
from bulk_chats.records import ChatChange
from tests.journal.earlier import journal_before

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


def test_a_later_send_of_another_value_unsettles_an_applied_one(journal: Journal) -> None:
    """Closed, then pending sent with its answer lost (or refused, or killed on the way):
    the journal no longer says the chat is closed, so closing it again sends the PUT."""
    pending = ChatChange("status", "pending")
    for chat, ending in ((1, None), (2, "failed"), (3, "not_sent")):
        journal.changes.attempt(chat, CLOSED, source_row=2)
        journal.changes.record(chat, CLOSED, "applied", source_row=2)
        journal.changes.attempt(chat, pending, source_row=2)
        if ending is not None:
            journal.changes.record(chat, pending, ending, source_row=2)
    assert journal.changes.applied([1, 2, 3]) == set()


def test_the_value_applied_last_stands_and_only_it(journal: Journal) -> None:
    """Closed, pending, then closed again, each applied: closed stands, pending does not;
    the other fields of the chat are their own."""
    pending = ChatChange("status", "pending")
    agent = ChatChange("assignee", 5)
    for change in (CLOSED, agent, pending, CLOSED):
        journal.changes.attempt(7, change, source_row=2)
        journal.changes.record(7, change, "applied", source_row=2)
    assert journal.changes.applied([7]) == {(7, "status", "closed"), (7, "assignee", "5")}


def test_a_journal_of_the_earlier_schema_gets_its_last_sends(path: Path) -> None:
    """A journal written before the last value sent was kept: the upgrade takes each
    field's latest entry for it, so a close applied before a pending whose answer was lost
    no longer stands, and one applied last still does."""
    connection = journal_before(path, "CREATE TABLE change_heads")
    connection.executemany(
        "INSERT INTO changes (scope, chat_id, field, value, state, updated_at) "
        "VALUES (?, ?, 'status', ?, ?, ?)",
        [
            (SCOPE, 1, "closed", "applied", 1.0),
            (SCOPE, 1, "pending", "sending", 2.0),
            (SCOPE, 2, "closed", "applied", 3.0),
        ],
    )
    connection.commit()
    connection.close()
    with Journal.open(path, scope=SCOPE) as upgraded:
        assert upgraded.changes.applied([1, 2]) == {(2, "status", "closed")}
