"""The journal's messages of transcripts: each place of a conversation, what was sent
there, into which chat, and what became of it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bulk_chats.journal.journal import Journal
from bulk_chats.journal.messages import MessageEntry

SCOPE = "https://api.helpcrunch.com/v1"
CONVERSATION = "c0ffee"


def announce(journal: Journal, position: int, key: str = "m", chat: int = 542336) -> None:
    journal.messages.attempt(
        CONVERSATION, position, message_key=key, chat_id=chat, started_at=10.0, source_row=2
    )


def test_an_announced_message_reads_back_as_sending_at_its_place(journal: Journal) -> None:
    """Announced twice without an answer: `sending`, two attempts, the first start kept."""
    announce(journal, 0)
    journal.messages.attempt(
        CONVERSATION, 0, message_key="m", chat_id=542336, started_at=20.0, source_row=2
    )
    assert journal.messages.entries([CONVERSATION, "other"]) == {
        CONVERSATION: {0: MessageEntry("sending", "m", 542336, None, 2, 10.0)}
    }


def test_two_identical_texts_are_two_places_each_with_its_id(journal: Journal) -> None:
    """The same message at places 0 and 1: both kept, each with the id it was posted as."""
    for position, message_id in ((0, 7310001), (1, 7310002)):
        announce(journal, position, key="hello")
        journal.messages.record(
            CONVERSATION,
            position,
            state="posted",
            message_key="hello",
            chat_id=542336,
            message_id=message_id,
            source_row=position + 2,
        )
    found = journal.messages.entries([CONVERSATION])[CONVERSATION]
    assert {p: (e.state, e.message_id) for p, e in found.items()} == {
        0: ("posted", 7310001),
        1: ("posted", 7310002),
    }


def test_another_message_announced_at_a_place_replaces_what_was_there(journal: Journal) -> None:
    """A refused message fixed in the sheet: its place is announced afresh, the refusal and
    its attempts forgotten."""
    announce(journal, 3, key="bad")
    journal.messages.record(
        CONVERSATION,
        3,
        state="failed",
        message_key="bad",
        chat_id=542336,
        error_code="text",
        http_status=400,
        source_row=5,
    )
    announce(journal, 3, key="fixed")
    assert journal.messages.entries([CONVERSATION])[CONVERSATION][3] == MessageEntry(
        "sending", "fixed", 542336, None, 1, 10.0
    )


def test_a_fresh_run_sees_no_earlier_message(journal: Journal, path: Path) -> None:
    """--fresh sends the conversation again: the journal shows it nothing of before."""
    announce(journal, 0)
    journal.close()
    with Journal.open(path, scope=SCOPE, fresh=True) as fresh:
        assert fresh.messages.entries([CONVERSATION]) == {}


def test_entries_are_kept_per_api_root(journal: Journal, path: Path) -> None:
    """Another API root's run sees none of this one's messages."""
    announce(journal, 0)
    journal.close()
    with Journal.open(path, scope="http://127.0.0.1:8765/v1") as other:
        assert other.messages.entries([CONVERSATION]) == {}


def test_the_message_table_refuses_a_state_it_does_not_know(journal: Journal) -> None:
    """The schema holds the states to the few the sender writes."""
    connection = sqlite3.connect(journal.file.path)
    try:
        try:
            connection.execute(
                "INSERT INTO messages (scope, conversation_key, position, message_key, state,"
                " chat_id, updated_at) VALUES ('s', 'c', 0, 'm', 'maybe', 1, 0)"
            )
        except sqlite3.IntegrityError:
            refused = True
        else:
            refused = False
    finally:
        connection.close()
    assert refused


def test_the_agent_a_message_is_sent_as_is_kept_at_its_place(journal: Journal) -> None:
    """An agent's message announced, then posted: its entry keeps the agent it was sent
    as; a customer's message keeps none."""
    journal.messages.attempt(
        CONVERSATION, 0, message_key="m", chat_id=1, started_at=10.0, source_row=2
    )
    journal.messages.attempt(
        CONVERSATION, 1, message_key="a", chat_id=1, started_at=11.0, source_row=3, agent_id=4189
    )
    journal.messages.record(
        CONVERSATION, 1, state="posted", message_key="a", chat_id=1, message_id=5, source_row=3
    )
    found = journal.messages.entries([CONVERSATION])[CONVERSATION]
    assert (found[0].agent_id, found[1].agent_id, found[1].message_id) == (None, 4189, 5)
