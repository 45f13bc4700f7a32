"""The records that pass between the stages: statuses, rows to send, outcomes.

They are frozen and free of pandas: validation turns its columns into them, and the
pre-flight, the resume plan, the sender and the journal read nothing else.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from bulk_chats.fields import CUSTOMER_SEARCH_FIELDS, STANDS_FOR


class Status(StrEnum):
    """A row's status in the results workbook, spelled as docs/reference.md › Statuses spells it."""

    VALID = "valid"
    CREATED = "created"
    ALREADY_CREATED = "already_created"
    INVALID = "invalid"
    FAILED = "failed"
    MESSAGE_FAILED = "message_failed"
    UNKNOWN = "unknown"
    DUPLICATE = "duplicate"
    NOT_SENT = "not_sent"
    STATUS_FAILED = "status_failed"
    UPDATED = "updated"
    ALREADY_UPDATED = "already_updated"
    SKIPPED = "skipped"
    UNCHANGED = "unchanged"
    EXPORTED = "exported"


@dataclass(frozen=True, slots=True)
class FirstMessage:
    """The message posted right after a row's chat is created.

    `agent` is the sending agent's id; None means the customer speaks.
    `type` is "message" or "private" (an agent-only note).
    """

    text: str
    type: str = "message"
    agent: int | None = None

    def payload(self, chat_id: int) -> dict[str, Any]:
        """The body of `POST /v1/messages` for this message in chat `chat_id`."""
        body: dict[str, Any] = {"chat": chat_id, "text": self.text, "type": self.type}
        if self.agent is not None:
            body["agent"] = self.agent
        return body


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A row to send, from validation to the sender.

    `index` is the row's 0-based position among the sheet's data rows; `source_row` the
    row number the spreadsheet shows. Ids the sheet gives are set from the start; `names`
    holds (name field, value) for each id the row gives by name only, such as
    `("assignee_email", "anna@example.com")`, and the id it stands in for (for a named
    message agent, `message.agent`) stays None until the pre-flight and the customer
    look-ups fill it in. `key` is built from the names, not the ids they resolve to.

    `chat_id` is set when an earlier run already created the chat, so only the first
    message is left; `message_id` too when the message is posted, so only the status is.
    `search_since` (unix seconds) is set when an earlier attempt may have created the
    chat (or posted its message): the sender looks for it before sending again. `status`
    is the `chat_status` the chat is to end in, as the API spells it, set after the chat
    and its message exist; it is not part of `key`.

    `profile` holds (field of `POST /v1/customers`, value) for the row's non-blank
    `customer_name`, `company` and `phone`: what a customer created for the row is given.
    It is not part of `key`.

    A row of a transcript (docs/transcripts.md) names its `conversation`, and `position`
    is its message's place in the conversation's order (0 first). Its chat fields are the
    conversation's, and its `key` is the conversation's (`row_key`); `message_key` tells
    its message from the others.
    """

    index: int
    source_row: int
    customer: int | None
    application: int
    assignee: int | None = None
    department: int | None = None
    message: FirstMessage | None = None
    chat_id: int | None = None
    search_since: float | None = None
    names: tuple[tuple[str, str], ...] = ()
    status: str | None = None
    message_id: int | None = None
    profile: tuple[tuple[str, str], ...] = ()
    conversation: str | None = None
    position: int = 0

    @property
    def customer_id(self) -> int:
        """The customer's id; the look-ups give every row that reaches the sender one."""
        if self.customer is None:
            raise ValueError(f"row {self.source_row}: the customer is not looked up yet")
        return self.customer

    def payload(self) -> dict[str, int]:
        """The body of `POST /v1/chats`: JSON integers, blank optional fields left out."""
        body = {"customer": self.customer_id, "application": self.application}
        if self.assignee is not None:
            body["assignee"] = self.assignee
        if self.department is not None:
            body["department"] = self.department
        return body

    @property
    def key(self) -> str:
        """A fingerprint of the chat fields: the same row gets the same key in every run.

        A name in `names` takes the place of the id it was resolved to (see `row_key`).
        """
        return row_key(
            customer=self.customer,
            application=self.application,
            assignee=self.assignee,
            department=self.department,
            message=self.message,
            names=self.names,
            conversation=self.conversation,
        )

    @property
    def message_key(self) -> str:
        """A fingerprint of the row's message (its text as sent, type and agent, the agent
        as the sheet names it), "" for none: what tells one message of a conversation from
        another in the journal, beside its `position`."""
        message = self.message
        if message is None:
            return ""
        agent = self.name("message_agent_email")
        named = f"message_agent_email:{agent.strip().lower()}" if agent else message.agent
        return fingerprint(message.text, message.type, named)

    def name(self, field: str) -> str | None:
        """The value of name field `field`, when the row gives that id by name."""
        return next((value for name, value in self.names if name == field), None)

    @property
    def customer_lookup(self) -> tuple[str, str] | None:
        """(name field, value) the customer is to be looked up by, while it has no id."""
        if self.customer is not None:
            return None
        return next(((n, v) for n, v in self.names if n in CUSTOMER_SEARCH_FIELDS), None)


