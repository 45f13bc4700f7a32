"""The sandbox's ASGI app: HelpCrunch's endpoints over a `SandboxState`.

Endpoints, status codes and error bodies follow HelpCrunch's REST API documentation (v1):
`POST /v1/chats`, `POST /v1/messages`, `GET /v1/chats`, `GET /v1/chats/{id}/messages`,
`GET /v1/agents`,
`GET /v1/departments`, `POST /v1/chats/search`, `POST /v1/customers/search`,
`POST /v1/customers`, `PUT /v1/chats/status`, `PUT /v1/chats/assignee` and
`PUT /v1/chats/department`. Where the documentation is silent the sandbox chooses, and
says so here, erring towards the stricter answer so that client bugs show:

- An application id other than the seeded ones gets 404 `entity_not_found` "Application
  not found", like an unknown customer, assignee or department.
- Ids must be JSON integers. A digit string ("4188"), a float (4188.0) or a boolean gets
  400 "This value should be of type numeric.", though the real API may accept the string.
- A limit over 100 gets a 400 rather than a shorter page.
- `POST /v1/messages` needs `type` ("message" or "private"), for customer messages too.
  A message into a closed chat reopens it (`opened`), as a help desk does.
- `POST /v1/customers` refuses an email that is not `local@domain.tld` (spaces included:
  a client should trim) and a `userId` any customer has, with 400 naming the field.
  Emails may repeat, as on the real API.
- `PUT /v1/chats/status` takes the statuses of `STATUSES` and the older spellings
  `on-hold`, `onhold` and `open`, and stores the current one (`on hold`, `opened`). A
  missing or null `department` is "department value is invalid" (there is no way to take
  a chat out of every department); a missing `assignee` is "assignee value is invalid",
  a null one unassigns. Every `PUT` that passes is recorded, changed value or not.
- 5xx bodies have no `invalid_request` entry (they are not the client's fault):
  `{"errors": [{"code": "internal_error", ...}]}`, `service_unavailable` for 503.
- `=` on text ignores case (see `bulk_chats.sandbox.search`).

With `SandboxConfig.quirks` (`bulk-chats sandbox --quirks`) it answers as the
documentation's other revisions do, so that a client meets them in tests:

- timestamps are strings of unix seconds (`"1603885746"`), those of odd ids with
  milliseconds (`"1601557390.769"`);
- a new chat is `new` rather than `empty`, and `POST /v1/chats` and `POST /v1/customers`
  answer 200 rather than 201;
- agents, departments and the chat listing come in pages of at most `QUIRKS_PAGE`
  whatever `limit` asks, `meta.total` is 0 on departments and chats and one too many on
  agents;
- every customer search also returns the seeded customers without email or userId
  (`Seed.visitors`), whatever it asked;
- `=` and `!=` on text compare exactly, case and all;
- a chat's messages come under `messages` rather than `data`.

What a request meets before and after its endpoint (latency, the key, the rate limit, the
faults) is the gate's: see `bulk_chats.sandbox.gate`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bulk_chats.sandbox.config import SandboxConfig
from bulk_chats.sandbox.gate import Gate, Handler
from bulk_chats.sandbox.refusals import (
    NOT_BLANK,
    NUMERIC,
    Entry,
    Refusal,
    id_field,
    is_id,
    json_object,
    text_field,
)
from bulk_chats.sandbox.search import (
    CHAT_FIELDS,
    CUSTOMER_FIELDS,
    MAX_LIMIT,
    Page,
    created_since,
    list_chats,
    parse_page,
    search,
)
from bulk_chats.sandbox.seed import Customer
from bulk_chats.sandbox.state import (
    EMPTY,
    NEW,
    STATUSES,
    WIDGET_CHAT,
    Chat,
    SandboxState,
)
from bulk_chats.timing import Clock, Sleep

V = TypeVar("V")
MESSAGE_TYPES = ("message", "private")

STATUS_SPELLINGS: dict[str, str] = {
    **{status: status for status in STATUSES},
    "on-hold": "on hold",
    "onhold": "on hold",
    "open": "opened",
}
"""What `PUT /v1/chats/status` accepts, older spellings included, and what it stores."""

QUIRKS_PAGE = 50
"""The most agents or departments one page holds with quirks, whatever `limit` asks."""

WIDGET_TEXT = "Hi, I have a question about my order"
"""The message a customer's own widget chat (the `widget_chat` fault) begins with."""

