"""The HelpCrunch REST API, as far as bulk-chats uses it (docs/api.md): one method per
endpoint, each answer parsed into the records of `api.entities` once, here.

Requests go out on the run's wire (`api.wire`, which the client is), paced at the rate
limiter, every failure turned into one of `bulk_chats.errors`; see there for what each
error means to the caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anyio

from bulk_chats.api.entities import Agent, Chat, Customer, Department, Message
from bulk_chats.api.wire import USER_AGENT, Page, Transport, Wire, parse_retry_after

__all__ = [
    "CREATION_ORDER",
    "USER_AGENT",
    "HelpCrunchClient",
    "Page",
    "Transport",
    "parse_retry_after",
]

CREATION_ORDER = {"sort": "chats.createdAt", "order": "asc"}
"""How chats are listed and searched for export: oldest first."""


class HelpCrunchClient(Wire):
    """An async client for one run: the API's endpoints over one `Wire` (one connection
    pool, one rate limiter, one key; its arguments are the wire's). Use as
    `async with HelpCrunchClient(base_url, api_key, limiter=...) as client:`.
    """

    async def check_key(self) -> None:
        """One cheap read that proves the key works; `AuthenticationError` when it does not."""
        await self.request("GET", "/agents", params={"limit": 1})

    async def create_chat(self, payload: Mapping[str, Any]) -> Chat:
        """`POST /chats`; the new chat.

        Any 2xx counts as created (one revision of the docs says 200, another 201). A 2xx
        whose chat id cannot be read raises `MaybeSentError`: the chat probably exists.
        """
        response = await self.request("POST", "/chats", json=payload)
        return self.entity(response, "POST /chats", Chat.parse)

    async def post_message(self, payload: Mapping[str, Any]) -> Message:
        """`POST /messages`; the new message."""
        response = await self.request("POST", "/messages", json=payload)
        return self.entity(response, "POST /messages", Message.parse)

    async def set_chat_assignee(self, chat_id: int, assignee: int | None) -> Chat:
        """`PUT /chats/assignee`: assign chat `chat_id` to agent `assignee` (None unassigns);
        the chat as it is now."""
        return await self._change_chat("assignee", chat_id, assignee)

    async def set_chat_department(self, chat_id: int, department: int) -> Chat:
        """`PUT /chats/department`: move chat `chat_id` to `department`; the chat."""
        return await self._change_chat("department", chat_id, department)

    async def set_chat_status(self, chat_id: int, status: str) -> Chat:
        """`PUT /chats/status`: set chat `chat_id`'s status (`closed`, `on hold`, …); the
        chat."""
        return await self._change_chat("status", chat_id, status)

    async def _change_chat(self, field: str, chat_id: int, value: int | str | None) -> Chat:
        response = await self.request("PUT", f"/chats/{field}", json={"id": chat_id, field: value})
        return self.entity(response, f"PUT /chats/{field}", Chat.parse)

    async def list_messages(self, chat_id: int) -> list[Message]:
        """Every message of chat `chat_id`, newest first (`GET /chats/{id}/messages`).

        One revision of the documentation answers `{"messages": [...]}`, the others
        `{"data": [...]}`: both are read."""
        return await self.paged(
            "GET", f"/chats/{chat_id}/messages", parse=Message.parse, lists=("data", "messages")
        )

    async def list_agents(self) -> list[Agent]:
        """Every agent of the account, read page by page (`PAGE_SIZE` a page)."""
        return await self.paged("GET", "/agents", parse=Agent.parse)

    async def list_departments(self) -> list[Department]:
        """Every department of the account, read page by page."""
        return await self.paged("GET", "/departments", parse=Department.parse)

    async def search_chats(self, customer: int, created_since: int) -> list[Chat]:
        """Chats of `customer` created at or after `created_since` (unix seconds), sorted by
        id so that pages do not shift while they are read."""
        return await self.paged(
            "POST",
            "/chats/search",
            query={
                "filter": [
                    {"field": "chats.customer", "operator": "=", "value": customer},
                    {"field": "chats.createdAt", "operator": ">=", "value": created_since},
                ],
                "comparison": "AND",
                "sort": "chats.id",
                "order": "asc",
            },
            parse=Chat.parse,
        )

    async def list_chats_page(self, *, offset: int) -> Page[Chat]:
        """One page of every chat of the account (`GET /chats`) from `offset`, oldest
        first (`chats.createdAt`, ascending): chats created meanwhile come after the
        rest, so they shift no page."""
        return await self.page(
            "GET", "/chats", parse=Chat.parse, query=dict(CREATION_ORDER), offset=offset
        )

    async def search_chats_page(
        self, conditions: Sequence[tuple[str, str, str | int]], *, offset: int
    ) -> Page[Chat]:
        """One page of the chats meeting every one of `conditions` (`POST /chats/search`,
        each (field, operator, value) such as ("chats.status", "=", "pending"), joined
        with `AND`) from `offset`, oldest first (`chats.createdAt`, ascending)."""
        return await self.page(
            "POST",
            "/chats/search",
            query={
                "filter": [
                    {"field": field, "operator": operator, "value": value}
                    for field, operator, value in conditions
                ],
                "comparison": "AND",
                **CREATION_ORDER,
            },
            parse=Chat.parse,
            offset=offset,
        )

    async def search_customers(
        self, conditions: Sequence[tuple[str, str, str | int]]
    ) -> list[Customer]:
        """Customers meeting any of `conditions`, each (field, operator, value) such as
        ("email", "~", "ann@example.com"), joined with `OR`; every page, sorted by id.

        A value must have its field's type (a string for `email`/`userId`, an int for
        `id`): the API fails the query otherwise. The answer is the server's opinion: the
        caller checks which customer carries which value it asked for.
        """
        return await self.paged(
            "POST",
            "/customers/search",
            query={
                "filter": [
                    {"field": f"customers.{field}", "operator": operator, "value": value}
                    for field, operator, value in conditions
                ],
                "comparison": "OR",
                "sort": "customers.id",
                "order": "asc",
            },
            parse=Customer.parse,
        )

    async def create_customer(
        self, payload: Mapping[str, str], *, unless: anyio.Event | None = None
    ) -> Customer:
        """`POST /customers`; the new customer. Any 2xx counts as created; one whose id
        cannot be read raises `MaybeSentError` (the customer probably exists). `unless`
        set while it waits for its turn (Ctrl-C) raises `NotSentError`: it never goes."""
        response = await self.request("POST", "/customers", json=payload, unless=unless)
        return self.entity(response, "POST /customers", Customer.parse)
