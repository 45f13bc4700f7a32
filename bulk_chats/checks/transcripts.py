"""Validation of transcripts: sheets whose `conversation` column makes each row one
message, and the rows of one conversation one chat (docs/transcripts.md).

The rules of a sheet of new chats hold row by row (`new_chats`), but for those that span
rows: a conversation's chat fields (`fields.CONVERSATION_FIELDS`) may stand on any of its
rows and must agree where given; a customer and an application are needed once per
conversation; every row needs its message; identical messages are not duplicates. A
conversation is sent whole, in order, or not at all: one invalid row holds back all of
it. Its messages are ordered by `sent_at` (ties in file order), else in file order.

Like `new_chats` it works on whole columns; only the cells of `sent_at` are read one by
one, and only the conversations that disagree are described one by one.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bulk_chats.checks.columns import ProblemColumns, as_text, check_chat_status
from bulk_chats.checks.ids import Bools, Ints, Objects, each, filled, shorten
from bulk_chats.checks.new_chats import (
    Validation,
    check_messages,
    check_required,
    fed_back_id,
    given,
    read_fields,
)
from bulk_chats.fields import CONVERSATION_FIELDS, EMAIL_FIELDS
from bulk_chats.records import Status
from bulk_chats.sheet.loading import Sheet

_SENT_AT = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[ T](?P<hour>\d{1,2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:[.,]\d+)?)?"
    r"\s*(?P<offset>Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?"
)
"""`YYYY-MM-DD HH:MM[:SS]` (a `T` for the space, a fraction of a second allowed), then an
optional UTC offset: `Z`, `UTC`, `+02:00`, `+0200`, `-05`."""


def _series(dtype: str = "object") -> pd.Series:
    return pd.Series(dtype=dtype)


@dataclass(frozen=True, slots=True)
class TranscriptValidation(Validation):
    """The verdict on every row of a transcript (`validate`, `import`).

    The columns of `Validation`, with each row's chat fields (`ids`, `names`, `profile`,
    `chat_status`, and `chat_id`, which a results workbook fed back in gives) those of its
    conversation, gathered from all its rows; `message_id` is each row's own, and a row a
    fed-back workbook gives one is `already_created`. Besides: `conversation`, each row's
    conversation (stripped text); `position`, its message's place in the conversation's
    order (0 first); `sent_at`, its time as the message's prefix shows it ("" for none).
    """

    conversation: pd.Series = field(default_factory=_series)
    position: pd.Series = field(default_factory=lambda: _series("int64"))
    sent_at: pd.Series = field(default_factory=_series)


def validate_transcript(sheet: Sheet, *, chat_status: str | None = None) -> TranscriptValidation:
    """Check every row of the transcript `sheet`; no request is made, nothing is raised
    for bad rows. `chat_status` (`--chat-status`, as the API spells it) is the status of a
    conversation none of whose rows gives one."""
    index = sheet.cells.index
    size = len(index)
    problems = ProblemColumns(size)
    fields = read_fields(sheet, problems)

    conversation = as_text(_required_column(sheet, "conversation"))
    conversations = conversation.to_numpy(dtype=object)
    problems.add(
        conversations == "",
        "missing_conversation",
        "conversation: is blank; every row of a transcript names its conversation",
    )
    codes = _conversation_codes(conversations)

    message, message_type = check_messages(sheet, fields.ids, fields.names, problems)
    texts, kinds = message.to_numpy(dtype=object), message_type.to_numpy(dtype=object)
    agent = given(fields.ids, fields.names, "message_agent")
    # A type or an agent without a text is `missing_message` already (`check_messages`).
    problems.add(
        (texts == "") & (kinds == "") & ~agent,
        "missing_message",
        "message: is blank; each row of a transcript is one message",
    )
    instants, shown = _check_sent_at(sheet, codes, problems)
    statuses = check_chat_status(sheet, problems, None)
    fed_back_chat = fed_back_id(sheet, "chat_id")
    message_id = fed_back_id(sheet, "message_id")
    done = message_id.notna().to_numpy(dtype=bool)

    agreeing = _Agreement(codes, sheet, problems)
    ids = fields.ids.copy(deep=False)
    blank: dict[str, Bools] = {}
    for name in ids.columns:
        if name not in CONVERSATION_FIELDS:
            continue
        column = ids[name]
        ids[name] = agreeing.merged(name, column, column.isna().to_numpy(dtype=bool))
        # A cell rejected anywhere in the conversation is its own problem, not a blank.
        rejected = agreeing.anywhere(column.isna().to_numpy(dtype=bool) & ~fields.blank[name])
        blank[name] = ids[name].isna().to_numpy(dtype=bool) & ~rejected
    names = fields.names.copy(deep=False)
    for name in names.columns:
        if name in CONVERSATION_FIELDS:
            column = names[name]
            names[name] = agreeing.merged(
                name, column, column.eq("").to_numpy(dtype=bool), folded=name in EMAIL_FIELDS
            )
    profile = fields.profile.copy(deep=False)
    for name in profile.columns:
        profile[name] = agreeing.merged(name, profile[name], profile[name].eq("").to_numpy())
    statuses = agreeing.merged("chat_status", statuses, statuses.eq("").to_numpy(dtype=bool))
    if chat_status:
        statuses = statuses.where(statuses.ne(""), chat_status)
    chat_id = agreeing.merged("chat_id", fed_back_chat, fed_back_chat.isna().to_numpy(dtype=bool))
    check_required(ids, names, blank, problems, per="conversation")

    codes_joined, messages = problems.joined()
    invalid = (codes_joined != "") & ~done
    _hold_back_whole(sheet, codes, invalid, problems)
    codes_joined, messages = problems.joined()
    invalid = (codes_joined != "") & ~done

    status = filled(size, Status.VALID.value)
    status[invalid] = Status.INVALID.value
    status[done] = Status.ALREADY_CREATED.value
    codes_joined[done] = ""
    messages[done] = ""
    return TranscriptValidation(
        status=pd.Series(status, index=index, dtype=object, copy=False),
        error_code=pd.Series(codes_joined, index=index, dtype=object, copy=False),
        error_message=pd.Series(messages, index=index, dtype=object, copy=False),
        ids=ids,
        names=names,
        message=message,
        message_type=message_type,
        chat_id=chat_id,
        message_id=message_id,
        profile=profile,
        chat_status=statuses,
        conversation=conversation,
        position=pd.Series(_positions(codes, instants), index=index, copy=False),
        sent_at=pd.Series(shown, index=index, dtype=object, copy=False),
    )


def _required_column(sheet: Sheet, name: str) -> pd.Series:
    column = sheet.column(name)
    if column is None:
        raise ValueError(f"{sheet.path}: not a transcript: no {name} column")
    return column


def _conversation_codes(conversations: Objects) -> Ints:
    """A number per conversation, the same for every row of one; each row without a
    conversation is one of its own (it is invalid, and must hold back no other row)."""
    codes, uniques = pd.factorize(conversations)
    blank = np.flatnonzero(conversations == "")
    codes = codes.astype(np.intp)
    codes[blank] = len(uniques) + np.arange(len(blank))
    return codes


class _Agreement:
    """Each chat field of a conversation, gathered from its rows: where several rows give
    it they must agree, and the conversations whose rows disagree are invalid, every row,
    the message naming the two rows and the column."""

    def __init__(self, codes: Ints, sheet: Sheet, problems: ProblemColumns) -> None:
        self._codes = codes
        self._sheet = sheet
        self._problems = problems

    def anywhere(self, mask: Bools) -> Bools:
        """Each row: whether `mask` holds for some row of its conversation."""
        hit = np.zeros(int(self._codes.max()) + 1 if len(self._codes) else 0, dtype=bool)
        hit[self._codes[mask]] = True
        result: Bools = hit[self._codes]
        return result

    def merged(
        self, name: str, column: pd.Series, blank: Bools, *, folded: bool = False
    ) -> pd.Series:
        """`column` with every row given its conversation's value: the first one its rows
        give (blank where none does). Rows that give another (ignoring case when `folded`)
        make the conversation `conflicting_<name>`."""
        present = np.flatnonzero(~blank)
        if not len(present) or (len(present) == len(column) and _all_same(column, folded)):
            return column
        values = column.to_numpy(dtype=object)[present]
        keys = np.array([str(v).casefold() for v in values], dtype=object) if folded else values
        frame = pd.DataFrame({"code": self._codes[present], "key": keys, "at": present})
        first = frame.groupby("code", sort=False)["at"].transform("first").to_numpy()
        differs = frame["key"].to_numpy(dtype=object) != keys[np.searchsorted(present, first)]
        for at in _first_per_conversation(self._codes, present[differs]):
            self._conflict(name, column, int(first[np.searchsorted(present, at)]), at)
        by_code = pd.Series(column.to_numpy(dtype=object)[first], index=frame["code"].to_numpy())
        by_code = by_code[~by_code.index.duplicated()]
        merged = by_code.reindex(self._codes).to_numpy(dtype=object)
        if column.dtype == "Int64":
            return pd.Series(pd.array(merged, dtype="Int64"), index=column.index, copy=False)
        return pd.Series(
            np.where(pd.isna(merged), "", merged), index=column.index, dtype=object, copy=False
        )

    def _conflict(self, name: str, column: pd.Series, first: int, other: int) -> None:
        rows = self._sheet.source_rows
        shown = [shorten(str(column.iat[at])) for at in (first, other)]
        self._problems.add(
            self._codes == self._codes[other],
            f"conflicting_{name}",
            f"{name}: '{shown[1]}' on row {rows[other]} disagrees with '{shown[0]}' on row "
            f"{rows[first]}; the rows of a conversation that give its {name} must agree",
        )


def _all_same(column: pd.Series, folded: bool) -> bool:
    values = column.to_numpy(dtype=object)
    if folded:
        values = np.array([str(v).casefold() for v in values], dtype=object)
    return bool((values == values[0]).all())


def _first_per_conversation(codes: Ints, rows: Ints) -> list[int]:
    """The first of `rows` (in file order) of each conversation among them."""
    seen: set[int] = set()
    firsts = []
    for at in rows.tolist():
        if codes[at] not in seen:
            seen.add(int(codes[at]))
            firsts.append(int(at))
    return firsts


def _hold_back_whole(sheet: Sheet, codes: Ints, invalid: Bools, problems: ProblemColumns) -> None:
    """Every valid row of a conversation with an invalid row is invalid too, naming the
    first invalid one: a conversation is sent whole, in order, or not at all."""
    bad = np.flatnonzero(invalid)
    if not len(bad):
        return
    first = np.full(int(codes.max()) + 1, -1, dtype=np.intp)
    first[codes[bad[::-1]]] = bad[::-1]
    blocked = (first[codes] >= 0) & ~invalid
    if not blocked.any():
        return
    rows = np.asarray(sheet.source_rows, dtype=np.int64)
    blocking = rows[first[codes[blocked]]]
    problems.add(
        blocked,
        "invalid_conversation",
        "conversation: not sent, since row "
        + each(blocking, str, np.object_)
        + " of this conversation is invalid; a conversation is sent whole, in order",
    )


def _check_sent_at(
    sheet: Sheet, codes: Ints, problems: ProblemColumns
) -> tuple[np.ndarray[tuple[int], np.dtype[np.float64]], Objects]:
    """Each row's `sent_at` as unix seconds (a time without an offset read as UTC; 0 where
    blank) and as its message's prefix shows it ("" where blank). A cell that is no date
    and time is `invalid_sent_at`; a blank one where other rows of its conversation have a
    time, `missing_sent_at` (the order would be a guess)."""
    size = len(codes)
    instants = np.zeros(size, dtype=np.float64)
    shown = filled(size, "")
    column = sheet.column("sent_at")
    if column is None:
        return instants, shown
    cells = column.to_numpy(dtype=object)
    blank = np.zeros(size, dtype=bool)
    bad: list[int] = []
    messages: list[str] = []
    for at, cell in enumerate(cells):
        read = read_sent_at(cell)
        if read is None:
            blank[at] = True
        elif isinstance(read, str):
            bad.append(at)
            messages.append(read)
        else:
            instants[at], shown[at] = read
    rejected = np.zeros(size, dtype=bool)
    rejected[bad] = True
    problems.add(rejected, "invalid_sent_at", np.array(messages, dtype=object))
    timed = np.zeros(int(codes.max()) + 1 if size else 0, dtype=bool)
    timed[codes[~blank]] = True
    problems.add(
        blank & timed[codes],
        "missing_sent_at",
        "sent_at: is blank, but other messages of this conversation have a time; give "
        "each its time, or none of them one",
    )
    return instants, shown


def read_sent_at(cell: object) -> tuple[float, str] | str | None:
    """A `sent_at` cell as (unix seconds, the text of the prefix), None when blank, or the
    message that says why it is no date and time.

    A date-time cell or text `YYYY-MM-DD HH:MM[:SS]` with an optional UTC offset. The
    prefix shows it as the sheet gives it (seconds when given, a fraction of a second
    left out), its offset as written; a time without an offset is ordered as if in UTC.
    """
    if isinstance(cell, dt.datetime):
        stamp = cell if cell.tzinfo is not None else cell.replace(tzinfo=dt.UTC)
        text = cell.strftime("%Y-%m-%d %H:%M" + (":%S" if cell.second else ""))
        return stamp.timestamp(), text
    if isinstance(cell, dt.date | dt.time) or not isinstance(cell, str):
        if isinstance(cell, float) and np.isnan(cell):
            return None
        value = cell.isoformat() if isinstance(cell, dt.date | dt.time) else str(cell)
        return _not_a_time(value)
    text = cell.strip()
    if not text:
        return None
    match = _SENT_AT.fullmatch(text)
    if match is None:
        return _not_a_time(text)
    offset = match["offset"]
    try:
        zone = _zone(offset)
        when = dt.datetime.fromisoformat(match["date"]).replace(
            hour=int(match["hour"]),
            minute=int(match["minute"]),
            second=int(match["second"] or 0),
            tzinfo=zone or dt.UTC,
        )
    except ValueError:
        return _not_a_time(text)
    shown = f"{match['date']} {int(match['hour']):02d}:{match['minute']}"
    if match["second"] is not None:
        shown += f":{match['second']}"
    if offset:
        shown += f" {offset}"
    return when.timestamp(), shown


def _zone(offset: str | None) -> dt.tzinfo | None:
    if offset is None:
        return None
    if offset in ("Z", "UTC", "GMT"):
        return dt.UTC
    digits = offset[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(offset)
    sign = -1 if offset[0] == "-" else 1
    return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))


def _not_a_time(text: str) -> str:
    return (
        f"sent_at: '{shorten(text)}' is not a date and time; write it as "
        "YYYY-MM-DD HH:MM[:SS], with an offset such as +02:00 if it has one"
    )


def _positions(codes: Ints, instants: np.ndarray[tuple[int], np.dtype[np.float64]]) -> Ints:
    """Each row's place in its conversation: by time, ties (and rows without one) in
    file order, 0 first."""
    size = len(codes)
    order = np.lexsort((np.arange(size), instants, codes))
    ordered = codes[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]] if size else np.zeros(0, dtype=bool)
    steps = np.arange(size)
    first = np.maximum.accumulate(np.where(starts, steps, 0))
    positions = np.empty(size, dtype=np.intp)
    positions[order] = steps - first
    return positions
