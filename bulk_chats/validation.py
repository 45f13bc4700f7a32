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
from collections.abc import Callable
from dataclasses import dataclass

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

_EMAIL_FIELDS = ("customer_email", "assignee_email", "message_agent_email")
_ASCII_DIGITS = r"[0-9]+"
_SEPARATED = re.compile(r"[0-9]{1,3}([,.'\u00a0\u202f ][0-9]{3})+")
_FRACTION = re.compile(r"[0-9]*[.,][0-9]+")
_WHOLE_DECIMAL = re.compile(r"[0-9]+\.0*")
_SCIENTIFIC = re.compile(r"[0-9.]+[eE][+-]?[0-9]+")
_DATE = re.compile(r"[0-9]{1,4}[-/.][0-9]{1,2}[-/.][0-9]{1,4}([ T].*)?")
_SIGNED = re.compile(r"[+-][0-9]+")


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem of one row, as the results workbook shows it.

    `code` is stable (`missing_customer`, `invalid_assignee`, …) and names the field.
    """

    field: str
    code: str
    message: str


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


def validate_sheet(sheet: Sheet) -> Validation:
    """Check every row of `sheet`; no request is made, nothing is raised for bad rows."""
    index = sheet.cells.index
    empty = pd.Series("", index=index, dtype=object)
    codes: list[pd.Series] = []
    messages: list[pd.Series] = []

    def add(code: pd.Series, message: pd.Series) -> None:
        codes.append(code)
        messages.append(message)

    ids = pd.DataFrame(index=index)
    blank: dict[str, pd.Series] = {}
    for name in ID_FIELDS:
        column = sheet.column(name)
        if column is None:
            continue
        parsed = parse_ids(column, name, header=sheet.headers[sheet.fields[name]])
        ids[name] = parsed.ids
        blank[name] = parsed.ids.isna() & parsed.code.eq("")
        add(parsed.code, parsed.message)

    names = pd.DataFrame(index=index)
    for name in NAME_FIELDS:
        column = sheet.column(name)
        if column is None:
            continue
        text = _as_text(column)
        names[name] = text
        if name in _EMAIL_FIELDS:
            bad = text.ne("") & ~text.str.contains("@", regex=False)
            add(
                _where(bad, f"invalid_{name}", empty),
                _where(bad, f"{name}: '" + text + "' is not an email address", empty),
            )

    for name, article, alternatives in (
        ("customer", "a", " (or a customer_email / customer_user_id)"),
        ("application", "an", ""),
    ):
        missing = blank.get(name, pd.Series(True, index=index)) & ~_given(ids, names, name)
        add(
            _where(missing, f"missing_{name}", empty),
            _where(
                missing,
                f"{name}: is blank; every row needs {article} {name} id{alternatives}",
                empty,
            ),
        )

    message, message_type = _check_messages(sheet, ids, names, add, empty)

    error_code = _join(codes, index, "; ")
    error_message = _join(messages, index, " | ")
    invalid = error_code.ne("")

    previous_chat_id = _previous_id(sheet, "chat_id")
    previous_message_id = _previous_id(sheet, "message_id")
    done = previous_chat_id.notna()

    status = pd.Series(Status.VALID.value, index=index, dtype=object)
    status[invalid] = Status.INVALID.value
    duplicate = _duplicates(ids, names, message, message_type, among=~invalid)
    status[duplicate] = Status.DUPLICATE.value
    error_code[duplicate] = "duplicate"
    error_message[duplicate] = "repeats an earlier row's chat fields; not sent"
    status[done] = Status.ALREADY_CREATED.value
    error_code[done] = ""
    error_message[done] = ""
    return Validation(
        status=status,
        error_code=error_code,
        error_message=error_message,
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
    index = column.index
    values = pd.Series(pd.NA, index=index, dtype="Int64")
    rejected = pd.Series(False, index=index)
    is_text = _text_mask(column)

    if is_text.any():
        text = column[is_text].astype(str).str.strip()
        digits = text.str.fullmatch(_ASCII_DIGITS) & text.str.len().le(MAX_ID_DIGITS)
        parsed = text[digits].astype("int64")
        positive = parsed.gt(0)
        values[parsed.index[positive.to_numpy()]] = parsed[positive]
        rejected[text.index[(~digits & text.ne("")).to_numpy()]] = True
        rejected[parsed.index[(~positive).to_numpy()]] = True

    others = column[~is_text]
    if len(others):
        # Cell by cell, not pd.to_numeric: a column mixing int and float cells becomes
        # float64 there, and an int cell of 2**53 + 1 would pass as 2**53.
        numbers = pd.array([_number_id(v) for v in others.tolist()], dtype="Int64")
        whole = ~np.asarray(numbers.isna(), dtype=bool)
        values[others.index[whole]] = numbers[whole]
        rejected[others.index[~whole]] = True

    code = pd.Series("", index=index, dtype=object)
    message = pd.Series("", index=index, dtype=object)
    if rejected.any():
        bad = column[rejected]
        code[bad.index] = f"invalid_{field}"
        message[bad.index] = pd.Series(
            [explain_id(v, field, header=header) for v in bad], index=bad.index, dtype=object
        )
    return _Parsed(ids=values, code=code, message=message)


def explain_id(value: object, field: str, *, header: str | None = None) -> str:
    """Why `value` is not an id, and how to fix it: `field: 'value' <rule>; <fix>`."""
    if isinstance(value, bool):
        return f"{field}: {value!r} is a true/false value, not an id"
    if isinstance(value, dt.datetime | dt.date):
        return f"{field}: '{value.isoformat()}' is a date, not an id"
    if isinstance(value, dt.time | dt.timedelta):
        return f"{field}: '{value}' is a time, not an id"
    if isinstance(value, int | np.integer):
        return _explain_integer(int(value), field)
    if isinstance(value, float | np.floating):
        return _explain_number(float(value), field)
    text = str(value).strip()
    shown = f"{field}: '{text}'"
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


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


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


def _text_mask(column: pd.Series) -> pd.Series:
    """True where a cell is text. CSV columns are all text: checked once, not per cell."""
    if pd.api.types.infer_dtype(column, skipna=False) in ("string", "empty"):
        return pd.Series(True, index=column.index)
    return column.map(lambda v: isinstance(v, str))


def _as_text(column: pd.Series) -> pd.Series:
    """A text field's cells as stripped text; a whole number cell reads as its digits."""
    if pd.api.types.infer_dtype(column, skipna=False) in ("string", "empty"):
        return column.astype(str).str.strip()
    return column.map(_cell_text).astype(str).str.strip()


