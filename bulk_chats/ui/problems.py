"""The page's "Problems" table, read back from the results workbook a run wrote.

The workbook is the contract between a run and whoever reads it (docs/reference.md › The
results workbook), so the page reads the same file the user downloads rather than the
pipeline's insides.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bulk_chats.fields import FIELD_NAMES
from bulk_chats.records import Status
from bulk_chats.ui.words import in_page_words

MAX_PROBLEMS = 500
"""Rows the table shows at most; the workbook has them all."""

_FINE = frozenset(
    status.value
    for status in (
        Status.VALID,
        Status.CREATED,
        Status.ALREADY_CREATED,
        Status.UPDATED,
        Status.ALREADY_UPDATED,
        # A row with nothing to change, or (closing) without a chat: nothing to fix.
        Status.SKIPPED,
        Status.UNCHANGED,
    )
)
_UNREACHED = Status.NOT_SENT.value
"""Rows a run did not reach (Stop, a refused key): the summary counts them; they are not
problems of the row to fix."""
_MESSAGE_SEPARATOR = " | "
"""How a row's messages are joined in `error_message` (one per problem)."""


@dataclass(frozen=True, slots=True)
class ProblemLine:
    """One problem of one row: the field it concerns (blank when it is the whole row's),
    that field's cell as the sheet has it, and the message with its fix."""

    source_row: int
    status: str
    field: str
    value: str
    message: str


@dataclass(frozen=True, slots=True)
class ProblemTable:
    """The first `MAX_PROBLEMS` problems of a results workbook, and how many rows have one
    (`rows`)."""

    shown: tuple[ProblemLine, ...]
    rows: int


def read_problems(
    out: Path, field_headers: Mapping[str, str], counts: Mapping[str, int]
) -> ProblemTable:
    """The rows of the results at `out` (workbook or CSV) that did not end valid,
    created, updated (now or earlier), skipped or not_sent: the first `MAX_PROBLEMS`, read
    until they are found; `counts` (rows by status) says how many there are in all.

    `field_headers` maps a field to the input header it was read from, to show the cell's
    value. An unreadable file gives no problems (the summary still counts them).
    """
    rows = sum(n for status, n in counts.items() if status not in _FINE | {_UNREACHED})
    try:
        lines = _rows(out)
        header = [str(h) for h in next(lines, [])]
        at = {name: i for i, name in reversed(list(enumerate(header)))}
        if not {"source_row", "status", "error_message"} <= at.keys():
            return ProblemTable((), 0)
        shown: list[ProblemLine] = []
        for row in lines:
            if len(shown) >= MAX_PROBLEMS:
                break
            status = str(row[at["status"]])
            if status not in _FINE and status != _UNREACHED:
                shown += _lines(row, at, field_headers)
    except Exception:  # the counts are shown whatever happens here
        return ProblemTable((), 0)
    return ProblemTable(tuple(shown[:MAX_PROBLEMS]), rows)


def _rows(out: Path) -> Iterator[Sequence[object]]:
    """The rows of the results sheet (its header first), as they are read."""
    if out.suffix.lower() == ".csv":
        with out.open(encoding="utf-8-sig", newline="") as handle:
            yield from csv.reader(handle)
        return
    from python_calamine import CalamineWorkbook

    yield from CalamineWorkbook.from_path(str(out)).get_sheet_by_name("results").iter_rows()


def _lines(
    row: Sequence[object], at: Mapping[str, int], field_headers: Mapping[str, str]
) -> list[ProblemLine]:
    """The problems of one row: one line per message of its `error_message`."""
    status = str(row[at["status"]])
    chat = _cell(row[at["chat_id"]]) if "chat_id" in at else ""
    shown = []
    for field, message in _messages(str(row[at["error_message"]])):
        column = _column(at, field_headers.get(field)) if field else None
        value = _cell(row[column]) if column is not None else ""
        if field in ("", "chat_id") and not value and chat:
            # A change the API refused concerns the whole row: show which chat. (Update
            # and Close chats do not echo their input's chat_id; the results' has it.)
            field, value = "chat_id", chat
        shown.append(
            ProblemLine(
                source_row=int(_cell(row[at["source_row"]]) or 0),
                status=status,
                field=field,
                value=value,
                message=in_page_words(message),
            )
        )
    return shown


def _messages(text: str) -> list[tuple[str, str]]:
    """(field, message) for each message of a row; `customer: '' is blank` names its field."""
    found = []
    for part in text.split(_MESSAGE_SEPARATOR):
        name, sep, _ = part.partition(":")
        field = name.strip() if sep and name.strip() in FIELD_NAMES else ""
        found.append((field, part.strip()))
    return found or [("", "")]


def _column(at: Mapping[str, int], header: str | None) -> int | None:
    if header is None:
        return None
    # The results workbook marks an input header that reads like one of its own columns.
    return at.get(header, at.get(f"{header} (input)"))


def _cell(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)
