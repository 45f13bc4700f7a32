"""The results workbook: one row per input data row, in input order, plus a summary.

Written with xlsxwriter in constant-memory mode (rows stream to disk, so 100,000 rows
cost no more memory than 100), or as UTF-8 CSV with a BOM when `--out` ends in `.csv`.
The file is written beside its destination and renamed into place, so a run killed
mid-write leaves the previous file (or none), never half a workbook.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import xlsxwriter

from bulk_chats.loading import Sheet
from bulk_chats.records import Outcome, Status
from bulk_chats.validation import Validation

OUTCOME_COLUMNS = ("status", "chat_id", "error_code", "error_message", "http_status", "attempts")
MAX_EXACT_DIGITS = 15
"""Excel keeps 15 significant digits: longer integers are written as text."""

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
}
_STAMPED = re.compile(r"-results-\d{8}-\d{4,6}$")


@dataclass(frozen=True, slots=True)
class Summary:
    """What the summary sheet says besides the counts."""

    input_path: Path
    mode: str
    api_root: str = ""
    written_at: dt.datetime | None = None


def default_out_path(input_path: Path, reports_dir: Path, now: dt.datetime) -> Path:
    """`reports/<input stem>-results-<YYYYmmdd-HHMMSS>.xlsx`.

    A results workbook fed back in keeps its original stem rather than growing a second
    `-results-…` suffix.
    """
    stem = _STAMPED.sub("", input_path.stem)
    return reports_dir / f"{stem}-results-{now:%Y%m%d-%H%M%S}.xlsx"


def build_results(
    sheet: Sheet,
    validation: Validation,
    outcomes: Mapping[int, Outcome],
    *,
    resolved: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The results sheet as a frame: `source_row`, the echoed input columns (original
    headers and values), then the outcome columns, `message_id` when the input has
    messages, and `resolved_*` for each name column.

    Column labels may repeat (inputs may repeat headers), so positions matter, not labels.
    """
    index = sheet.cells.index
    status = validation.status.copy()
    chat_id = validation.previous_chat_id.astype(object).copy()
    message_id = validation.previous_message_id.astype(object).copy()
    error_code = validation.error_code.copy()
    error_message = validation.error_message.copy()
    http_status = pd.Series(None, index=index, dtype=object)
    attempts = pd.Series(None, index=index, dtype=object)
    for position, outcome in outcomes.items():
        status.iat[position] = outcome.status.value
        chat_id.iat[position] = outcome.chat_id
        if outcome.message_id is not None:
            message_id.iat[position] = outcome.message_id
        error_code.iat[position] = outcome.error_code
        error_message.iat[position] = outcome.error_message
        http_status.iat[position] = outcome.http_status
        attempts.iat[position] = outcome.attempts or None

    parts: list[tuple[str, pd.Series]] = [("source_row", pd.Series(sheet.source_rows, index=index))]
    parts += [(sheet.headers[i], sheet.cells[i]) for i in sheet.echoed]
    parts += [
        ("status", status),
        ("chat_id", chat_id),
        ("error_code", error_code),
        ("error_message", error_message),
        ("http_status", http_status),
        ("attempts", attempts),
    ]
    if "message" in sheet.fields:
        parts.append(("message_id", message_id))
    if resolved is not None:
        parts += [(str(label), resolved[label]) for label in resolved.columns]
    frame = pd.concat([series.rename(None) for _, series in parts], axis=1)
    frame.columns = [label for label, _ in parts]
    return frame


