"""Validation of a sheet of changes to chats (`update`, `close`): every rule of
docs/migrations.md › Changing chats later and › The way back that concerns them, on whole
columns as `new_chats` does for new chats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bulk_chats.checks.columns import (
    ProblemColumns,
    Verdict,
    as_text,
    check_chat_status,
    check_emails,
    duplicates,
)
from bulk_chats.checks.ids import filled, parse_ids
from bulk_chats.records import Status
from bulk_chats.sheet.loading import Sheet


@dataclass(frozen=True, slots=True)
class ChangeValidation(Verdict):
    """The verdict on every data row of a sheet of changes (`update`, `close`).

    `status` is valid, invalid, duplicate or skipped (nothing to change); `chat_id` the
    chat each row changes. `ids` holds the nullable Int64 columns `chat_id`, `assignee`
    and `department` present; `names` the stripped text of `assignee_email` and
    `department_name` present; `chat_status` the status to set as the API spells it ("");
    `unassign` marks the rows whose assignee cell is `none`.
    """

    ids: pd.DataFrame
    names: pd.DataFrame
    chat_status: pd.Series
    unassign: pd.Series


def validate_changes(
    sheet: Sheet, *, close: bool = False, chat_status: str | None = None
) -> ChangeValidation:
    """Check every row of a sheet of changes to chats (`update`, or with `close` every chat
    of its `chat_id` column closed); no request is made.

    Every row needs a `chat_id`: without one it is `invalid` for `update` and `skipped`
    for `close`. `update` reads `assignee` (an id, or `none` to unassign) or
    `assignee_email`, `department` or `department_name`, and `chat_status` (blank cells
    take `chat_status`); a row that changes nothing is `skipped`. `close` reads nothing
    else. A row repeating an earlier one is `duplicate`; one that changes a chat an earlier
    row changes otherwise is `invalid` (`conflicting_chat_id`): sent at once, the two would
    race, and each re-run would undo the other.
    """
    index = sheet.cells.index
    size = len(index)
    problems = ProblemColumns(size)
    chat_column = sheet.column("chat_id")
    if chat_column is None:  # load_sheet(chats=True) requires the column
        raise ValueError("the sheet has no chat_id column")
    chat = parse_ids(chat_column, "chat_id", header=sheet.headers[sheet.fields["chat_id"]])
    problems.add(
        chat.rejected, "invalid_chat_id", chat.message.to_numpy(dtype=object)[chat.rejected]
    )
    no_chat = chat.ids.isna().to_numpy(dtype=bool) & ~chat.rejected
    id_columns = {"chat_id": chat.ids}
    name_columns: dict[str, pd.Series] = {}
    unassign = np.zeros(size, dtype=bool)
    if close:
        statuses = pd.Series(filled(size, "closed"), index=index, dtype=object, copy=False)
        wanted = np.ones(size, dtype=bool)
    else:
        problems.add(
            no_chat, "missing_chat_id", "chat_id: is blank; every row needs the id of the chat"
        )
        assignee = sheet.column("assignee")
        if assignee is not None:
            unassign = as_text(assignee).str.lower().eq("none").to_numpy(dtype=bool)
            assignee = assignee.where(~unassign, "")
        for name, column in (("assignee", assignee), ("department", sheet.column("department"))):
            if column is None:
                continue
            parsed = parse_ids(column, name, header=sheet.headers[sheet.fields[name]])
            id_columns[name] = parsed.ids
            problems.add(
                parsed.rejected,
                f"invalid_{name}",
                parsed.message.to_numpy(dtype=object)[parsed.rejected],
            )
        for name in ("assignee_email", "department_name"):
            column = sheet.column(name)
            if column is not None:
                name_columns[name] = as_text(column)
        check_emails(name_columns, problems)
        statuses = check_chat_status(sheet, problems, chat_status)
        wanted = unassign | (statuses.to_numpy(dtype=object) != "")
        for column in (*id_columns.values(), *name_columns.values()):
            if column is not chat.ids:
                wanted |= (
                    column.notna().to_numpy(dtype=bool)
                    if column.dtype == "Int64"
                    else column.to_numpy(dtype=object) != ""
                )
    ids = pd.DataFrame(id_columns, index=index, copy=False)
    names = pd.DataFrame(name_columns, index=index, copy=False)

    codes, messages = problems.joined()
    invalid = codes != ""
    status = filled(size, Status.VALID.value)
    status[invalid] = Status.INVALID.value
    skipped = ~invalid & (no_chat | ~wanted)
    status[skipped] = Status.SKIPPED.value
    messages[skipped] = (
        "no chat_id: nothing to close"
        if close
        else "nothing to change: chat_status, assignee and department are blank"
    )
    flags = pd.Series(np.where(unassign, "none", ""), index=index, dtype=object, copy=False)
    texts = [(names[name], True) for name in names.columns] + [(statuses, False), (flags, False)]
    duplicate = duplicates(ids, texts, among=~invalid & ~skipped)
    status[duplicate] = Status.DUPLICATE.value
    codes[duplicate] = "duplicate"
    messages[duplicate] = "repeats an earlier row's changes; not sent"
    _conflicts(
        sheet, chat.ids, among=(status == Status.VALID.value), codes=codes, messages=messages
    )
    status[codes == "conflicting_chat_id"] = Status.INVALID.value
    return ChangeValidation(
        status=pd.Series(status, index=index, dtype=object, copy=False),
        error_code=pd.Series(codes, index=index, dtype=object, copy=False),
        error_message=pd.Series(messages, index=index, dtype=object, copy=False),
        chat_id=chat.ids,
        ids=ids,
        names=names,
        chat_status=statuses,
        unassign=pd.Series(unassign, index=index, copy=False),
    )


def _conflicts(
    sheet: Sheet,
    chat_ids: pd.Series,
    *,
    among: np.ndarray[Any, np.dtype[np.bool_]],
    codes: np.ndarray[Any, np.dtype[np.object_]],
    messages: np.ndarray[Any, np.dtype[np.object_]],
) -> None:
    """Mark the rows of `among` whose chat an earlier row of `among` changes already."""
    rows = np.flatnonzero(among)
    keys = pd.Series(chat_ids.to_numpy(dtype=np.int64, na_value=0)[rows])
    again = keys.duplicated(keep="first").to_numpy(dtype=bool)
    if not again.any():
        return
    first = dict(zip(keys[~again].tolist(), rows[~again].tolist(), strict=True))
    for row, chat in zip(rows[again].tolist(), keys[again].tolist(), strict=True):
        codes[row] = "conflicting_chat_id"
        messages[row] = (
            f"chat_id: {chat} is changed otherwise by row {sheet.source_rows[first[chat]]}; "
            "put all of a chat's changes on one row"
        )
