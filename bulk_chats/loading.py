"""Reading: a CSV or Excel file becomes a `Sheet` of raw cells with their `source_row`.

Cells keep the type the file gave them (text from CSV; text, float, bool or date from a
workbook) so that validation can tell `4188.0` (a number cell) from `'4188.0'` (text), and
so that the results workbook echoes every value untouched. Nothing here parses an id:
CSV is read as text only, so a digit column with a blank never becomes float64.
"""

from __future__ import annotations

import codecs
import csv
import pickle
import re
import struct
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd
from xlsxwriter.utility import xl_col_to_name

from bulk_chats import workbook_reader
from bulk_chats.errors import InputError
from bulk_chats.fields import (
    ALIASES,
    FED_BACK_COLUMNS,
    FIELD_NAMES,
    RESULT_COLUMNS,
    headers_for,
    names_for,
)

MAX_COLUMNS = 16_384 - len(RESULT_COLUMNS)
"""Input columns a sheet may have: a worksheet holds 16,384, and the results add theirs."""

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
) -> Sheet:
    """Read `path` (CSV or workbook) into a `Sheet`.

    `sheet` picks a workbook's sheet by name (default: the first); `columns` maps a field
    to a header that the aliases don't cover (`--column FIELD=HEADER`). `require=False`
    accepts a sheet that lacks a required column, so that the web page can show its
    headers for the user to map. Raises InputError with one human line for anything
    unusable.
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
    return _to_sheet(path, rows, columns or {}, require=require)


def _read_csv(path: Path) -> pd.DataFrame:
    """Every cell as text; the header is row 0. Blank lines stay, to keep row numbers.

    pandas' C parser reads the file straight from disk (no copy of the text in memory,
    so a million rows stay within a few hundred MiB). It takes the width of the table
    from the first line, so it refuses a file that starts with a blank line or has a row
    longer than the first, both of which a spreadsheet opens without complaint: for
    those the csv module finds the widest row first (also reporting a quote left open),
    and pandas reads again at that width, short rows padded with "".
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(_SAMPLE_BYTES)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if not head.strip() and size <= len(head):
        raise InputError(f"{path}: the file is empty")
    if head.startswith(_UTF16_BOMS):
        # Excel's "Unicode text" export: UTF-16 with a byte order mark, tab-separated.
        encoding = "utf-16"
        if _decodes(path, encoding) is not None:
            raise InputError(f"{path}: not valid UTF-16 text, though it starts like it")
    elif b"\x00" in head:
        raise InputError(f"{path}: not a text file (it holds binary data); expected CSV")
    else:
        encoding = _encoding(path)
    delimiter = _sniff_delimiter(head.decode(encoding, errors="ignore"))
    try:
        return _read_csv_frame(path, encoding, delimiter, width=None)
    except (pd.errors.ParserError, pd.errors.EmptyDataError):
        pass
    width = _csv_width(path, encoding, delimiter)
    if not width:
        raise InputError(f"{path}: the file is empty")
    try:
        return _read_csv_frame(path, encoding, delimiter, width=width)
    except (pd.errors.ParserError, pd.errors.EmptyDataError):
        return _read_csv_records(path, encoding, delimiter)


def _read_csv_frame(
    path: Path, encoding: str, delimiter: str, *, width: int | None
) -> pd.DataFrame:
    """pandas' reading: as wide as the first line, or `width` columns."""
    try:
        frame = pd.read_csv(
            path,
            sep=delimiter,
            header=None,
            names=None if width is None else range(width),
            dtype=object,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            encoding=encoding,
            engine="c",
        )
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    frame.columns = pd.RangeIndex(frame.shape[1])
    return frame


def _csv_width(path: Path, encoding: str, delimiter: str) -> int:
    """The most cells in any row, read with the csv module (nothing kept in memory)."""
    with path.open(encoding=encoding, newline="") as handle:
        # strict: a quote left open would otherwise swallow every later row into one cell.
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        try:
            return max(map(len, reader), default=0)
        except csv.Error as exc:
            raise InputError(
                f"{path}: cannot parse as CSV (line {reader.line_num}: {exc})"
            ) from None


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


_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


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


# The workbook is read by `workbook_reader` in a child process held to `READER_MEMORY`:
# a file built to exhaust memory costs a failed child and a one-line error (see there).
READER_MEMORY = 4 << 30
"""Bytes of address space the workbook reader may use."""