def _cell_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_EXACT_FLOAT:
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _given(ids: pd.DataFrame, names: pd.DataFrame, field: str) -> pd.Series:
    """Rows where `field` is given, by id or by a name column standing in for it."""
    given = ids[field].notna() if field in ids else pd.Series(False, index=ids.index)
    alternatives = [NAME_FOR_ID.get(field)]
    if field == "customer":
        alternatives.append("customer_user_id")
    for name in alternatives:
        if name and name in names:
            given |= names[name].ne("")
    return given


def _check_messages(
    sheet: Sheet,
    ids: pd.DataFrame,
    names: pd.DataFrame,
    add: Callable[[pd.Series, pd.Series], None],
    empty: pd.Series,
) -> tuple[pd.Series, pd.Series]:
    """The first-message columns: type is message or private; a private note needs its
    agent; type or agent without text is a mistake. Returns (text, type) per row."""
    index = sheet.cells.index
    raw_text = sheet.column("message")
    text = _as_text(raw_text) if raw_text is not None else pd.Series("", index=index, dtype=object)
    raw_type = sheet.column("message_type")
    typed = _as_text(raw_type) if raw_type is not None else pd.Series("", index=index, dtype=object)
    kind = typed.str.lower()
    bad_kind = kind.ne("") & ~kind.isin(MESSAGE_TYPES)
    add(
        _where(bad_kind, "invalid_message_type", empty),
        _where(bad_kind, "message_type: '" + typed + "' is neither message nor private", empty),
    )
    kind = kind.where(kind.ne("") | text.eq(""), "message")
    agent_given = _given(ids, names, "message_agent")
    private_alone = kind.eq("private") & ~agent_given & text.ne("")
    add(
        _where(private_alone, "missing_message_agent", empty),
        _where(
            private_alone,
            "message_agent: is blank; a private note needs the agent who writes it",
            empty,
        ),
    )
    orphan = text.eq("") & (kind.ne("") | agent_given)
    add(
        _where(orphan, "missing_message", empty),
        _where(orphan, "message: is blank, but message_type or message_agent is set", empty),
    )
    return text, kind


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
    among: pd.Series,
) -> pd.Series:
    """Rows of `among` whose chat fields repeat an earlier row's of `among`.

    Invalid rows are left out: a bad id reads as blank, so a valid row would otherwise
    count as a repeat of an invalid one that differs from it only in that bad cell.
    """
    keys = pd.concat(
        [ids.astype("string"), names.apply(lambda c: c.str.lower()), message, message_type],
        axis=1,
    ).fillna("")
    repeated: pd.Series = keys[among].duplicated(keep="first")
    return repeated.reindex(keys.index, fill_value=False)


def _where(mask: pd.Series, value: object, empty: pd.Series) -> pd.Series:
    return empty.where(~mask, value)


def _join(parts: list[pd.Series], index: pd.Index, separator: str) -> pd.Series:
    """Join per-row texts with `separator`, skipping blanks (vectorised).

    Codes join with "; " as the API's do; messages with " | ", since a message's own fix
    already follows a "; " (`'4,188' is not a whole number; remove the separator`).
    """
    joined = pd.Series("", index=index, dtype=object)
    for part in parts:
        both = joined.ne("") & part.ne("")
        joined = (joined + np.where(both, separator, "") + part).astype(object)
    return joined
