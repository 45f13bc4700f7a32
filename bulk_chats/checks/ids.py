"""Ids out of cells, a column at a time, and in words why a cell holds none.

The hot path is vectorised: a column of valid ids is parsed by array operations, never by
a Python call per cell. Only rejected cells (few, in any real sheet) go through
`explain_id`, which says what is wrong and how to fix it.

An id is an `int` from its first parse: text is matched against ASCII digits and converted
by integer parsing; a number cell is accepted only when whole and at most 2**53, where a
float still holds every integer exactly (docs/reference.md › Input).
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

from bulk_chats.fields import names_for

MAX_EXACT_FLOAT = 2**53
"""Above this a number cell may already have lost digits (Excel stores floats)."""

MAX_ID_DIGITS = 18
"""Ids longer than this cannot be a 64-bit integer, and no HelpCrunch id is."""

Bools: TypeAlias = np.ndarray[Any, np.dtype[np.bool_]]
Ints: TypeAlias = np.ndarray[Any, np.dtype[np.intp]]
Objects: TypeAlias = np.ndarray[Any, np.dtype[np.object_]]

_CHUNK_ROWS = 65_536
_SEPARATED = re.compile(r"[0-9]{1,3}([,.'\u00a0\u202f ][0-9]{3})+")
_FRACTION = re.compile(r"[0-9]*[.,][0-9]+")
_WHOLE_DECIMAL = re.compile(r"[0-9]+\.0*")
_SCIENTIFIC = re.compile(r"[0-9.]+[eE][+-]?[0-9]+")
_DATE = re.compile(r"[0-9]{1,4}[-/.][0-9]{1,2}[-/.][0-9]{1,4}([ T].*)?")
_SIGNED = re.compile(r"[+-][0-9]+")


@dataclass(frozen=True, slots=True)
class ParsedIds:
    """A column of ids parsed: `ids` (nullable Int64, <NA> where blank or rejected), and
    for each rejected cell (`rejected`) its error `code` and `message`."""

    ids: pd.Series
    code: pd.Series
    message: pd.Series
    rejected: Bools


def filled(size: int, text: str) -> Objects:
    """An object array of `size` references to the one `text` (np.full would make a copy
    of the string for every element)."""
    array = np.empty(size, dtype=object)
    array.fill(text)
    return array


def parse_ids(column: pd.Series, field: str, *, header: str | None = None) -> ParsedIds:
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

    code = filled(size, "")
    message = filled(size, "")
    if rejected.any():
        code[rejected] = f"invalid_{field}"
        message[rejected] = np.array(
            [explain_id(v, field, header=header) for v in cells[rejected]], dtype=object
        )
    return ParsedIds(
        ids=pd.Series(pd.arrays.IntegerArray(values, ~valid), index=column.index, copy=False),
        code=pd.Series(code, index=column.index, dtype=object, copy=False),
        message=pd.Series(message, index=column.index, dtype=object, copy=False),
        rejected=rejected,
    )


def _parse_chunk(
    cells: Objects,
    values: np.ndarray[Any, np.dtype[np.int64]],
    valid: Bools,
    rejected: Bools,
) -> None:
    """Parse `cells` into `values`, `valid` and `rejected` (views of the same length)."""
    size = len(cells)
    is_text = _text_mask(cells)
    text_at = np.arange(size) if is_text.all() else np.flatnonzero(is_text)
    if len(text_at):
        text = each_text(cells[text_at], str.strip)
        length = each(text, len, np.int64)
        # ASCII digits only: int() would take "١٢٣" too.
        digits = each(text, str.isascii) & each(text, str.isdecimal) & (length <= MAX_ID_DIGITS)
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
    shown = f"{field}: '{shorten(text)}'"
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


def shorten(text: str) -> str:
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
    name_fields = names_for(field)
    if not name_fields:
        return ""
    return (
        f"; to use names or emails map the column with --column {name_fields[0]}={header or field}"
    )


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


def _number_ids(cells: Objects) -> tuple[np.ndarray[Any, np.dtype[np.int64]], Bools]:
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


def _text_mask(cells: Objects) -> Bools:
    """True where a cell is text. CSV columns are all text: checked once, not per cell."""
    if pd.api.types.infer_dtype(cells, skipna=False) in ("string", "empty"):
        return np.ones(len(cells), dtype=bool)
    mask: Bools = each(cells, _is_text)
    return mask


def _is_text(value: object) -> bool:
    return isinstance(value, str)


def each(
    values: Iterable[Any], test: Callable[[Any], Any], dtype: type[np.generic] = np.bool_
) -> Any:
    """`test` of every value, as an array: a C-level map, no Python frame when `test` is
    a built-in such as `str.isdecimal` or `len`."""
    items = values if isinstance(values, np.ndarray) else list(values)
    return np.fromiter(map(test, items), dtype=dtype, count=len(items))


def each_text(values: Objects, change: Callable[[str], str]) -> Objects:
    """`change` (a str method such as `str.strip`) applied to every text value."""
    changed: Objects = np.fromiter(map(change, values), dtype=object, count=len(values))
    return changed
