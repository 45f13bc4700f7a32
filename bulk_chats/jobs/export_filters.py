"""An export's filters as the queries that read them, and the API's chats and messages as
the rows of the workbook (docs/export.md › Filters).

Names are resolved as `import` resolves them (docs/reference.md › Names and the
pre-flight): an agent's email and a department's name against the account's agents and
departments, read once; a customer's email or userId by customer search, the email
compared ignoring case. A name that matches nothing is an `InputError` (exit 2) before any
chat is read; so is an agent email or a department name that matches several (the id
options say which). A customer email several customers carry reads the chats of each of
them, since emails are not unique and there is no option to name a customer by id.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Sequence

from bulk_chats.api.chat_listing import ChatQuery, Condition
from bulk_chats.api.entities import Chat, Message
from bulk_chats.errors import InputError
from bulk_chats.lookups.directory import Directory, unmatched
from bulk_chats.records import ExportedChat, ExportedMessage
from bulk_chats.settings import ExportFilters


def export_queries(
    filters: ExportFilters, directory: Directory, customers: Sequence[int] | None
) -> list[ChatQuery]:
    """The queries that read the chats `filters` ask for: one per status asked and per
    customer found (the API joins a search's filters with one AND or OR), or the one
    listing of every chat when nothing is filtered. `customers` are the ids the customer
    name resolved to (None: the filters name no customer). Raises `InputError` for an id
    or a name that is not the account's."""
    common: list[Condition] = []
    assignee = _agent(filters, directory)
    if assignee is not None:
        common.append(("chats.assignee", "=", assignee))
    department = _department(filters, directory)
    if department is not None:
        common.append(("chats.department", "=", department))
    statuses: Sequence[Condition | None] = [("chats.status", "=", s) for s in filters.statuses]
    by_customer: Sequence[Condition | None] = [("chats.customer", "=", c) for c in customers or ()]
    since = _seconds(filters.since)
    until = _seconds(filters.until)
    return [
        ChatQuery(
            conditions=(*common, *(c for c in (status, customer) if c is not None)),
            since=since,
            until=until,
        )
        for status, customer in itertools.product(statuses or [None], by_customer or [None])
    ]


def parse_when(text: str | None, option: str) -> dt.datetime | None:
    """A `--since`/`--until` value as an aware date-time: a date (midnight) or a date-time,
    in local time unless it carries an offset (`+02:00`, `Z`)."""
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"{option}: {text!r} is not a date or a date-time; write 2026-10-01 or "
            "2026-10-01 09:30 (local time unless an offset such as +02:00 is given)"
        ) from None
    return moment if moment.tzinfo is not None else moment.astimezone()


def _seconds(moment: dt.datetime | None) -> int | None:
    """An aware date-time as the whole unix second a creation-time bound compares with:
    `createdAt >= ceil(since)` is `createdAt >= since` for whole seconds, likewise `<`."""
    return None if moment is None else math.ceil(moment.timestamp())


def _agent(filters: ExportFilters, directory: Directory) -> int | None:
    agents = directory.agents or {}
    if filters.assignee is not None:
        if filters.assignee not in agents:
            raise InputError(f"--assignee: {filters.assignee} is not an agent of this account")
        return filters.assignee
    if filters.assignee_email is None:
        return None
    return _one(
        directory.agents_by_email(filters.assignee_email),
        "--assignee-email",
        filters.assignee_email,
        "agent",
        "check the address, or give --assignee ID",
    )


def _department(filters: ExportFilters, directory: Directory) -> int | None:
    departments = directory.departments or {}
    if filters.department is not None:
        if filters.department not in departments:
            raise InputError(
                f"--department: {filters.department} is not a department of this account"
            )
        return filters.department
    if filters.department_name is None:
        return None
    names = sorted(d.name or "" for d in departments.values())
    hint = "check the name, or give --department ID"
    if 0 < len(names) <= 10:
        hint = f"the account's departments are {', '.join(repr(n) for n in names)}"
    return _one(
        directory.departments_by_name(filters.department_name),
        "--department-name",
        filters.department_name,
        "department",
        hint,
    )


def _one(found: list[int], option: str, value: str, kind: str, hint: str) -> int:
    if len(found) == 1:
        return found[0]
    raise InputError(unmatched(option, value, kind, found, hint))


def check_customers(option: str, value: str, found: Sequence[int]) -> None:
    """Raise `InputError` when the customer `option` names matches no one."""
    if not found:
        raise InputError(f"{option}: '{value}' matches no customer of this account; check it")


def utc(seconds: float | None) -> dt.datetime | None:
    """Unix seconds as the naive UTC date-time a workbook cell holds."""
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).replace(tzinfo=None)


def _id(ref: object) -> int | None:
    return ref if isinstance(ref, int) and not isinstance(ref, bool) else None


def exported_chat(chat: Chat, directory: Directory) -> ExportedChat:
    """`chat` as a row of the workbook. An assignee's email and a department's name come
    from the answer, or from the account's agents and departments when it gives ids only."""
    assignee, department = _id(chat.assignee), _id(chat.department)
    agent = (directory.agents or {}).get(assignee) if assignee is not None else None
    team = (directory.departments or {}).get(department) if department is not None else None
    return ExportedChat(
        chat_id=chat.id,
        chat_status=chat.status,
        assignee=assignee,
        assignee_email=chat.assignee_email or (agent.email if agent else None),
        department=department,
        department_name=chat.department_name or (team.name if team else None),
        customer=_id(chat.customer),
        customer_email=chat.customer_email,
        customer_name=chat.customer_name,
        customer_user_id=chat.customer_user_id,
        application=_id(chat.application),
        created_at=utc(chat.created_at),
        closed_at=utc(chat.closed_at),
        last_message_at=utc(chat.last_message_at),
        created_with=chat.created_with,
        rating=chat.rating,
        last_message_text=chat.last_message_text,
    )


def exported_messages(
    chat_id: int, newest_first: Sequence[Message], directory: Directory
) -> list[ExportedMessage]:
    """A chat's messages as rows of the `messages` sheet, oldest first (the API lists them
    newest first)."""
    agents = directory.agents or {}
    rows = []
    for message in reversed(newest_first):
        agent = agents.get(message.agent) if message.agent is not None else None
        rows.append(
            ExportedMessage(
                chat_id=chat_id,
                message_id=message.id,
                sent_at=utc(message.created_at),
                sender=message.sender,
                agent_email=message.agent_email or (agent.email if agent else None),
                type=message.type,
                text=message.text,
            )
        )
    return rows
