"""Reading an export's chats: every page until a short one, oldest first, each chat once,
however the pages shift while they are read (respx on fake time)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import respx

from bulk_chats.api.chat_listing import ChatQuery, ChatReader
from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.errors import ApiError, AuthenticationError

T0 = 1_700_000_000


@dataclass
class FakeChats:
    """A server's chats, answering `GET /chats` and `POST /chats/search` as the API
    documents them (sorted by `chats.createdAt`, paged by `offset`/`limit`); `between`
    runs before each answer, to change the chats while they are read."""

    chats: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = 100
    between: Callable[[FakeChats], None] = lambda server: None
    asked: list[dict[str, Any]] = field(default_factory=list)

    def add(self, created: float, status: str = "pending", **more: Any) -> int:
        chat_id = 1000 + len(self.chats)
        self.chats.append({"id": chat_id, "createdAt": created, "status": status, **more})
        return chat_id

    def ordered(self) -> list[dict[str, Any]]:
        return sorted(self.chats, key=lambda c: math.floor(float(c["createdAt"])))

    def listing(self, request: httpx.Request) -> httpx.Response:
        self.between(self)
        params = request.url.params
        self.asked.append(dict(params))
        assert (params["sort"], params["order"]) == ("chats.createdAt", "asc")
        return self._page(self.ordered(), int(params["offset"]), int(params["limit"]))

    def search(self, request: httpx.Request) -> httpx.Response:
        self.between(self)
        body = json.loads(request.content)
        self.asked.append(body)
        assert (body["sort"], body["order"], body["comparison"]) == (
            "chats.createdAt",
            "asc",
            "AND",
        )
        matches = [c for c in self.ordered() if all(_holds(f, c) for f in body["filter"])]
        return self._page(matches, body["offset"], body["limit"])

    def _page(self, matches: list[dict[str, Any]], offset: int, limit: int) -> httpx.Response:
        page = matches[offset : offset + min(limit, self.page_size)]
        return httpx.Response(200, json={"data": page, "meta": {"total": len(matches)}})


def _holds(condition: dict[str, Any], chat: dict[str, Any]) -> bool:
    field, operator, value = condition["field"], condition["operator"], condition["value"]
    have = math.floor(float(chat["createdAt"])) if field == "chats.createdAt" else None
    if field == "chats.status":
        return bool(chat["status"] == value)
    if field == "chats.assignee":
        return bool(chat.get("assignee") == value)
    assert have is not None, field
    return {">=": have >= value, "<": have < value, ">": have > value}[operator]


@pytest.fixture
def server(api: respx.MockRouter) -> FakeChats:
    """A server of chats behind the mocked API root."""
    fake = FakeChats()
    api.get("/chats").mock(side_effect=lambda request: fake.listing(request))
    api.post("/chats/search").mock(side_effect=lambda request: fake.search(request))
    return fake


async def read(
    client: HelpCrunchClient, *queries: ChatQuery, window: int = 1
) -> tuple[list[int], ChatReader]:
    """The ids `ChatReader.read` hands on, in order, and the reader."""
    reader = ChatReader(client, list(queries) or [ChatQuery()], window=window)
    got: list[int] = []
    await reader.read(lambda chat: got.append(chat.id) is None)
    return got, reader


@pytest.mark.anyio
async def test_the_listing_reads_every_chat_once_oldest_first(
    client: HelpCrunchClient, server: FakeChats
) -> None:
    """Without filters every chat is read from `GET /chats`, oldest first, 100 a page,
    and the read ends at the short page: ceil(250 / 100) requests."""
    ids = [server.add(T0 + n) for n in range(250)]
    got, reader = await read(client)
    assert got == ids
    assert reader.requests == 3
    assert [a["offset"] for a in server.asked] == ["0", "100", "200"]


@pytest.mark.anyio
async def test_a_read_of_exactly_full_pages_ends_at_the_empty_one(
    client: HelpCrunchClient, server: FakeChats
) -> None:
    """200 chats fill two pages: a third, empty one proves there are no more."""
    ids = [server.add(T0 + n) for n in range(200)]
    got, reader = await read(client)
    assert (got, reader.requests) == (ids, 3)


@pytest.mark.anyio
async def test_pages_of_fifty_are_not_taken_for_the_end(
    client: HelpCrunchClient, server: FakeChats
) -> None:
    """A revision that answers 50 chats a page, whatever is asked, is read on until a
    page shorter than its own."""
    server.page_size = 50
    ids = [server.add(T0 + n) for n in range(120)]
    got, reader = await read(client)
    assert (got, reader.requests) == (ids, 3)


@pytest.mark.anyio
async def test_a_search_moves_its_lower_bound_rather_than_its_offset(
    client: HelpCrunchClient, server: FakeChats
) -> None:
    """Each page after the first asks for the chats created at or after the newest one
    read, skipping only those of that second already read."""
    ids = [server.add(T0 + n // 3) for n in range(150)]  # three chats a second
    got, _ = await read(client, ChatQuery((("chats.status", "=", "pending"),)))
    assert got == ids
    second = server.asked[1]
    assert {"field": "chats.createdAt", "operator": ">=", "value": T0 + 33} in second["filter"]
    assert second["offset"] == 1  # chat 99 is the first of its second: one read already


@pytest.mark.anyio
async def test_a_chat_leaving_the_search_while_it_pages_skips_no_other(
    client: HelpCrunchClient, server: FakeChats
) -> None:
    """Chats already read that leave `status = pending` before the next page (closed
    meanwhile) shift no later chat out of reach, as they would with offsets alone."""
    ids = [server.add(T0 + n) for n in range(300)]

    def close_what_was_read(fake: FakeChats) -> None:
        for chat in fake.chats[: 10 * len(fake.asked)]:
            chat["status"] = "closed"

    server.between = close_what_was_read
    got, _ = await read(client, ChatQuery((("chats.status", "=", "pending"),)))
    assert got == ids


@pytest.mark.anyio
async def test_chats_created_while_the_read_pages_make_it_skip_or_repeat_none(
    client: HelpCrunchClient, server: FakeChats
) -> None:
    """New chats (created now, so newest) arrive between pages: every chat there at the
    start is read once, in order, and so is every chat that came before the end."""
    ids = [server.add(T0 + n) for n in range(250)]

    def create_more(fake: FakeChats) -> None:
        fake.add(T0 + 10_000 + len(fake.chats))

    server.between = create_more
    for query in (ChatQuery(), ChatQuery((("chats.status", "=", "pending"),))):
        server.asked.clear()
        got, _ = await read(client, query)
        assert got[: len(ids)] == ids
        assert len(got) == len(set(got))
        assert got == sorted(got)


@pytest.mark.anyio
async def test_hundreds_of_chats_in_one_second_are_paged_by_offset_within_it(
    client: HelpCrunchClient, server: FakeChats
) -> None:
    """250 chats created in the same second: the bound stays and the offset within the
    second moves, so each chat is read once."""
    ids = [server.add(T0) for _ in range(250)]
    got, reader = await read(client, ChatQuery(since=T0 - 5))
    assert (got, reader.requests) == (ids, 3)
    assert [a["offset"] for a in server.asked] == [0, 100, 200]


@pytest.mark.anyio
async def test_since_and_until_bound_the_creation_time(
    client: HelpCrunchClient, server: FakeChats
) -> None:
    """`since` is inclusive and `until` exclusive, asked as filters on `chats.createdAt`."""
    ids = [server.add(T0 + n) for n in range(10)]
    got, _ = await read(client, ChatQuery(since=T0 + 2, until=T0 + 5))
    assert got == ids[2:5]
    assert server.asked[0]["filter"] == [
        {"field": "chats.createdAt", "operator": ">=", "value": T0 + 2},
        {"field": "chats.createdAt", "operator": "<", "value": T0 + 5},
    ]


@pytest.mark.anyio
async def test_several_queries_merge_in_creation_order_each_chat_once(
    client: HelpCrunchClient, server: FakeChats
) -> None:
    """A query per status, merged oldest first; a chat whose status changed between the
    two queries (given by both) is written once and counted as a repeat."""
    statuses = ["pending", "closed", "opened"]
    ids = [server.add(T0 + n, statuses[n % 3]) for n in range(240)]

    def reopen_one(fake: FakeChats) -> None:
        if len(fake.asked) == 1:  # the pending query has its first page, closed not yet
            fake.chats[0]["status"] = "closed"

    server.between = reopen_one
    queries = [ChatQuery((("chats.status", "=", s),)) for s in ("pending", "closed")]
    got, reader = await read(client, *queries)
    assert got == [i for n, i in enumerate(ids) if n % 3 != 2]
    assert reader.repeats == 1


@pytest.mark.anyio
async def test_string_timestamps_with_a_fraction_are_read(
    client: HelpCrunchClient, server: FakeChats
) -> None:
    """The newest revision writes `createdAt` as a string, sometimes with milliseconds."""
    ids = [server.add(f"{T0 + n}.{n % 1000:03d}") for n in range(120)]
    got, _ = await read(client, ChatQuery((("chats.status", "=", "pending"),)))
    assert got == ids


@pytest.mark.anyio
async def test_an_answer_out_of_creation_order_cannot_be_paged_by(
    client: HelpCrunchClient, api: respx.MockRouter
) -> None:
    """A server that did not sort by creation time gives pages that cannot be followed:
    an error, not a silently wrong export."""
    chats = [{"id": 2, "createdAt": T0 + 5}, {"id": 1, "createdAt": T0}]
    api.get("/chats").respond(200, json={"data": chats})
    with pytest.raises(ApiError, match="did not sort by creation time"):
        await read(client)


@pytest.mark.anyio
async def test_a_chat_without_a_creation_time_cannot_be_paged_by(
    client: HelpCrunchClient, api: respx.MockRouter
) -> None:
    """A chat whose `createdAt` cannot be read has no place among the others: an error."""
    api.get("/chats").respond(200, json={"data": [{"id": 2}]})
    with pytest.raises(ApiError, match="no readable createdAt"):
        await read(client)


@pytest.mark.anyio
async def test_a_page_that_fails_is_read_again_and_a_refused_key_stops(
    client: HelpCrunchClient, api: respx.MockRouter
) -> None:
    """A 503 on a page is tried again (a read changes nothing); a 401 stops the read."""
    page = {"data": [{"id": 1, "createdAt": T0}]}
    route = api.get("/chats").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json=page)]
    )
    got, _ = await read(client)
    assert (got, route.call_count) == ([1], 2)
    api.get("/chats").respond(401, json={"errors": [{"code": "unauthorized", "message": "no"}]})
    with pytest.raises(AuthenticationError):
        await read(client)


@pytest.mark.anyio
async def test_the_estimate_is_the_first_pages_totals_while_they_are_believable(
    client: HelpCrunchClient, server: FakeChats
) -> None:
    """The progress bar's total is what the first pages claim; a total below what a page
    holds (a revision's `total: 0`) makes no estimate."""
    for n in range(30):
        server.add(T0 + n, "pending" if n < 20 else "closed")
    queries = [ChatQuery((("chats.status", "=", s),)) for s in ("pending", "closed")]
    reader = ChatReader(client, queries)
    assert reader.estimate is None
    estimates: list[int | None] = []
    await reader.read(lambda chat: estimates.append(reader.estimate) is not None)
    assert estimates == [30]


@pytest.mark.anyio
async def test_the_listing_reads_ahead_within_the_total_it_claims(
    client: HelpCrunchClient, server: FakeChats
) -> None:
    """With a window, the listing's pages up to the total the first one claims are asked
    for ahead: the same chats in the same order, and no request more than one at a time."""
    ids = [server.add(T0 + n) for n in range(1050)]
    got, reader = await read(client, window=8)
    assert got == ids
    assert reader.requests == 11
    assert sorted(int(a["offset"]) for a in server.asked) == list(range(0, 1100, 100))


@pytest.mark.anyio
async def test_a_total_claimed_too_low_or_too_high_costs_no_chat(
    client: HelpCrunchClient, api: respx.MockRouter
) -> None:
    """A first page that claims fewer chats than there are is read on past it, one page
    at a time; one that claims more costs at most the window's pages, never a chat."""
    chats = [{"id": 1000 + n, "createdAt": T0 + n} for n in range(450)]

    def answer(request: httpx.Request, *, total: int) -> httpx.Response:
        offset = int(request.url.params["offset"])
        page = chats[offset : offset + 100]
        return httpx.Response(200, json={"data": page, "meta": {"total": total}})

    for total, most in ((250, 5), (5000, 5 + 3)):
        route = api.get("/chats").mock(side_effect=lambda r, total=total: answer(r, total=total))
        before = route.call_count
        got, _ = await read(client, window=4)
        assert got == [c["id"] for c in chats]
        assert 5 <= route.call_count - before <= most


@pytest.mark.anyio
async def test_a_page_read_ahead_that_fails_raises_in_its_turn(
    client: HelpCrunchClient, api: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page asked for ahead that keeps failing ends the read where it belongs: every
    chat before it is handed on first."""
    from bulk_chats.api import retry

    monkeypatch.setattr(retry, "BACKOFF_BASE", 0.0)
    chats = [{"id": 1000 + n, "createdAt": T0 + n} for n in range(400)]

    def answer(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        if offset == 200:
            return httpx.Response(503)
        page = chats[offset : offset + 100]
        return httpx.Response(200, json={"data": page, "meta": {"total": len(chats)}})

    api.get("/chats").mock(side_effect=answer)
    reader = ChatReader(client, [ChatQuery()], window=4)
    got: list[int] = []
    with pytest.raises(ApiError):
        await reader.read(
            lambda chat: got.append(chat["id"] if isinstance(chat, dict) else chat.id) is None
        )
    assert got == [c["id"] for c in chats[:200]]
