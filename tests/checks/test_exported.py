"""An export fed back to `update`: its hidden record read, and each row's cells compared
with it, so that only the cells a person changed are changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xlsxwriter

from bulk_chats.checks.changes import validate_changes
from bulk_chats.checks.exported import (
    ExportRecord,
    compare_with_export,
    mark_unchanged,
    read_export_record,
)
from bulk_chats.fields import EXPORTED_COLUMNS
from bulk_chats.sheet.loading import load_sheet
from tests.sheets import write_csv

HEADER = ["chat_id", "chat_status", "assignee", "assignee_email", "department", "department_name"]
RECORD = [
    [1, "pending", 4188, "anna@example.com", 233048, "Support"],
    [2, "on hold", None, None, 233050, "Billing"],
    [3, "empty", 4189, "ben@example.com", None, None],
]


def record() -> ExportRecord:
    cells = pd.DataFrame(
        [row[1:] for row in RECORD], columns=list(EXPORTED_COLUMNS[1:]), dtype=object
    ).fillna("")
    return ExportRecord(cells.set_index(pd.Index([r[0] for r in RECORD], dtype=np.int64)))


def compare(tmp_path: Path, rows: list[list[Any]], **options: Any) -> Any:
    sheet = load_sheet(write_csv(tmp_path / "in.csv", HEADER, rows), chats=True)
    return sheet, compare_with_export(sheet, record(), **options)


def cells(comparison: Any, row: int) -> list[Any]:
    return comparison.sheet.cells.iloc[row].tolist()


def test_rows_as_the_export_read_them_are_unchanged_and_blanked(tmp_path: Path) -> None:
    """Every cell equal to the record: the row is unchanged, its cells blank for
    validation; the sheet itself keeps its cells (the results echo them)."""
    sheet, comparison = compare(tmp_path, [[str(c) if c else "" for c in r] for r in RECORD])
    assert comparison.unchanged.tolist() == [True, True, True]
    assert cells(comparison, 0) == ["1", "", "", "", "", ""]
    assert sheet.cells.iloc[0].tolist()[1] == "pending"


def test_cells_compare_as_the_run_reads_them(tmp_path: Path) -> None:
    """A status in another spelling or case, an id written as a float, an email in
    capitals, `none` for an unassigned chat: all the same as the record."""
    rows = [
        [1.0, "PENDING", 4188.0, " Anna@Example.com ", "233048", "support"],
        [2, "On-Hold", "none", "", 233050.0, "BILLING"],
    ]
    path = write_workbook(tmp_path / "in.xlsx", {"chats": [HEADER, *rows]})
    comparison = compare_with_export(load_sheet(path, chats=True), record())
    assert comparison.unchanged.tolist() == [True, True]


def test_a_changed_cell_is_the_only_change_of_its_row(tmp_path: Path) -> None:
    """One cell differs: it stays, every other cell of the row is blanked."""
    rows = [["1", "closed", "4188", "anna@example.com", "233048", "Support"]]
    _, comparison = compare(tmp_path, rows)
    assert comparison.unchanged.tolist() == [False]
    assert cells(comparison, 0) == ["1", "closed", "", "", "", ""]


def test_the_name_that_changed_is_the_change_beside_an_id_left_alone(tmp_path: Path) -> None:
    """Only `assignee_email` changed: the id, as read, is blanked and the name stands; and
    the other way round for the department."""
    rows = [["1", "pending", "4188", "ben@example.com", "233049", "Support"]]
    _, comparison = compare(tmp_path, rows)
    assert cells(comparison, 0) == ["1", "", "", "ben@example.com", "233049", ""]
    assert comparison.both_changed == {}


def test_an_id_and_its_name_both_changed_are_kept_for_the_pre_flight(tmp_path: Path) -> None:
    """Both differ from the record: both stay, and the row is named for the pre-flight to
    check that they agree."""
    rows = [["1", "pending", "4190", "ben@example.com", "233050", "Billing"]]
    _, comparison = compare(tmp_path, rows)
    assert comparison.both_changed == {
        0: (("assignee_email", "ben@example.com"), ("department_name", "Billing"))
    }


def test_a_blank_cell_changes_nothing_and_a_row_not_exported_is_left_as_it_is(
    tmp_path: Path,
) -> None:
    """Blanking a cell is no change; a row naming a chat the export did not read is an
    ordinary row of `update`."""
    rows = [["1", "", "", "", "", ""], ["9", "closed", "4188", "", "", ""]]
    _, comparison = compare(tmp_path, rows)
    assert comparison.unchanged.tolist() == [True, False]
    assert cells(comparison, 1) == ["9", "closed", "4188", "", "", ""]


def test_the_chat_status_option_fills_blank_cells_before_they_are_compared(
    tmp_path: Path,
) -> None:
    """`--chat-status closed` on an export changes the rows whose status cell is blank,
    not every row (the cells as read are blanked, then not filled again)."""
    rows = [["1", "", "", "", "", ""], ["2", "on hold", "", "", "", ""]]
    _, comparison = compare(tmp_path, rows, chat_status="closed")
    assert cells(comparison, 0)[1] == "closed"
    assert comparison.unchanged.tolist() == [False, True]
    validation = mark_unchanged(validate_changes(comparison.sheet), comparison)
    assert validation.status.tolist() == ["valid", "unchanged"]
    assert validation.chat_status.tolist() == ["closed", ""]


def test_unchanged_rows_are_marked_so_after_validation(tmp_path: Path) -> None:
    """Validation finds nothing to change in an unchanged row (skipped); it is marked
    `unchanged`, with no message; a changed row is valid as before."""
    rows = [["1", "pending", "", "", "", ""], ["2", "closed", "", "", "", ""]]
    _, comparison = compare(tmp_path, rows)
    validation = mark_unchanged(validate_changes(comparison.sheet), comparison)
    assert validation.status.tolist() == ["unchanged", "valid"]
    assert validation.error_message.tolist() == ["", ""]


def write_workbook(path: Path, sheets: dict[str, list[list[Any]]], hidden: str = "") -> Path:
    with xlsxwriter.Workbook(str(path)) as book:
        for name, rows in sheets.items():
            sheet = book.add_worksheet(name)
            for r, row in enumerate(rows):
                for c, value in enumerate(row):
                    if value is not None:
                        sheet.write(r, c, value)
            if name == hidden:
                sheet.hide()
    return path


def test_the_record_is_read_from_the_hidden_sheet_by_chat_id(tmp_path: Path) -> None:
    """The `exported` sheet's rows by chat id, first of a repeated id kept."""
    path = write_workbook(
        tmp_path / "x.xlsx",
        {"chats": [HEADER, *RECORD], "exported": [HEADER, *RECORD, RECORD[0]]},
        hidden="exported",
    )
    found = read_export_record(path)
    assert found is not None
    assert found.cells.index.tolist() == [1, 2, 3]
    assert found.cells.loc[2, "chat_status"] == "on hold"


