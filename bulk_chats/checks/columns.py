"""Checks of whole columns that both validations (`new_chats`, `changes`)
share: the problems gathered per row, text cells, emails, chat statuses, repeated rows."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bulk_chats.checks.ids import (
    MAX_EXACT_FLOAT,
    Bools,
    Ints,
    Objects,
    each,
    each_text,
    filled,
    shorten,
)
from bulk_chats.errors import InputError
from bulk_chats.fields import EMAIL_FIELDS
from bulk_chats.sheet.loading import Sheet

CHAT_STATUSES = ("new", "opened", "pending", "on hold", "no communication", "closed")
"""The statuses a chat can be set to, as `PUT /v1/chats/status` spells them."""

_STATUS_SPELLINGS = {
    **{status: status for status in CHAT_STATUSES},
    "on-hold": "on hold",
    "onhold": "on hold",
    "open": "opened",
}


def chat_status_spelling(text: str) -> str | None:
    """`text` as the API spells the status it means (any case, spaces trimmed; `on-hold`,
    `onhold` → `on hold`, `open` → `opened`); None when it names none."""
    return _STATUS_SPELLINGS.get(" ".join(text.lower().split()))


def chat_status_option(text: str, *, named: str) -> str:
    """The status a run's `--chat-status` (or the page's field) gives blank cells, as the
    API spells it; `InputError` naming it as `named` when `text` is no status."""
    status = chat_status_spelling(text)
    if status is None:
        raise InputError(
            f"{named}: {text!r} is not a chat status; use one of " + ", ".join(CHAT_STATUSES)
        )
    return status


_PLAUSIBLE_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
"""`local@domain.tld`, no spaces: what `import --create-customers` can send as a new
customer's email (the API refuses the rest with 400). Other email columns only name
someone who exists, so an `@` is enough for them."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What validation says of every data row of a `Sheet`, aligned with `sheet.cells`:
    each row's `status`, its error codes and messages ("" where it has none), and
    `chat_id`, the chat the row names (nullable Int64): the one a results workbook fed
    back in gives it, or the one `update` and `close` change. The results workbook is
    written from these; each validation adds what its stages after it read."""

    status: pd.Series
    error_code: pd.Series
    error_message: pd.Series
    chat_id: pd.Series

    def counts(self) -> dict[str, int]:
        """Rows by status."""
        return {str(k): int(v) for k, v in self.status.value_counts().items()}


class ProblemColumns:
    """Each row's error codes and messages, gathered sparsely: only rows with a problem
    ever get a string, so a million valid rows cost next to nothing.

    Codes join with "; " as the API's do; messages with " | ", since a message's own fix
    already follows a "; " (`'4,188' is not a whole number; remove the separator`).
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._found: list[tuple[Ints, str | Objects, str | Objects]] = []

    def add(self, mask: Bools, code: str | Objects, message: str | Objects) -> None:
        """Record a problem for the rows of `mask`: one text for all of them, or an array
        with one text per row of `mask`, in order."""
        positions = np.flatnonzero(mask)
        if len(positions):
            self._found.append((positions, code, message))

    def joined(self) -> tuple[Objects, Objects]:
        """Every row's codes and messages, "" where it has none."""
        codes = filled(self._size, "")
        messages = filled(self._size, "")
        for positions, code, message in self._found:
            _append(codes, positions, code, "; ")
            _append(messages, positions, message, " | ")
        return codes, messages


def _append(target: Objects, positions: Ints, text: str | Objects, separator: str) -> None:
    current = target[positions]
    target[positions] = np.where(current != "", current + separator, current) + text


def check_emails(names: dict[str, pd.Series], problems: ProblemColumns) -> None:
    """Cells of email fields among `names` must be email addresses."""
    for name, text in names.items():
        if name not in EMAIL_FIELDS:
            continue
        values = text.to_numpy(dtype=object)
        plausible = _is_plausible_email if name == "customer_email" else _has_at
        bad = (values != "") & ~each(values, plausible)
        problems.add(
            bad,
            f"invalid_{name}",
            f"{name}: '" + each(values[bad], shorten, np.object_) + "' is not an email address",
        )


def check_chat_status(sheet: Sheet, problems: ProblemColumns, default: str | None) -> pd.Series:
    """Each row's `chat_status` as the API spells it, `default` where the cell is blank,
    "" where there is neither; a cell that names no status is a problem."""
    index = sheet.cells.index
    raw = sheet.column("chat_status")
    if raw is None:
        return pd.Series(filled(len(index), default or ""), index=index, dtype=object, copy=False)
    typed = as_text(raw)
    spelled = typed.map(chat_status_spelling)
    bad = (typed.ne("") & spelled.isna()).to_numpy(dtype=bool)
    problems.add(
        bad,
        "invalid_chat_status",
        "chat_status: '"
        + each(typed.to_numpy(dtype=object)[bad], shorten, np.object_)
        + "' is not a chat status; use one of "
        + ", ".join(CHAT_STATUSES),
    )
    spelled = spelled.where(typed.ne(""), default or "").fillna("")
    return spelled.astype(object)


def _has_at(text: str) -> bool:
    return "@" in text


def _is_plausible_email(text: str) -> bool:
    return _PLAUSIBLE_EMAIL.fullmatch(text) is not None


def as_text(column: pd.Series) -> pd.Series:
    """A text field's cells as stripped text; a whole number cell reads as its digits."""
    cells = column.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(cells, skipna=False) not in ("string", "empty"):
        cells = each(cells, _cell_text, np.object_)
    return pd.Series(each_text(cells, str.strip), index=column.index, dtype=object, copy=False)


def _cell_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_EXACT_FLOAT:
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def duplicates(ids: pd.DataFrame, texts: list[tuple[pd.Series, bool]], *, among: Bools) -> Bools:
    """Rows of `among` whose fields repeat an earlier row's of `among`: the id columns of
    `ids` and the text columns of `texts`, each with whether case is ignored (names).

    Invalid rows are left out: a bad id reads as blank, so a valid row would otherwise
    count as a repeat of an invalid one that differs from it only in that bad cell.
    Blank ids (<NA>) count as equal to each other.
    """
    chosen = np.flatnonzero(among)
    everything = len(chosen) == len(among)
    keys: list[Any] = []
    for name in ids.columns:
        # Ids are positive, so 0 can stand for a blank one.
        key = ids[name].to_numpy(dtype=np.int64, na_value=0)
        key = key if everything else key[chosen]
        if len(key) and key.max() < 2**31:
            key = key.astype(np.int32)
        keys.append(key)
    for column, folded in texts:
        values = column.to_numpy(dtype=object)
        if not len(values) or (values == values[0]).all():
            continue
        values = values if everything else values[chosen]
        if folded:
            # Names and emails match whatever their case.
            values = each_text(values, str.lower)
        codes, uniques = pd.factorize(values)
        if len(uniques) > 1:
            keys.append(codes)
    repeated = np.zeros(len(among), dtype=bool)
    if not len(chosen):
        return repeated
    # Sorted (stably, so each group keeps input order), a row repeats the one before it
    # when every key is equal: less memory than hashing whole rows.
    order = np.lexsort(keys[::-1]) if keys else np.arange(len(chosen))
    same = np.ones(len(chosen) - 1, dtype=bool)
    for key in keys:
        ordered = key[order]
        same &= ordered[1:] == ordered[:-1]
    repeated[chosen[order[1:][same]]] = True
    return repeated
