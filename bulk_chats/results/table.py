"""The results: one row per input data row, in input order, with its outcome, and where
they go by default; `results.workbook` writes them to disk.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from bulk_chats.checks.columns import Verdict
from bulk_chats.checks.ids import parse_ids
from bulk_chats.checks.new_chats import Validation
from bulk_chats.checks.verdict import optional_ints
from bulk_chats.fields import RESOLVED_COLUMNS, RESULT_COLUMNS, names_for
from bulk_chats.records import Outcome
from bulk_chats.results.files import numbered
from bulk_chats.sheet.loading import Sheet, normalise_header

_STAMPED = re.compile(r"-results-\d{8}-\d{4,6}(-\d+)?$")


def default_out_path(
    input_path: Path, reports_dir: Path, now: dt.datetime, *, suffix: str = ".xlsx"
) -> Path:
    """`reports/<input stem>-results-<YYYYmmdd-HHMMSS>.xlsx` (or `suffix`), or with `-2`,
    `-3`, … after it when that name is taken: the default never names an existing file
    (write it with `replace=False`, so that a run finishing at the same time does not take
    it either).

    A results workbook fed back in keeps its original stem rather than growing a second
    `-results-…` suffix.
    """
    stem = _STAMPED.sub("", input_path.stem)
    first = reports_dir / f"{stem}-results-{now:%Y%m%d-%H%M%S}{suffix}"
    return next(path for path in numbered(first) if not os.path.lexists(path))


def build_results(
    sheet: Sheet,
    verdict: Verdict,
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
    status = verdict.status.copy(deep=False)
    chat_id = verdict.chat_id.copy(deep=False)
    error_code = verdict.error_code.copy(deep=False)
    error_message = verdict.error_message.copy(deep=False)
    http_status = pd.Series(pd.NA, index=index, dtype="Int64")
    if isinstance(verdict, Validation):
        message_id = verdict.message_id.copy(deep=False)
    else:
        message_id = http_status.copy(deep=False)
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


def _echo_label(header: str) -> str:
    """An input column's header in the results. One that reads as a column the results add
    (`status` in a sheet that is not a results workbook) gets " (input)" after it: two
    `status` columns would leave both the summary and the next run guessing which is which.
    """
    return f"{header} (input)" if normalise_header(header) in RESULT_COLUMNS else header