def test_a_sheet_that_is_not_an_export_has_no_record(tmp_path: Path) -> None:
    """A CSV, a workbook without `exported`, or the `exported` sheet read as the input
    itself: no record, and `update` works as on any sheet."""
    csv = write_csv(tmp_path / "in.csv", HEADER, RECORD)
    plain = write_workbook(tmp_path / "plain.xlsx", {"chats": [HEADER, *RECORD]})
    export = write_workbook(tmp_path / "x.xlsx", {"chats": [HEADER], "exported": [HEADER]})
    assert read_export_record(csv) is None
    assert read_export_record(plain) is None
    assert read_export_record(export, "exported") is None


def test_a_record_without_chat_ids_is_unusable(tmp_path: Path) -> None:
    """An `exported` sheet someone emptied of its chat_id column is one line, exit 2."""
    from bulk_chats.errors import InputError

    path = write_workbook(
        tmp_path / "x.xlsx", {"chats": [HEADER], "exported": [["chat_status"], ["pending"]]}
    )
    with pytest.raises(InputError, match="'exported' has no chat_id column"):
        read_export_record(path)


def test_import_refuses_an_export_whose_chats_exist(tmp_path: Path) -> None:
    """An export given to `import` would create every chat again: one line, which says
    what to do instead; a workbook without the record, or its record read on purpose, is
    let through."""
    from bulk_chats.checks.exported import refuse_export
    from bulk_chats.errors import InputError

    export = write_workbook(tmp_path / "x.xlsx", {"chats": [HEADER], "exported": [HEADER]})
    with pytest.raises(InputError, match="an export of chats that exist; change them with update"):
        refuse_export(export)
    refuse_export(export, "exported")
    refuse_export(write_workbook(tmp_path / "plain.xlsx", {"chats": [HEADER]}))
