"""Reading: a CSV or Excel file becomes a `Sheet` of raw cells with their `source_row`.

Cells keep the type the file gave them (text from CSV; text, float, bool or date from a
workbook) so that validation can tell `4188.0` (a number cell) from `'4188.0'` (text), and
so that the results workbook echoes every value untouched. Nothing here parses an id:
CSV is read as text only, so a digit column with a blank never becomes float64.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd
from xlsxwriter.utility import xl_col_to_name

from bulk_chats.errors import InputError
from bulk_chats.fields import (
    ALIASES,
    FED_BACK_COLUMNS,
    FIELD_NAMES,
    RESULT_COLUMNS,
    WORKSHEET_COLUMNS,
    headers_for,
    names_for,
)
from bulk_chats.sheet.csv_file import read_csv
from bulk_chats.sheet.workbook import read_workbook

MAX_INPUT_COLUMNS = WORKSHEET_COLUMNS - len(RESULT_COLUMNS)
"""Input columns a sheet may have: the results workbook adds its own to a worksheet's."""

CSV_SUFFIXES = frozenset({".csv", ".tsv", ".txt"})
WORKBOOK_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xls", ".xlsb", ".ods"})
_SEPARATORS = re.compile(r"[\s_\-]+")


class TwoColumns(InputError):
    """Two columns give one field and no `--column` says which to read. `field` names it,
    so that the web page can show the columns for the user to choose rather than stop."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def normalise_header(header: object) -> str:
    """Lower case, trimmed, with runs of spaces, hyphens and underscores made one `_`."""
    return _SEPARATORS.sub("_", str(header).strip().lower()).strip("_")


def field_for_header(header: object) -> str | None:
    """The field a header names (directly or by alias), or None."""
    name = normalise_header(header)
    if name in FIELD_NAMES:
        return name
    return ALIASES.get(name)


class RowNumbers(Sequence[int]):
    """Row numbers as the spreadsheet shows them, held as one int64 array: a list of a
    million Python ints costs 36 MiB, this 8. Reads like a list of ints (and compares
    equal to one)."""

    __slots__ = ("_numbers",)

    def __init__(self, numbers: Iterable[int] | np.ndarray[Any, Any]) -> None:
        self._numbers = np.array(numbers, dtype=np.int64)
        self._numbers.flags.writeable = False

    def __len__(self) -> int:
        return len(self._numbers)

    @overload
    def __getitem__(self, index: int) -> int: ...

    @overload
    def __getitem__(self, index: slice) -> RowNumbers: ...

    def __getitem__(self, index: int | slice) -> int | RowNumbers:
        if isinstance(index, slice):
            return RowNumbers(self._numbers[index])
        return int(self._numbers[index])

    def __iter__(self) -> Iterator[int]:
        return iter(self._numbers.tolist())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RowNumbers):
            return bool(np.array_equal(self._numbers, other._numbers))
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray[Any, Any]:
        return self._numbers if dtype is None else self._numbers.astype(dtype)

    def __repr__(self) -> str:
        shown = self._numbers[:10].tolist()
        return f"RowNumbers({shown}{'...' if len(self) > 10 else ''}, {len(self)} rows)"


@dataclass(frozen=True, slots=True)
class Sheet:
    """The data rows of one sheet, before validation.

    `cells` has one column per input column, labelled by position (headers may repeat
    or be blank), object dtype, blank cells as "". `source_rows[i]` is the row number
    the spreadsheet shows for data row `i` (header = 1). `fields` maps a field to its
    column position; `fed_back` maps the result columns (`status`, `chat_id`, …) of a
    results workbook fed back in to theirs; `echoed` lists the positions of the
    columns the results workbook repeats.
    """

    path: Path
    headers: list[str]
    cells: pd.DataFrame
    source_rows: Sequence[int]
    fields: dict[str, int]
    fed_back: dict[str, int] = field(default_factory=dict)
    echoed: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cells)

    @property
    def transcript(self) -> bool:
        """Whether the sheet is a transcript: a `conversation` column makes each row one
        message, and the rows of one conversation one chat (docs/transcripts.md)."""
        return "conversation" in self.fields

    def column(self, name: str) -> pd.Series | None:
        """The cells of a field (or of an earlier result column), or None if absent."""
        position = self.fields.get(name, self.fed_back.get(name))
        return None if position is None else self.cells[position]


def load_sheet(
    path: Path,
    *,
    sheet: str | None = None,
    columns: Mapping[str, str] | None = None,
    require: bool = True,
    chats: bool = False,
) -> Sheet:
    """Read `path` (CSV or workbook) into a `Sheet`.

    `sheet` picks a workbook's sheet by name (default: the first); `columns` maps a field
    to a header that the aliases don't cover (`--column FIELD=HEADER`; an empty header
    reads the field from no column). `require=False`
    accepts a sheet that lacks a required column, so that the web page can show its
    headers for the user to map. With `chats` the rows name chats that exist (`update`,
    `close`): `chat_id` is the required field (a results workbook's own `chat_id` column
    too), and is not echoed, since the results write it in their `chat_id` column.
    Raises InputError with one human line for anything unusable.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a spreadsheet")
    if not path.exists():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        if sheet is not None:
            raise InputError(f"{path}: --sheet applies to workbooks, not to CSV files")
        rows = read_csv(path)
    elif suffix in WORKBOOK_SUFFIXES:
        rows = read_workbook(path, sheet)
    else:
        raise InputError(
            f"{path}: unsupported file type {suffix or '(none)'!r}; use .csv, .xlsx, .xlsm, "
            ".xls or .ods"
        )
    return _to_sheet(path, rows, columns or {}, require=require, chats=chats)


