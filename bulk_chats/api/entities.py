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


def _ref(entity: Mapping[str, object], *keys: str) -> Ref:
    """The id under the first of `keys` the answer carries; `ABSENT` when it has none."""
    for key in keys:
        if key in entity:
            return parse_id(entity[key])
    return ABSENT


@dataclass(frozen=True, slots=True)
class Chat:
    """A chat as `POST /v1/chats` or a chat search shows it.

    `created_at` is unix seconds, None when not shown or unreadable; `created_with` says
    how the chat began (`PUBLIC_API` for ours), None when the answer does not say.
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
        )


@dataclass(frozen=True, slots=True)
class Message:
    """A message as `POST /v1/messages` answers it."""

    id: int
    text: str | None = None

    @classmethod
    def parse(cls, entity: Mapping[str, object]) -> Message | None:
        """The message in `entity`; None when its id cannot be read."""
        message_id = parse_id(entity.get("id"))
        if message_id is None:
            return None
        return cls(id=message_id, text=_text(entity.get("text")))


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
        user_id = entity.get("userId")
        return cls(
            id=customer_id,
            email=_text(entity.get("email")),
            # A userId is the account's own id for the customer; some write it as a number.
            user_id=None if user_id is None or isinstance(user_id, bool) else str(user_id),
            name=_text(entity.get("name")),
        )
