"""Validation's verdict as records for the stages after it.

Validation works on whole columns, which is what makes a million rows cheap. What comes
after it (the resume plan, the pre-flight, the look-ups, the sender, a page listing the
problems) handles one row at a time, and only some rows: they get frozen records
(`ChatRequest`, `RowProblem`, `FedBack`), built here once, and never reach back into the
sheet's columns.
"""

from __future__ import annotations

import pandas as pd

from bulk_chats.fields import ID_FIELDS, NAME_FIELDS, PROFILE_FIELDS, names_for
from bulk_chats.loading import Sheet
from bulk_chats.records import ChatRequest, FedBack, FirstMessage, RowProblem, Status
from bulk_chats.validation import Validation


def rows_to_send(sheet: Sheet, validation: Validation) -> list[ChatRequest]:
    """A `ChatRequest` for every valid row, and for every row a results workbook fed back
    in gives a chat whose first message is still missing (that one carries its `chat_id`).

    Ids are set where the sheet gives them; for the rest the first name column given
    stands in (`names`), to be resolved by the pre-flight and the customer look-ups.
    """
    status = validation.status
    chosen = (status.eq(Status.VALID.value) | _message_missing(validation)).to_numpy()
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
    chat_ids = optional_ints(validation.fed_back_chat_id[chosen])
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
                profile=tuple((api, values[n]) for api, values in profiles.items() if values[n]),
            )
        )
    return rows


def fed_back(sheet: Sheet, validation: Validation) -> FedBack:
    """What the results workbook `sheet` says an earlier run did (empty when it is none)."""
    if not sheet.fed_back:
        return FedBack()
    chat_ids = validation.fed_back_chat_id.dropna()
    finished = validation.status.eq(Status.ALREADY_CREATED.value) & ~_message_missing(validation)
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


def problems(sheet: Sheet, validation: Validation) -> list[RowProblem]:
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
        & validation.fed_back_message_id.isna()
        & validation.ids["application"].notna()
    )


def optional_ints(column: pd.Series) -> list[int | None]:
    """A nullable Int64 column as Python ints (JSON-ready) and None."""
    return [None if value is pd.NA else int(value) for value in column.tolist()]
