"""Validation: every rule of PRODUCT.md › Input, checked before anything is sent.

It works on whole columns (a million rows cost seconds, not minutes) and gives its verdict
as columns too, aligned with the sheet: the results workbook is written from them, and
`rows` turns the rows to send into records for the stages after it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bulk_chats.fields import EMAIL_FIELDS, ID_FIELDS, NAME_FIELDS, PROFILE_FIELDS, names_for
from bulk_chats.ids import (
    MAX_EXACT_FLOAT,
    Bools,
    Ints,
    Objects,
    each,
    each_text,
    filled,
    parse_ids,
    shorten,
)
from bulk_chats.loading import Sheet
from bulk_chats.records import Status

MESSAGE_TYPES = ("message", "private")

CHAT_STATUSES = ("new", "opened", "pending", "on hold", "no communication", "closed")
"""The statuses a chat can be set to, as `PUT /v1/chats/status` spells them."""

_STATUS_SPELLINGS = {
    **{status: status for status in CHAT_STATUSES},
    "on-hold": "on hold",
    "onhold": "on hold",
    "open": "opened",
}


def chat_status_spelling(text: str) -> str | None:
    """`text` as the API spells the status it means (any case, spaces trimmed; `on-hold`,
    `onhold` → `on hold`, `open` → `opened`); None when it names none."""
    return _STATUS_SPELLINGS.get(" ".join(text.lower().split()))


_PLAUSIBLE_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
"""`local@domain.tld`, no spaces: what `import --create-customers` can send as a new
customer's email (the API refuses the rest with 400). Other email columns only name
someone who exists, so an `@` is enough for them."""


@dataclass(frozen=True, slots=True)
class Validation:
    """The verdict on every data row of a `Sheet`, aligned with `sheet.cells`.

    `ids` holds a nullable Int64 column per id field present; `names` the stripped text
    of each name field present ("" where blank); `profile` that of each customer text
    field present (`customer_name`, `company`, `phone`). `status` is valid, invalid,
    duplicate or already_created (a row an earlier results workbook gave a chat id); for
    `update` and `close` valid, invalid, duplicate or skipped (nothing to change).
    `chat_status` is the status each chat is to end in as the API spells it ("" for none);
    `unassign` marks the rows of `update` whose assignee cell is `none` (None for other runs).
    """

    status: pd.Series
    error_code: pd.Series
    error_message: pd.Series
    ids: pd.DataFrame
    names: pd.DataFrame
    message: pd.Series
    message_type: pd.Series
    fed_back_chat_id: pd.Series
    fed_back_message_id: pd.Series
    profile: pd.DataFrame = field(default_factory=pd.DataFrame)
    chat_status: pd.Series | None = None
    unassign: pd.Series | None = None

    def counts(self) -> dict[str, int]:
        """Rows by status."""
        return {str(k): int(v) for k, v in self.status.value_counts().items()}


class _Problems:
    """Each row's error codes and messages, gathered sparsely: only rows with a problem
    ever get a string, so a million valid rows cost next to nothing.

    Codes join with "; " as the API's do; messages with " | ", since a message's own fix
    already follows a "; " (`'4,188' is not a whole number; remove the separator`).
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._found: list[tuple[Ints, str | Objects, str | Objects]] = []

    def add(self, mask: Bools, code: str | Objects, message: str | Objects) -> None:
        """Record a problem for the rows of `mask`: one text for all of them, or an array
        with one text per row of `mask`, in order."""
        positions = np.flatnonzero(mask)
        if len(positions):
            self._found.append((positions, code, message))

    def joined(self) -> tuple[Objects, Objects]:
        """Every row's codes and messages, "" where it has none."""
        codes = filled(self._size, "")
        messages = filled(self._size, "")
        for positions, code, message in self._found:
            _append(codes, positions, code, "; ")
            _append(messages, positions, message, " | ")
        return codes, messages


def _append(target: Objects, positions: Ints, text: str | Objects, separator: str) -> None:
    current = target[positions]
    target[positions] = np.where(current != "", current + separator, current) + text