CUSTOMER_TEXT_FIELDS = ("name", "email", "userId", "company", "phone", "notes")
"""The text fields of `POST /v1/customers` (all optional)."""

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class SandboxApp(Gate):
    """The ASGI app of one sandbox. `state` is what it stores; `config` how it behaves."""

    def _endpoints(self) -> list[tuple[str, str, Handler]]:
        return [
            ("POST", "/v1/chats", self._create_chat),
            ("POST", "/v1/messages", self._create_message),
            ("GET", "/v1/chats", self._list_chats),
            ("GET", "/v1/chats/{id:int}/messages", self._list_messages),
            ("GET", "/v1/agents", self._list_agents),
            ("GET", "/v1/departments", self._list_departments),
            ("POST", "/v1/chats/search", self._search_chats),
            ("POST", "/v1/customers/search", self._search_customers),
            ("POST", "/v1/customers", self._create_customer),
            ("PUT", "/v1/chats/status", self._set_status),
            ("PUT", "/v1/chats/assignee", self._set_assignee),
            ("PUT", "/v1/chats/department", self._set_department),
        ]

    async def _create_chat(self, request: Request) -> Response:
        fault, body = await self._begin(request, "chats")
        errors: list[Entry] = []
        customer_id = id_field(body, "customer", errors, required=True)
        application = id_field(body, "application", errors, required=True)
        assignee_id = id_field(body, "assignee", errors, required=False)
        department_id = id_field(body, "department", errors, required=False)
        if errors or customer_id is None or application is None:
            raise Refusal(400, *errors)
        state = self.state
        customer = state.customers.get(customer_id)
        if customer is None:
            raise Refusal(404, ("entity_not_found", "Customer not found"))
        if application not in state.applications:
            raise Refusal(404, ("entity_not_found", "Application not found"))
        assignee = None if assignee_id is None else state.agents.get(assignee_id)
        if assignee_id is not None and assignee is None:
            raise Refusal(404, ("entity_not_found", "Agent not found"))
        department = None if department_id is None else state.departments.get(department_id)
        if department_id is not None and department is None:
            raise Refusal(404, ("entity_not_found", "Department not found"))
        if fault == "widget_chat":
            self._open_widget_chat(customer, application)
        chat = state.add_chat(
            customer=customer,
            application=application,
            assignee=assignee,
            department=department,
            payload=body,
            status=self._new_chat_status,
        )
        return await self._answer(request, fault, self._created(self._chat_json(chat)))

    @property
    def _new_chat_status(self) -> str:
        return NEW if self.config.quirks else EMPTY

    def _created(self, body: dict[str, Any]) -> Response:
        """A creation's answer: 201, or 200 as an older revision has it."""
        return JSONResponse(body, status_code=200 if self.config.quirks else 201)

    def _chat_json(self, chat: Chat) -> dict[str, Any]:
        return chat.to_json(quirks=self.config.quirks)

    def _open_widget_chat(self, customer: Customer, application: int) -> None:
        """The customer opens a chat of their own in the widget and writes in it."""
        chat = self.state.add_chat(
            customer=customer,
            application=application,
            assignee=None,
            department=None,
            payload={},
            status=self._new_chat_status,
            created_with=WIDGET_CHAT,
        )
        self.state.add_message(
            chat, text=WIDGET_TEXT, type="message", agent=None, markdown_text=None, payload={}
        )

    async def _create_message(self, request: Request) -> Response:
        fault, body = await self._begin(request, "messages")
        errors: list[Entry] = []
        chat_id = id_field(body, "chat", errors, required=True)
        text = text_field(body, "text", errors, required=True)
        markdown = text_field(body, "markdownText", errors, required=False)
        kind = body.get("type")
        if kind is None or kind == "":
            errors.append(("type", NOT_BLANK))
        elif kind not in MESSAGE_TYPES:
            errors.append(("invalid_chat_value", 'type must be "message" or "private"'))
        agent_id = id_field(body, "agent", errors, required=False)
        if errors or chat_id is None or text is None or not isinstance(kind, str):
            raise Refusal(400, *errors)
        chat = self.state.chat(chat_id)
        if chat is None:
            raise Refusal(404, ("chat_not_found", "Chat not found"))
        agent = None if agent_id is None else self.state.agents.get(agent_id)
        if agent_id is not None and agent is None:
            raise Refusal(404, ("entity_not_found", "Agent not found"))
        message = self.state.add_message(
            chat, text=text, type=kind, agent=agent, markdown_text=markdown, payload=body
        )
        answer = message.to_json(quirks=self.config.quirks)
        return await self._answer(request, fault, JSONResponse(answer))

    async def _list_chats(self, request: Request) -> Response:
        """Every chat, sorted and paged as the query string says (`search.list_chats`);
        with quirks in pages of at most `QUIRKS_PAGE` and a `meta.total` of 0."""
        fault = self._read_fault(request)
        quirks = self.config.quirks
        chats, total = list_chats(
            request.query_params,
            self.state.by_creation(),
            page_size=QUIRKS_PAGE if quirks else MAX_LIMIT,
        )
        body = {
            "data": [self._chat_json(c) for c in chats],
            "meta": {"total": 0 if quirks else total},
        }
        return await self._answer(request, fault, JSONResponse(body))

    async def _list_messages(self, request: Request) -> Response:
        """A chat's messages, newest first, with a top-level `total`; under `data`, or with
        quirks under `messages`, as an older revision of the documentation answers."""
        fault = self._read_fault(request)
        chat = self.state.chat(request.path_params["id"])
        if chat is None:
            raise Refusal(404, ("chat_not_found", "Chat not found"))
        page = _page(request)
        newest_first = [m.to_json(quirks=self.config.quirks) for m in reversed(chat.messages)]
        listed = "messages" if self.config.quirks else "data"
        answer = {listed: page.of(newest_first), "total": len(newest_first)}
        return await self._answer(request, fault, JSONResponse(answer))

    async def _list_agents(self, request: Request) -> Response:
        fault = self._read_fault(request)
        agents = [a.to_json() for a in self.state.agents.values()]
        # The agents example of the documentation counts one more than it lists.
        listing = self._listing(request, agents, quirky_total=len(agents) + 1)
        return await self._answer(request, fault, listing)

    async def _list_departments(self, request: Request) -> Response:
        fault = self._read_fault(request)
        state = self.state
        departments = [state.department_json(d) for d in state.departments.values()]
        # The departments example of the documentation says total 0 beside real data.
        listing = self._listing(request, departments, quirky_total=0)
        return await self._answer(request, fault, listing)

    def _listing(
        self, request: Request, items: list[dict[str, Any]], *, quirky_total: int
    ) -> Response:
        page = _page(request)
        total = len(items)
        if self.config.quirks:
            page = Page(page.offset, min(page.limit, QUIRKS_PAGE))
            total = quirky_total
        return JSONResponse({"data": page.of(items), "meta": {"total": total}})

    async def _search_chats(self, request: Request) -> Response:
        fault = self._read_fault(request)
        body = await json_object(request)
        answer = search(
            body,
            created_since(body, self.state.by_creation()),
            CHAT_FIELDS,
            exact_text=self.config.quirks,
        )
        answer["data"] = [self._chat_json(chat) for chat in answer["data"]]
        return await self._answer(request, fault, JSONResponse(answer))

    async def _search_customers(self, request: Request) -> Response:
        fault = self._read_fault(request)
        quirks = self.config.quirks
        answer = search(
            await json_object(request),
            list(self.state.customers.values()),
            CUSTOMER_FIELDS,
            exact_text=quirks,
            always=self.state.seed.visitors if quirks else (),
        )
        answer["data"] = [customer.to_json() for customer in answer["data"]]
        return await self._answer(request, fault, JSONResponse(answer))

    async def _create_customer(self, request: Request) -> Response:
        fault, body = await self._begin(request, "customers")
        errors: list[Entry] = []
        values = {
            name: text_field(body, name, errors, required=False) for name in CUSTOMER_TEXT_FIELDS
        }
        email, user_id = values["email"], values["userId"]
        if email is not None and not _EMAIL.fullmatch(email):
            errors.append(("email", "This value is not a valid email address."))
        if user_id is not None and any(c.user_id == user_id for c in self.state.customers.values()):
            errors.append(("userId", "This value is already used."))
        if errors:
            raise Refusal(400, *errors)
        customer = self.state.add_customer(
            name=values["name"],
            email=email,
            user_id=user_id,
            company=values["company"],
            phone=values["phone"],
        )
        return await self._answer(request, fault, self._created(customer.to_json()))

    async def _set_status(self, request: Request) -> Response:
        def value(body: dict[str, Any], errors: list[Entry]) -> str | None:
            raw = body.get("status")
            status = STATUS_SPELLINGS.get(raw) if isinstance(raw, str) else None
            if status is None:
                errors.append(("invalid_chat_value", "status value is invalid"))
            return status

        return await self._update(request, "status", value)

    async def _set_assignee(self, request: Request) -> Response:
        agents = self.state.agents
        return await self._update(
            request,
            "assignee",
            lambda body, errors: _reference(body, "assignee", agents, errors, nullable=True),
        )

    async def _set_department(self, request: Request) -> Response:
        departments = self.state.departments
        return await self._update(
            request,
            "department",
            lambda body, errors: _reference(body, "department", departments, errors),
        )

    async def _update(
        self,
        request: Request,
        field: str,
        parse: Callable[[dict[str, Any], list[Entry]], Any],
    ) -> Response:
        """A `PUT /v1/chats/<field>`: check the body, find the chat, change it, answer it."""
        fault, body = await self._begin(request, "updates")
        errors: list[Entry] = []
        chat_id = id_field(body, "id", errors, required=True)
        value = parse(body, errors)
        if errors or chat_id is None:
            raise Refusal(400, *errors)
        chat = self.state.chat(chat_id)
        if chat is None:
            raise Refusal(404, ("chat_not_found", "Chat is missing"))
        self.state.update_chat(chat, field, value)
        return await self._answer(request, fault, JSONResponse(self._chat_json(chat)))


