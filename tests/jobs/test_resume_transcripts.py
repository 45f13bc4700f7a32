"""The resume plan of transcripts: each conversation goes on at its first message not yet
in, looked for first when unconfirmed; what changed is held back; and the plan's count."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from bulk_chats.jobs.plan import plan_transcript
from bulk_chats.jobs.resume_transcripts import (
    CHANGED,
    HELD_UNKNOWN,
    EarlierConversations,
    gather,
    hold_whole,
    sort_conversations,
)
from bulk_chats.journal.chats import JournalEntry
from bulk_chats.journal.messages import MessageEntry
from bulk_chats.lookups.directory import Preflight
from bulk_chats.progress import duration_text
from bulk_chats.records import ChatRequest, FedBack, FirstMessage, Outcome, Status

CHAT = 542336


def talk(
    texts: Sequence[str], *, first: int = 0, name: str = "T-1", **fields: Any
) -> list[ChatRequest]:
    """The rows of one conversation, numbered from index `first`, each at its place."""
    fields.setdefault("customer", 100)
    fields.setdefault("status", "closed")
    return [
        ChatRequest(
            index=first + n,
            source_row=first + n + 2,
            application=9,
            message=FirstMessage(text),
            conversation=name,
            position=n,
            **fields,
        )
        for n, text in enumerate(texts)
    ]


def chat_entry(chat_id: int | None = CHAT, unresolved: float | None = None) -> JournalEntry:
    return JournalEntry(
        state="created" if chat_id else "sending",
        chat_id=chat_id,
        message_id=None,
        attempts=1,
        first_started_at=100.0,
        last_started_at=100.0,
        unresolved_since=unresolved,
        created_at=101.0 if chat_id else None,
        error_code="",
        error_message="",
        http_status=None,
        source_row=2,
        input_name="t.csv",
        updated_at=101.0,
    )


def posted(row: ChatRequest, message_id: int, state: str = "posted") -> MessageEntry:
    return MessageEntry(state, row.message_key, CHAT, message_id, 1, 102.0)


def sort(
    rows: list[ChatRequest],
    *,
    entry: JournalEntry | None = None,
    messages: dict[int, MessageEntry] | None = None,
    fed_back: FedBack | None = None,
    applied: frozenset[tuple[int, str, str]] = frozenset(),
) -> EarlierConversations:
    key = rows[0].key
    return sort_conversations(
        rows,
        {key: entry} if entry else {},
        {key: messages} if messages else {},
        fed_back or FedBack(),
        applied=applied,
    )


def test_a_conversation_no_run_has_seen_is_sent_whole() -> None:
    """No journal entry: every row to send, no chat, nothing looked for."""
    rows = talk(["a", "b"])
    earlier = sort(rows)
    assert earlier.to_send == tuple(rows)
    assert (earlier.finished, earlier.held, earlier.status_only) == ((), (), ())


def test_a_killed_run_resumes_at_the_first_message_not_yet_in() -> None:
    """Two messages posted, the third announced without an answer: the first two are
    already created with their ids, the third is looked for first, the fourth follows."""
    rows = talk(["a", "b", "c", "d"])
    journal = {
        0: posted(rows[0], 7310001),
        1: posted(rows[1], 7310002),
        2: posted(rows[2], None, "sending"),  # type: ignore[arg-type]
    }
    earlier = sort(rows, entry=chat_entry(), messages=journal)
    assert earlier.finished == (
        Outcome(index=0, status=Status.ALREADY_CREATED, chat_id=CHAT, message_id=7310001),
        Outcome(index=1, status=Status.ALREADY_CREATED, chat_id=CHAT, message_id=7310002),
    )
    third, fourth = earlier.to_send
    assert (third.chat_id, third.search_since is not None) == (CHAT, True)
    assert (fourth.chat_id, fourth.search_since) == (CHAT, None)
    assert "2 messages were already posted" in earlier.describe()
    assert "1 first looked for, as an earlier attempt got no answer" in earlier.describe()
    assert "1 go on where an earlier run stopped" in earlier.describe()


@pytest.mark.parametrize("state", ["failed", "not_sent", None])
def test_the_first_message_left_is_looked_for_whatever_the_journal_says(
    state: str | None,
) -> None:
    """Refused, stopped before it went, or never tried here: the journal tells what this
    directory's runs did, and a run on the results workbook elsewhere may have posted it
    since; so the first message left is looked for in the chat, the next one not."""
    rows = talk(["a", "b", "c"])
    journal = {0: posted(rows[0], 7310001)}
    if state is not None:
        journal[1] = posted(rows[1], None, state)  # type: ignore[arg-type]
    earlier = sort(rows, entry=chat_entry(), messages=journal)
    assert [r.search_since is not None for r in earlier.to_send] == [True, False]
    assert "1 go on where an earlier run stopped" in earlier.describe()
    assert "got no answer" not in earlier.describe()


def test_identical_texts_are_told_apart_by_their_place() -> None:
    """ "Hello?" twice, the first posted: only the first is done."""
    rows = talk(["Hello?", "Hello?"])
    earlier = sort(rows, entry=chat_entry(), messages={0: posted(rows[0], 7310001)})
    assert [o.index for o in earlier.finished] == [0]
    assert [r.index for r in earlier.to_send] == [1]


def test_a_chat_whose_attempt_got_no_answer_is_searched_for_first() -> None:
    """The chat was announced but never answered: its rows wait for a search from then."""
    rows = talk(["a"])
    earlier = sort(rows, entry=chat_entry(None, unresolved=100.0))
    gathered, held = gather(earlier.to_send, {}, earlier)
    assert held == []
    assert gathered[0].chat.search_since == 100.0
    assert gathered[0].chat.chat_id is None


def test_with_every_message_in_only_the_status_is_left() -> None:
    """Messages all posted, the status not set: the last row waits for the status; with
    the status set, the conversation is finished."""
    rows = talk(["a", "b"])
    journal = {0: posted(rows[0], 7310001), 1: posted(rows[1], 7310002)}
    earlier = sort(rows, entry=chat_entry(), messages=journal)
    assert [o.index for o in earlier.finished] == [0]
    (left,) = earlier.status_only
    assert (left.messages, left.last.message_id, left.chat_id) == ((), 7310002, CHAT)
    done = sort(
        rows, entry=chat_entry(), messages=journal, applied=frozenset({(CHAT, "status", "closed")})
    )
    assert [o.index for o in done.finished] == [0, 1]
    assert done.status_only == ()


def test_a_fed_back_workbook_without_its_journal_goes_on_after_its_last_message() -> None:
    """The workbook gives the chat and the first message: the second is looked for in the
    chat before it is posted, since nothing says whether it went."""
    rows = talk(["a", "b", "c"])
    rows[0] = replace(rows[0], chat_id=CHAT, message_id=7310001)
    rows[1] = replace(rows[1], chat_id=CHAT)
    earlier = sort(rows)
    assert [o.message_id for o in earlier.finished] == [7310001]
    assert [r.search_since is not None for r in earlier.to_send] == [True, False]
    assert all(r.chat_id == CHAT for r in earlier.to_send)


def test_a_conversation_whose_messages_changed_is_held_back() -> None:
    """Another message where one was posted (a row inserted before it): not sent, so as
    not to post the rest twice or out of order."""
    rows = talk(["a", "b"])
    other = talk(["a", "inserted", "b"])
    earlier = sort(other, entry=chat_entry(), messages={1: posted(rows[1], 7310002)})
    assert earlier.to_send == ()
    assert {o.status for o in earlier.held} == {Status.INVALID}
    assert {o.error_code for o in earlier.held} == {CHANGED}


def test_entries_of_another_chat_are_not_taken_for_this_one() -> None:
    """A --fresh run's new chat: what the old chat holds does not count."""
    rows = talk(["a"])
    stale = {0: replace(posted(rows[0], 7310001), chat_id=CHAT - 1)}
    earlier = sort(rows, entry=chat_entry(), messages=stale)
    assert earlier.finished == ()
    assert [r.chat_id for r in earlier.to_send] == [CHAT]


