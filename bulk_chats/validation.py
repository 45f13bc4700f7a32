"""Validation: every rule of PRODUCT.md › Input, checked before anything is sent.

The hot path is vectorised: a column of valid ids is parsed by pandas string operations,
never by a Python call per cell. Only rejected cells (few, in any real sheet) go through
`explain_id`, which says in words what is wrong and how to fix it.

An id is an `int` from its first parse: text is matched against ASCII digits and converted
by integer parsing; a number cell is accepted only when whole and at most 2**53, where a
float still holds every integer exactly.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from bulk_chats.loading import ID_FIELDS, NAME_FIELDS, Sheet
from bulk_chats.records import Status

MAX_EXACT_FLOAT = 2**53
"""Above this a number cell may already have lost digits (Excel stores floats)."""

MAX_ID_DIGITS = 18
"""Ids longer than this cannot be a 64-bit integer, and no HelpCrunch id is."""

MESSAGE_TYPES = ("message", "private")

#: For each id field, the name column that can stand in for it.
NAME_FOR_ID = {
    "customer": "customer_email",
    "assignee": "assignee_email",
    "department": "department_name",
    "message_agent": "message_agent_email",
}

_Bools: TypeAlias = np.ndarray[Any, np.dtype[np.bool_]]
_Ints: TypeAlias = np.ndarray[Any, np.dtype[np.intp]]
_Objects: TypeAlias = np.ndarray[Any, np.dtype[np.object_]]

_CHUNK_ROWS = 65_536

_EMAIL_FIELDS = ("customer_email", "assignee_email", "message_agent_email")
_ASCII_DIGITS = r"[0-9]+"
_SEPARATED = re.compile(r"[0-9]{1,3}([,.'\u00a0\u202f ][0-9]{3})+")
_FRACTION = re.compile(r"[0-9]*[.,][0-9]+")
_WHOLE_DECIMAL = re.compile(r"[0-9]+\.0*")
_SCIENTIFIC = re.compile(r"[0-9.]+[eE][+-]?[0-9]+")
_DATE = re.compile(r"[0-9]{1,4}[-/.][0-9]{1,2}[-/.][0-9]{1,4}([ T].*)?")
_SIGNED = re.compile(r"[+-][0-9]+")


@dataclass(frozen=True, slots=True)
class Validation:
    """The verdict on every data row of a `Sheet`, aligned with `sheet.cells`.

    `ids` holds a nullable Int64 column per id field present; `names` the stripped text
    of each name field present ("" where blank). `status` is valid, invalid, duplicate or
    already_created (a row an earlier results workbook gave a chat id).
    """

    status: pd.Series
    error_code: pd.Series
    error_message: pd.Series
    ids: pd.DataFrame
    names: pd.DataFrame
    message: pd.Series
    message_type: pd.Series
    previous_chat_id: pd.Series
    previous_message_id: pd.Series

    def counts(self) -> dict[str, int]:
        """Rows by status."""
        return {str(k): int(v) for k, v in self.status.value_counts().items()}


@dataclass(frozen=True, slots=True)
class _Parsed:
    ids: pd.Series
    code: pd.Series
    message: pd.Series
    rejected: _Bools


class _Problems:
    """Each row's error codes and messages, gathered sparsely: only rows with a problem
    ever get a string, so a million valid rows cost next to nothing.

    Codes join with "; " as the API's do; messages with " | ", since a message's own fix
    already follows a "; " (`'4,188' is not a whole number; remove the separator`).
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._found: list[tuple[_Ints, str | _Objects, str | _Objects]] = []

    def add(self, mask: _Bools, code: str | _Objects, message: str | _Objects) -> None:
        """Record a problem for the rows of `mask`: one text for all of them, or an array
        with one text per row of `mask`, in order."""
        positions = np.flatnonzero(mask)
        if len(positions):
            self._found.append((positions, code, message))

    def joined(self) -> tuple[_Objects, _Objects]:
        """Every row's codes and messages, "" where it has none."""
        codes = _filled(self._size, "")
        messages = _filled(self._size, "")
        for positions, code, message in self._found:
            _append(codes, positions, code, "; ")
            _append(messages, positions, message, " | ")
        return codes, messages


def _filled(size: int, text: str) -> _Objects:
    """An object array of `size` references to the one `text` (np.full would make a copy
    of the string for every element)."""
    filled = np.empty(size, dtype=object)
    filled.fill(text)
    return filled


