"""The results workbook on disk.

Written with xlsxwriter in its constant-memory mode (a row at a time, so 100,000 rows cost
no more memory than one), or as UTF-8 CSV with a BOM when `--out` ends in `.csv`; put in
place by `results.files`, so that a run killed mid-write leaves no half workbook.
"""

from __future__ import annotations

import datetime as dt
import math
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xlsxwriter
from xlsxwriter.exceptions import FileCreateError
from xlsxwriter.utility import xl_col_to_name

from bulk_chats.errors import InputError, ReportError
from bulk_chats.fields import WORKSHEET_COLUMNS, WORKSHEET_ROWS
from bulk_chats.records import Status
from bulk_chats.results.csv_file import CHUNK_ROWS, write_csv
from bulk_chats.results.files import place, remove_leftovers, staging

STATUS_COLOURS = {
    Status.VALID: "#E2EFDA",
    Status.CREATED: "#C6EFCE",
    Status.ALREADY_CREATED: "#DDEBF7",
    Status.INVALID: "#FFC7CE",
    Status.FAILED: "#FFC7CE",
    Status.MESSAGE_FAILED: "#FFEB9C",
    Status.UNKNOWN: "#FFEB9C",
    Status.DUPLICATE: "#EDEDED",
    Status.NOT_SENT: "#EDEDED",
    Status.STATUS_FAILED: "#FFEB9C",
    Status.UPDATED: "#C6EFCE",
    Status.ALREADY_UPDATED: "#DDEBF7",
    Status.SKIPPED: "#EDEDED",
    Status.UNCHANGED: "#EDEDED",
    Status.EXPORTED: "#C6EFCE",
}


MAX_TEXT = 32_767
"""Characters (UTF-16 units) a workbook cell holds; Excel refuses a file with a longer one."""

DATE_FORMATS = {
    dt.datetime: "yyyy-mm-dd hh:mm:ss",
    dt.date: "yyyy-mm-dd",
    dt.time: "hh:mm:ss",
    dt.timedelta: "[h]:mm:ss",
}
"""The number format of each kind of date cell, as a spreadsheet shows it."""

_EXACT_BELOW = 10**15
"""Excel keeps 15 significant digits: integers from here up are written as text."""

Written = Callable[[int, int], None]
"""Told, as the results are written, the rows written so far and the rows in all."""


@dataclass(frozen=True, slots=True)
class Summary:
    """What the summary sheet says besides the counts."""

    input_path: Path
    mode: str
    api_root: str = ""
    written_at: dt.datetime | None = None
    input_name: str | None = None
    """The input as its user knows it (the page's upload), else `input_path` is shown."""


def check_room(out: Path, rows: int, columns: int) -> None:
    """Raise InputError when `rows` data rows by `columns` columns cannot go into `out`: a
    worksheet holds 1,048,576 rows (the header included) and 16,384 columns; CSV has no
    limit. Call it before sending, so that a run never ends unable to write its results.
    """
    if out.suffix.lower() == ".csv":
        return
    if rows + 1 > WORKSHEET_ROWS:
        raise InputError(
            f"{out}: {rows:,} rows are more than a workbook sheet holds "
            f"({WORKSHEET_ROWS - 1:,} below the header); write CSV with --out NAME.csv"
        )
    if columns > WORKSHEET_COLUMNS:
        raise InputError(
            f"{out}: {columns:,} columns are more than a workbook sheet holds "
            f"({WORKSHEET_COLUMNS:,}); write CSV with --out NAME.csv"
        )


def prepare_out(out: Path, rows: int, columns: int) -> None:
    """Make sure the results can be written to `out` before anything is sent: they fit
    (`check_room`), and its folder exists and takes a new file. Raises InputError."""
    check_room(out, rows, columns)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out.parent):
            pass
    except OSError as exc:
        raise InputError(f"{out}: cannot write the results there ({exc.strerror})") from None
    remove_leftovers(out.parent)


def write_results(
    results: pd.DataFrame,
    out: Path,
    summary: Summary,
    *,
    replace: bool = True,
    written: Written | None = None,
) -> Path:
    """Write `results` to `out` (xlsx, or csv when `out` ends in .csv), readable and
    writable by its owner only, and return the path written. `written` hears how far the
    writing is after each chunk of rows (a million rows take half a minute).

    With `replace` False an existing file is never replaced: the results go to the first
    free name of `numbered(out)` instead (for the default path, which another run may
    take while this one runs). Raises InputError when the results do not fit a workbook
    (see `check_room`), ReportError when they cannot be written.
    """
    check_room(out, len(results), results.shape[1])
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with staging(out) as staged:
            if out.suffix.lower() == ".csv":
                write_csv(results, staged, written=written)
            else:
                _write_xlsx(results, staged, summary, scratch=staged.parent, written=written)
            return place(staged, out, replace=replace)
    except OSError as exc:
        raise ReportError(f"{out}: cannot write the results ({exc.strerror})") from None
    except FileCreateError as exc:
        raise ReportError(f"{out}: cannot write the results ({exc})") from None


