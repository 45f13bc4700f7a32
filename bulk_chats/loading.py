"""Reading: a CSV or Excel file becomes a `Sheet` of raw cells with their `source_row`.

Cells keep the type the file gave them (text from CSV; text, float, bool or date from a
workbook) so that validation can tell `4188.0` (a number cell) from `'4188.0'` (text), and
so that the results workbook echoes every value untouched. Nothing here parses an id:
CSV is read as text only, so a digit column with a blank never becomes float64.
"""

from __future__ import annotations

import codecs
import csv
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd

from bulk_chats.errors import InputError

ID_FIELDS = ("customer", "application", "assignee", "department", "message_agent")
"""Fields that hold a HelpCrunch id."""

NAME_FIELDS = (
    "customer_email",
    "customer_user_id",
    "assignee_email",
    "department_name",
    "message_agent_email",
)
"""Fields that name what an id field would number; `import` resolves them to ids."""

TEXT_FIELDS = ("message", "message_type")

FIELDS = ID_FIELDS + NAME_FIELDS + TEXT_FIELDS

ALIASES: dict[str, str] = {
    "customerid": "customer",
    "customer_id": "customer",
    "application_id": "application",
    "applicationid": "application",
    "app": "application",
    "app_id": "application",
    "assignee_id": "assignee",
    "agent": "assignee",
    "agent_id": "assignee",
    "department_id": "department",
    "dept": "department",
    "dept_id": "department",
    "email": "customer_email",
    "customer_mail": "customer_email",
    "user_id": "customer_user_id",
    "userid": "customer_user_id",
    "customer_userid": "customer_user_id",
    "agent_email": "assignee_email",
    "assignee_mail": "assignee_email",
    "dept_name": "department_name",
    "department_title": "department_name",
    "message_text": "message",
    "text": "message",
    "message_agent_id": "message_agent",
    "sender_email": "message_agent_email",
}
"""Header (normalised) → field, beyond each field's own name."""

RESULT_COLUMNS = (
    "source_row",
    "status",
    "chat_id",
    "message_id",
    "error_code",
    "error_message",
    "http_status",
    "attempts",
    "resolved_customer",
    "resolved_assignee",
    "resolved_department",
    "resolved_message_agent",
)
"""Columns the results workbook adds. Read back, they are not input: the next results
workbook writes them afresh rather than echoing the old ones."""

CSV_SUFFIXES = frozenset({".csv", ".tsv", ".txt"})
WORKBOOK_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xls", ".xlsb", ".ods"})
_DELIMITERS = ",;\t"
_SAMPLE_BYTES = 65536
_DECODE_CHUNK = 1 << 20
_SEPARATORS = re.compile(r"[\s_\-]+")


def normalise_header(header: object) -> str:
    """Lower case, trimmed, with runs of spaces, hyphens and underscores made one `_`."""
    return _SEPARATORS.sub("_", str(header).strip().lower()).strip("_")


def field_for_header(header: object) -> str | None:
    """The field a header names (directly or by alias), or None."""
    name = normalise_header(header)
    if name in FIELDS:
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
    column position; `previous` maps the columns of an earlier results workbook
    (`chat_id`, `message_id`, `status`) to theirs; `echoed` lists the positions of the
    columns the results workbook repeats.
    """

    path: Path
    headers: list[str]
    cells: pd.DataFrame
    source_rows: Sequence[int]
    fields: dict[str, int]
    previous: dict[str, int] = field(default_factory=dict)
    echoed: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cells)

    def column(self, name: str) -> pd.Series | None:
        """The cells of a field (or of an earlier result column), or None if absent."""
        position = self.fields.get(name, self.previous.get(name))
        return None if position is None else self.cells[position]


def load_sheet(
    path: Path,
    *,
    sheet: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> Sheet:
    """Read `path` (CSV or workbook) into a `Sheet`.

    `sheet` picks a workbook's sheet by name (default: the first); `columns` maps a field
    to a header that the aliases don't cover (`--column FIELD=HEADER`). Raises InputError
    with one human line for anything unusable.
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
        rows = _read_csv(path)
    elif suffix in WORKBOOK_SUFFIXES:
        rows = _read_workbook(path, sheet)
    else:
        raise InputError(
            f"{path}: unsupported file type {suffix or '(none)'!r}; use .csv, .xlsx, .xlsm, "
            ".xls or .ods"
        )
    return _to_sheet(path, rows, columns or {})


