"""`update` given an export: the cells a person changed, told from those left as the export
read them (docs/export.md › Back again).

An export keeps, in its hidden sheet `exported`, each chat's status, assignee and
department as read. `compare_with_export` compares each row's cells with that record, by
`chat_id`, before anything else looks at them: a cell equal to the record is no change
and is blanked for validation (a blank cell changes nothing); a row whose every cell
equals the record is `unchanged` and costs no request. Where a row has an id and its name
(`assignee` and `assignee_email`, `department` and `department_name`), the one that
differs from the record is the change; when both differ they must name the same agent or
department, which only the account's agents and departments can tell
(`ExportComparison.both_changed`, checked at the pre-flight).

Cells compare as the run reads them: a status by its spelling (`On Hold` is `on hold`),
an id as a number (`4188.0` is 4188), an email or a name ignoring case and surrounding
spaces; `none` in `assignee` equals an unassigned chat. Rows whose chat the record does
not hold (added by hand) are changes as in any sheet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bulk_chats.checks.changes import ChangeValidation
from bulk_chats.checks.columns import as_text, chat_status_spelling
from bulk_chats.checks.ids import parse_ids
from bulk_chats.errors import InputError
from bulk_chats.fields import EXPORTED_COLUMNS, EXPORTED_SHEET
from bulk_chats.records import Status
from bulk_chats.sheet.loading import WORKBOOK_SUFFIXES, Sheet, normalise_header
from bulk_chats.sheet.workbook import read_workbook, sheet_names

ID_NAMES: Mapping[str, str] = {"assignee": "assignee_email", "department": "department_name"}
"""Each id field an export writes beside its name field."""

COMPARED = ("chat_status", "assignee", "assignee_email", "department", "department_name")
"""The fields `update` changes, compared with the record."""


@dataclass(frozen=True, slots=True)
class ExportRecord:
    """An export's record of its chats as read: one row per chat id (`cells.index`), a
    column per field of `COMPARED` the record has, cells as the workbook holds them."""

    cells: pd.DataFrame


@dataclass(frozen=True, slots=True)
class ExportComparison:
    """A sheet compared with its export's record.

    `sheet` is the sheet with every cell equal to the record blanked (what validation
    reads); `unchanged` marks the rows of the record's chats whose cells all equal it;
    `both_changed` maps a row to (name field, value) for each id whose name changed too.
    """

    sheet: Sheet
    unchanged: np.ndarray[Any, np.dtype[np.bool_]]
    both_changed: dict[int, tuple[tuple[str, str], ...]]


def refuse_export(path: Path, sheet: str | None = None) -> None:
    """Raise `InputError` when `path` is an export (a workbook with the `exported` sheet)
    and `sheet` one of its chats: `import` would create each of those chats again."""
    if path.suffix.lower() not in WORKBOOK_SUFFIXES or sheet == EXPORTED_SHEET:
        return
    if EXPORTED_SHEET in sheet_names(path):
        raise InputError(
            f"{path}: an export of chats that exist; change them with update or close them "
            "with close (import would create each one again). To create them anew, in "
            "another account say, save the chats sheet as CSV and import that"
        )


def read_export_record(path: Path, sheet: str | None = None) -> ExportRecord | None:
    """The record of the export at `path`: None when it is not a workbook with an
    `exported` sheet, or when `sheet` (the sheet read as input) is that sheet itself.
    Raises `InputError` when the record is there but unusable."""
    if path.suffix.lower() not in WORKBOOK_SUFFIXES or sheet == EXPORTED_SHEET:
        return None
    if EXPORTED_SHEET not in sheet_names(path):
        return None
    rows = read_workbook(path, EXPORTED_SHEET)
    headers = [normalise_header(h) for h in rows.iloc[0]]
    if "chat_id" not in headers:
        raise InputError(
            f"{path}: the sheet {EXPORTED_SHEET!r} has no chat_id column; it is an export's "
            "record of what it read: leave it as the export wrote it"
        )
    at = {name: headers.index(name) for name in EXPORTED_COLUMNS if name in headers}
    body = rows.iloc[1:]
    chats = parse_ids(body.iloc[:, at["chat_id"]], "chat_id").ids
    cells = pd.DataFrame(
        {name: body.iloc[:, position].to_numpy(dtype=object) for name, position in at.items()},
        index=pd.Index(chats.to_numpy(dtype=np.int64, na_value=0), dtype=np.int64),
    ).drop(columns="chat_id")
    cells = cells[~cells.index.duplicated(keep="first") & (cells.index > 0)]
    return ExportRecord(cells)


def compare_with_export(
    sheet: Sheet, record: ExportRecord, *, chat_status: str | None = None
) -> ExportComparison:
    """Compare the rows of `sheet` with `record` (see the module docstring). `chat_status`
    (`--chat-status`) fills the blank `chat_status` cells first, as the run would."""
    chat_column = sheet.column("chat_id")
    size = len(sheet)
    if chat_column is None:
        return ExportComparison(sheet, np.zeros(size, dtype=bool), {})
    chats = parse_ids(chat_column, "chat_id").ids
    known = chats.isin(record.cells.index).to_numpy(dtype=bool) & chats.notna().to_numpy(dtype=bool)
    keys = chats.to_numpy(dtype=np.int64, na_value=0)
    recorded = record.cells.reindex(keys)
    cells = sheet.cells.copy(deep=False)
    changed: dict[str, np.ndarray[Any, np.dtype[np.bool_]]] = {}
    for field in COMPARED:
        position = sheet.fields.get(field)
        if position is None or field not in recorded.columns:
            continue
        column = sheet.cells[position]
        if field == "chat_status" and chat_status is not None:
            column = column.where(as_text(column).ne(""), chat_status)
            cells[position] = column
        given = _blank(column)
        same = _same(field, column, pd.Series(recorded[field].to_numpy(), index=column.index))
        changed[field] = known & ~given & ~same
        keep = ~(known & same & ~given)
        cells[position] = column.where(keep, "")
    unchanged = known.copy()
    for mask in changed.values():
        unchanged &= ~mask
    both: dict[int, tuple[tuple[str, str], ...]] = {}
    for id_field, name_field in ID_NAMES.items():
        if id_field not in changed or name_field not in changed:
            continue
        names = as_text(sheet.cells[sheet.fields[name_field]])
        for row in np.flatnonzero(changed[id_field] & changed[name_field]).tolist():
            both[row] = (*both.get(row, ()), (name_field, str(names.iat[row])))
    return ExportComparison(replace(sheet, cells=cells), unchanged, both)


def mark_unchanged(validation: ChangeValidation, comparison: ExportComparison) -> ChangeValidation:
    """`validation` with the rows that changed nothing since the export `unchanged`: no
    request is sent for them."""
    status = validation.status.copy()
    message = validation.error_message.copy()
    rows = comparison.unchanged & status.eq(Status.SKIPPED.value).to_numpy(dtype=bool)
    status[rows] = Status.UNCHANGED.value
    message[rows] = ""
    return replace(validation, status=status, error_message=message)


def _blank(column: pd.Series) -> np.ndarray[Any, np.dtype[np.bool_]]:
    return as_text(column).eq("").to_numpy(dtype=bool)


def _same(field: str, given: pd.Series, recorded: pd.Series) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Where the cells of `given` say what `recorded` says, as the run reads them."""
    if field in ID_NAMES:
        ours = parse_ids(given.where(~_is_none(given), ""), field).ids
        theirs = parse_ids(recorded.fillna(""), field).ids
        both = ours.notna() & theirs.notna()
        same = both.to_numpy(dtype=bool, copy=True)
        same[same] = (ours[both] == theirs[both]).to_numpy(dtype=bool)
        # `none` unassigns: it says what an unassigned chat's blank cell says.
        return same | (_is_none(given).to_numpy(dtype=bool) & theirs.isna().to_numpy(dtype=bool))
    ours_text = as_text(given)
    theirs_text = as_text(recorded.fillna(""))
    if field == "chat_status":
        ours_text = ours_text.map(_status_key)
        theirs_text = theirs_text.map(_status_key)
    else:
        ours_text = ours_text.str.casefold()
        theirs_text = theirs_text.str.casefold()
    equal: np.ndarray[Any, np.dtype[np.bool_]] = np.asarray(
        ours_text.to_numpy(dtype=object) == theirs_text.to_numpy(dtype=object), dtype=bool
    )
    return equal


def _is_none(column: pd.Series) -> pd.Series:
    return as_text(column).str.lower().eq("none")


def _status_key(text: str) -> str:
    """A status as the API spells it, or the text itself (`empty`, which no run sets)."""
    return chat_status_spelling(text) or " ".join(text.lower().split())