def _append(target: _Objects, positions: _Ints, text: str | _Objects, separator: str) -> None:
    current = target[positions]
    target[positions] = np.where(current != "", current + separator, current) + text


def validate_sheet(sheet: Sheet) -> Validation:
    """Check every row of `sheet`; no request is made, nothing is raised for bad rows."""
    index = sheet.cells.index
    size = len(index)
    problems = _Problems(size)

    id_columns: dict[str, pd.Series] = {}
    blank: dict[str, _Bools] = {}
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
        if name in _EMAIL_FIELDS:
            values = text.to_numpy(dtype=object)
            bad = (values != "") & ~_each(values, _has_at)
            problems.add(
                bad,
                f"invalid_{name}",
                f"{name}: '"
                + _each(values[bad], _shorten, np.object_)
                + "' is not an email address",
            )
    names = pd.DataFrame(name_columns, index=index, copy=False)

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

    previous_chat_id = _previous_id(sheet, "chat_id")
    if "message_id" in sheet.previous or "chat_id" in sheet.previous:
        previous_message_id = _previous_id(sheet, "message_id")
    else:
        # Both all blank: one column, shared (copy on write keeps them apart).
        previous_message_id = previous_chat_id.copy(deep=False)
    done = previous_chat_id.notna().to_numpy(dtype=bool)

    status = _filled(size, Status.VALID.value)
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
        previous_chat_id=previous_chat_id,
        previous_message_id=previous_message_id,
    )


def parse_ids(column: pd.Series, field: str, *, header: str | None = None) -> _Parsed:
    """Parse a column of ids: exact ints where valid, a code and message where not.

    Blank cells give <NA> with no error (whether a blank is allowed is decided by the
    caller). `header` is the column's header as the file spells it, for the fix advice.
    """
    cells = column.to_numpy(dtype=object)
    size = len(cells)
    values = np.zeros(size, dtype=np.int64)
    valid = np.zeros(size, dtype=bool)
    rejected = np.zeros(size, dtype=bool)
    # A chunk at a time, so that the working arrays stay small however long the sheet.
    for start in range(0, size, _CHUNK_ROWS):
        part = slice(start, start + _CHUNK_ROWS)
        _parse_chunk(cells[part], values[part], valid[part], rejected[part])

    code = _filled(size, "")
    message = _filled(size, "")
    if rejected.any():
        code[rejected] = f"invalid_{field}"
        message[rejected] = np.array(
            [explain_id(v, field, header=header) for v in cells[rejected]], dtype=object
        )
    return _Parsed(
        ids=pd.Series(pd.arrays.IntegerArray(values, ~valid), index=column.index, copy=False),
        code=pd.Series(code, index=column.index, dtype=object, copy=False),
        message=pd.Series(message, index=column.index, dtype=object, copy=False),
        rejected=rejected,
    )


def _parse_chunk(
    cells: _Objects,
    values: np.ndarray[Any, np.dtype[np.int64]],
    valid: _Bools,
    rejected: _Bools,
) -> None:
    """Parse `cells` into `values`, `valid` and `rejected` (views of the same length)."""
    size = len(cells)
    is_text = _text_mask(cells)
    text_at = np.arange(size) if is_text.all() else np.flatnonzero(is_text)
    if len(text_at):
        text = _each_text(cells[text_at], str.strip)
        length = _each(text, len, np.int64)
        # ASCII digits only: int() would take "١٢٣" too.
        digits = _each(text, str.isascii) & _each(text, str.isdecimal) & (length <= MAX_ID_DIGITS)
        at = text_at[digits]
        numbers = text[digits].astype(np.int64)
        positive = numbers > 0
        values[at[positive]] = numbers[positive]
        valid[at[positive]] = True
        rejected[text_at[~digits & (length > 0)]] = True
        rejected[at[~positive]] = True

    other_at = np.flatnonzero(~is_text)
    if len(other_at):
        numbers, whole = _number_ids(cells[other_at])
        values[other_at[whole]] = numbers[whole]
        valid[other_at[whole]] = True
        rejected[other_at[~whole]] = True


