"""An export's workbook, written as the chats are read (docs/export.md › The workbook).

Sheets, in order: `chats` (one row per chat, oldest first, the columns of
`fields.EXPORT_COLUMNS`), `summary`, `messages` (with `--messages`) and `exported`,
hidden, which keeps each chat's status, assignee and department as read so that `update`
can tell the cells a person changed from those they left alone. xlsxwriter writes each
sheet a row at a time (constant memory), so 100,000 chats cost no more memory than one.
Date-times are UTC, written as date-time cells; text is always written as text, never as
a formula (`results.workbook.CellWriter`).

The file is written in a hidden folder beside its destination and renamed into place when
complete (`results.files`): a run killed midway leaves no half workbook.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import xlsxwriter
from xlsxwriter.exceptions import FileCreateError

from bulk_chats.errors import ReportError
from bulk_chats.fields import (
    EXPORT_COLUMNS,
    EXPORTED_COLUMNS,
    EXPORTED_SHEET,
    MESSAGE_COLUMNS,
    WORKSHEET_ROWS,
)
from bulk_chats.records import ExportedChat, ExportedMessage
from bulk_chats.results.files import numbered, place, staging
from bulk_chats.results.workbook import CellWriter, workbook_options

ROWS_PER_SHEET: Final = WORKSHEET_ROWS - 1
"""Chats (or messages) a sheet holds below its header."""

_WIDTHS = {
    "chat_id": 11,
    "chat_status": 16,
    "assignee_email": 26,
    "department_name": 18,
    "customer_email": 28,
    "customer_name": 22,
    "customer_user_id": 18,
    "created_at": 20,
    "closed_at": 20,
    "last_message_at": 20,
    "sent_at": 20,
    "created_with": 16,
    "last_message_text": 60,
    "text": 80,
}
"""Column widths in characters; the rest get `_DEFAULT_WIDTH`."""

_DEFAULT_WIDTH = 12

_MESSAGE_ATTRIBUTES = tuple("sender" if c == "from" else c for c in MESSAGE_COLUMNS)
"""The `ExportedMessage` field behind each column of the messages sheet."""


def default_export_path(reports_dir: Path, now: dt.datetime) -> Path:
    """`reports/chats-export-<YYYYmmdd-HHMMSS>.xlsx`, or with `-2`, `-3`, … after it when
    that name is taken."""
    first = reports_dir / f"chats-export-{now:%Y%m%d-%H%M%S}.xlsx"
    return next(path for path in numbered(first) if not os.path.lexists(path))


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What the summary sheet says: the API root, when, the filters as given (name,
    value), the counts and, when the export is not complete, why (`partial`); `repeats`
    counts the chats given twice (by two queries) and written once."""

    api_root: str
    written_at: dt.datetime
    filters: tuple[tuple[str, str], ...]
    chats: int
    messages: int | None
    partial: str = ""
    repeats: int = 0


