"""The page's "Problems" table, read back from the results workbook a run wrote.

The workbook is the contract between a run and whoever reads it (docs/reference.md › The
results workbook), so the page reads the same file the user downloads rather than the
pipeline's insides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bulk_chats.fields import FIELD_NAMES
from bulk_chats.records import Status

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
    """The first `MAX_PROBLEMS` problems of a results workbook, and how many rows have one."""

    shown: tuple[ProblemLine, ...]
    rows: int


def read_problems(out: Path, field_headers: Mapping[str, str]) -> ProblemTable:
    """The rows of the results workbook at `out` that did not end valid, created,
    updated (now or earlier), skipped or not_sent.

    `field_headers` maps a field to the input header it was read from, to show the cell's
    value. A CSV results file or an unreadable workbook gives no problems (the summary
    still counts them).
    """
    if out.suffix.lower() != ".xlsx":
        return ProblemTable((), 0)
    from python_calamine import CalamineWorkbook

    try:
        rows = CalamineWorkbook.from_path(str(out)).get_sheet_by_name("results").to_python()
    except Exception:  # the counts are shown whatever happens here
        return ProblemTable((), 0)
    if not rows:
        return ProblemTable((), 0)
    header = [str(h) for h in rows[0]]
    at = {name: i for i, name in reversed(list(enumerate(header)))}
    if not {"source_row", "status", "error_message"} <= at.keys():
        return ProblemTable((), 0)
    shown: list[ProblemLine] = []
    count = 0
    for row in rows[1:]:
        status = str(row[at["status"]])
        if status in _FINE or status == _UNREACHED:
            continue
        count += 1
        if len(shown) >= MAX_PROBLEMS:
            continue
        chat = _cell(row[at["chat_id"]]) if "chat_id" in at else ""
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
                    message=message,
                )
            )
    return ProblemTable(tuple(shown), count)


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
