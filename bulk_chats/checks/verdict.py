"""Validation's verdict as records for the stages after it.

Validation works on whole columns, which is what makes a million rows cheap. What comes
after it (the resume plan, the pre-flight, the look-ups, the sender, a page listing the
problems) handles one row at a time, and only some rows: they get frozen records
(`ChatRequest`, `RowProblem`, `FedBack`), built here once, and never reach back into the
sheet's columns.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from bulk_chats.checks.changes import ChangeValidation
from bulk_chats.checks.columns import Verdict
from bulk_chats.checks.ids import Bools
from bulk_chats.checks.new_chats import Validation
from bulk_chats.checks.transcripts import TranscriptValidation
from bulk_chats.fields import ID_FIELDS, NAME_FIELDS, PROFILE_FIELDS, names_for
from bulk_chats.records import (
    ChangeRequest,
    ChatRequest,
    FedBack,
    FirstMessage,
    RowProblem,
    Status,
)
from bulk_chats.sheet.loading import Sheet


def rows_to_send(sheet: Sheet, validation: Validation) -> list[ChatRequest]:
    """A `ChatRequest` for every valid row, and for every row a results workbook fed back
    in gives a chat whose first message is still missing, or that is to end in a
    `chat_status` (those carry their `chat_id`, and `message_id` when posted).

    Ids are set where the sheet gives them; for the rest the first name column given
    stands in (`names`), to be resolved by the pre-flight and the customer look-ups.
    """
    status = validation.status
    left = _message_missing(validation) | _status_wanted(validation)
    return _requests(sheet, validation, (status.eq(Status.VALID.value) | left).to_numpy())


def transcript_rows(
    sheet: Sheet, validation: TranscriptValidation, *, time_prefix: bool = True
) -> list[ChatRequest]:
    """A `ChatRequest` for every row of a transcript's conversations that is not invalid:
    those to send, and those a results workbook fed back in says were posted (with their
    `message_id`), which tell what is left. Each carries its `conversation` and
    `position`, its conversation's chat fields, and its message as it is sent: with
    `time_prefix`, its `sent_at` before the text, as `[2023-04-01 10:02] `."""
    chosen = validation.status.isin([Status.VALID.value, Status.ALREADY_CREATED.value])
    rows = _requests(sheet, validation, chosen.to_numpy())
    conversations = validation.conversation.tolist()
    positions = validation.position.tolist()
    stamps = validation.sent_at.tolist()
    sent = []
    for row in rows:
        message = row.message
        stamp = stamps[row.index]
        if message is not None and time_prefix and stamp:
            message = replace(message, text=f"[{stamp}] {message.text}")
        sent.append(
            replace(
                row,
                message=message,
                conversation=conversations[row.index],
                position=int(positions[row.index]),
            )
        )
    return sent


def _requests(sheet: Sheet, validation: Validation, chosen: Bools) -> list[ChatRequest]:
    """A `ChatRequest` for every row of `chosen`."""
    status = validation.status
    positions = [int(p) for p in status.index[chosen]]
    blank_ids: list[int | None] = [None] * len(positions)
    ids = {
        name: optional_ints(validation.ids[name][chosen]) if name in validation.ids else blank_ids
        for name in ID_FIELDS
    }
    blank_names = [""] * len(positions)
    names = {
        name: [str(v) for v in validation.names[name][chosen].tolist()]
        if name in validation.names
        else blank_names
        for name in NAME_FIELDS
    }
    chat_ids = optional_ints(validation.chat_id[chosen])
    message_ids = optional_ints(validation.message_id[chosen])
    statuses = validation.chat_status[chosen].tolist()
    profiles = {
        PROFILE_FIELDS[name]: [str(v) for v in validation.profile[name][chosen].tolist()]
        for name in PROFILE_FIELDS
        if name in validation.profile
    }
    texts = validation.message[chosen].tolist()
    kinds = validation.message_type[chosen].tolist()
    rows = []
    for n, position in enumerate(positions):
        application = ids["application"][n]
        if application is None:  # neither validation nor `_message_missing` passes one
            continue
        row_names: list[tuple[str, str]] = []
        for id_field in ID_FIELDS:
            if ids[id_field][n] is None:
                given = next((name for name in names_for(id_field) if names[name][n]), None)
                if given is not None:
                    row_names.append((given, names[given][n]))
        message = FirstMessage(texts[n], kinds[n], ids["message_agent"][n]) if texts[n] else None
        rows.append(
            ChatRequest(
                index=position,
                source_row=sheet.source_rows[position],
                customer=ids["customer"][n],
                application=application,
                assignee=ids["assignee"][n],
                department=ids["department"][n],
                message=message,
                chat_id=chat_ids[n],
                names=tuple(row_names),
                status=statuses[n] or None,
                message_id=message_ids[n] if message is not None else None,
                profile=tuple((api, values[n]) for api, values in profiles.items() if values[n]),
            )
        )
    return rows


def changes_to_send(sheet: Sheet, validation: ChangeValidation) -> list[ChangeRequest]:
    """A `ChangeRequest` for every valid row of `update` or `close` (`validate_changes`):
    its chat and what to change; an assignee or department given by name only is left in
    `names` for the pre-flight."""
    chosen = validation.status.eq(Status.VALID.value).to_numpy()
    positions = [int(p) for p in validation.status.index[chosen]]
    blank: list[int | None] = [None] * len(positions)

    def ids(name: str) -> list[int | None]:
        return optional_ints(validation.ids[name][chosen]) if name in validation.ids else blank

    def texts(column: pd.Series | None) -> list[str]:
        return [""] * len(positions) if column is None else column[chosen].tolist()

    chat_ids, assignees, departments = ids("chat_id"), ids("assignee"), ids("department")
    statuses = texts(validation.chat_status)
    unassign = [bool(u) for u in texts(validation.unassign)]
    names = {
        name: texts(validation.names.get(name)) for name in ("assignee_email", "department_name")
    }
    rows = []
    for n, position in enumerate(positions):
        chat_id = chat_ids[n]
        if chat_id is None:  # validation passes no row without one
            continue
        given = tuple(
            (name, values[n])
            for name, values, id_ in (
                ("assignee_email", names["assignee_email"], assignees[n]),
                ("department_name", names["department_name"], departments[n]),
            )
            if values[n] and id_ is None
        )
        rows.append(
            ChangeRequest(
                index=position,
                source_row=sheet.source_rows[position],
                chat_id=chat_id,
                assignee=assignees[n],
                unassign=unassign[n],
                department=departments[n],
                status=statuses[n] or None,
                names=given,
            )
        )
    return rows


def fed_back(sheet: Sheet, validation: Validation) -> FedBack:
    """What the results workbook `sheet` says an earlier run did (empty when it is none)."""
    if not sheet.fed_back:
        return FedBack()
    chat_ids = validation.chat_id.dropna()
    finished = (
        validation.status.eq(Status.ALREADY_CREATED.value)
        & ~_message_missing(validation)
        & ~_status_wanted(validation)
    )
    status = sheet.column("status")
    unknown = frozenset[int]()
    if status is not None:
        marked = status.astype(str).str.strip().str.lower().eq(Status.UNKNOWN.value)
        unknown = frozenset(int(i) for i in status.index[marked.to_numpy(dtype=bool)])
    return FedBack(
        finished=int(finished.sum()),
        unknown=unknown,
        chat_ids=frozenset(int(i) for i in chat_ids),
    )


def problems(sheet: Sheet, validation: Verdict) -> list[RowProblem]:
    """A `RowProblem` for every row validation rejected (`invalid` or `duplicate`), in order."""
    rejected = validation.status.isin([Status.INVALID.value, Status.DUPLICATE.value]).to_numpy()
    positions = validation.status.index[rejected]
    return [
        RowProblem(
            index=int(position),
            source_row=sheet.source_rows[int(position)],
            status=Status(status),
            error_code=code,
            error_message=message,
        )
        for position, status, code, message in zip(
            positions,
            validation.status[rejected].tolist(),
            validation.error_code[rejected].tolist(),
            validation.error_message[rejected].tolist(),
            strict=True,
        )
    ]


def _message_missing(validation: Validation) -> pd.Series:
    """Rows a fed-back workbook gives a chat whose first message it does not give (and
    an application, without which no message can be sent either)."""
    return (
        validation.status.eq(Status.ALREADY_CREATED.value)
        & validation.message.ne("")
        & validation.message_id.isna()
        & validation.ids["application"].notna()
    )


def _status_wanted(validation: Validation) -> pd.Series:
    """Rows a fed-back workbook gives a chat that are to end in a `chat_status`: whether
    an earlier run set it is the journal's to say (`resume.sort_by_earlier_runs`)."""
    return (
        validation.status.eq(Status.ALREADY_CREATED.value)
        & validation.chat_status.ne("")
        & validation.ids["application"].notna()
    )


def optional_ints(column: pd.Series) -> list[int | None]:
    """A nullable Int64 column as Python ints (JSON-ready) and None."""
    return [None if value is pd.NA else int(value) for value in column.tolist()]