def explain_id(value: object, field: str, *, header: str | None = None) -> str:
    """Why `value` is not an id, and how to fix it: `field: 'value' <rule>; <fix>`."""
    if isinstance(value, bool):
        return f"{field}: '{str(value).upper()}' is a true/false value, not an id"
    if isinstance(value, dt.datetime | dt.date):
        return f"{field}: '{value.isoformat()}' is a date, not an id"
    if isinstance(value, dt.time | dt.timedelta):
        return f"{field}: '{value}' is a time, not an id"
    if isinstance(value, int | np.integer):
        return _explain_integer(int(value), field)
    if isinstance(value, float | np.floating):
        return _explain_number(float(value), field)
    text = str(value).strip()
    shown = f"{field}: '{_shorten(text)}'"
    folded = text.lower()
    if folded in {"true", "false", "yes", "no"}:
        return f"{shown} is a true/false value, not an id"
    if any(c.isdigit() and not ("0" <= c <= "9") for c in text):
        return f"{shown} uses non-ASCII digits; type the id with the digits 0-9"
    if text.isdigit():
        # Not int(text): Python refuses to convert more than 4300 digits.
        if not text.strip("0"):
            return f"{shown} is not positive; ids start at 1"
        return f"{shown} is too large for an id ({len(text)} digits)"
    if _SIGNED.fullmatch(text):
        if text.startswith("-"):
            return f"{shown} is not positive; ids are whole numbers from 1 up"
        return f"{shown} has a sign; write the digits only"
    if _SEPARATED.fullmatch(text):
        return f"{shown} is not a whole number; remove the separator"
    if _WHOLE_DECIMAL.fullmatch(text):
        return f"{shown} is not a whole number; write the id without the decimal point"
    if _FRACTION.fullmatch(text):
        return f"{shown} is not a whole number; an id has no fraction"
    if _SCIENTIFIC.fullmatch(text):
        return (
            f"{shown} is in scientific notation, so its digits are lost; export the column as text"
        )
    if _DATE.fullmatch(text):
        return f"{shown} is a date, not an id"
    hint = _mapping_hint(field, header)
    if "@" in text:
        return f"{shown} is an email address, not an id" + hint
    if any(c.isalpha() for c in text):
        return f"{shown} is a name or text, not an id" + hint
    return f"{shown} is not a whole number"


def _shorten(text: str) -> str:
    """`text` as a message quotes it: whole when short, else its start and its length (a
    cell of megabytes would otherwise fill the report's message cell)."""
    if len(text) <= _QUOTED_LIMIT:
        return text
    return f"{text[: _QUOTED_LIMIT - 20]}… ({len(text):,} characters)"


_QUOTED_LIMIT = 80


def _explain_integer(number: int, field: str) -> str:
    # Exact, never through float(): an int cell may have more digits than a float holds.
    if number <= 0:
        return f"{field}: '{number}' is not positive; ids start at 1"
    return f"{field}: '{number}' {_ABOVE_EXACT}"


def _explain_number(number: float, field: str) -> str:
    shown = f"{field}: {_show_number(number)}"
    if not math.isfinite(number):
        return f"{shown} is not a number"
    if number % 1:
        return f"{shown} is not a whole number; an id has no fraction"
    if number <= 0:
        return f"{shown} is not positive; ids start at 1"
    return f"{shown} {_ABOVE_EXACT}"


_ABOVE_EXACT = (
    "is a number cell above 2^53, so Excel may have changed its last digits; "
    "format the column as text and type the id again"
)


def _show_number(number: float) -> str:
    if number.is_integer() and abs(number) < 1e16:
        return f"'{int(number)}'"
    return f"'{number!r}'"


def _mapping_hint(field: str, header: str | None) -> str:
    name_field = NAME_FOR_ID.get(field)
    if name_field is None:
        return ""
    return f"; to use names or emails map the column with --column {name_field}={header or field}"


