"""The results workbook: one row per input data row, in input order, plus a summary.

Written a chunk of rows at a time (so 100,000 rows cost no more memory than a chunk) by
`bulk_chats.xlsx`, or as UTF-8 CSV with a BOM when `--out` ends in `.csv`.
The file is written beside its destination and renamed into place, so a run killed
mid-write leaves the previous file (or none), never half a workbook.
"""

from __future__ import annotations

import codecs
import datetime as dt
import os
import re
import tempfile
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bulk_chats import xlsx
from bulk_chats.errors import InputError, ReportError
from bulk_chats.fields import RESOLVED_COLUMNS, RESULT_COLUMNS, names_for
from bulk_chats.ids import parse_ids
from bulk_chats.loading import Sheet, normalise_header
from bulk_chats.records import Outcome, Status
from bulk_chats.rows import optional_ints
from bulk_chats.validation import Validation

MAX_EXACT_DIGITS = xlsx.MAX_EXACT_DIGITS
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
    resolved: Mapping[str, Mapping[int, int]] | None = None,
    customer_created: Collection[int] | None = None,
) -> pd.DataFrame:
    """The results sheet as a frame: `source_row`, the echoed input columns (original
    headers and values), then the outcome columns, `message_id` when the input has
    messages, and after an import a `resolved_*` column for each id field that a name
    column stands in for. `resolved` maps such an id field to the id used per row index.
    `customer_created` (the rows whose customer the tool created) adds that column, `yes`
    on those rows and on those a fed-back workbook marked so.

    Column labels may repeat (inputs may repeat headers), so positions matter, not labels.
    """
    index = sheet.cells.index
    # Shallow copies: pandas copies the data only if an outcome below changes it, so a
    # validate run (no outcomes) adds no column of a million rows.
    status = validation.status.copy(deep=False)
    chat_id = validation.fed_back_chat_id.copy(deep=False)
    message_id = validation.fed_back_message_id.copy(deep=False)
    error_code = validation.error_code.copy(deep=False)
    error_message = validation.error_message.copy(deep=False)
    http_status = pd.Series(pd.NA, index=index, dtype="Int64")
    attempts = http_status.copy(deep=False)
    for position, outcome in outcomes.items():
        status.iat[position] = outcome.status.value
        chat_id.iat[position] = outcome.chat_id
        if outcome.message_id is not None:
            message_id.iat[position] = outcome.message_id
        error_code.iat[position] = outcome.error_code
        error_message.iat[position] = outcome.error_message
        http_status.iat[position] = outcome.http_status
        attempts.iat[position] = outcome.attempts or None

    rows = pd.Series(np.asarray(sheet.source_rows, dtype=np.int64), index=index, copy=False)
    parts: list[tuple[str, pd.Series]] = [("source_row", rows)]
    parts += [(_echo_label(sheet.headers[i]), sheet.cells[i]) for i in sheet.echoed]
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
        parts += _resolved_columns(sheet, resolved)
    if customer_created is not None:
        parts.append(("customer_created", _created_column(sheet, customer_created)))
    frame = pd.concat([series.rename(None) for _, series in parts], axis=1)
    frame.columns = [label for label, _ in parts]
    return frame


def _resolved_columns(
    sheet: Sheet, resolved: Mapping[str, Mapping[int, int]]
) -> list[tuple[str, pd.Series]]:
    """A `resolved_*` column per id field the sheet gives by name: the id this run used,
    or for a row it did not resolve what the fed-back workbook showed (re-run on its own
    results, a finished row keeps its ids)."""
    index = sheet.cells.index
    columns = []
    for label, id_field in RESOLVED_COLUMNS.items():
        if not any(name in sheet.fields for name in names_for(id_field)):
            continue
        earlier = sheet.column(label) if label in sheet.fed_back else None
        values = (
            pd.Series(optional_ints(parse_ids(earlier, label).ids), index=index, dtype=object)
            if earlier is not None
            else pd.Series([None] * len(index), index=index, dtype=object)
        )
        for position, value in resolved.get(id_field, {}).items():
            values.iat[position] = value
        columns.append((label, values))
    return columns