def _blank_values(column: pd.Series) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """True where a cell is empty or only white space.

    Vectorised: one comparison for the whole column, then a look at only the text cells
    that are not plainly "" (a number or date cell is never blank).
    """
    values = column.to_numpy(dtype=object)
    blank: np.ndarray[Any, np.dtype[np.bool_]] = np.asarray(values == "", dtype=bool)
    rest = np.flatnonzero(~blank)
    if len(rest):
        text = rest[np.fromiter(map(isinstance, values[rest], repeat(str)), dtype=bool)]
        # Not "": so white space only exactly when isspace().
        blank[text] = np.fromiter(map(str.isspace, values[text]), dtype=bool, count=len(text))
    return blank


def _blank_rows(rows: pd.DataFrame) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """True for each row whose cells are all blank.

    Column by column over the rows still blank so far: once a column is mostly filled,
    the columns after it cost next to nothing.
    """
    candidates = np.arange(len(rows))
    for position in range(rows.shape[1]):
        if not len(candidates):
            break
        candidates = candidates[_blank_values(rows.iloc[candidates, position])]
    blank = np.zeros(len(rows), dtype=bool)
    blank[candidates] = True
    return blank


def _to_sheet(
    path: Path,
    rows: pd.DataFrame,
    columns: Mapping[str, str],
    *,
    require: bool = True,
    chats: bool = False,
) -> Sheet:
    blank = _blank_rows(rows)
    filled = np.flatnonzero(~blank)
    if not len(filled):
        raise InputError(f"{path}: the file is empty")
    first = int(filled[0])
    headers = [str(h).strip() for h in rows.iloc[first]]
    while headers and not headers[-1] and _blank_values(rows.iloc[:, len(headers) - 1]).all():
        headers.pop()
    if len(headers) > MAX_INPUT_COLUMNS:
        raise InputError(
            f"{path}: {len(headers):,} columns, more than a results workbook can hold beside "
            f"its own ({MAX_INPUT_COLUMNS:,}); remove the columns the import does not need"
        )
    keep = filled[1:]
    if len(keep) and keep[-1] - keep[0] == len(keep) - 1:
        # No blank row among the data (the usual case): a slice, not a copy.
        cells = rows.iloc[int(keep[0]) : int(keep[-1]) + 1, : len(headers)]
    else:
        cells = rows.iloc[keep, : len(headers)]
    cells = cells.reset_index(drop=True)
    cells.columns = pd.RangeIndex(len(headers))
    if cells.empty:
        raise InputError(f"{path}: no data rows below the header")
    fields, fed_back = _map_columns(path, headers, columns)
    if chats and "chat_id" not in fields and "chat_id" in fed_back:
        fields["chat_id"] = fed_back["chat_id"]
    if not fed_back.keys() >= FED_BACK_COLUMNS:
        fed_back = {}
    if require:
        check_columns(path, fields, chats=chats)
    unechoed = {*fed_back.values(), *([fields["chat_id"]] if chats and "chat_id" in fields else [])}
    echoed = [i for i in range(len(headers)) if i not in unechoed]
    return Sheet(
        path=path,
        headers=headers,
        cells=cells,
        source_rows=RowNumbers(keep + 1),
        fields=fields,
        fed_back=fed_back,
        echoed=echoed,
    )