def validate_sheet(sheet: Sheet, *, chat_status: str | None = None) -> Validation:
    """Check every row of `sheet`; no request is made, nothing is raised for bad rows.

    `chat_status` (`--chat-status`, as `chat_status_spelling` gives it) fills blank
    `chat_status` cells."""
    index = sheet.cells.index
    size = len(index)
    problems = _Problems(size)

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
        name_columns[name] = _as_text(column)
    _check_emails(name_columns, problems)
    names = pd.DataFrame(name_columns, index=index, copy=False)
    profile = _check_profile(sheet, problems)

    for name, article, alternatives in (
        ("customer", "a", " (or a customer_email / customer_user_id)"),
        ("application", "an", ""),
    ):
        missing = blank.get(name, np.ones(size, dtype=bool)) & ~_given(ids, names, name)
        problems.add(
            missing,
            f"missing_{name}",
            f"{name}: is blank; every row needs {article} {name} id{alternatives}",
        )

    message, message_type = _check_messages(sheet, ids, names, problems)
    statuses = _check_chat_status(sheet, problems, chat_status)

    codes, messages = problems.joined()
    invalid = codes != ""

    fed_back_chat_id = _fed_back_id(sheet, "chat_id")
    if "message_id" in sheet.fed_back or "chat_id" in sheet.fed_back:
        fed_back_message_id = _fed_back_id(sheet, "message_id")
    else:
        # Both all blank: one column, shared (copy on write keeps them apart).
        fed_back_message_id = fed_back_chat_id.copy(deep=False)
    done = fed_back_chat_id.notna().to_numpy(dtype=bool)

    status = filled(size, Status.VALID.value)
    status[invalid] = Status.INVALID.value
    texts = [(names[name], True) for name in names.columns]
    duplicate = _duplicates(ids, [*texts, (message, False), (message_type, False)], among=~invalid)
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
        fed_back_chat_id=fed_back_chat_id,
        fed_back_message_id=fed_back_message_id,
        profile=profile,
        chat_status=statuses,
    )


def validate_changes(
    sheet: Sheet, *, close: bool = False, chat_status: str | None = None
) -> Validation:
    """Check every row of a sheet of changes to chats (`update`, or with `close` every chat
    of its `chat_id` column closed); no request is made.

    Every row needs a `chat_id`: without one it is `invalid` for `update` and `skipped`
    for `close`. `update` reads `assignee` (an id, or `none` to unassign) or
    `assignee_email`, `department` or `department_name`, and `chat_status` (blank cells
    take `chat_status`); a row that changes nothing is `skipped`. `close` reads nothing
    else. A row repeating an earlier one is `duplicate`.
    """
    index = sheet.cells.index
    size = len(index)
    problems = _Problems(size)
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
            unassign = _as_text(assignee).str.lower().eq("none").to_numpy(dtype=bool)
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
                name_columns[name] = _as_text(column)
        _check_emails(name_columns, problems)
        statuses = _check_chat_status(sheet, problems, chat_status)
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
    duplicate = _duplicates(ids, texts, among=~invalid & ~skipped)
    status[duplicate] = Status.DUPLICATE.value
    codes[duplicate] = "duplicate"
    messages[duplicate] = "repeats an earlier row's changes; not sent"
    blank = pd.Series(filled(size, ""), index=index, dtype=object, copy=False)
    return Validation(
        status=pd.Series(status, index=index, dtype=object, copy=False),
        error_code=pd.Series(codes, index=index, dtype=object, copy=False),
        error_message=pd.Series(messages, index=index, dtype=object, copy=False),
        ids=ids,
        names=names,
        message=blank,
        message_type=blank.copy(deep=False),
        fed_back_chat_id=chat.ids,
        fed_back_message_id=pd.Series(pd.NA, index=index, dtype="Int64"),
        chat_status=statuses,
        unassign=pd.Series(unassign, index=index, copy=False),
    )


def _check_emails(names: dict[str, pd.Series], problems: _Problems) -> None:
    """Cells of email fields among `names` must be email addresses."""
    for name, text in names.items():
        if name not in EMAIL_FIELDS:
            continue
        values = text.to_numpy(dtype=object)
        plausible = _is_plausible_email if name == "customer_email" else _has_at
        bad = (values != "") & ~each(values, plausible)
        problems.add(
            bad,
            f"invalid_{name}",
            f"{name}: '" + each(values[bad], shorten, np.object_) + "' is not an email address",
        )