def row_key(
    *,
    customer: int | None,
    application: int,
    assignee: int | None,
    department: int | None,
    message: FirstMessage | None,
    names: Iterable[tuple[str, str]] = (),
    conversation: str | None = None,
) -> str:
    """The fingerprint that recognises a row across runs (`ChatRequest.key`).

    The fields as the sheet gives them: an id given by a name column is fingerprinted as
    that name (`assignee_email:anna@example.com`, trimmed and lower-cased as validation
    compares names), not as the id it resolves to. So a re-run finds the rows an earlier
    run created before looking anything up, and looks up only what is left to send. A row
    whose mapping changes between runs (a name column replaced by ids) is a new row.

    A row of a transcript is known by its `conversation`, customer and application only:
    the conversation's chat, the same for all its rows, whose assignee or department
    changed in the sheet after the chat exists is still that chat, never a second one.
    """
    parts: dict[str, object] = {
        "customer": customer,
        "assignee": assignee,
        "department": department,
        "message_agent": message.agent if message else None,
    }
    for field, value in names:
        parts[STANDS_FOR[field]] = f"{field}:{value.strip().lower()}"
    if conversation is not None:
        return fingerprint("conversation", conversation, parts["customer"], application)
    return fingerprint(
        parts["customer"],
        application,
        parts["assignee"],
        parts["department"],
        *((message.text, message.type, parts["message_agent"]) if message else ()),
    )


