"""The sandbox's memory: the seeded account, the chats and messages created, and counters.

One `SandboxState` belongs to one sandbox server. The server's event loop writes it; tests
read it, from the loop's thread or another one (`run_in_thread`), so writes and
`snapshot()` hold a lock.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bulk_chats.sandbox.seed import Agent, Customer, Department, Seed

FIRST_CHAT_ID = 542336
"""The first chat id handed out: the one after HelpCrunch's documentation example."""

FIRST_MESSAGE_ID = 7310001
"""The first message id handed out."""


@dataclass(frozen=True, slots=True)
class Message:
    """A message posted into a chat; `agent` None means the customer wrote it."""

    id: int
    chat_id: int
    text: str
    type: str
    agent: Agent | None
    created_at: int
    markdown_text: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The message object of the API."""
        return {
            "id": self.id,
            "chat": self.chat_id,
            "from": "customer" if self.agent is None else "agent",
            "agent": None if self.agent is None else self.agent.to_json(),
            "createdAt": self.created_at,
            "text": self.text,
            "markdownText": self.markdown_text,
            "type": self.type,
        }


@dataclass(slots=True)
class Chat:
    """A chat created through the sandbox.

    `payload` is the request body exactly as received, for tests that check what a client
    sent. `status` is "empty" until a message is posted, then "new".
    """

    id: int
    customer: Customer
    application: int
    assignee: Agent | None
    department: Department | None
    created_at: int
    payload: dict[str, Any] = field(default_factory=dict)
    status: str = "empty"
    last_message: Message | None = None

    def to_json(self) -> dict[str, Any]:
        """The chat object of the API, with the fields a fresh chat has."""
        last = self.last_message
        return {
            "id": self.id,
            "status": self.status,
            "createdAt": self.created_at,
            "createdWith": "api",
            "applicationId": self.application,
            "customer": self.customer.to_json(),
            "assignee": None if self.assignee is None else self.assignee.to_json(),
            "department": (
                None
                if self.department is None
                else {"id": self.department.id, "name": self.department.name}
            ),
            "agents": [],
            "closedBy": None,
            "closedAt": None,
            "rating": None,
            "snoozedUntil": None,
            "lastMessageId": None if last is None else last.id,
            "lastMessageText": None if last is None else last.text,
            "lastMessageAt": None if last is None else last.created_at,
            "lastCustomerMessageAt": None,
            "lastCommunicatedAgentId": None,
        }


class SandboxState:
    """The seeded account plus everything created since, and what the server saw.

    `chats` and `messages` are in creation order. `requests` counts every request to
    `/v1` by "METHOD /path" (refused ones too); `rate_limited` counts the 429 answers;
    `faults` counts the injected faults by kind. `wall_clock` (unix seconds) dates the
    chats and messages.
    """

    def __init__(self, seed: Seed | None = None, *, wall_clock: Callable[[], float] = time.time):
        self.seed = seed or Seed()
        self.agents: dict[int, Agent] = {a.id: a for a in self.seed.agents}
        self.departments: dict[int, Department] = {d.id: d for d in self.seed.departments}
        self.customers: dict[int, Customer] = {c.id: c for c in self.seed.customers}
        self.applications: frozenset[int] = frozenset(self.seed.applications)
        self.chats: list[Chat] = []
        self.messages: list[Message] = []
        self.requests: Counter[str] = Counter()
        self.rate_limited = 0
        self.faults: Counter[str] = Counter()
        self._wall_clock = wall_clock
        self._chats_by_id: dict[int, Chat] = {}
        self._lock = threading.Lock()

    def now(self) -> int:
        """The wall clock in whole unix seconds, as `createdAt` carries it."""
        return int(self._wall_clock())

    def add_chat(
        self,
        *,
        customer: Customer,
        application: int,
        assignee: Agent | None,
        department: Department | None,
        payload: dict[str, Any],
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
            )
            self.chats.append(chat)
            self._chats_by_id[chat.id] = chat
        return chat

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
        """Store a message in `chat` with the next id; the chat is no longer empty."""
        with self._lock:
            message = Message(
                id=FIRST_MESSAGE_ID + len(self.messages),
                chat_id=chat.id,
                text=text,
                type=type,
                agent=agent,
                created_at=self.now(),
                markdown_text=markdown_text,
                payload=payload,
            )
            self.messages.append(message)
            chat.last_message = message
            chat.status = "new"
        return message

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

        Each chat carries its API object plus `payload`, the body the client sent.
        """
        with self._lock:
            return {
                "chats": [{**c.to_json(), "payload": c.payload} for c in self.chats],
                "messages": [{**m.to_json(), "payload": m.payload} for m in self.messages],
                "requests": dict(self.requests),
                "rateLimited": self.rate_limited,
                "faults": dict(self.faults),
            }