def _check_chat_status(sheet: Sheet, problems: _Problems, default: str | None) -> pd.Series:
    """Each row's `chat_status` as the API spells it, `default` where the cell is blank,
    "" where there is neither; a cell that names no status is a problem."""
    index = sheet.cells.index
    raw = sheet.column("chat_status")
    if raw is None:
        return pd.Series(filled(len(index), default or ""), index=index, dtype=object, copy=False)
    typed = _as_text(raw)
    spelled = typed.map(chat_status_spelling)
    bad = (typed.ne("") & spelled.isna()).to_numpy(dtype=bool)
    problems.add(
        bad,
        "invalid_chat_status",
        "chat_status: '"
        + each(typed.to_numpy(dtype=object)[bad], shorten, np.object_)
        + "' is not a chat status; use one of "
        + ", ".join(CHAT_STATUSES),
    )
    spelled = spelled.where(typed.ne(""), default or "").fillna("")
    return spelled.astype(object)


def _has_at(text: str) -> bool:
    return "@" in text


def _is_plausible_email(text: str) -> bool:
    return _PLAUSIBLE_EMAIL.fullmatch(text) is not None


def _check_profile(sheet: Sheet, problems: _Problems) -> pd.DataFrame:
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
        columns[name] = _as_text(column)
    return pd.DataFrame(columns, index=index, copy=False)


def _not_text(value: object) -> bool:
    return isinstance(value, bool | np.bool_ | dt.date | dt.datetime | dt.time)


def _as_text(column: pd.Series) -> pd.Series:
    """A text field's cells as stripped text; a whole number cell reads as its digits."""
    cells = column.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(cells, skipna=False) not in ("string", "empty"):
        cells = each(cells, _cell_text, np.object_)
    return pd.Series(each_text(cells, str.strip), index=column.index, dtype=object, copy=False)


def _cell_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_EXACT_FLOAT:
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _given(ids: pd.DataFrame, names: pd.DataFrame, field: str) -> Bools:
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


def _check_messages(
    sheet: Sheet, ids: pd.DataFrame, names: pd.DataFrame, problems: _Problems
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
            _given(ids, names, "message_agent"),
            "missing_message",
            "message: is blank, but message_type or message_agent is set",
        )
        blank = pd.Series(filled(size, ""), index=index, dtype=object, copy=False)
        return blank, blank.copy(deep=False)
    text = _as_text(raw_text).to_numpy(dtype=object) if raw_text is not None else filled(size, "")
    if raw_type is None:
        kind = filled(size, "")
    else:
        typed = _as_text(raw_type).to_numpy(dtype=object)
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
    agent_given = _given(ids, names, "message_agent")
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


def _fed_back_id(sheet: Sheet, name: str) -> pd.Series:
    """An id an earlier results workbook recorded (chat_id, message_id), or <NA>."""
    column = sheet.column(name) if name in sheet.fed_back else None
    if column is None:
        return pd.Series(pd.NA, index=sheet.cells.index, dtype="Int64")
    return parse_ids(column, name).ids


def _duplicates(ids: pd.DataFrame, texts: list[tuple[pd.Series, bool]], *, among: Bools) -> Bools:
    """Rows of `among` whose fields repeat an earlier row's of `among`: the id columns of
    `ids` and the text columns of `texts`, each with whether case is ignored (names).

    Invalid rows are left out: a bad id reads as blank, so a valid row would otherwise
    count as a repeat of an invalid one that differs from it only in that bad cell.
    Blank ids (<NA>) count as equal to each other.
    """
    chosen = np.flatnonzero(among)
    everything = len(chosen) == len(among)
    keys: list[Any] = []
    for name in ids.columns:
        # Ids are positive, so 0 can stand for a blank one.
        key = ids[name].to_numpy(dtype=np.int64, na_value=0)
        key = key if everything else key[chosen]
        if len(key) and key.max() < 2**31:
            key = key.astype(np.int32)
        keys.append(key)
    for column, folded in texts:
        values = column.to_numpy(dtype=object)
        if not len(values) or (values == values[0]).all():
            continue
        values = values if everything else values[chosen]
        if folded:
            # Names and emails match whatever their case.
            values = each_text(values, str.lower)
        codes, uniques = pd.factorize(values)
        if len(uniques) > 1:
            keys.append(codes)
    repeated = np.zeros(len(among), dtype=bool)
    if not len(chosen):
        return repeated
    # Sorted (stably, so each group keeps input order), a row repeats the one before it
    # when every key is equal: less memory than hashing whole rows.
    order = np.lexsort(keys[::-1]) if keys else np.arange(len(chosen))
    same = np.ones(len(chosen) - 1, dtype=bool)
    for key in keys:
        ordered = key[order]
        same &= ordered[1:] == ordered[:-1]
    repeated[chosen[order[1:][same]]] = True
    return repeated
