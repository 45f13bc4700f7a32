"""The vocabulary of a sheet: its fields, the headers that name them, the columns results add.

Reading maps headers to these fields, validation checks them, the pre-flight resolves the
name fields, the journal's row key and the results workbook are built from them. They are
written here once, so that a new field is one line in `FIELDS` (docs/reference.md › Input).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Kind(StrEnum):
    """What a field's cells hold."""

    ID = "id"
    """A HelpCrunch id: a positive whole number."""
    NAME = "name"
    """A name, email or userId standing in for an id field; `import` resolves it."""
    TEXT = "text"
    """Free text, such as the first message."""
    CHAT = "chat"
    """The id of a chat that exists: what `update` and `close` change."""


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a sheet.

    `aliases` are the headers (normalised: lower case, `_` between words) that name it
    besides its own name. A name field `stands_for` the id field it is resolved to;
    `search_as` is the field of `POST /v1/customers/search` a customer name is matched
    against; `email` marks cells that must be email addresses. `profile_as` is the field
    of `POST /v1/customers` a text field fills when `import --create-customers` makes the
    row's customer.
    """

    name: str
    kind: Kind
    aliases: tuple[str, ...] = ()
    stands_for: str | None = None
    search_as: str | None = None
    email: bool = False
    profile_as: str | None = None


FIELDS: Final = (
    Field("customer", Kind.ID, ("customer_id", "customerid")),
    Field("application", Kind.ID, ("application_id", "app", "app_id", "applicationid")),
    Field("assignee", Kind.ID, ("assignee_id", "agent", "agent_id")),
    Field("department", Kind.ID, ("department_id", "dept", "dept_id")),
    Field("message_agent", Kind.ID, ("message_agent_id",)),
    # A customer given by both: the email is looked up, so it comes first.
    Field(
        "customer_email",
        Kind.NAME,
        ("email", "customer_mail"),
        stands_for="customer",
        search_as="email",
        email=True,
    ),
    Field(
        "customer_user_id",
        Kind.NAME,
        ("user_id", "userid", "customer_userid"),
        stands_for="customer",
        search_as="userId",
    ),
    Field(
        "assignee_email",
        Kind.NAME,
        ("agent_email", "assignee_mail"),
        stands_for="assignee",
        email=True,
    ),
    Field("department_name", Kind.NAME, ("dept_name", "department_title"), stands_for="department"),
    Field(
        "message_agent_email",
        Kind.NAME,
        ("sender_email",),
        stands_for="message_agent",
        email=True,
    ),
    Field("message", Kind.TEXT, ("message_text", "text")),
    Field("message_type", Kind.TEXT),
    Field("chat_status", Kind.TEXT, ("chat_state",)),
    Field("chat_id", Kind.CHAT, ("chat", "chatid")),
    Field("customer_name", Kind.TEXT, ("name", "full_name"), profile_as="name"),
    Field("company", Kind.TEXT, ("company_name",), profile_as="company"),
    Field("phone", Kind.TEXT, ("phone_number",), profile_as="phone"),
    # Transcripts (docs/transcripts.md): one row per message, grouped by conversation.
    Field(
        "conversation",
        Kind.TEXT,
        ("conversation_id", "thread", "thread_id", "ticket", "ticket_id"),
    ),
    Field("sent_at", Kind.TEXT, ("sent_time", "message_time")),
)
"""Every field, in the order messages list them."""

FIELD_NAMES: Final = tuple(f.name for f in FIELDS)
ID_FIELDS: Final = tuple(f.name for f in FIELDS if f.kind is Kind.ID)
NAME_FIELDS: Final = tuple(f.name for f in FIELDS if f.kind is Kind.NAME)
EMAIL_FIELDS: Final = frozenset(f.name for f in FIELDS if f.email)

ALIASES: Final = {alias: f.name for f in FIELDS for alias in f.aliases}
"""Header (normalised) → field, beyond each field's own name."""

STANDS_FOR: Final = {f.name: f.stands_for for f in FIELDS if f.stands_for is not None}
"""Name field → the id field it stands in for (`customer_email` → `customer`)."""

CUSTOMER_SEARCH_FIELDS: Final = {f.name: f.search_as for f in FIELDS if f.search_as is not None}
"""Customer name field → the field of `POST /v1/customers/search` it is matched against."""

PROFILE_FIELDS: Final = {f.name: f.profile_as for f in FIELDS if f.profile_as is not None}
"""Customer text field → the field of `POST /v1/customers` it fills (`customer_name` → `name`)."""

CONVERSATION_FIELDS: Final = (
    "customer",
    "application",
    "assignee",
    "department",
    "customer_email",
    "customer_user_id",
    "assignee_email",
    "department_name",
    "chat_status",
    *PROFILE_FIELDS,
)
"""In a transcript, the fields of a conversation's chat: they may stand on any of its rows
and must agree where given. The others (`message`, `message_type`, `message_agent`,
`message_agent_email`, `sent_at`) are each row's, its message's own."""


def headers_for(field: str) -> tuple[str, ...]:
    """The headers (normalised) that name `field`: its own name, then its aliases."""
    return (field, *next(f.aliases for f in FIELDS if f.name == field))


def names_for(id_field: str) -> tuple[str, ...]:
    """The name fields that can stand in for `id_field`, the one to look up first first."""
    return tuple(name for name, target in STANDS_FOR.items() if target == id_field)


RESOLVED_COLUMNS: Final = {
    f"resolved_{id_field}": id_field for id_field in ID_FIELDS if names_for(id_field)
}
"""Results workbook column → the id field whose resolved id it shows; written when a name
column stands in for that field."""

WORKSHEET_ROWS: Final = 1_048_576
"""Rows a worksheet holds, the header included."""

WORKSHEET_COLUMNS: Final = 16_384
"""Columns a worksheet holds."""

RESULT_COLUMNS: Final = (
    "source_row",
    "status",
    "chat_id",
    "message_id",
    "error_code",
    "error_message",
    "http_status",
    "attempts",
    "customer_created",
    *RESOLVED_COLUMNS,
)
"""Columns the results workbook adds. Read back, they are not input: the next results
workbook writes them afresh rather than echoing the old ones."""

FED_BACK_COLUMNS: Final = frozenset({"source_row", "status", "chat_id"})
"""The result columns that make a sheet a results workbook fed back in: with all three, its
`status`, `chat_id` and `message_id` say what an earlier run did."""

EXPORT_COLUMNS: Final = (
    "chat_id",
    "chat_status",
    "assignee",
    "assignee_email",
    "department",
    "department_name",
    "customer",
    "customer_email",
    "customer_name",
    "customer_user_id",
    "application",
    "created_at",
    "closed_at",
    "last_message_at",
    "created_with",
    "rating",
    "last_message_text",
)
"""The columns of an export's `chats` sheet, in order (docs/export.md › The workbook): the
headers `update` and `close` read it by."""

EXPORTED_SHEET: Final = "exported"
"""The hidden sheet of an export that keeps each chat as it was read."""

EXPORTED_COLUMNS: Final = EXPORT_COLUMNS[:6]
"""The columns of the `exported` sheet, the first of `chats`: the chat and its status,
assignee and department, as read; what `update` compares a row's cells with."""

MESSAGE_COLUMNS: Final = ("chat_id", "message_id", "sent_at", "from", "agent_email", "type", "text")
"""The columns of an export's `messages` sheet (`export --messages`)."""