def _read_csv(path: Path) -> pd.DataFrame:
    """Every cell as text; the header is row 0. Blank lines stay, to keep row numbers.

    pandas' C parser reads the file straight from disk (no copy of the text in memory,
    so a million rows stay within a few hundred MiB). It refuses a file that starts with a
    blank line or has a row with more cells than the first one, both of which a
    spreadsheet opens without complaint: those files are read again with the csv module,
    short rows padded with "".
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(_SAMPLE_BYTES)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if not head.strip() and size <= len(head):
        raise InputError(f"{path}: the file is empty")
    if b"\x00" in head:
        raise InputError(f"{path}: not a text file (it holds binary data); expected CSV")
    encoding = _encoding(path)
    delimiter = _sniff_delimiter(head.decode(encoding, errors="ignore"))
    try:
        frame = pd.read_csv(
            path,
            sep=delimiter,
            header=None,
            dtype=object,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            encoding=encoding,
            engine="c",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError):
        return _read_csv_records(path, encoding, delimiter)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    frame.columns = pd.RangeIndex(frame.shape[1])
    return frame


def _read_csv_records(path: Path, encoding: str, delimiter: str) -> pd.DataFrame:
    """The csv module's reading of what pandas refused: ragged rows, leading blank lines,
    or a quote left open (which it reports)."""
    with path.open(encoding=encoding, newline="") as handle:
        # strict: a quote left open would otherwise swallow every later row into one cell.
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        try:
            records = list(reader)
        except csv.Error as exc:
            raise InputError(
                f"{path}: cannot parse as CSV (line {reader.line_num}: {exc})"
            ) from None
    width = max(map(len, records), default=0)
    if not width:
        raise InputError(f"{path}: the file is empty")
    for record in records:
        if len(record) < width:
            record.extend([""] * (width - len(record)))
    return pd.DataFrame(records, dtype=object)


def _encoding(path: Path) -> str:
    """UTF-8 (with or without BOM), else the Windows code page Excel writes.

    Checked by decoding the file a chunk at a time, so its text is never held whole.
    """
    if _decodes(path, "utf-8-sig") is None:
        return "utf-8-sig"
    failure = _decodes(path, "cp1252")
    if failure is None:
        return "cp1252"
    byte, offset = failure
    raise InputError(
        f"{path}: cannot decode byte 0x{byte:02x} at offset {offset}; save the file as UTF-8"
    )


def _decodes(path: Path, encoding: str) -> tuple[int, int] | None:
    """None when all of `path` decodes as `encoding`; else the first bad byte and its offset."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_DECODE_CHUNK):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    # Positions count in what the decoder held: the chunk after any bytes
                    # of a character the previous chunk left unfinished.
                    held = len(exc.object) - len(chunk)
                    return exc.object[exc.start], offset - held + exc.start
                offset += len(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        return exc.object[exc.start], offset - len(exc.object) + exc.start
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    return None


def _sniff_delimiter(text: str) -> str:
    """`,` `;` or tab, whichever the first lines use consistently (else the header's most
    frequent)."""
    sample = text[:_SAMPLE_BYTES]
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        header = next((line for line in sample.splitlines() if line.strip()), "")
        return max(_DELIMITERS, key=header.count)


def _read_workbook(path: Path, sheet: str | None) -> pd.DataFrame:
    from python_calamine import CalamineWorkbook

    try:
        if path.suffix.lower() in {".xlsx", ".xlsm"} and not zipfile.is_zipfile(path):
            raise InputError(_not_a_workbook(path))
        book = CalamineWorkbook.from_path(str(path))
        names = book.sheet_names
        if sheet is None:
            if not names:
                raise InputError(f"{path}: the workbook has no sheets")
            chosen = book.get_sheet_by_index(0)
        elif sheet in names:
            chosen = book.get_sheet_by_name(sheet)
        else:
            listed = ", ".join(repr(n) for n in names)
            raise InputError(f"{path}: no sheet named {sheet!r}; the workbook has {listed}")
        data: list[list[Any]] = chosen.to_python(skip_empty_area=False)
    except InputError:
        raise
    except Exception as exc:  # calamine raises its own types for every broken file
        raise InputError(_not_a_workbook(path, exc)) from None
    if not data:
        raise InputError(f"{path}: the sheet is empty")
    return pd.DataFrame(data, dtype=object).fillna("")


def _not_a_workbook(path: Path, exc: Exception | None = None) -> str:
    text = str(exc).lower() if exc else ""
    if "password" in text or "encrypt" in text or _is_encrypted_package(path):
        return f"{path}: the workbook is password-protected; save an unprotected copy"
    return f"{path}: not a readable {path.suffix.lower()} workbook (damaged or another format)"


def _is_encrypted_package(path: Path) -> bool:
    """Excel saves a protected workbook as an OLE container holding an EncryptedPackage."""
    try:
        with path.open("rb") as handle:
            head = handle.read(1 << 20)
    except OSError:
        return False
    return head.startswith(b"\xd0\xcf\x11\xe0") and "EncryptedPackage".encode("utf-16-le") in head


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


def _to_sheet(path: Path, rows: pd.DataFrame, columns: Mapping[str, str]) -> Sheet:
    blank = _blank_rows(rows)
    filled = np.flatnonzero(~blank)
    if not len(filled):
        raise InputError(f"{path}: the file is empty")
    first = int(filled[0])
    headers = [str(h).strip() for h in rows.iloc[first]]
    while headers and not headers[-1] and _blank_values(rows.iloc[:, len(headers) - 1]).all():
        headers.pop()
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
    fields, previous = _map_columns(path, headers, columns)
    if not ({"source_row", "status", "chat_id"} <= previous.keys()):
        previous = {}
    echoed = [i for i in range(len(headers)) if i not in previous.values()]
    _require(path, fields)
    return Sheet(
        path=path,
        headers=headers,
        cells=cells,
        source_rows=RowNumbers(keep + 1),
        fields=fields,
        previous=previous,
        echoed=echoed,
    )


def _map_columns(
    path: Path, headers: list[str], columns: Mapping[str, str]
) -> tuple[dict[str, int], dict[str, int]]:
    """Field → column position, from `--column` first, then names and aliases."""
    fields: dict[str, int] = {}
    for name, header in columns.items():
        if name not in FIELDS:
            raise InputError(
                f"--column {name}={header}: unknown field {name!r}; fields are " + ", ".join(FIELDS)
            )
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
    previous: dict[str, int] = {}
    for position, header in enumerate(headers):
        if position in mapped:
            continue
        normal = normalise_header(header)
        if normal in RESULT_COLUMNS:
            previous.setdefault(normal, position)
            continue
        found = field_for_header(header)
        if found is None or found in columns:
            continue
        if found in fields:
            other = headers[fields[found]]
            raise InputError(
                f"{path}: two columns give {found}: {other!r} (column {_letter(fields[found])}) "
                f"and {header!r} (column {_letter(position)}); remove one, or map the one to "
                f"use with --column {found}=HEADER"
            )
        fields[found] = position
    return fields, previous


def _require(path: Path, fields: Mapping[str, int]) -> None:
    if "application" not in fields:
        raise InputError(
            f"{path}: no application column (looked for application, application_id, app, "
            "app_id); name one with --column application=HEADER"
        )
    if not {"customer", "customer_email", "customer_user_id"} & fields.keys():
        raise InputError(
            f"{path}: no customer column (looked for customer, customer_id, customerid, or "
            "customer_email / customer_user_id); name one with --column customer=HEADER"
        )


def _letter(position: int) -> str:
    """The spreadsheet's column letter for a 0-based position (0 → A, 26 → AA)."""
    letters = ""
    position += 1
    while position:
        position, rest = divmod(position - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters
