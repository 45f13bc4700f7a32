"""The sandbox's memory: the seeded account, the chats, messages and customers created,
the changes made to chats, and counters.

One `SandboxState` belongs to one sandbox server. The server's event loop writes it; tests
read it, from the loop's thread or another one (`run_in_thread`), so writes and
`snapshot()` hold a lock.

Timestamps are kept as the wall clock gave them (unix seconds, with a fraction) and shown
by `timestamp_json`: whole seconds, or with `quirks` strings as the newest revision of
the documentation shows them.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bulk_chats.errors import InputError
from bulk_chats.sandbox.seed import Agent, Customer, Department, Seed, SeedChat

FIRST_CHAT_ID = 542336
"""The first chat id handed out: the one after HelpCrunch's documentation example."""

FIRST_MESSAGE_ID = 7310001
"""The first message id handed out."""

EMPTY = "empty"
"""A new chat's status in the revision the sandbox follows by default."""

NEW = "new"
"""A new chat's status in the newest revision (`--quirks`), and a chat's after a message."""

OPENED = "opened"
CLOSED = "closed"

STATUSES = (NEW, OPENED, "pending", "on hold", "no communication", CLOSED)
"""The statuses `PUT /v1/chats/status` sets."""

API_CHAT = "public_api"
"""`createdWith` of a chat made with `POST /v1/chats`."""

WIDGET_CHAT = "customer_message"
"""`createdWith` of a chat a customer opened in the widget."""


def timestamp_json(seconds: float | None, *, quirks: bool, fraction: bool) -> int | str | None:
    """`seconds` as the API shows it: whole unix seconds, or with `quirks` a string of
    them, with milliseconds (`"1601557390.769"`) when `fraction`."""
    if seconds is None:
        return None
    if not quirks:
        return int(seconds)
    return f"{seconds:.3f}" if fraction else str(int(seconds))


@dataclass(frozen=True, slots=True)
class Message:
    """A message posted into a chat; `agent` None means the customer wrote it.

    `created_at` is unix seconds; `order` places it among messages and `Change`s.
    """

    id: int
    chat_id: int
    text: str
    type: str
    agent: Agent | None
    created_at: float
    order: int = 0
    markdown_text: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    def to_json(self, *, quirks: bool = False) -> dict[str, Any]:
        """The message object of the API (which has no `markdownText`)."""
        return {
            "id": self.id,
            "chat": self.chat_id,
            "from": "customer" if self.agent is None else "agent",
            "agent": None if self.agent is None else self.agent.to_json(),
            "createdAt": timestamp_json(self.created_at, quirks=quirks, fraction=self.id % 2 == 1),
            "text": self.text,
            "type": self.type,
        }


@dataclass(frozen=True, slots=True)
class Change:
    """One change to a chat: `field` ("status", "assignee", "department") from `old` to
    `new` (a status, an agent or department id, or None).

    `cause` is "update" for a `PUT /v1/chats/...` (recorded even when the value was the
    same already) or "message" for a closed chat that a message reopened. `order` places
    it among messages and other changes.
    """

    chat_id: int
    field: str
    old: str | int | None
    new: str | int | None
    cause: str
    order: int

    def to_json(self) -> dict[str, Any]:
        """The change as `GET /_sandbox/state` shows it."""
        return {
            "chat": self.chat_id,
            "field": self.field,
            "from": self.old,
            "to": self.new,
            "cause": self.cause,
            "order": self.order,
        }


@dataclass(slots=True)
class Chat:
    """A chat in the sandbox.

    `payload` is the request body exactly as received, for tests that check what a client
    sent. `status` is "empty" (or "new" with quirks) until a message is posted, then "new";
    a message reopens a closed chat. `created_with` is `public_api` for a chat the API made.
    """

    id: int
    customer: Customer
    application: int
    assignee: Agent | None
    department: Department | None
    created_at: float
    payload: dict[str, Any] = field(default_factory=dict)
    status: str = EMPTY
    created_with: str = API_CHAT
    messages: list[Message] = field(default_factory=list)
    closed_at: float | None = None
    rating: str | None = None

    @property
    def last_message(self) -> Message | None:
        """The newest message, or None."""
        return self.messages[-1] if self.messages else None

    def to_json(self, *, quirks: bool = False) -> dict[str, Any]:
        """The chat object of the API. With `quirks` timestamps are strings, odd chat ids'
        with a fraction."""
        last = self.last_message
        from_customer = [m for m in self.messages if m.agent is None]
        fraction = self.id % 2 == 1

        def stamp(seconds: float | None) -> int | str | None:
            return timestamp_json(seconds, quirks=quirks, fraction=fraction)

        return {
            "id": self.id,
            "status": self.status,
            "createdAt": stamp(self.created_at),
            "createdWith": self.created_with,
            "applicationId": self.application,
            "customer": self.customer.summary_json(),
            "assignee": None if self.assignee is None else self.assignee.to_json(),
            "department": (
                None
                if self.department is None
                else {"id": self.department.id, "name": self.department.name}
            ),
            "agents": [],
            "closedBy": None,
            "closedAt": stamp(self.closed_at),
            "rating": self.rating,
            "snoozedUntil": None,
            "lastMessageId": None if last is None else last.id,
            "lastMessageText": None if last is None else last.text,
            "lastMessageAt": None if last is None else stamp(last.created_at),
            "lastCustomerMessageAt": stamp(from_customer[-1].created_at) if from_customer else None,
            "lastCommunicatedAgentId": None,
        }


