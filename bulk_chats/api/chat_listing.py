"""Every chat an export asks for, each once, oldest first (docs/export.md › How chats are read).

An export is one query, or several when it asks for more than one status: the API joins
all of a search's filters with one `AND` or one `OR`, so "pending or closed, in Billing"
is a query per status. Each query is read oldest first (`chats.createdAt` ascending) and
the queries are merged as they are read, so the chats come out in creation order
whatever their number, holding no more than a page of each query at a time.

Offset paging shifts when the chats a search matches change while it is read: a chat
closed meanwhile leaves "status = pending", and every later offset skips a chat. So a
search does not trust the offset alone: each page asks for the chats created at or after
the newest one read so far (`chats.createdAt >= T`, whole seconds as the API compares
them), and its offset counts only the chats already read from that second on, usually
one. Only a chat that leaves the search within that one second could still shift a page.
The listing (`GET /v1/chats`, an export without filters) takes no filter: it pages by
offset, and as it lists every chat oldest first, a chat created meanwhile comes last and
shifts nothing. A chat two queries both return (its status changed between them) is
given once, by id.

A read ends at an empty page, at a page shorter than any server pages by
(`SHORTEST_PAGE`), or at a page shorter than one the same read was answered with before:
a server that answered 100 chats a page has no more when it answers 37, and one that
pages by 50 is never taken to be done at 50. `meta.total` is not trusted. An answer out of
creation order, or a chat without a readable `createdAt`, cannot be paged by: it raises
`ApiError`. Every page is a read, tried again after any transient failure
(`api.retry.read_with_retries`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from functools import partial

import anyio

from bulk_chats.api.client import HelpCrunchClient, Page
from bulk_chats.api.entities import Chat
from bulk_chats.api.retry import READ_ATTEMPTS, read_with_retries
from bulk_chats.api.wire import MAX_PAGES, SHORTEST_PAGE
from bulk_chats.errors import ApiError
from bulk_chats.timing import Sleep

Condition = tuple[str, str, str | int]
"""A search condition: (field, operator, value), as `("chats.status", "=", "pending")`."""


@dataclass(frozen=True, slots=True)
class ChatQuery:
    """One query of an export: `conditions` joined with `AND` for `POST /v1/chats/search`;
    none at all reads the listing, `GET /v1/chats`. `since` and `until` bound the
    creation time (unix seconds; `since` inclusive, `until` exclusive)."""

    conditions: tuple[Condition, ...] = ()
    since: int | None = None
    until: int | None = None

    @property
    def listing(self) -> bool:
        """Whether this query reads `GET /v1/chats`: it filters nothing."""
        return not self.conditions and self.since is None and self.until is None


class ChatReader:
    """Reads the chats of `queries` through `client`: `chats()` gives each once, oldest
    first, until `stopped()` says to ask for no more pages. `requests` counts the pages
    asked for so far (retries aside), `repeats` the chats given by more than one query or
    page and left out."""

    def __init__(
        self,
        client: HelpCrunchClient,
        queries: Sequence[ChatQuery],
        *,
        sleep: Sleep = anyio.sleep,
        attempts: int = READ_ATTEMPTS,
        stopped: Callable[[], bool] = lambda: False,
    ) -> None:
        self._client = client
        self._streams = [_Stream(self, query) for query in queries]
        self._sleep = sleep
        self._attempts = attempts
        self._stopped = stopped
        self.longest = 0
        """The longest page any query was answered with: the server's page size."""
        self.requests = 0
        self.repeats = 0

    @property
    def estimate(self) -> int | None:
        """How many chats the queries hold, by the totals their first pages claimed
        (a hint for a progress bar, never trusted to end a read); None until every query
        answered one, or when one claimed less than it gave."""
        totals = [stream.claimed for stream in self._streams]
        if any(total is None for total in totals):
            return None
        return sum(total or 0 for total in totals)

    async def chats(self) -> AsyncGenerator[Chat, None]:
        """Every chat of the queries, each once, in creation order; raises `ApiError` when
        a page cannot be read (after its retries) or cannot be paged by. Once `stopped()`,
        no page is asked for: the chats read already are given while their order is
        certain, up to the first query that would need another page."""
        seen: set[int] = set()
        streams = self._streams
        while True:
            empty = [s for s in streams if not s.buffer and not s.done]
            if empty and self._stopped():
                return
            if len(empty) == 1:
                await empty[0].fill()
            elif empty:
                async with anyio.create_task_group() as group:
                    for stream in empty:
                        group.start_soon(stream.fill)
            ready = [s for s in streams if s.buffer]
            if not ready:
                return
            head = min(ready, key=lambda s: s.head_key).buffer.popleft()
            if head.id in seen:
                self.repeats += 1
                continue
            seen.add(head.id)
            yield head

    async def read_page(self, query: ChatQuery, *, bound: int | None, offset: int) -> Page[Chat]:
        """One page of `query` from `offset` among the chats created at or after `bound`."""
        client = self._client
        if query.listing:
            call = partial(client.list_chats_page, offset=offset)
        else:
            conditions = list(query.conditions)
            since = bound if bound is not None else query.since
            if since is not None:
                conditions.append(("chats.createdAt", ">=", since))
            if query.until is not None:
                conditions.append(("chats.createdAt", "<", query.until))
            call = partial(client.search_chats_page, conditions, offset=offset)
        page = await read_with_retries(call, attempts=self._attempts, sleep=self._sleep)
        self.requests += 1
        return page


class _Stream:
    """The chats of one query, a page at a time, oldest first."""

    def __init__(self, reader: ChatReader, query: ChatQuery) -> None:
        self._reader = reader
        self._query = query
        self.buffer: deque[Chat] = deque()
        self.done = False
        self._bound: int | None = None
        """The whole second the next page starts at (search), None before the first."""
        self._offset = 0
        """Chats already read from `_bound` on (search), or from the start (listing)."""
        self._latest: int | None = None
        self._pages = 0
        self.claimed: int | None = None
        """The total the query's first page claimed, if it was at least that page."""

    @property
    def head_key(self) -> int:
        """The next chat's place in creation order: the whole second it was created in,
        as the API sorts and compares (within a second, the order the API gave)."""
        return math.floor(self.buffer[0].created_at or 0.0)

    async def fill(self) -> None:
        """Read the next page into `buffer`, or mark the query `done`."""
        reader = self._reader
        if self._pages >= MAX_PAGES:
            raise ApiError(f"a chat query ran past {MAX_PAGES} pages; the answer does not end")
        self._pages += 1
        page = await reader.read_page(self._query, bound=self._bound, offset=self._offset)
        if self._pages == 1 and page.total is not None and page.total >= page.length:
            self.claimed = page.total
        longest = reader.longest
        reader.longest = max(longest, page.length)
        if not page.length or page.length < SHORTEST_PAGE or page.length < longest:
            self.done = True
        if self._query.listing:
            self._offset += page.length
        for chat in page.items:
            self._place(chat)
            self.buffer.append(chat)

    def _place(self, chat: Chat) -> None:
        """Check that `chat` comes in creation order, and move the next page's start."""
        created = chat.created_at
        if created is None:
            raise ApiError(f"chat {chat.id} has no readable createdAt: the chats cannot be paged")
        second = math.floor(created)
        if self._latest is not None and second < self._latest:
            raise ApiError(
                f"chat {chat.id} is listed after a chat created later: the API did not sort "
                "by creation time, so its pages cannot be followed"
            )
        self._latest = second
        if self._query.listing:
            return
        if second == self._bound:
            self._offset += 1
        else:
            self._bound, self._offset = second, 1
