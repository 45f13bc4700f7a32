"""Confirmation: which searched chat is a row's, and whether its first message is there."""

from __future__ import annotations

import pytest

from bulk_chats.api.entities import Chat, Message
from bulk_chats.records import ChatRequest, FirstMessage
from bulk_chats.send.lost_answers import (
    DATE_SLACK,
    SEARCH_SKEW,
    AmbiguousChat,
    MessageCheck,
    find_chat,
    find_message,
    pick_chat,
)

REQUEST = ChatRequest(index=0, source_row=2, customer=100, application=9, assignee=4)


def test_the_earliest_unclaimed_matching_chat_since_the_attempt_is_picked() -> None:
    """Of the matches made since the attempt the earliest wins; claimed ids and other
    assignees are passed over."""
    chats = [
        Chat(3, customer=100, application=9, assignee=4, created_at=30.0),
        Chat(2, customer=100, application=9, assignee=5, created_at=10.0),
        Chat(1, customer=100, application=9, assignee=4, created_at=5.0),
        Chat(4, customer=100, application=9, assignee=4, created_at=20.0),
    ]
    assert pick_chat(chats, REQUEST, since=0.0, claimed={1}) == 4


def test_fields_the_answer_leaves_out_are_not_held_against_a_chat() -> None:
    """A chat showing only its id and time may be the row's; a null assignee may not."""
    assert pick_chat([Chat(7, created_at=50.0)], REQUEST, since=0.0, claimed=set()) == 7
    assert pick_chat([Chat(7, assignee=None)], REQUEST, since=0.0, claimed=set()) is None


def test_a_chat_older_than_the_window_is_not_picked() -> None:
    """A chat created before the search window belongs to something else."""
    since = 100 + SEARCH_SKEW
    assert pick_chat([Chat(7, created_at=99.0)], REQUEST, since=since, claimed=set()) is None


def test_a_chat_someone_made_just_before_the_attempt_is_not_taken_for_its_own() -> None:
    """Another client's chat of the same customer, made a second before the attempt, and
    the attempt's own: the attempt's is picked, with the clocks agreeing and with the
    API's clock a minute behind ours (both chats then seem made before the attempt)."""

    def made(chat_id: int, at: float) -> Chat:
        return Chat(chat_id, customer=100, application=9, created_at=at)

    agreeing = [made(1, 999.0), made(2, 1001.0)]
    behind = [made(1, 939.0), made(2, 941.0)]
    assert pick_chat(agreeing, REQUEST, since=1000.2, claimed=set()) == 2
    assert pick_chat(behind, REQUEST, since=1000.2, claimed=set()) == 2
    assert pick_chat(behind, REQUEST, since=1000.2, claimed={2}) == 1


@pytest.mark.anyio
async def test_find_chat_searches_from_the_attempt_less_the_skew() -> None:
    """The search window starts SEARCH_SKEW seconds before the attempt, rounded down."""
    asked: list[tuple[int, int]] = []

    async def search(customer: int, since: int) -> list[Chat]:
        asked.append((customer, since))
        return [Chat(8, customer=100, created_at=since + 1.0)]

    assert await find_chat(search, REQUEST, since=1000.5, claimed=set()) == 8
    assert asked == [(100, int(1000.5 - SEARCH_SKEW))]


def test_find_message_tells_posted_and_absent_apart() -> None:
    """The row's text among the messages is posted; messages without it mean absent."""
    request = ChatRequest(
        index=0, source_row=2, customer=100, application=9, message=FirstMessage(" Hello ")
    )
    newest_first = [Message(71, "Thanks!"), Message(70, "Hello")]
    assert find_message(newest_first, request) == MessageCheck(message_id=70)
    assert find_message([Message(71, "Thanks!")], request) == MessageCheck(absent=True)
    assert find_message([], request) == MessageCheck(absent=True)


def test_with_the_api_clock_known_a_chat_dated_before_the_attempt_is_never_taken() -> None:
    """The API's clock 30 s ahead of ours, known: the attempt began at 1030.2 on it. A
    chat it dated 1025 (another client's) is passed over even when it is the only one,
    since the attempt may have made none; one dated 1030 or later is taken."""
    theirs = Chat(1, customer=100, application=9, created_at=1025.0)
    ours = Chat(2, customer=100, application=9, created_at=1030.0)
    assert pick_chat([theirs], REQUEST, since=1000.2, claimed=set(), lead=30.0) is None
    assert pick_chat([theirs, ours], REQUEST, since=1000.2, claimed=set(), lead=30.0) == 2


@pytest.mark.anyio
async def test_the_api_clock_is_asked_once_the_search_is_answered() -> None:
    """The search reaches `SEARCH_SKEW` back; the API's clock, known only from the search's
    own answer (20 s behind ours), then puts the attempt's start at 980.5 on it: a chat
    dated 970 (someone else's) is passed over, one dated 980 is the attempt's."""
    asked: list[int] = []
    known: list[float] = []

    async def search(customer: int, since: int) -> list[Chat]:
        asked.append(since)
        known.append(-20.0)  # the search's answer carries the API's Date
        return [
            Chat(1, customer=100, application=9, assignee=4, created_at=970.0),
            Chat(2, customer=100, application=9, assignee=4, created_at=980.0),
        ]

    def lead() -> float | None:
        return known[-1] if known else None

    assert await find_chat(search, REQUEST, since=1000.5, claimed=set(), lead=lead) == 2
    assert asked == [int(1000.5 - SEARCH_SKEW)]


def test_a_chat_that_may_be_from_just_before_the_attempt_is_not_taken_beside_another() -> None:
    """The API's clock as ours, known to the second: the attempt began at 1000.2, the
    window at 999. A chat dated 999 may be somebody's from just before it; beside one
    dated 1001 nothing tells which is the attempt's, so neither is taken. Alone, or with
    the other dated past the slack, the first one is."""

    def made(chat_id: int, at: float) -> Chat:
        return Chat(chat_id, customer=100, application=9, created_at=at)

    with pytest.raises(AmbiguousChat) as raised:
        pick_chat([made(1, 999.0), made(2, 1001.0)], REQUEST, since=1000.2, claimed=set(), lead=0.0)
    assert raised.value.ids == (1, 2)
    assert "chats 1, 2 of this customer" in str(raised.value)
    assert pick_chat([made(1, 999.0)], REQUEST, since=1000.2, claimed=set(), lead=0.0) == 1
    later = [made(1, 999.0 + DATE_SLACK), made(2, 1010.0)]
    assert pick_chat(later, REQUEST, since=1000.2, claimed=set(), lead=0.0) == 1