def create_app(
    config: SandboxConfig | None = None,
    *,
    state: SandboxState | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = anyio.sleep,
) -> SandboxApp:
    """A sandbox app; the defaults are the seeded account, 120 requests/min, no faults.

    `clock` (monotonic seconds) drives the rate limit and `sleep` the latency and
    `slow_after`, so tests can replace both and wait for nothing.
    """
    return SandboxApp(config or SandboxConfig(), state or SandboxState(), clock=clock, sleep=sleep)


def _reference(
    body: dict[str, Any],
    name: str,
    known: Mapping[int, V],
    errors: list[Entry],
    *,
    nullable: bool = False,
) -> V | None:
    """`body[name]`, the id of one of `known`, as that one; None for null when `nullable`
    (null unassigns). Appends to `errors` what is wrong with it."""
    raw = body.get(name)
    if raw is None and nullable and name in body:
        return None
    if raw is not None and not is_id(raw):
        errors.append((name, NUMERIC))
        return None
    found = None if raw is None else known.get(raw)
    if found is None:
        errors.append(("invalid_chat_value", f"{name} value is invalid"))
    return found


def _page(request: Request) -> Page:
    """The `offset` and `limit` of a listing's query string; 400 when they are wrong."""
    errors: list[Entry] = []
    query = request.query_params
    page = parse_page(query.get("offset"), query.get("limit"), from_query=True, errors=errors)
    if errors:
        raise Refusal(400, *errors)
    return page