def _map_columns(
    path: Path, headers: list[str], columns: Mapping[str, str]
) -> tuple[dict[str, int], dict[str, int]]:
    """Field → column position, from `--column` first, then names and aliases. A field
    mapped to no header (`--column FIELD=`) is read from no column, whatever the headers
    say: that column is echoed as any other."""
    fields: dict[str, int] = {}
    for name, header in columns.items():
        if name not in FIELD_NAMES:
            raise InputError(
                f"--column {name}={header}: unknown field {name!r}; fields are "
                + ", ".join(FIELD_NAMES)
            )
        if not header:
            continue
        matches = [i for i, h in enumerate(headers) if h == header] or [
            i for i, h in enumerate(headers) if normalise_header(h) == normalise_header(header)
        ]
        if not matches:
            raise InputError(
                f"{path}: --column {name}={header}: no column headed {header!r}; the headers "
                "are " + ", ".join(repr(h) for h in headers if h)
            )
        fields[name] = matches[0]
    mapped = set(fields.values())
    fed_back: dict[str, int] = {}
    for position, header in enumerate(headers):
        if position in mapped:
            continue
        normal = normalise_header(header)
        if normal in RESULT_COLUMNS:
            fed_back.setdefault(normal, position)
            continue
        found = field_for_header(header)
        if found is None or found in columns:
            continue
        if found in fields:
            other = headers[fields[found]]
            raise TwoColumns(
                f"{path}: two columns give {found}: {other!r} "
                f"(column {xl_col_to_name(fields[found])}) and {header!r} "
                f"(column {xl_col_to_name(position)}); remove one, or map the one to "
                f"use with --column {found}=HEADER",
                found,
            )
        fields[found] = position
    return fields, fed_back


def check_columns(path: Path, fields: Mapping[str, int], *, chats: bool = False) -> None:
    """Raise InputError when a sheet's `fields` lack what a run reads: `chat_id` with
    `chats` (`update`, `close`), else `application` and a customer column. The web page
    reads a sheet once with `require=False` and asks this for each kind of run."""
    (_require_chat if chats else _require)(path, fields)


def _require_chat(path: Path, fields: Mapping[str, int]) -> None:
    if "chat_id" not in fields:
        raise InputError(
            f"{path}: no chat_id column (looked for {', '.join(headers_for('chat_id'))}); "
            "name one with --column chat_id=HEADER"
        )


def _require(path: Path, fields: Mapping[str, int]) -> None:
    if "application" not in fields:
        raise InputError(
            f"{path}: no application column (looked for {', '.join(headers_for('application'))}"
            "); name one with --column application=HEADER"
        )
    customer_names = names_for("customer")
    if not {"customer", *customer_names} & fields.keys():
        raise InputError(
            f"{path}: no customer column (looked for {', '.join(headers_for('customer'))}, or "
            f"{' / '.join(customer_names)}); name one with --column customer=HEADER"
        )
    if "conversation" in fields and "message" not in fields:
        raise InputError(
            f"{path}: a conversation column makes each row one message, but there is no "
            f"message column (looked for {', '.join(headers_for('message'))}); name one "
            "with --column message=HEADER"
        )
