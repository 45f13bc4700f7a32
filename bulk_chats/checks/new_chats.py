"""Validation of new chats: every rule of docs/reference.md › Input, checked before anything is
sent (`checks.changes` checks the sheets of `update` and `close`).

It works on whole columns (a million rows cost seconds, not minutes) and gives its verdict
as columns too, aligned with the sheet: the results workbook is written from them, and
`rows` turns the rows to send into records for the stages after it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

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
from bulk_chats.checks.ids import (
    Bools,
    each,
    each_text,
    filled,
    parse_ids,
    shorten,
)
from bulk_chats.fields import ID_FIELDS, NAME_FIELDS, PROFILE_FIELDS, names_for
from bulk_chats.records import Status
from bulk_chats.sheet.loading import Sheet

MESSAGE_TYPES = ("message", "private")


@dataclass(frozen=True, slots=True)
class Validation(Verdict):
    """The verdict on every data row of a sheet of new chats (`validate`, `import`).

    `status` is valid, invalid, duplicate or already_created (a row an earlier results
    workbook gave a chat id). `ids` holds a nullable Int64 column per id field present;
    `names` the stripped text of each name field present ("" where blank); `message` and
    `message_type` the first message ("" for none); `message_id` the message a results
    workbook fed back in gives the row (<NA> for none); `profile` the stripped text of
    each customer text field present (`customer_name`, `company`, `phone`); `chat_status`
    the status each chat is to end in as the API spells it ("" for none).
    """

    ids: pd.DataFrame
    names: pd.DataFrame
    message: pd.Series
    message_type: pd.Series
    message_id: pd.Series
    chat_status: pd.Series
    profile: pd.DataFrame = field(default_factory=pd.DataFrame)


def validate_sheet(sheet: Sheet, *, chat_status: str | None = None) -> Validation:
    """Check every row of `sheet`; no request is made, nothing is raised for bad rows.

    `chat_status` (`--chat-status`, as `chat_status_spelling` gives it) fills blank
    `chat_status` cells."""
    index = sheet.cells.index
    size = len(index)
    problems = ProblemColumns(size)
    fields = read_fields(sheet, problems)
    ids, names, profile = fields.ids, fields.names, fields.profile
    check_required(ids, names, fields.blank, problems)

    message, message_type = check_messages(sheet, ids, names, problems)
    statuses = check_chat_status(sheet, problems, chat_status)

    codes, messages = problems.joined()
    invalid = codes != ""

    fed_back_chat_id = fed_back_id(sheet, "chat_id")
    if "message_id" in sheet.fed_back or "chat_id" in sheet.fed_back:
        fed_back_message_id = fed_back_id(sheet, "message_id")
    else:
        # Both all blank: one column, shared (copy on write keeps them apart).
        fed_back_message_id = fed_back_chat_id.copy(deep=False)
    done = fed_back_chat_id.notna().to_numpy(dtype=bool)

    status = filled(size, Status.VALID.value)
    status[invalid] = Status.INVALID.value
    texts = [(names[name], True) for name in names.columns]
    duplicate = duplicates(ids, [*texts, (message, False), (message_type, False)], among=~invalid)
    status[duplicate] = Status.DUPLICATE.value
    codes[duplicate] = "duplicate"
    messages[duplicate] = "repeats an earlier row's chat fields; not sent"
    status[done] = Status.ALREADY_CREATED.value
    codes[done] = ""
    messages[done] = ""
    return Validation(
        status=pd.Series(status, index=index, dtype=object, copy=False),
        error_code=pd.Series(codes, index=index, dtype=object, copy=False),
        error_message=pd.Series(messages, index=index, dtype=object, copy=False),
        ids=ids,
        names=names,
        message=message,
        message_type=message_type,
        chat_id=fed_back_chat_id,
        message_id=fed_back_message_id,
        profile=profile,
        chat_status=statuses,
    )


@dataclass(frozen=True, slots=True)
class RowFields:
    """A sheet's cells read as the fields of new chats, each row on its own: `ids` a
    nullable Int64 column per id field present; `blank` per id field present, where its
    cell is blank (a rejected cell is not blank: it has a problem of its own); `names`
    the stripped text of each name field present; `profile` that of each customer text
    field present."""

    ids: pd.DataFrame
    blank: dict[str, Bools]
    names: pd.DataFrame
    profile: pd.DataFrame


def read_fields(sheet: Sheet, problems: ProblemColumns) -> RowFields:
    """Parse the id, name and customer text columns of `sheet`, each cell's problems added
    to `problems` (`invalid_<field>`)."""
    index = sheet.cells.index
    id_columns: dict[str, pd.Series] = {}
    blank: dict[str, Bools] = {}
    for name in ID_FIELDS:
        column = sheet.column(name)
        if column is None:
            continue
        parsed = parse_ids(column, name, header=sheet.headers[sheet.fields[name]])
        id_columns[name] = parsed.ids
        blank[name] = parsed.ids.isna().to_numpy(dtype=bool) & ~parsed.rejected
        problems.add(
            parsed.rejected,
            f"invalid_{name}",
            parsed.message.to_numpy(dtype=object)[parsed.rejected],
        )
    ids = pd.DataFrame(id_columns, index=index, copy=False)

    name_columns: dict[str, pd.Series] = {}
    for name in NAME_FIELDS:
        column = sheet.column(name)
        if column is None:
            continue
        name_columns[name] = as_text(column)
    check_emails(name_columns, problems)
    names = pd.DataFrame(name_columns, index=index, copy=False)
    profile = _check_profile(sheet, problems)
    return RowFields(ids=ids, blank=blank, names=names, profile=profile)


def check_required(
    ids: pd.DataFrame,
    names: pd.DataFrame,
    blank: dict[str, Bools],
    problems: ProblemColumns,
    *,
    per: str = "row",
) -> None:
    """A customer (by id or name) and an application on every row where `blank` says the
    field's cell is blank (every row, for a field without a column); the message says
    every `per` needs one."""
    size = len(ids.index)
    for name, article, alternatives in (
        ("customer", "a", " (or a customer_email / customer_user_id)"),
        ("application", "an", ""),
    ):
        missing = blank.get(name, np.ones(size, dtype=bool)) & ~given(ids, names, name)
        problems.add(
            missing,
            f"missing_{name}",
            f"{name}: is blank; every {per} needs {article} {name} id{alternatives}",
        )


def _check_profile(sheet: Sheet, problems: ProblemColumns) -> pd.DataFrame:
    """The customer text columns as stripped text; a date or a TRUE/FALSE cell is no
    name, company or phone (a number is: a phone number cell reads as its digits)."""
    index = sheet.cells.index
    columns: dict[str, pd.Series] = {}
    for name in PROFILE_FIELDS:
        column = sheet.column(name)
        if column is None:
            continue
        cells = column.to_numpy(dtype=object)
        bad = each(cells, _not_text)
        problems.add(
            bad,
            f"invalid_{name}",
            f"{name}: '"
            + each(each(cells[bad], str, np.object_), shorten, np.object_)
            + "' is not text",
        )
        columns[name] = as_text(column)
    return pd.DataFrame(columns, index=index, copy=False)


def _not_text(value: object) -> bool:
    return isinstance(value, bool | np.bool_ | dt.date | dt.datetime | dt.time)


def given(ids: pd.DataFrame, names: pd.DataFrame, field: str) -> Bools:
    """Rows where `field` is given, by id or by a name column standing in for it."""
    # A copy: pandas may hand out a read-only view, and `|=` below writes into it.
    given = (
        ids[field].notna().to_numpy(dtype=bool, copy=True)
        if field in ids
        else np.zeros(len(ids.index), dtype=bool)
    )
    for name in names_for(field):
        if name in names:
            given |= names[name].to_numpy(dtype=object) != ""
    return given


def check_messages(
    sheet: Sheet, ids: pd.DataFrame, names: pd.DataFrame, problems: ProblemColumns
) -> tuple[pd.Series, pd.Series]:
    """The first-message columns: type is message or private; a private note needs its
    agent; type or agent without text is a mistake. Returns (text, type) per row."""
    index = sheet.cells.index
    size = len(index)
    raw_text = sheet.column("message")
    raw_type = sheet.column("message_type")
    if raw_text is None and raw_type is None:
        # No message columns: only an agent without a message to write can be wrong, and
        # text and type share one blank column (copy on write keeps them apart).
        problems.add(
            given(ids, names, "message_agent"),
            "missing_message",
            "message: is blank, but message_type or message_agent is set",
        )
        blank = pd.Series(filled(size, ""), index=index, dtype=object, copy=False)
        return blank, blank.copy(deep=False)
    text = as_text(raw_text).to_numpy(dtype=object) if raw_text is not None else filled(size, "")
    if raw_type is None:
        kind = filled(size, "")
    else:
        typed = as_text(raw_type).to_numpy(dtype=object)
        kind = each_text(typed, str.lower)
        bad_kind = (kind != "") & ~np.isin(kind, MESSAGE_TYPES)
        problems.add(
            bad_kind,
            "invalid_message_type",
            "message_type: '"
            + each(typed[bad_kind], shorten, np.object_)
            + "' is neither message nor private",
        )
    kind = kind.copy()
    kind[(kind == "") & (text != "")] = "message"
    agent_given = given(ids, names, "message_agent")
    private_alone = (kind == "private") & ~agent_given & (text != "")
    problems.add(
        private_alone,
        "missing_message_agent",
        "message_agent: is blank; a private note needs the agent who writes it",
    )
    orphan = (text == "") & ((kind != "") | agent_given)
    problems.add(
        orphan, "missing_message", "message: is blank, but message_type or message_agent is set"
    )
    return (
        pd.Series(text, index=index, dtype=object, copy=False),
        pd.Series(kind, index=index, dtype=object, copy=False),
    )


def fed_back_id(sheet: Sheet, name: str) -> pd.Series:
    """An id an earlier results workbook recorded (chat_id, message_id), or <NA>."""
    column = sheet.column(name) if name in sheet.fed_back else None
    if column is None:
        return pd.Series(pd.NA, index=sheet.cells.index, dtype="Int64")
    return parse_ids(column, name).ids
