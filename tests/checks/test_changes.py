"""Offline validation of the changes of `update` and `close`, and of `chat_status` on
import: value → status and error code tables, nothing to change, repeats, and reading a
results workbook by its `chat_id`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from bulk_chats.checks.changes import validate_changes
from bulk_chats.checks.new_chats import Validation
from bulk_chats.checks.verdict import changes_to_send
from bulk_chats.errors import InputError
from bulk_chats.sheet.loading import load_sheet
from tests.checks.test_new_chats import only_row, sheet_of, validate


def changes(headers: Sequence[str], *rows: Sequence[object], close: bool = False) -> Validation:
    return validate_changes(sheet_of(headers, *rows), close=close)


@pytest.mark.parametrize(
    ("cell", "spelled"),
    [
        ("closed", "closed"),
        ("CLOSED", "closed"),
        ("  Pending ", "pending"),
        ("on hold", "on hold"),
        ("On-Hold", "on hold"),
        ("onhold", "on hold"),
        ("open", "opened"),
        ("No  Communication", "no communication"),
        ("new", "new"),
    ],
)
def test_chat_status_spellings(cell: str, spelled: str) -> None:
    """Every accepted spelling of a status becomes the API's spelling."""
    validation = changes(["chat_id", "chat_status"], [7, cell])
    assert only_row(validation)[0] == "valid"
    assert validation.chat_status is not None
    assert validation.chat_status.iat[0] == spelled


@pytest.mark.parametrize("cell", ["done", "close", "on_hold!", "1", "resolved"])
def test_other_chat_statuses_are_invalid_naming_the_rule(cell: str) -> None:
    """A status that is none of the six is invalid; the message quotes it and lists them."""
    status, code, message = only_row(changes(["chat_id", "chat_status"], [7, cell]))
    assert (status, code) == ("invalid", "invalid_chat_status")
    assert f"chat_status: '{cell}' is not a chat status" in message
    assert "no communication, closed" in message


@pytest.mark.parametrize(
    ("row", "status", "code"),
    [
        ([7, "", "", "closed"], "valid", ""),
        ([7, 4188, "", ""], "valid", ""),
        ([7, "none", "", ""], "valid", ""),
        ([7, "NONE ", "", ""], "valid", ""),
        ([7, "", 233048, ""], "valid", ""),
        (["", 4188, "", ""], "invalid", "missing_chat_id"),
        (["abc", 4188, "", ""], "invalid", "invalid_chat_id"),
        ([-7, 4188, "", ""], "invalid", "invalid_chat_id"),
        ([7, "anna@x.io", "", ""], "invalid", "invalid_assignee"),
        ([7, 12.5, "", ""], "invalid", "invalid_assignee"),
        ([7, "", "Sales", ""], "invalid", "invalid_department"),
        ([7, "", "", "bogus"], "invalid", "invalid_chat_status"),
        ([7, "", "", ""], "skipped", ""),
    ],
)
def test_update_rows(row: list[object], status: str, code: str) -> None:
    """Each update row's status and error code: a chat id is required, assignee is an id
    or `none`, department an id; a row that changes nothing is skipped."""
    validation = changes(["chat_id", "assignee", "department", "chat_status"], row)
    assert only_row(validation)[:2] == (status, code)


def test_a_row_with_nothing_to_change_says_so() -> None:
    """A skipped row's error_message says why."""
    message = only_row(changes(["chat_id", "chat_status"], [7, ""]))[2]
    assert message.startswith("nothing to change")


def test_names_count_as_changes_and_emails_are_checked() -> None:
    """assignee_email and department_name are changes; an assignee_email must be an address."""
    validation = changes(
        ["chat_id", "assignee_email", "department_name"],
        [7, "anna@example.com", ""],
        [8, "", "Sales"],
        [9, "anna", ""],
    )
    assert validation.status.tolist() == ["valid", "valid", "invalid"]
    assert validation.error_code.iat[2] == "invalid_assignee_email"


def test_close_skips_rows_without_a_chat_and_reads_nothing_else() -> None:
    """close: every row with a chat id is closed whatever else it says; without one it
    is skipped; the same chat twice is a duplicate."""
    validation = changes(
        ["chat_id", "assignee", "chat_status"],
        [7, "not an id", "opened"],
        ["", 4188, ""],
        [7, "", ""],
        close=True,
    )
    assert validation.status.tolist() == ["valid", "skipped", "duplicate"]
    assert validation.chat_status is not None
    assert validation.chat_status.iat[0] == "closed"


def test_repeated_update_rows_are_duplicates() -> None:
    """A row asking the same changes of the same chat as an earlier row is a duplicate;
    another status for that chat conflicts with it: invalid, naming the earlier row, since
    the two would race and every re-run would undo the other."""
    validation = changes(
        ["chat_id", "chat_status"], [7, "closed"], [7, "Closed"], [7, "pending"], [8, "closed"]
    )
    assert validation.status.tolist() == ["valid", "duplicate", "invalid", "valid"]
    assert validation.error_code.iat[2] == "conflicting_chat_id"
    assert validation.error_message.iat[2] == (
        "chat_id: 7 is changed otherwise by row 2; put all of a chat's changes on one row"
    )


def test_default_status_fills_blank_cells_only() -> None:
    """`--chat-status` fills blank cells; a cell given wins."""
    sheet = sheet_of(["chat_id", "chat_status"], [7, ""], [8, "pending"])
    validation = validate_changes(sheet, chat_status="closed")
    assert validation.chat_status is not None
    assert validation.chat_status.tolist() == ["closed", "pending"]


def test_import_rejects_a_bad_chat_status_offline() -> None:
    """On import too, a chat_status that is none of the six makes the row invalid."""
    validation = validate(
        ["customer", "application", "chat_status"], [1, 2, "closed"], [3, 2, "archived"]
    )
    assert validation.status.tolist() == ["valid", "invalid"]
    assert validation.error_code.iat[1] == "invalid_chat_status"


def test_a_results_workbook_is_read_by_its_chat_id(tmp_path: Path) -> None:
    """An import's results (source_row, status, chat_id …) fed to close: each row's chat is
    its chat_id, rows without one are skipped, and the column is not echoed twice."""
    source = tmp_path / "results.csv"
    source.write_text(
        "source_row,customer,application,status,chat_id,error_code\n"
        "2,8738438,3838,created,101,\n"
        "3,8738439,abc,invalid,,invalid_application\n"
        "4,8738440,3838,created,103,\n",
        encoding="utf-8",
    )
    sheet = load_sheet(source, chats=True)
    assert sheet.fields["chat_id"] not in sheet.echoed
    validation = validate_changes(sheet, close=True)
    assert validation.status.tolist() == ["valid", "skipped", "valid"]
    rows = changes_to_send(sheet, validation)
    assert [(r.source_row, r.chat_id, r.status) for r in rows] == [
        (2, 101, "closed"),
        (4, 103, "closed"),
    ]


def test_a_sheet_without_chat_ids_is_unusable(tmp_path: Path) -> None:
    """update or close on a sheet with no chat_id column: one line naming the column."""
    source = tmp_path / "chats.csv"
    source.write_text("customer,application\n1,2\n", encoding="utf-8")
    with pytest.raises(InputError, match="no chat_id column"):
        load_sheet(source, chats=True)