def test_a_chat_a_workbook_left_unknown_without_its_journal_is_held() -> None:
    """Nothing says when the chat was sent: its conversation is held, not sent again."""
    rows = talk(["a", "b"])
    earlier = sort(rows, fed_back=FedBack(unknown=frozenset({0})))
    assert [o.error_message for o in earlier.held] == [HELD_UNKNOWN] * 2
    assert earlier.to_send == ()


@pytest.mark.parametrize(
    ("left_out", "status", "code", "text"),
    [
        (
            Status.INVALID,
            Status.INVALID,
            "invalid_conversation",
            "row 3 of this conversation is invalid",
        ),
        (Status.FAILED, Status.NOT_SENT, "", "row 3 of this conversation is not sent"),
    ],
)
def test_one_row_left_out_holds_back_its_whole_conversation(
    left_out: Status, status: Status, code: str, text: str
) -> None:
    """A row the look-ups left out: the conversation's other rows are not sent, invalid
    with it when it is (a customer matching no one), else not_sent."""
    first, second = talk(["a", "b"]), talk(["c"], first=2, name="T-2", customer=101)
    earlier = sort_conversations(first + second, {}, {}, FedBack())
    conversations, held = gather(
        [first[0], second[0]], {1: Outcome(index=1, status=left_out)}, earlier
    )
    assert [c.chat.conversation for c in conversations] == ["T-2"]
    assert [(o.index, o.status, o.error_code) for o in held] == [(0, status, code)]
    assert text in held[0].error_message