READER_TIMEOUT = 600.0
"""Seconds the workbook reader may take."""

_CELLS_PER_BYTE = 50
"""A sheet's rows times columns may be this many times its file's size (or 10 million,
whichever is more): a real sheet that large has a large file; a few cells placed far
apart, in a small file, would make a million-row grid of blanks."""


def _read_workbook(path: Path, sheet: str | None) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix in {".xlsx", ".xlsm", ".xlsb", ".ods"} and not zipfile.is_zipfile(path):
        raise InputError(_not_a_workbook(path))
    if _is_encrypted_package(path):
        raise InputError(_not_a_workbook(path))
    problem = _compound_file_problem(path)
    if problem:
        raise InputError(f"{path}: not a readable {suffix} workbook ({problem})")
    budget = max(10_000_000, _CELLS_PER_BYTE * path.stat().st_size)
    command = [
        sys.executable,
        "-P",
        workbook_reader.__file__,
        str(path),
        sheet or "",
        str(READER_MEMORY),
        str(budget),
    ]
    try:
        # Our own interpreter and code, arguments as a list (no shell): nothing to inject.
        child = subprocess.run(  # noqa: S603
            command, capture_output=True, timeout=READER_TIMEOUT, check=False
        )
        # Trusted: our own child, pickling only the plain values calamine returns.
        answer = pickle.loads(child.stdout) if child.returncode == 0 else None  # noqa: S301
    except subprocess.TimeoutExpired:
        raise InputError(
            f"{path}: reading the workbook took more than {READER_TIMEOUT:.0f} s; "
            "save it again from Excel, or as CSV"
        ) from None
    except (OSError, pickle.UnpicklingError, EOFError):
        answer = None
    if answer is None:
        raise InputError(
            f"{path}: not a readable {suffix} workbook (reading it failed: damaged, or built "
            "to exhaust memory)"
        )
    kind, *details = answer
    if kind == "no sheets":
        raise InputError(f"{path}: the workbook has no sheets")
    if kind == "no such sheet":
        listed = ", ".join(repr(name) for name in details[0])
        raise InputError(f"{path}: no sheet named {sheet!r}; the workbook has {listed}")
    if kind == "too sparse":
        height, width = details
        raise InputError(
            f"{path}: the sheet spans {height:,} rows by {width:,} columns but the file is "
            "too small to fill them (a stray cell far from the data?); delete the empty "
            "rows and columns around the data, or save it as CSV"
        )
    if kind == "error":
        raise InputError(_not_a_workbook(path, details[0]))
    data: list[list[Any]] = details[0]
    if not data:
        raise InputError(f"{path}: the sheet is empty")
    return pd.DataFrame(data, dtype=object).fillna("")


def _not_a_workbook(path: Path, error: str = "") -> str:
    text = error.lower()
    if "password" in text or "encrypt" in text or _is_encrypted_package(path):
        return f"{path}: the workbook is password-protected; save an unprotected copy"
    return f"{path}: not a readable {path.suffix.lower()} workbook (damaged or another format)"


_OLE_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")
_LAST_SECTOR = 0xFFFFFFFA
"""Sector numbers from here up mark chain ends, free and FAT sectors, never a next sector."""


def _compound_file_problem(path: Path) -> str | None:
    """What is structurally wrong with an OLE compound file (the .xls container), or None
    (also for a file that is not one).

    calamine follows sector chains without a bound: a chain that loops back makes it
    allocate until the process dies. So before it reads, every FAT and mini-FAT chain is
    checked to end, every pointer to lie inside its table, and every stream to be no
    larger than the file.
    """
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if len(data) < 512 or not data.startswith(_OLE_MAGIC):
        return None
    try:
        return _compound_structure_problem(data)
    except (struct.error, ValueError):
        return "its structure is damaged"