def count_statuses(results: pd.DataFrame) -> dict[str, int]:
    """Rows by status, in the order of `Status`."""
    counts = results["status"].value_counts()
    return {s.value: int(counts[s.value]) for s in Status if counts.get(s.value, 0)}


def count_error_codes(results: pd.DataFrame) -> dict[str, int]:
    """Rows by error code; a row with several codes counts once for each."""
    codes = results["error_code"]
    counts: Counter[str] = Counter()
    for text in codes[codes.notna() & codes.ne("")]:
        counts.update(code.strip() for code in str(text).split(";") if code.strip())
    return dict(counts.most_common())


def _write_xlsx(
    results: pd.DataFrame, path: Path, summary: Summary, *, scratch: Path, written: Written | None
) -> None:
    """The results sheet then the summary sheet."""
    with xlsxwriter.Workbook(str(path), workbook_options(scratch)) as book:
        cut = _write_results_sheet(book, results, written=written)
        _write_summary_sheet(book, results, summary, cut=cut)


def workbook_options(scratch: Path) -> dict[str, Any]:
    """xlsxwriter's options for a workbook written a row at a time, whatever its size,
    keeping its row files in `scratch` (our folder, not the machine's shared temporary
    one)."""
    return {
        "constant_memory": True,
        "tmpdir": str(scratch),
        "use_zip64": True,
        "remove_timezone": True,
        # Only `write()` would act on these; set anyway, so that no later use of it can
        # turn a cell's text into a formula, a link or a number.
        "strings_to_formulas": False,
        "strings_to_urls": False,
        "strings_to_numbers": False,
    }


def _write_results_sheet(book: Any, results: pd.DataFrame, *, written: Written | None) -> int:
    """Write the results sheet; return how many cells were cut to `MAX_TEXT`.

    Text is always written as text, never as a formula or a link, whatever it starts with
    (docs/reference.md › The results workbook): a spreadsheet must never run what a row says.
    A cut cell is named in its row's `error_message`.
    """
    labels = [str(label) for label in results.columns]
    status_at = labels.index("status")
    error_at = labels.index("error_message")
    sheet = book.add_worksheet("results")
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(len(results), 1), len(labels) - 1)
    for position, label in enumerate(labels):
        sample = results.iloc[:200, position].dropna()
        width = max([len(label), *(len(str(v)) for v in sample)], default=8)
        sheet.set_column(position, position, min(max(width + 2, 8), 60))
    header = book.add_format({"bold": True, "bg_color": "#D9D9D9", "bottom": 1})
    cells = CellWriter(book, sheet)
    # A cut header has no row to be named in: the summary's count says it.
    cut = sum(bool(cells.write_text(0, at, label, header)) for at, label in enumerate(labels))
    status_formats = {s.value: book.add_format({"bg_color": c}) for s, c in STATUS_COLOURS.items()}
    for start in range(0, len(results), CHUNK_ROWS):
        chunk = results.iloc[start : start + CHUNK_ROWS]
        columns = [_cell_values(chunk.iloc[:, i]) for i in range(chunk.shape[1])]
        statuses, columns[status_at] = columns[status_at], [None] * len(chunk)
        for row, values in enumerate(zip(*columns, strict=True), start=start + 1):
            too_long = cells.write_row(row, values)
            status = statuses[row - start - 1]
            if status is not None:
                cells.write_text(row, status_at, status, status_formats.get(status))
            if too_long:
                cut += len(too_long)
                note = _cut_note([labels[c] for c in too_long], too_long)
                message = values[error_at]
                cells.write_text(row, error_at, f"{message} | {note}" if message else note)
        if written is not None:
            written(start + len(chunk), len(results))
    return cut


def _cut_note(labels: list[str], columns: list[int]) -> str:
    named = ", ".join(
        f"{label} (column {xl_col_to_name(c)})" for label, c in zip(labels, columns, strict=True)
    )
    return (
        f"cut to the {MAX_TEXT:,} characters a workbook cell holds: {named}; "
        "--out NAME.csv keeps the whole text"
    )


def _cell_values(column: pd.Series) -> list[Any]:
    """A column's cells as Python values, None for a blank (missing, NaN or "")."""
    values = column.to_numpy(dtype=object, copy=True)
    blank = np.asarray(pd.isna(values), dtype=bool)
    # Compared only where not missing: `<NA> == ""` has no truth value.
    blank[~blank] = values[~blank] == ""
    values[blank] = None
    cells: list[Any] = values.tolist()
    return cells


