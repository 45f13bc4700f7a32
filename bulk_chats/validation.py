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
    duplicate or already_created (a row an earlier results workbook gave a chat id).
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


def validate_sheet(sheet: Sheet) -> Validation:
    """Check every row of `sheet`; no request is made, nothing is raised for bad rows."""
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
        text = _as_text(column)
        name_columns[name] = text
        if name in EMAIL_FIELDS:
            values = text.to_numpy(dtype=object)
            plausible = _is_plausible_email if name == "customer_email" else _has_at
            bad = (values != "") & ~each(values, plausible)
            problems.add(
                bad,
                f"invalid_{name}",
                f"{name}: '" + each(values[bad], shorten, np.object_) + "' is not an email address",
            )
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
    duplicate = _duplicates(ids, names, message, message_type, among=~invalid)
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
    )


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


def _duplicates(
    ids: pd.DataFrame,
    names: pd.DataFrame,
    message: pd.Series,
    message_type: pd.Series,
    *,
    among: Bools,
) -> Bools:
    """Rows of `among` whose chat fields repeat an earlier row's of `among`.

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
    texts = [(names[name], True) for name in names.columns]
    texts += [(message, False), (message_type, False)]
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
