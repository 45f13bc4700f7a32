"""Validation of transcripts: conversations gathered from their rows, chat fields that
must agree, each row's message and time, the order, and whole conversations held back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pytest

from bulk_chats.checks.transcripts import (
    TranscriptValidation,
    read_sent_at,
    validate_transcript,
)
from bulk_chats.checks.verdict import transcript_rows
from bulk_chats.errors import InputError
from bulk_chats.records import FirstMessage
from bulk_chats.sheet.loading import Sheet, load_sheet
from tests.checks.test_new_chats import sheet_of
from tests.sheets import write_csv

HEADER = ["conversation", "customer", "application", "sent_at", "message"]


def validate(
    headers: Sequence[str], *rows: Sequence[object], chat_status: str | None = None
) -> TranscriptValidation:
    return validate_transcript(sheet_of(headers, *rows), chat_status=chat_status)


def column(validation: TranscriptValidation, name: str) -> list[object]:
    return list(getattr(validation, name).tolist())


def test_the_chat_fields_of_a_conversation_may_stand_on_any_of_its_rows() -> None:
    """A customer and an application given on one row of a conversation are its other
    rows' too; a conversation without them is invalid on every row."""
    checked = validate(
        HEADER,
        ["T-1", "", "", "", "second"],
        ["T-1", 8738438, 3838, "", "first"],
        ["T-2", "", "", "", "alone"],
    )
    assert column(checked, "status") == ["valid", "valid", "invalid"]
    assert column(checked, "error_code")[2] == "missing_customer; missing_application"
    assert "every conversation needs a customer id" in column(checked, "error_message")[2]
    assert checked.ids["customer"].tolist()[:2] == [8738438, 8738438]
    assert checked.ids["application"].tolist()[:2] == [3838, 3838]


def test_rows_that_disagree_make_their_whole_conversation_invalid() -> None:
    """Two applications in one conversation: every row of it is invalid, the message
    naming both rows and the column; another conversation is not touched."""
    checked = validate(
        HEADER,
        ["T-1", 8738438, 3838, "", "a"],
        ["T-2", 8738439, 3838, "", "b"],
        ["T-1", "", 3839, "", "c"],
        ["T-1", "", "", "", "d"],
    )
    assert column(checked, "status") == ["invalid", "valid", "invalid", "invalid"]
    codes = column(checked, "error_code")
    assert codes[0] == codes[2] == codes[3] == "conflicting_application"
    assert column(checked, "error_message")[3] == (
        "application: '3839' on row 4 disagrees with '3838' on row 2; the rows of a "
        "conversation that give its application must agree"
    )


def test_emails_of_one_conversation_agree_whatever_their_case() -> None:
    """`ANN@x.com` and `ann@x.com` are one customer: no conflict."""
    checked = validate(
        ["thread", "customer_email", "app", "message"],
        ["T-1", "ann@example.com", 3838, "a"],
        ["T-1", "ANN@Example.com", "", "b"],
    )
    assert column(checked, "status") == ["valid", "valid"]


def test_chat_status_given_once_or_by_option_is_the_conversations() -> None:
    """A status on one row is the conversation's; `--chat-status` fills only the
    conversations none of whose rows gives one."""
    checked = validate(
        [*HEADER, "chat_status"],
        ["T-1", 8738438, 3838, "", "a", "pending"],
        ["T-1", "", "", "", "b", ""],
        ["T-2", 8738439, 3838, "", "c", ""],
        chat_status="closed",
    )
    assert column(checked, "chat_status") == ["pending", "pending", "closed"]
    assert column(checked, "status") == ["valid"] * 3


def test_messages_go_in_sent_at_order_ties_in_file_order() -> None:
    """Interleaved, out-of-order rows: each row's place in its conversation is by its
    time, then by its row."""
    checked = validate(
        HEADER,
        ["T-1", 8738438, 3838, "2023-04-01 10:09", "third"],
        ["T-2", 8738439, 3838, "2023-04-01 09:00", "other"],
        ["T-1", "", "", "2023-04-01 10:02", "first"],
        ["T-1", "", "", "2023-04-01 10:02:30", "second"],
        ["T-1", "", "", "2023-04-01 10:09", "fourth"],
    )
    assert column(checked, "position") == [2, 0, 0, 1, 3]


def test_times_with_offsets_are_ordered_as_the_moments_they_are() -> None:
    """10:00 at +02:00 is 08:00 UTC: before 09:00 without an offset (read as UTC)."""
    checked = validate(
        HEADER,
        ["T-1", 8738438, 3838, "2023-04-01 09:00", "later"],
        ["T-1", "", "", "2023-04-01T10:00+02:00", "earlier"],
    )
    assert column(checked, "position") == [1, 0]
    assert column(checked, "sent_at") == ["2023-04-01 09:00", "2023-04-01 10:00 +02:00"]


def test_without_sent_at_messages_go_in_file_order() -> None:
    """No time column: the order of the file, and no time to show."""
    checked = validate(
        ["conversation", "customer", "application", "message"],
        ["T-1", 8738438, 3838, "one"],
        ["T-1", "", "", "two"],
    )
    assert column(checked, "position") == [0, 1]
    assert column(checked, "sent_at") == ["", ""]


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("2023-04-01 10:02", "2023-04-01 10:02"),
        (" 2023-04-01 10:02:33 ", "2023-04-01 10:02:33"),
        ("2023-04-01T10:02:33.250Z", "2023-04-01 10:02:33 Z"),
        ("2023-04-01 7:05 +0200", "2023-04-01 07:05 +0200"),
        ("2023-04-01 10:02 UTC", "2023-04-01 10:02 UTC"),
        (dt.datetime(2023, 4, 1, 10, 2), "2023-04-01 10:02"),
        (dt.datetime(2023, 4, 1, 10, 2, 9), "2023-04-01 10:02:09"),
    ],
)
def test_a_time_is_shown_as_the_sheet_gives_it(cell: object, shown: str) -> None:
    """Text or a date-time cell; seconds when given, the offset as written."""
    read = read_sent_at(cell)
    assert isinstance(read, tuple)
    assert read[1] == shown


