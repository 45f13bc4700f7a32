"""The API's answers read into records: ids, timestamps, references and absent fields."""

from __future__ import annotations

import pytest

from bulk_chats.api.entities import (
    ABSENT,
    Agent,
    Chat,
    Customer,
    Department,
    Message,
    parse_id,
    parse_timestamp,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, 42),
        ("42", 42),
        (" 42 ", 42),
        ({"id": "7", "name": "Anna"}, 7),
        (True, None),
        ("4a", None),
        ("٤٢", None),
        (4.0, None),
        (None, None),
        ({"name": "no id"}, None),
    ],
)
def test_parse_id_reads_ints_digit_strings_and_objects(value: object, expected: int | None) -> None:
    """An id is an int, ASCII digits or an object with one; anything else is None."""
    assert parse_id(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1603885746, 1603885746.0),
        ("1603885746", 1603885746.0),
        ("1601557390.769", 1601557390.769),
        (1601557390.5, 1601557390.5),
        ("soon", None),
        ("nan", None),
        (float("inf"), None),
        (False, None),
        (None, None),
    ],
)
def test_parse_timestamp_reads_numbers_and_strings(value: object, expected: float | None) -> None:
    """Timestamps come as numbers or strings of digits, fractions included."""
    assert parse_timestamp(value) == expected


def test_a_chat_reads_every_field_the_api_writes() -> None:
    """A chat's references, timestamps and last message are read in their several forms."""
    chat = Chat.parse(
        {
            "id": "5",
            "customer": {"id": 100, "name": "C"},
            "applicationId": "9",
            "assignee": None,
            "department": 3,
            "createdAt": "1601557390.769",
            "createdWith": "public_api",
            "status": "new",
            "lastMessageId": "77",
            "lastMessageText": "hi",
        }
    )
    assert chat == Chat(
        id=5,
        customer=100,
        application=9,
        assignee=None,
        department=3,
        created_at=1601557390.769,
        created_with="public_api",
        status="new",
        last_message_id=77,
        last_message_text="hi",
        customer_name="C",
    )


def test_a_field_left_out_is_absent_not_null() -> None:
    """A chat that does not show its assignee says nothing about it; a null one does."""
    chat = Chat.parse({"id": 1, "application": 9})
    assert chat is not None
    assert (chat.assignee, chat.application) == (ABSENT, 9)


def test_records_without_a_readable_id_are_none() -> None:
    """Every record needs its id; an object without one is not half-read."""
    for parse in (Chat.parse, Message.parse, Agent.parse, Department.parse, Customer.parse):
        assert parse({"id": "x"}) is None


def test_a_department_knows_whether_its_members_were_listed() -> None:
    """Members are ids read from agent objects; no agents list means unknown, not none."""
    listed = Department.parse({"id": 1, "name": "Support", "agents": [{"id": 4}, "5", None]})
    assert listed == Department(1, "Support", frozenset({4, 5}))
    unlisted = Department.parse({"id": 2, "name": "Sales"})
    assert unlisted is not None
    assert unlisted.agent_ids is None


def test_a_customer_user_id_is_text_even_when_written_as_a_number() -> None:
    """userId is the account's own id; a number is read as its text, null stays None."""
    assert Customer.parse({"id": 3, "userId": 12, "email": None}) == Customer(3, user_id="12")