def test_a_row_the_pre_flight_refused_takes_its_conversation_out_of_the_plan() -> None:
    """The pre-flight refused the second row of T-1: its first row is held back, invalid,
    and the plan counts only T-2."""
    first, second = talk(["a", "b"]), talk(["c"], first=2, name="T-2", customer=101)
    earlier = sort_conversations(first + second, {}, {}, FedBack())
    refused = Outcome(index=1, status=Status.INVALID, error_code="unknown_message_agent")
    checked = Preflight([first[0], second[0]], {1: refused}, {})
    whole, held = hold_whole(checked, earlier)
    assert whole.passed == [second[0]]
    assert [(o.index, o.error_code) for o in held] == [(0, "invalid_conversation")]
    assert whole.rejected == {1: refused, 0: held[0]}
    plan = plan_transcript({"valid": 3}, earlier, whole, rate=120.0)
    assert (plan.conversations, plan.messages, plan.not_to_send) == (1, 1, 2)


def test_the_plan_counts_conversations_messages_requests_and_time() -> None:
    """10,000 conversations of 8 messages: 100,000 requests, some 14 hours at 120 a
    minute."""
    rows = [r for n in range(10_000) for r in talk(["m"] * 8, first=8 * n, name=f"T-{n}")]
    earlier = EarlierConversations(to_send=tuple(rows))
    plan = plan_transcript({"valid": len(rows)}, earlier, Preflight(rows, {}, {}), rate=120.0)
    assert (plan.conversations, plan.chats, plan.messages, plan.changes) == (
        10_000,
        10_000,
        80_000,
        10_000,
    )
    assert plan.requests == 100_000
    assert duration_text(plan.seconds) == "13h 53m"
    assert plan.describe().splitlines()[:2] == [
        "80,000 of 80,000 rows to send: 10,000 conversations, 10,000 chats, 80,000 messages, "
        "10,000 status changes",
        "100,000 requests, about 13h 53m at 120 a minute",
    ]