def _number_id(value: object) -> int | None:
    """The id a number cell holds: whole, positive and at most 2**53; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | np.integer):
        number = int(value)
        return number if 0 < number <= MAX_EXACT_FLOAT else None
    if isinstance(value, float | np.floating):
        real = float(value)
        if math.isfinite(real) and real.is_integer() and 0 < real <= MAX_EXACT_FLOAT:
            return int(real)
    return None


def _number_ids(cells: _Objects) -> tuple[np.ndarray[Any, np.dtype[np.int64]], _Bools]:
    """The ids that number cells hold, and where they hold one (whole, positive, at most
    2**53). A column of floats only, or of ints only, is checked as one array."""
    kind = pd.api.types.infer_dtype(cells, skipna=False)
    if kind == "floating":
        floats = cells.astype(np.float64)
        whole = (
            np.isfinite(floats)
            & (floats > 0)
            & (floats <= MAX_EXACT_FLOAT)
            & (np.floor(floats) == floats)
        )
        return np.where(whole, floats, 0).astype(np.int64), whole
    if kind == "integer" and all(-(2**63) <= v < 2**63 for v in (cells.min(), cells.max())):
        ints = cells.astype(np.int64)
        return ints, (ints > 0) & (ints <= MAX_EXACT_FLOAT)
    # Cell by cell, not as one array: a column mixing int and float cells becomes float64
    # there, and an int cell of 2**53 + 1 would pass as 2**53.
    found = [_number_id(v) for v in cells]
    whole = np.array([v is not None for v in found], dtype=bool)
    numbers = np.array([v or 0 for v in found], dtype=np.int64)
    return numbers, whole


def _text_mask(cells: _Objects) -> _Bools:
    """True where a cell is text. CSV columns are all text: checked once, not per cell."""
    if pd.api.types.infer_dtype(cells, skipna=False) in ("string", "empty"):
        return np.ones(len(cells), dtype=bool)
    mask: _Bools = _each(cells, _is_text)
    return mask


def _is_text(value: object) -> bool:
    return isinstance(value, str)


def _has_at(text: str) -> bool:
    return "@" in text


def _each(
    values: Iterable[Any], test: Callable[[Any], Any], dtype: type[np.generic] = np.bool_
) -> Any:
    """`test` of every value, as an array: a C-level map, no Python frame when `test` is
    a built-in such as `str.isdecimal` or `len`."""
    items = values if isinstance(values, np.ndarray) else list(values)
    return np.fromiter(map(test, items), dtype=dtype, count=len(items))


def _each_text(values: _Objects, change: Callable[[str], str]) -> _Objects:
    """`change` (a str method such as `str.strip`) applied to every text value."""
    changed: _Objects = np.fromiter(map(change, values), dtype=object, count=len(values))
    return changed


def _as_text(column: pd.Series) -> pd.Series:
    """A text field's cells as stripped text; a whole number cell reads as its digits."""
    cells = column.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(cells, skipna=False) not in ("string", "empty"):
        cells = _each(cells, _cell_text, np.object_)
    return pd.Series(_each_text(cells, str.strip), index=column.index, dtype=object, copy=False)


def _cell_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_EXACT_FLOAT:
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _given(ids: pd.DataFrame, names: pd.DataFrame, field: str) -> _Bools:
    """Rows where `field` is given, by id or by a name column standing in for it."""
    # A copy: pandas may hand out a read-only view, and `|=` below writes into it.
    given = (
        ids[field].notna().to_numpy(dtype=bool, copy=True)
        if field in ids
        else np.zeros(len(ids.index), dtype=bool)
    )
    alternatives = [NAME_FOR_ID.get(field)]
    if field == "customer":
        alternatives.append("customer_user_id")
    for name in alternatives:
        if name and name in names:
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
        blank = pd.Series(_filled(size, ""), index=index, dtype=object, copy=False)
        return blank, blank.copy(deep=False)
    text = _as_text(raw_text).to_numpy(dtype=object) if raw_text is not None else _filled(size, "")
    if raw_type is None:
        kind = _filled(size, "")
    else:
        typed = _as_text(raw_type).to_numpy(dtype=object)
        kind = _each_text(typed, str.lower)
        bad_kind = (kind != "") & ~np.isin(kind, MESSAGE_TYPES)
        problems.add(
            bad_kind,
            "invalid_message_type",
            "message_type: '"
            + _each(typed[bad_kind], _shorten, np.object_)
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


def _previous_id(sheet: Sheet, name: str) -> pd.Series:
    """An id an earlier results workbook recorded (chat_id, message_id), or <NA>."""
    column = sheet.column(name) if name in sheet.previous else None
    if column is None:
        return pd.Series(pd.NA, index=sheet.cells.index, dtype="Int64")
    return parse_ids(column, name).ids


def _duplicates(
    ids: pd.DataFrame,
    names: pd.DataFrame,
    message: pd.Series,
    message_type: pd.Series,
    *,
    among: _Bools,
) -> _Bools:
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
            values = _each_text(values, str.lower)
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