class ExportWorkbook:
    """An export being written. `add_chat` and `add_messages` append rows; `close` writes
    the summary and ends the file. Use `write_export`, which puts it in place."""

    def __init__(self, path: Path, *, scratch: Path, messages: bool) -> None:
        self._book = book = xlsxwriter.Workbook(str(path), workbook_options(scratch))
        self._chats = self._sheet("chats", EXPORT_COLUMNS)
        self._summary = book.add_worksheet("summary")
        self._messages = self._sheet("messages", MESSAGE_COLUMNS) if messages else None
        self._exported = self._sheet(EXPORTED_SHEET, EXPORTED_COLUMNS)
        self._exported.hide()
        self._chats.activate()
        self._cells = {
            name: CellWriter(book, sheet)
            for name, sheet in (
                ("chats", self._chats),
                ("summary", self._summary),
                ("messages", self._messages),
                (EXPORTED_SHEET, self._exported),
            )
            if sheet is not None
        }
        self.chats = 0
        self.messages = 0
        self.finished = False
        self.out: Path | None = None
        """Where the workbook went, once `write_export` put it in place."""

    def _sheet(self, name: str, columns: Sequence[str]) -> Any:
        sheet = self._book.add_worksheet(name)
        header = self._book.add_format({"bold": True, "bg_color": "#D9D9D9", "bottom": 1})
        sheet.freeze_panes(1, 0)
        for at, column in enumerate(columns):
            sheet.set_column(at, at, _WIDTHS.get(column, _DEFAULT_WIDTH))
            sheet.write_string(0, at, column, header)
        return sheet

    @property
    def full(self) -> bool:
        """Whether the chats sheet holds as many rows as a sheet can."""
        return self.chats >= ROWS_PER_SHEET

    def add_chat(self, chat: ExportedChat) -> None:
        """Write `chat` as the next row of `chats`, and its status, assignee and department
        as read as the next row of `exported`. Raises `ReportError` when the sheet is full."""
        if self.full:
            raise ReportError(f"more chats than a sheet holds ({ROWS_PER_SHEET:,})")
        self.chats += 1
        values = tuple(getattr(chat, column) for column in EXPORT_COLUMNS)
        self._cells["chats"].write_row(self.chats, values)
        self._cells[EXPORTED_SHEET].write_row(self.chats, values[: len(EXPORTED_COLUMNS)])

    def add_messages(self, messages: Sequence[ExportedMessage]) -> int:
        """Write `messages` as the next rows of `messages`; how many fitted in the sheet."""
        writer = self._cells["messages"]
        room = max(0, ROWS_PER_SHEET - self.messages)
        for message in messages[:room]:
            self.messages += 1
            writer.write_row(self.messages, tuple(getattr(message, a) for a in _MESSAGE_ATTRIBUTES))
        return min(room, len(messages))

    def close(self, summary: ExportSummary) -> None:
        """Write the summary sheet and finish the file."""
        bold = self._book.add_format({"bold": True})
        self._summary.set_column(0, 0, 22)
        self._summary.set_column(1, 1, 70)
        cells = self._cells["summary"]
        for row, (label, value) in enumerate(_summary_pairs(summary)):
            if value is None:
                self._summary.write_string(row, 0, label, bold)
            else:
                cells.write_row(row, (label or None, value if value != "" else None))
        self._book.close()
        self.finished = True

    def abandon(self) -> None:
        """End the file unfinished (its sheets' files closed), unless `close` ended it."""
        if not self.finished:
            with contextlib.suppress(Exception):
                self._book.close()


def _summary_pairs(summary: ExportSummary) -> list[tuple[str, object]]:
    pairs: list[tuple[str, object]] = [
        ("export", "the chats of HelpCrunch, oldest first"),
        ("api", summary.api_root),
        ("written", summary.written_at.strftime("%Y-%m-%d %H:%M:%S")),
        ("times", "created_at, closed_at, last_message_at and sent_at are in UTC"),
        ("complete", "yes" if not summary.partial else f"no: {summary.partial}"),
        ("chats", summary.chats),
    ]
    if summary.messages is not None:
        pairs.append(("messages", summary.messages))
    if summary.repeats:
        pairs.append(("repeats left out", summary.repeats))
    pairs += [("", ""), ("filters", None)]
    pairs += list(summary.filters) or [("(none)", "every chat")]
    return pairs


@contextmanager
def write_export(out: Path, *, messages: bool, replace: bool) -> Iterator[ExportWorkbook]:
    """An `ExportWorkbook` for `out`, put in place (readable by its owner only) when the
    block ends with the workbook closed (`.out` then says where); nothing when the block
    raises. With `replace`
    False an existing file is never replaced: the next free name of `numbered(out)` is
    used. Raises `ReportError` when it cannot be written."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with staging(out) as staged:
            workbook = ExportWorkbook(staged, scratch=staged.parent, messages=messages)
            try:
                yield workbook
            finally:
                # Left open, its sheets' row files stay open too: ended here, in the
                # folder about to be removed.
                workbook.abandon()
            if workbook.finished:
                workbook.out = place(staged, out, replace=replace)
    except OSError as exc:
        raise ReportError(f"{out}: cannot write the export ({exc.strerror})") from None
    except FileCreateError as exc:
        raise ReportError(f"{out}: cannot write the export ({exc})") from None