class CellWriter:
    """Writes a row's cells, each as a spreadsheet would hold it: text as text, numbers as
    numbers, booleans, dates and times with a format of their kind."""

    def __init__(self, book: Any, sheet: Any) -> None:
        self._sheet = sheet
        self._dates = {kind: book.add_format({"num_format": f}) for kind, f in DATE_FORMATS.items()}
        self._plain = book.add_format()

    def write_text(self, row: int, column: int, text: str, cell_format: Any = None) -> int:
        """Write `text` as a text cell; return xlsxwriter's answer (non-zero: it was cut).

        In constant-memory mode xlsxwriter takes a text that starts with `<r>` and ends
        with `</r>` for the markup of a rich string, and puts it in the sheet unescaped:
        the cell would lose its text, or the text would add cells (a formula) of its own.
        Such a text is written as a rich string of two plain runs instead, which every
        reader joins back into the text itself. (xlsxwriter escapes a rich string's text
        twice, so a control character in such a text comes back as its `_xHHHH_` escape.)
        """
        if not (text.startswith("<r>") and text.endswith("</r>")):
            return int(self._sheet.write_string(row, column, text, cell_format))
        whole = text.encode("utf-16-le")
        cut = len(whole) > 2 * MAX_TEXT
        if cut:
            # A character the cut would split in two is dropped whole.
            text = whole[: 2 * MAX_TEXT].decode("utf-16-le", errors="ignore")
        runs = [text[:1], cell_format or self._plain, text[1:]]
        self._sheet.write_rich_string(row, column, *runs, *([cell_format] if cell_format else []))
        return -2 if cut else 0

    def write_row(self, row: int, values: tuple[Any, ...]) -> list[int]:
        """Write the cells of `row`, skipping None; return the columns whose text was cut."""
        write_string, write_number = self._sheet.write_string, self._sheet.write_number
        cut = []
        # Text and ordinary numbers (nearly every cell) take the first two branches.
        for column, value in enumerate(values):
            if value is None:
                continue
            kind = type(value)
            if kind is str:
                # `write_text` for the rare text xlsxwriter would take for markup.
                write = self.write_text if value.startswith("<r>") else write_string
                if write(row, column, value):
                    cut.append(column)
            elif (kind is float and math.isfinite(value)) or (
                kind is int and -_EXACT_BELOW < value < _EXACT_BELOW
            ):
                write_number(row, column, value)
            elif self._write_other(row, column, value):
                cut.append(column)
        return cut

    def _write_other(self, row: int, column: int, value: object) -> int:
        """Write any other value; return xlsxwriter's answer (non-zero: the text was cut)."""
        sheet = self._sheet
        if isinstance(value, bool | np.bool_):
            return int(sheet.write_boolean(row, column, bool(value)))
        if isinstance(value, int | np.integer):
            number = int(value)
            if -_EXACT_BELOW < number < _EXACT_BELOW:
                return int(sheet.write_number(row, column, number))
            return int(sheet.write_string(row, column, str(number)))
        if isinstance(value, float | np.floating):
            real = float(value)
            if math.isfinite(real):
                return int(sheet.write_number(row, column, real))
            # An infinity has no cell of its own in a workbook: it is written as the text
            # it reads as. (NaN is pandas' blank and never gets here.)
            return int(sheet.write_string(row, column, str(real)))
        kind = _date_kind(value)
        if kind is not None:
            return int(sheet.write_datetime(row, column, value, self._dates[kind]))
        return self.write_text(row, column, str(value))


def _date_kind(value: object) -> type | None:
    """The key of `DATE_FORMATS` for `value`, or None: not a date, or a date before 1900,
    which a workbook cannot hold as a date (it is written as text)."""
    if isinstance(value, dt.datetime):
        return dt.datetime if value.year >= 1900 else None
    if isinstance(value, dt.date):
        return dt.date if value.year >= 1900 else None
    if isinstance(value, dt.time):
        return dt.time
    if isinstance(value, dt.timedelta):
        return dt.timedelta
    return None


def _write_summary_sheet(book: Any, results: pd.DataFrame, summary: Summary, *, cut: int) -> None:
    bold = book.add_format({"bold": True})
    pairs: list[tuple[object, object]] = [
        ("input", summary.input_name or str(summary.input_path)),
        ("mode", summary.mode),
        ("api", summary.api_root or "(none: nothing was sent)"),
        ("written", (summary.written_at or dt.datetime.now()).strftime("%Y-%m-%d %H:%M:%S")),
        ("rows", len(results)),
    ]
    if cut:
        pairs.append(("cells cut", cut))
    pairs += [("", ""), ("status", "rows"), *count_statuses(results).items(), ("", "")]
    pairs += [("error_code", "rows"), *count_error_codes(results).items()]
    sheet = book.add_worksheet("summary")
    sheet.set_column(0, 0, 24)
    sheet.set_column(1, 1, 60)
    cells = CellWriter(book, sheet)
    for row, (label, value) in enumerate(pairs):
        if label in ("status", "error_code") and value == "rows":
            sheet.write_string(row, 0, label, bold)
            sheet.write_string(row, 1, value, bold)
        else:
            cells.write_row(row, (label or None, value if value != "" else None))