def _created_column(sheet: Sheet, rows: Collection[int]) -> pd.Series:
    index = sheet.cells.index
    earlier = sheet.column("customer_created") if "customer_created" in sheet.fed_back else None
    values = pd.Series([None] * len(index), index=index, dtype=object)
    if earlier is not None:
        values[earlier.astype(str).str.strip().str.lower().eq("yes").to_numpy()] = "yes"
    for position in rows:
        values.iat[position] = "yes"
    return values


def check_room(out: Path, rows: int, columns: int) -> None:
    """Raise InputError when `rows` data rows by `columns` columns cannot go into `out`: a
    worksheet holds 1,048,576 rows (the header included) and 16,384 columns; CSV has no
    limit. Call it before sending, so that a run never ends unable to write its results.
    """
    if out.suffix.lower() == ".csv":
        return
    if rows + 1 > xlsx.MAX_ROWS:
        raise InputError(
            f"{out}: {rows:,} rows are more than a workbook sheet holds "
            f"({xlsx.MAX_ROWS - 1:,} below the header); write CSV with --out NAME.csv"
        )
    if columns > xlsx.MAX_COLUMNS:
        raise InputError(
            f"{out}: {columns:,} columns are more than a workbook sheet holds "
            f"({xlsx.MAX_COLUMNS:,}); write CSV with --out NAME.csv"
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


def _echo_label(header: str) -> str:
    """An input column's header in the results. One that reads as a column the results add
    (`status` in a sheet that is not a results workbook) gets " (input)" after it: two
    `status` columns would leave both the summary and the next run guessing which is which.
    """
    return f"{header} (input)" if normalise_header(header) in RESULT_COLUMNS else header


def write_results(results: pd.DataFrame, out: Path, summary: Summary) -> Path:
    """Write `results` to `out` (xlsx, or csv when `out` ends in .csv) and return it.

    Raises InputError when the results do not fit a workbook (see `check_room`).
    """
    check_room(out, len(results), results.shape[1])
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        os.close(fd)
    except OSError as exc:
        raise ReportError(f"{out}: cannot write the results ({exc.strerror})") from None
    temp = Path(temp_name)
    try:
        if out.suffix.lower() == ".csv":
            _write_csv(results, temp)
        else:
            _write_xlsx(results, temp, summary)
        os.replace(temp, out)
    except OSError as exc:
        raise ReportError(f"{out}: cannot write the results ({exc.strerror})") from None
    finally:
        temp.unlink(missing_ok=True)
    return out


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


CHUNK_ROWS = 16_384
"""Rows converted and written at a time: the writers' memory does not grow with the sheet."""


def _write_csv(results: pd.DataFrame, path: Path) -> None:
    """RFC 4180 CSV, UTF-8 with a BOM, a chunk of rows at a time.

    Lines are joined from whole columns of text (quoted only where a cell holds a comma,
    a quote or a line break, as the csv module would): the csv module itself spends
    a third of a microsecond on every cell.
    """
    with path.open("wb") as handle:
        labels = _csv_texts(np.array([str(label) for label in results.columns], dtype=object))
        handle.write(codecs.BOM_UTF8 + (",".join(labels) + "\r\n").encode("utf-8"))
        for start in range(0, len(results), CHUNK_ROWS):
            chunk = results.iloc[start : start + CHUNK_ROWS]
            columns = [_csv_texts(_csv_column(chunk.iloc[:, i])) for i in range(chunk.shape[1])]
            lines = map(",".join, zip(*columns, strict=True))
            handle.write(("\r\n".join(lines) + "\r\n").encode("utf-8"))


def _csv_column(column: pd.Series) -> Any:
    """A column's cells as text: blanks "", whole floats without ".0" (else `attempts` 1
    would read "1.0"), ints exact, the rest as `str()` gives them."""
    values = column.to_numpy(dtype=object)
    kind = pd.api.types.infer_dtype(values, skipna=False)
    if kind in ("string", "empty"):
        return values
    if kind == "integer":
        return np.fromiter(map(str, values), dtype=object, count=len(values))
    missing = np.asarray(pd.isna(values), dtype=bool)
    present = np.flatnonzero(~missing)
    out = np.empty(len(values), dtype=object)
    out.fill("")
    chosen = values[present]
    if pd.api.types.infer_dtype(chosen) == "string":
        out[present] = chosen
    else:
        out[present] = np.array([_csv_cell(v) for v in chosen] + [None], dtype=object)[:-1]
    return out


def _csv_cell(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _csv_texts(texts: Any) -> Any:
    """Texts quoted where the csv module would quote them (a comma, a quote, CR or LF),
    looking at each one only when the column as a whole holds such a character."""
    joined = "\x00".join(texts)
    # `in` scans at memory speed; the regular expression only runs when there is a hit.
    if not any(special in joined for special in ',"\r\n'):
        return texts
    hits = [match.start() for match in _CSV_SPECIAL.finditer(joined)]
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    starts = np.cumsum(lengths + 1) - (lengths + 1)
    need = np.unique(np.searchsorted(starts, hits, side="right") - 1)
    quoted = texts.copy()
    quoted[need] = np.fromiter(map(_quote, texts[need]), dtype=object, count=len(need))
    return quoted


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


_CSV_SPECIAL = re.compile(r'[",\r\n]')


def _write_xlsx(results: pd.DataFrame, path: Path, summary: Summary) -> None:
    """The results sheet then the summary sheet, streamed a chunk of rows at a time.

    Text is always written as text, never as a formula or a link, whatever it starts with
    (PRODUCT.md › The results workbook): a spreadsheet must never run what a row says.
    """
    with xlsx.Workbook(path) as book:
        _write_results_sheet(book, results)
        _write_summary_sheet(book, results, summary)


def _write_results_sheet(book: xlsx.Workbook, results: pd.DataFrame) -> None:
    labels = [str(label) for label in results.columns]
    status_at = labels.index("status")
    header = book.add_style(xlsx.Style(bold=True, fill="#D9D9D9", bottom_border=True))
    status_styles = {
        status.value: f' s="{book.add_style(xlsx.Style(fill=colour))}"'
        for status, colour in STATUS_COLOURS.items()
    }
    widths = []
    for position, label in enumerate(labels):
        sample = results.iloc[:200, position].dropna()
        width = max([len(label), *(len(str(v)) for v in sample)], default=8)
        widths.append(min(max(width + 2, 8), 60))
    with book.sheet(
        "results",
        rows=len(results) + 1,
        columns=len(labels),
        widths=widths,
        freeze_header=True,
        autofilter=True,
    ) as sheet:
        first = xlsx.row_numbers(1, 1)
        sheet.write_rows(
            first,
            [xlsx.cells([label], i, first, style=header) for i, label in enumerate(labels)],
        )
        for start in range(0, len(results), CHUNK_ROWS):
            chunk = results.iloc[start : start + CHUNK_ROWS]
            rows = xlsx.row_numbers(start + 2, len(chunk))
            columns = []
            for position in range(chunk.shape[1]):
                values = chunk.iloc[:, position]
                style: int | Any = 0
                if position == status_at:
                    style = np.fromiter(
                        map(status_styles.get, values.to_numpy(dtype=object), repeat("")),
                        dtype=object,
                        count=len(values),
                    )
                columns.append(
                    xlsx.cells(values, position, rows, style=style, date_style=book.date_style)
                )
            sheet.write_rows(rows, columns)


def _write_summary_sheet(book: xlsx.Workbook, results: pd.DataFrame, summary: Summary) -> None:
    bold = book.add_style(xlsx.Style(bold=True))
    pairs: list[tuple[object, object]] = [
        ("input", str(summary.input_path)),
        ("mode", summary.mode),
        ("api", summary.api_root or "(none: nothing was sent)"),
        ("written", (summary.written_at or dt.datetime.now()).strftime("%Y-%m-%d %H:%M:%S")),
        ("rows", len(results)),
        ("", ""),
    ]
    pairs += [("status", "rows"), *count_statuses(results).items(), ("", "")]
    pairs += [("error_code", "rows"), *count_error_codes(results).items()]
    headings = np.array(
        [
            f' s="{bold}"' if label in ("status", "error_code") and value == "rows" else ""
            for label, value in pairs
        ],
        dtype=object,
    )
    rows = xlsx.row_numbers(1, len(pairs))
    labels = np.array([str(label) for label, _ in pairs] + [None], dtype=object)[:-1]
    values = np.array([value for _, value in pairs] + [None], dtype=object)[:-1]
    with book.sheet("summary", rows=len(pairs), columns=2, widths=(24, 60)) as sheet:
        sheet.write_rows(
            rows,
            [
                xlsx.cells(labels, 0, rows, style=headings),
                xlsx.cells(values, 1, rows, style=headings),
            ],
        )