class SandboxState:
    """The seeded account plus everything created since, and what the server saw.

    `chats`, `messages`, `created_customers` and `changes` are in creation order.
    `requests` counts every request to `/v1` by "METHOD /path" (refused ones too; the
    messages of a chat count as "GET /v1/chats/{id}/messages"); `unauthorized` counts the
    401 answers, `rate_limited` the 429 answers; `faults` counts the injected faults by
    kind. `wall_clock` (unix seconds) dates the chats and messages.
    """

    def __init__(self, seed: Seed | None = None, *, wall_clock: Callable[[], float] = time.time):
        self.seed = seed or Seed()
        self.agents: dict[int, Agent] = {a.id: a for a in self.seed.agents}
        self.departments: dict[int, Department] = {d.id: d for d in self.seed.departments}
        self.customers: dict[int, Customer] = {
            c.id: c for c in (*self.seed.visitors, *self.seed.customers)
        }
        self.applications: frozenset[int] = frozenset(self.seed.applications)
        self.chats: list[Chat] = []
        self.messages: list[Message] = []
        self.created_customers: list[Customer] = []
        self.changes: list[Change] = []
        self.requests: Counter[str] = Counter()
        self.unauthorized = 0
        self.rate_limited = 0
        self.faults: Counter[str] = Counter()
        self._wall_clock = wall_clock
        self._chats_by_id: dict[int, Chat] = {}
        self._by_creation: list[Chat] = []
        self._events = 0
        self._lock = threading.Lock()
        for seeded in sorted(self.seed.chats, key=lambda c: c.created_at):
            self._add_seeded(seeded)

    def now(self) -> float:
        """The wall clock in unix seconds."""
        return self._wall_clock()

    def _next_order(self) -> int:
        self._events += 1
        return self._events

    def add_chat(
        self,
        *,
        customer: Customer,
        application: int,
        assignee: Agent | None,
        department: Department | None,
        payload: dict[str, Any],
        status: str = EMPTY,
        created_with: str = API_CHAT,
    ) -> Chat:
        """Store a new chat with the next id."""
        with self._lock:
            chat = Chat(
                id=FIRST_CHAT_ID + len(self.chats),
                customer=customer,
                application=application,
                assignee=assignee,
                department=department,
                created_at=self.now(),
                payload=payload,
                status=status,
                created_with=created_with,
            )
            self._store(chat)
        return chat

    def _store(self, chat: Chat) -> None:
        """Keep a new chat; the caller holds the lock (or is the constructor)."""
        self.chats.append(chat)
        self._chats_by_id[chat.id] = chat
        bisect.insort(self._by_creation, chat, key=_creation)

    def _add_seeded(self, seeded: SeedChat) -> None:
        """Store a chat of the seed, with its messages, as it was at their times."""
        customer = self.customers.get(seeded.customer)
        assignee = None if seeded.assignee is None else self.agents.get(seeded.assignee)
        department = None if seeded.department is None else self.departments.get(seeded.department)
        wrong = [
            f"{name} {value}"
            for name, value, found in (
                ("customer", seeded.customer, customer),
                ("assignee", seeded.assignee, assignee or seeded.assignee is None),
                ("department", seeded.department, department or seeded.department is None),
                ("application", seeded.application, seeded.application in self.applications),
            )
            if not found
        ]
        if wrong or customer is None:
            raise InputError(f"a seeded chat names {wrong[0]}, which the sandbox does not have")
        messages = [
            m for m in seeded.messages if m.agent is not None and m.agent not in self.agents
        ]
        if messages:
            raise InputError(
                f"a seeded message names agent {messages[0].agent}, which the sandbox does not have"
            )
        status = seeded.status or (
            CLOSED if seeded.closed_at is not None else NEW if seeded.messages else EMPTY
        )
        chat = Chat(
            id=FIRST_CHAT_ID + len(self.chats),
            customer=customer,
            application=seeded.application,
            assignee=assignee,
            department=department,
            created_at=seeded.created_at,
            status=status,
            closed_at=seeded.closed_at,
            rating=seeded.rating,
        )
        self._store(chat)
        for said in sorted(seeded.messages, key=lambda m: m.created_at):
            message = Message(
                id=FIRST_MESSAGE_ID + len(self.messages),
                chat_id=chat.id,
                text=said.text,
                type=said.type,
                agent=None if said.agent is None else self.agents[said.agent],
                created_at=said.created_at,
                order=self._next_order(),
            )
            self.messages.append(message)
            chat.messages.append(message)

    def by_creation(self) -> list[Chat]:
        """Every chat, oldest first (ties in the order they were stored)."""
        with self._lock:
            return list(self._by_creation)

    def add_message(
        self,
        chat: Chat,
        *,
        text: str,
        type: str,
        agent: Agent | None,
        markdown_text: str | None,
        payload: dict[str, Any],
    ) -> Message:
        """Store a message in `chat` with the next id. An empty chat becomes "new"; a
        closed one is reopened ("opened"), as a help desk does when someone writes."""
        with self._lock:
            message = Message(
                id=FIRST_MESSAGE_ID + len(self.messages),
                chat_id=chat.id,
                text=text,
                type=type,
                agent=agent,
                created_at=self.now(),
                order=self._next_order(),
                markdown_text=markdown_text,
                payload=payload,
            )
            self.messages.append(message)
            chat.messages.append(message)
            if chat.status == EMPTY:
                chat.status = NEW
            elif chat.status == CLOSED:
                self._change(chat, "status", OPENED, cause="message")
        return message

    def add_customer(
        self,
        *,
        name: str | None,
        email: str | None,
        user_id: str | None,
        company: str | None,
        phone: str | None,
    ) -> Customer:
        """Store a new customer with the id after the highest one."""
        with self._lock:
            customer = Customer(
                max(self.customers) + 1, name, email, user_id, company=company, phone=phone
            )
            self.customers[customer.id] = customer
            self.created_customers.append(customer)
        return customer

    def update_chat(self, chat: Chat, field: str, value: Any) -> None:
        """Set a chat's `field` ("status", "assignee" or "department") to `value` (a status,
        an `Agent` or None, a `Department`) and record the change."""
        with self._lock:
            self._change(chat, field, value, cause="update")

    def _change(self, chat: Chat, field: str, value: Any, *, cause: str) -> None:
        """Set and record; the caller holds the lock."""
        if field == "status":
            old: str | int | None = chat.status
            chat.status = new = value
            chat.closed_at = self.now() if value == CLOSED else None
        elif field == "assignee":
            old = None if chat.assignee is None else chat.assignee.id
            chat.assignee = value
            new = None if value is None else value.id
        else:
            old = None if chat.department is None else chat.department.id
            chat.department = value
            new = value.id
        self.changes.append(Change(chat.id, field, old, new, cause, self._next_order()))

    def chat(self, chat_id: int) -> Chat | None:
        """The chat with this id, or None."""
        return self._chats_by_id.get(chat_id)

    def department_json(self, department: Department) -> dict[str, Any]:
        """The department object of `GET /v1/departments`, with its agents."""
        return {
            "id": department.id,
            "name": department.name,
            "agents": [self.agents[i].to_json() for i in department.agent_ids if i in self.agents],
        }

    def count(self, endpoint: str) -> None:
        """Count one request to `endpoint` ("METHOD /path")."""
        with self._lock:
            self.requests[endpoint] += 1

    def count_unauthorized(self) -> None:
        """Count one 401 answer."""
        with self._lock:
            self.unauthorized += 1

    def count_rate_limited(self) -> None:
        """Count one 429 answer."""
        with self._lock:
            self.rate_limited += 1

    def count_fault(self, kind: str) -> None:
        """Count one injected fault of `kind` (a `Faults` field name)."""
        with self._lock:
            self.faults[kind] += 1

    def snapshot(self) -> dict[str, Any]:
        """Everything created and counted, as JSON (`GET /_sandbox/state` answers this).

        Each chat and message carries its API object (integer timestamps) plus `payload`,
        the body the client sent. The counts tests need: `customersCreated` (the customers
        `POST /v1/customers` made), `chatsByStatus`, `messagesPerChat` (chat id as a
        string, as JSON keys are), `statusChanges` (each change of status, in order);
        `changes` lists every change of every field.
        """
        with self._lock:
            return {
                "chats": [{**c.to_json(), "payload": c.payload} for c in self.chats],
                "messages": [{**m.to_json(), "payload": m.payload} for m in self.messages],
                "customersCreated": [c.to_json() for c in self.created_customers],
                "chatsByStatus": dict(Counter(c.status for c in self.chats)),
                "messagesPerChat": {str(c.id): len(c.messages) for c in self.chats},
                "statusChanges": [c.to_json() for c in self.changes if c.field == "status"],
                "changes": [c.to_json() for c in self.changes],
                "requests": dict(self.requests),
                "unauthorized": self.unauthorized,
                "rateLimited": self.rate_limited,
                "faults": dict(self.faults),
            }


def _creation(chat: Chat) -> float:
    return chat.created_at