def write_results(results: pd.DataFrame, out: Path, summary: Summary) -> Path:
    """Write `results` to `out` (xlsx, or csv when `out` ends in .csv) and return it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    temp = Path(temp_name)
    try:
        if out.suffix.lower() == ".csv":
            _write_csv(results, temp)
        else:
            _write_xlsx(results, temp, summary)
        os.replace(temp, out)
    finally:
        temp.unlink(missing_ok=True)
    return out


def count_statuses(results: pd.DataFrame) -> dict[str, int]:
    """Rows by status, in the order of `Status`."""
    counts = Counter(results["status"])
    return {s.value: counts[s.value] for s in Status if counts[s.value]}


def count_error_codes(results: pd.DataFrame) -> dict[str, int]:
    """Rows by error code; a row with several codes counts once for each."""
    counts: Counter[str] = Counter()
    for codes in results["error_code"]:
        if codes:
            counts.update(code.strip() for code in str(codes).split(";") if code.strip())
    return dict(counts.most_common())


def _write_csv(results: pd.DataFrame, path: Path) -> None:
    # Every cell made text here: left to pandas, a column of ints with blanks turns
    # float and `attempts` 1 is written "1.0".
    frame = pd.DataFrame(
        {i: [_csv_cell(v) for v in results.iloc[:, i].tolist()] for i in range(results.shape[1])},
        dtype=object,
    )
    frame.columns = results.columns
    frame.to_csv(path, index=False, encoding="utf-8-sig")


def _csv_cell(value: object) -> str:
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, float):
        if value != value:
            return ""
        if value.is_integer():
            return str(int(value))
    return str(value)


def _write_xlsx(results: pd.DataFrame, path: Path, summary: Summary) -> None:
    book = xlsxwriter.Workbook(
        str(path),
        {
            "constant_memory": True,
            # Text that looks like a formula or a link stays text (PRODUCT.md › The results
            # workbook): a spreadsheet must never run what a row says.
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
            "default_date_format": "yyyy-mm-dd hh:mm:ss",
            "nan_inf_to_errors": True,
        },
    )
    try:
        _write_results_sheet(book, results)
        _write_summary_sheet(book, results, summary)
    finally:
        book.close()


def _write_results_sheet(book: Any, results: pd.DataFrame) -> None:
    sheet = book.add_worksheet("results")
    header = book.add_format({"bold": True, "bg_color": "#D9D9D9", "bottom": 1})
    status_formats = {s.value: book.add_format({"bg_color": c}) for s, c in STATUS_COLOURS.items()}
    labels = [str(label) for label in results.columns]
    status_at = labels.index("status")
    for position, label in enumerate(labels):
        sample = results.iloc[:200, position]
        width = max([len(label), *(len(str(v)) for v in sample if v is not None)], default=8)
        sheet.set_column(position, position, min(max(width + 2, 8), 60))
    sheet.freeze_panes(1, 0)
    sheet.write_row(0, 0, labels, header)
    columns = [_xlsx_column(results.iloc[:, i]) for i in range(results.shape[1])]
    row = 0
    for row, values in enumerate(zip(*columns, strict=True), start=1):
        sheet.write_row(row, 0, values)
        status = values[status_at]
        sheet.write_string(row, status_at, status, status_formats.get(status))
    sheet.autofilter(0, 0, max(row, 1), len(labels) - 1)


def _xlsx_column(column: pd.Series) -> list[object]:
    """Cells ready for xlsxwriter: blanks as None, integers too long for Excel as text."""
    return [_xlsx_cell(v) for v in column.tolist()]


def _xlsx_cell(value: object) -> object:
    if value is None or value is pd.NA or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if len(str(abs(value))) > MAX_EXACT_DIGITS else value
    if isinstance(value, float) and value != value:
        return None
    return value


def _write_summary_sheet(book: Any, results: pd.DataFrame, summary: Summary) -> None:
    sheet = book.add_worksheet("summary")
    bold = book.add_format({"bold": True})
    sheet.set_column(0, 0, 24)
    sheet.set_column(1, 1, 60)
    rows: list[tuple[object, object]] = [
        ("input", str(summary.input_path)),
        ("mode", summary.mode),
        ("api", summary.api_root or "(none: nothing was sent)"),
        ("written", (summary.written_at or dt.datetime.now()).strftime("%Y-%m-%d %H:%M:%S")),
        ("rows", len(results)),
        ("", ""),
    ]
    rows += [("status", "rows"), *count_statuses(results).items(), ("", "")]
    rows += [("error_code", "rows"), *count_error_codes(results).items()]
    for number, (label, value) in enumerate(rows):
        is_heading = label in ("status", "error_code") and value == "rows"
        sheet.write_string(number, 0, str(label), bold if is_heading else None)
        sheet.write(number, 1, value, bold if is_heading else None)
