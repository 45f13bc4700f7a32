"""The API's answers as small frozen records, read from JSON in this one place.

The API writes ids as numbers or strings of digits, and references to other objects as
ids or as objects with an `id`; timestamps as numbers or strings of digits, sometimes with
a fraction (`"1601557390.769"`). `parse_id` and `parse_timestamp` accept every such form;
anything else reads as None rather than as a wrong value. `HelpCrunchClient` turns every
answer into these records, so no other module reads the API's dicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal

PUBLIC_API: Final = "public_api"
"""`createdWith` of a chat made through `POST /v1/chats`, as the API documents it."""


class _Absent(Enum):
    ABSENT = "absent"


ABSENT: Final = _Absent.ABSENT
"""A field the answer leaves out: unlike null, it says nothing about the value."""

Ref = int | None | Literal[_Absent.ABSENT]
"""A reference to another object: its id, None when null or unreadable, or `ABSENT`."""


def parse_id(value: object) -> int | None:
    """An id from a JSON value: an int, a string of ASCII digits (spaces around ignored),
    or an object whose `id` is one of those; None otherwise (bools included)."""
    if isinstance(value, Mapping):
        value = value.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            return int(text)
    return None


def parse_timestamp(value: object) -> float | None:
    """Unix seconds from a JSON number or a string of one; None when it is neither or not
    finite."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _nested_value(entity: Mapping[str, object], key: str, field: str) -> object:
    """`entity[key][field]` when `entity[key]` is an object; None otherwise."""
    nested = entity.get(key)
    return nested.get(field) if isinstance(nested, Mapping) else None


def _nested(entity: Mapping[str, object], key: str, field: str) -> str | None:
    return _text(_nested_value(entity, key, field))


def _user_id(value: object) -> str | None:
    """A userId: the account's own id for a customer, which some write as a number."""
    return None if value is None or isinstance(value, bool) else str(value)


def _ref(entity: Mapping[str, object], *keys: str) -> Ref:
    """The id under the first of `keys` the answer carries; `ABSENT` when it has none."""
    for key in keys:
        if key in entity:
            return parse_id(entity[key])
    return ABSENT


@dataclass(frozen=True, slots=True)
class Chat:
    """A chat as `POST /v1/chats`, a chat search or the chat listing shows it.

    `created_at`, `closed_at` and `last_message_at` are unix seconds, None when not shown
    or unreadable; `created_with` says how the chat began (`PUBLIC_API` for ours), None
    when the answer does not say. The customer's, the assignee's and the department's
    own fields are read from the objects the answer nests (`customer {id, name, email,
    userId}`, `assignee {id, email}`, `department {id, name}`); None when it gives ids
    only.
    """

    id: int
    customer: Ref = ABSENT
    application: Ref = ABSENT
    assignee: Ref = ABSENT
    department: Ref = ABSENT
    created_at: float | None = None
    created_with: str | None = None
    status: str | None = None
    last_message_id: int | None = None
    last_message_text: str | None = None
    closed_at: float | None = None
    last_message_at: float | None = None
    rating: str | None = None
    customer_email: str | None = None
    customer_name: str | None = None
    customer_user_id: str | None = None
    assignee_email: str | None = None
    department_name: str | None = None

    @classmethod
    def parse(cls, entity: Mapping[str, object]) -> Chat | None:
        """The chat in `entity`; None when its id cannot be read."""
        chat_id = parse_id(entity.get("id"))
        if chat_id is None:
            return None
        return cls(
            id=chat_id,
            customer=_ref(entity, "customer"),
            application=_ref(entity, "applicationId", "application"),
            assignee=_ref(entity, "assignee"),
            department=_ref(entity, "department"),
            created_at=parse_timestamp(entity.get("createdAt")),
            created_with=_text(entity.get("createdWith")),
            status=_text(entity.get("status")),
            last_message_id=parse_id(entity.get("lastMessageId")),
            last_message_text=_text(entity.get("lastMessageText")),
            closed_at=parse_timestamp(entity.get("closedAt")),
            last_message_at=parse_timestamp(entity.get("lastMessageAt")),
            rating=_text(entity.get("rating")),
            customer_email=_nested(entity, "customer", "email"),
            customer_name=_nested(entity, "customer", "name"),
            customer_user_id=_user_id(_nested_value(entity, "customer", "userId")),
            assignee_email=_nested(entity, "assignee", "email"),
            department_name=_nested(entity, "department", "name"),
        )


@dataclass(frozen=True, slots=True)
class Message:
    """A message as `POST /v1/messages` answers it and a chat's messages list it.

    `sender` is the API's `from` (`customer` or `agent`); `agent` the writing agent's id
    and `agent_email` its email, when the answer nests the agent as an object;
    `created_at` unix seconds.
    """

    id: int
    text: str | None = None
    created_at: float | None = None
    sender: str | None = None
    agent: int | None = None
    agent_email: str | None = None
    type: str | None = None

    @classmethod
    def parse(cls, entity: Mapping[str, object]) -> Message | None:
        """The message in `entity`; None when its id cannot be read."""
        message_id = parse_id(entity.get("id"))
        if message_id is None:
            return None
        return cls(
            id=message_id,
            text=_text(entity.get("text")),
            created_at=parse_timestamp(entity.get("createdAt")),
            sender=_text(entity.get("from")),
            agent=parse_id(entity.get("agent")),
            agent_email=_nested(entity, "agent", "email"),
            type=_text(entity.get("type")),
        )


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent of the account, as `GET /v1/agents` lists it."""

    id: int
    email: str | None = None
    name: str | None = None

    @classmethod
    def parse(cls, entity: Mapping[str, object]) -> Agent | None:
        """The agent in `entity`; None when its id cannot be read."""
        agent_id = parse_id(entity.get("id"))
        if agent_id is None:
            return None
        return cls(id=agent_id, email=_text(entity.get("email")), name=_text(entity.get("name")))


@dataclass(frozen=True, slots=True)
class Department:
    """A department of the account, as `GET /v1/departments` lists it.

    `agent_ids` are its members; None when the listing carries no agents list, so that
    membership is unknown rather than empty.
    """

    id: int
    name: str | None = None
    agent_ids: frozenset[int] | None = None

    @classmethod
    def parse(cls, entity: Mapping[str, object]) -> Department | None:
        """The department in `entity`; None when its id cannot be read."""
        department_id = parse_id(entity.get("id"))
        if department_id is None:
            return None
        listed = entity.get("agents")
        members = None
        if isinstance(listed, list):
            members = frozenset(i for i in map(parse_id, listed) if i is not None)
        return cls(id=department_id, name=_text(entity.get("name")), agent_ids=members)


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer as a customer search shows it; `email` and `user_id` may be null."""

    id: int
    email: str | None = None
    user_id: str | None = None
    name: str | None = None

    @classmethod
    def parse(cls, entity: Mapping[str, object]) -> Customer | None:
        """The customer in `entity`; None when its id cannot be read."""
        customer_id = parse_id(entity.get("id"))
        if customer_id is None:
            return None
        return cls(
            id=customer_id,
            email=_text(entity.get("email")),
            user_id=_user_id(entity.get("userId")),
            name=_text(entity.get("name")),
        )