def fingerprint(*values: object) -> str:
    """A stable hex digest of `values`, used to recognise a row across runs."""
    text = json.dumps([None if v is None else str(v) for v in values], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Conversation:
    """One conversation of a transcript, from the look-ups to the sender
    (docs/transcripts.md).

    `chat` is what its chat is made from: the conversation's fields, no message, the index
    of its first row to send. `chat.chat_id` is set when the chat exists (an earlier run
    made it), `chat.search_since` when an earlier attempt may have, and `chat.status` is
    the `chat_status` it ends in, set after its last message. `messages` are the rows
    whose message is still to post, in the conversation's order; one with `search_since`
    set may be in the chat already (an earlier attempt got no answer), and is looked for
    first. `posted` are the ids of the conversation's messages earlier runs posted: a look
    for a lost answer takes none of them for another. `last` is the conversation's last
    row, which carries the outcome of setting the status.
    """

    chat: ChatRequest
    messages: tuple[ChatRequest, ...]
    last: ChatRequest
    posted: frozenset[int] = frozenset()

    @property
    def index(self) -> int:
        """The index of the row the conversation's chat is known by."""
        return self.chat.index

    @property
    def chat_id(self) -> int | None:
        """The conversation's chat, when it exists."""
        return self.chat.chat_id


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one row: the cells `status` … `attempts` of the results workbook."""

    index: int
    status: Status
    chat_id: int | None = None
    message_id: int | None = None
    error_code: str = ""
    error_message: str = ""
    http_status: int | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class FedBack:
    """What a results workbook fed back in says an earlier run did; empty for other sheets.

    `finished` counts the rows it gives a chat whose first message (if the row has one)
    is posted too: they are `already_created`, and nothing is sent for them. `unknown` holds
    the `index` of each row it left `unknown`. `chat_ids` are the chats it gives its rows:
    a search for it must never adopt one of them for another row.
    """

    finished: int = 0
    unknown: frozenset[int] = frozenset()
    chat_ids: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a row: a stable `code` naming the field (`unknown_assignee`),
    and the words, which say what is wrong and the fix."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Why validation sends a row nowhere: `status` is `invalid` or `duplicate`, `error_code`
    names the fields ("; " between codes) and `error_message` says what is wrong and the fix
    (" | " between messages)."""

    index: int
    source_row: int
    status: Status
    error_code: str
    error_message: str


CHANGE_ORDER: Final = ("assignee", "department", "status")
"""The order of a row's changes: the status last, as the chat is where it belongs by then."""


@dataclass(frozen=True, slots=True)
class ChatChange:
    """One `PUT /v1/chats/<field>`: `field` is one of `CHANGE_ORDER`; `value` an agent or
    department id, a status as the API spells it, or None (assignee only: unassign)."""

    field: str
    value: int | str | None

    @property
    def journal_value(self) -> str:
        """The value as the journal keys it: "" for None (unassign)."""
        return "" if self.value is None else str(self.value)


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    """A row of `update` or `close`, from validation to the sender: chat `chat_id` and
    what to change in it. `unassign` is set for the cell `none` in `assignee`; `names`
    holds (name field, value) for an assignee or department given by name only, and the
    id stays None until the pre-flight fills it in. `applied` are the changes an earlier
    run made (the journal says so): not sent again."""

    index: int
    source_row: int
    chat_id: int
    assignee: int | None = None
    unassign: bool = False
    department: int | None = None
    status: str | None = None
    names: tuple[tuple[str, str], ...] = ()
    applied: frozenset[ChatChange] = frozenset()

    @property
    def changes(self) -> tuple[ChatChange, ...]:
        """Every change the row asks for, in `CHANGE_ORDER`."""
        asked = {
            "assignee": self.assignee is not None or self.unassign,
            "department": self.department is not None,
            "status": self.status is not None,
        }
        return tuple(ChatChange(f, getattr(self, f)) for f in CHANGE_ORDER if asked[f])

    @property
    def pending(self) -> tuple[ChatChange, ...]:
        """The changes still to send."""
        return tuple(c for c in self.changes if c not in self.applied)

    def name(self, field: str) -> str | None:
        """The value of name field `field`, when the row gives that id by name."""
        return next((value for name, value in self.names if name == field), None)


@dataclass(frozen=True, slots=True)
class ExportedChat:
    """One chat as an export writes it: a row of the `chats` sheet, in the order of
    `fields.EXPORT_COLUMNS`. Times are naive date-times in UTC; None is a blank cell."""

    chat_id: int
    chat_status: str | None
    assignee: int | None
    assignee_email: str | None
    department: int | None
    department_name: str | None
    customer: int | None
    customer_email: str | None
    customer_name: str | None
    customer_user_id: str | None
    application: int | None
    created_at: dt.datetime | None
    closed_at: dt.datetime | None
    last_message_at: dt.datetime | None
    created_with: str | None
    rating: str | None
    last_message_text: str | None


@dataclass(frozen=True, slots=True)
class ExportedMessage:
    """One message as `export --messages` writes it: a row of the `messages` sheet, in the
    order of `fields.MESSAGE_COLUMNS` (`sender` is the `from` column). `sent_at` is a naive
    date-time in UTC."""

    chat_id: int
    message_id: int
    sent_at: dt.datetime | None
    sender: str | None
    agent_email: str | None
    type: str | None
    text: str | None