def _compound_structure_problem(data: bytes) -> str | None:
    shift, mini_shift = struct.unpack_from("<HH", data, 30)
    if shift not in (9, 12) or mini_shift != 6:
        return "its sector sizes are not those of a compound file"
    size = 1 << shift
    sectors = (len(data) - size) // size
    fat_count, directory_start = struct.unpack_from("<II", data, 44)
    cutoff, mini_fat_start, _, difat_start, difat_count = struct.unpack_from("<IIIII", data, 56)
    if fat_count > sectors or difat_count > sectors:
        return "its header counts more sectors than the file holds"

    def sector(number: int) -> bytes:
        if number >= sectors:
            return b""
        return data[size + number * size : size + (number + 1) * size]

    fat_sectors = list(struct.unpack_from("<109I", data, 76))
    for _ in range(difat_count):
        if difat_start >= sectors:
            break
        *entries, difat_start = struct.unpack(f"<{size // 4}I", sector(difat_start))
        fat_sectors += entries
    fat_sectors = fat_sectors[:fat_count]
    if any(number >= sectors for number in fat_sectors):
        return "its sector table points outside the file"
    fat = np.frombuffer(b"".join(sector(n) for n in fat_sectors), dtype="<u4")
    if problem := _chain_problem(fat):
        return problem
    mini_fat = np.frombuffer(b"".join(sector(n) for n in _chain(fat, mini_fat_start)), dtype="<u4")
    if problem := _chain_problem(mini_fat):
        return problem
    directory = b"".join(sector(n) for n in _chain(fat, directory_start))
    for offset in range(0, len(directory) - 127, 128):
        kind = directory[offset + 66]
        start, length = struct.unpack_from("<II", directory, offset + 116)
        if kind not in (1, 2, 5):
            continue
        # A small stream lives in the mini stream, numbered by the mini FAT.
        table = mini_fat if kind == 2 and length < cutoff else fat
        if length > len(data) or (start < _LAST_SECTOR and start >= len(table) and length):
            return "a stream claims more than the file holds"
    return None


def _chain(fat: np.ndarray[Any, Any], start: int) -> list[int]:
    """The sectors of the chain from `start`, in a FAT already checked to have no loops."""
    found = []
    while start < min(_LAST_SECTOR, len(fat)):
        found.append(start)
        start = int(fat[start])
    return found


def _chain_problem(fat: np.ndarray[Any, Any]) -> str | None:
    """Why the chains of `fat` cannot all be followed to their end, or None.

    Every next-sector pointer must lie inside the table, and following pointers from any
    sector must end: checked by doubling (each step squares the walk), so a table of
    n sectors costs log2(n) array operations rather than a walk per chain.
    """
    count = len(fat)
    pointers = fat.astype(np.int64)
    linked = pointers < _LAST_SECTOR
    if (linked & (pointers >= count)).any():
        return "its sector table points outside the file"
    # Sector `count` is a sink that every chain end leads to.
    walk = np.append(np.where(linked, pointers, count), count)
    for _ in range(max(count, 1).bit_length() + 1):
        walk = walk[walk]
    if (walk[:count] != count).any():
        return "a chain of its sectors loops back on itself"
    return None


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


def _to_sheet(
    path: Path, rows: pd.DataFrame, columns: Mapping[str, str], *, require: bool = True
) -> Sheet:
    blank = _blank_rows(rows)
    filled = np.flatnonzero(~blank)
    if not len(filled):
        raise InputError(f"{path}: the file is empty")
    first = int(filled[0])
    headers = [str(h).strip() for h in rows.iloc[first]]
    while headers and not headers[-1] and _blank_values(rows.iloc[:, len(headers) - 1]).all():
        headers.pop()
    if len(headers) > MAX_COLUMNS:
        raise InputError(
            f"{path}: {len(headers):,} columns, more than a results workbook can hold beside "
            f"its own ({MAX_COLUMNS:,}); remove the columns the import does not need"
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
    if not fed_back.keys() >= FED_BACK_COLUMNS:
        fed_back = {}
    echoed = [i for i in range(len(headers)) if i not in fed_back.values()]
    if require:
        _require(path, fields)
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
    """Field → column position, from `--column` first, then names and aliases."""
    fields: dict[str, int] = {}
    for name, header in columns.items():
        if name not in FIELD_NAMES:
            raise InputError(
                f"--column {name}={header}: unknown field {name!r}; fields are "
                + ", ".join(FIELD_NAMES)
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
            raise InputError(
                f"{path}: two columns give {found}: {other!r} "
                f"(column {xl_col_to_name(fields[found])}) and {header!r} "
                f"(column {xl_col_to_name(position)}); remove one, or map the one to "
                f"use with --column {found}=HEADER"
            )
        fields[found] = position
    return fields, fed_back


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