@pytest.mark.parametrize(
    "cell",
    ["01/04/2023 10:02", "2023-04-01", "2023-02-30 10:00", "2023-04-01 25:00", "soon", 45017.4],
)
def test_what_is_no_date_and_time_is_rejected_with_the_fix(cell: object) -> None:
    """Another format, a date alone, an impossible day or hour, words, a number."""
    read = read_sent_at(cell)
    assert isinstance(read, str)
    assert read.startswith("sent_at: '")
    assert "YYYY-MM-DD HH:MM[:SS]" in read


def test_a_date_cell_without_a_time_is_no_time() -> None:
    """A date alone cannot place a message among others of the same day."""
    assert isinstance(read_sent_at(dt.date(2023, 4, 1)), str)


def test_a_blank_time_among_times_is_missing() -> None:
    """One row of a conversation without a time where the others have one: its place
    would be a guess."""
    checked = validate(
        HEADER,
        ["T-1", 8738438, 3838, "2023-04-01 10:00", "a"],
        ["T-1", "", "", "", "b"],
        ["T-2", 8738439, 3838, "", "c"],
    )
    assert column(checked, "error_code") == ["invalid_conversation", "missing_sent_at", ""]
    assert column(checked, "error_message")[0] == (
        "conversation: not sent, since row 3 of this conversation is invalid; a "
        "conversation is sent whole, in order"
    )


def test_each_row_needs_its_message_and_its_conversation() -> None:
    """A blank message or a blank conversation is invalid; the blank conversation holds
    back no other row."""
    checked = validate(
        HEADER,
        ["T-1", 8738438, 3838, "", ""],
        ["", 8738439, 3838, "", "x"],
        ["", 8738440, 3838, "", "y"],
    )
    assert column(checked, "error_code") == [
        "missing_message",
        "missing_conversation",
        "missing_conversation",
    ]


def test_identical_messages_of_one_conversation_are_not_duplicates() -> None:
    """A customer who writes "Hello?" twice has two messages."""
    checked = validate(
        HEADER,
        ["T-1", 8738438, 3838, "2023-04-01 10:00", "Hello?"],
        ["T-1", "", "", "2023-04-01 10:00", "Hello?"],
    )
    assert column(checked, "status") == ["valid", "valid"]
    assert column(checked, "position") == [0, 1]


def test_a_fed_back_message_id_marks_its_row_posted_and_the_chat_is_the_conversations() -> None:
    """A results workbook fed back in: a row with a message id is already created; the
    chat id of any row is every row's."""
    headers = [*HEADER, "source_row", "status", "chat_id", "message_id"]
    rows = [
        ["T-1", 8738438, 3838, "", "a", 2, "created", 542336, 7310001],
        ["T-1", "", "", "", "b", 3, "not_sent", "", ""],
    ]
    sheet = sheet_of(headers, *rows)
    fed = Sheet(
        path=sheet.path,
        headers=sheet.headers,
        cells=sheet.cells,
        source_rows=sheet.source_rows,
        fields={k: v for k, v in sheet.fields.items() if k != "chat_id"},
        fed_back={"source_row": 5, "status": 6, "chat_id": 7, "message_id": 8},
        echoed=[0, 1, 2, 3, 4],
    )
    checked = validate_transcript(fed)
    assert column(checked, "status") == ["already_created", "valid"]
    assert checked.chat_id.tolist() == [542336, 542336]


def test_rows_carry_their_conversation_place_and_time_before_the_text(tmp_path: Path) -> None:
    """The rows to send: each in its conversation at its place, all of one conversation
    with one key, the text sent starting with its time unless told not to."""
    source = write_csv(
        tmp_path / "t.csv",
        ["ticket", "customer", "application", "sent_at", "message"],
        [
            ["T-1", 8738438, 3838, "2023-04-01 10:05", "Thanks"],
            ["T-1", "", "", "2023-04-01 10:00", "Hello?"],
            ["T-1", "", "", "2023-04-01 10:00", "Hello?"],
        ],
    )
    sheet = load_sheet(source)
    checked = validate_transcript(sheet)
    rows = transcript_rows(sheet, checked)
    assert [(r.conversation, r.position) for r in rows] == [("T-1", 2), ("T-1", 0), ("T-1", 1)]
    assert rows[1].message == FirstMessage("[2023-04-01 10:00] Hello?", "message", None)
    assert len({r.key for r in rows}) == 1
    assert rows[1].message_key == rows[2].message_key != rows[0].message_key
    plain = transcript_rows(sheet, checked, time_prefix=False)
    assert [r.message.text for r in plain if r.message] == ["Thanks", "Hello?", "Hello?"]


def test_a_transcript_without_a_message_column_is_unusable(tmp_path: Path) -> None:
    """A conversation column makes each row a message: without a message column the file
    cannot be read as one (exit 2)."""
    source = write_csv(tmp_path / "t.csv", ["ticket", "customer", "application"], [["T", 1, 2]])
    with pytest.raises(InputError, match="no message column"):
        load_sheet(source)
