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
shifts nothing. So its pages can be asked for ahead, several at a time, up to the total
its first page claims: the rate stays full however slow each answer, and a wrong total
costs at most the pages asked for ahead (beyond the total, one page at a time). A
search's next page depends on the last one read: it is asked for as soon as that one is
in, while its chats are written, the searches of several statuses side by side. A chat
two queries both return (its status changed between them) is given once, by id.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import anyio
from anyio.abc import TaskGroup

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
    """Reads the chats of `queries` through `client`: `read(take)` hands each to `take`
    once, oldest first, until `take` says no more or `stopped()` says to ask for no more
    pages. `window` is how many pages of the listing may be in flight at once, within the
    total its first page claims. `requests` counts the pages read (retries aside),
    `repeats` the chats given by more than one query or page and left out."""

    def __init__(
        self,
        client: HelpCrunchClient,
        queries: Sequence[ChatQuery],
        *,
        sleep: Sleep = anyio.sleep,
        attempts: int = READ_ATTEMPTS,
        stopped: Callable[[], bool] = lambda: False,
        window: int = 1,
    ) -> None:
        self._client = client
        self._streams = [_Stream(self, query) for query in queries]
        self._sleep = sleep
        self._attempts = attempts
        self.stopped = stopped
        self.window = max(1, window)
        self.group: TaskGroup | None = None
        """The task group of a `read` in progress, where pages read ahead go."""
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

    async def read(self, take: Callable[[Chat], bool]) -> None:
        """Hand every chat of the queries to `take`, each once, in creation order, until
        `take` answers False. Raises `ApiError` when a page cannot be read (after its
        retries) or cannot be paged by. Once `stopped()`, no page is asked for: the chats
        read already are handed on while their order is certain, up to the first query
        that would need another page."""
        failed: Exception | None = None
        async with anyio.create_task_group() as group:
            self.group = group
            try:
                await self._merge(take)
            except Exception as exc:  # raised as itself below, not in a group of one
                failed = exc
            finally:
                self.group = None
                # Pages read ahead that are no longer wanted: a read changes nothing.
                group.cancel_scope.cancel()
        if failed is not None:
            raise failed

    async def _merge(self, take: Callable[[Chat], bool]) -> None:
        seen: set[int] = set()
        streams = self._streams
        while True:
            empty = [s for s in streams if not s.buffer and not s.done]
            if empty and self.stopped():
                return
            if len(empty) == 1:
                await empty[0].fill()
            elif empty:
                await _fill_side_by_side(empty)
            ready = [s for s in streams if s.buffer]
            if not ready:
                return
            head = min(ready, key=lambda s: s.head_key).buffer.popleft()
            if head.id in seen:
                self.repeats += 1
                continue
            seen.add(head.id)
            if not take(head):
                return

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


async def _fill_side_by_side(streams: Sequence[_Stream]) -> None:
    """Fill `streams` at once (each waits its turn at the limiter); the first failure is
    raised as itself once they are all done."""
    failures: list[Exception] = []

    async def fill(stream: _Stream) -> None:
        try:
            await stream.fill()
        except Exception as exc:
            failures.append(exc)

    async with anyio.create_task_group() as group:
        for stream in streams:
            group.start_soon(fill, stream)
    if failures:
        raise failures[0]


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
        self._pending: dict[int, _Ahead] = {}
        """The listing's pages asked for ahead, by offset."""
        self._ahead = 0
        """The offset of the next page of the listing to ask for ahead."""
        self._next: _Ahead | None = None
        """The search's next page, asked for as soon as where it starts is known."""

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
        if self._query.listing:
            page = await self._listing_page()
        elif self._next is not None:
            page, self._next = await self._next.page(), None
        else:
            page = await reader.read_page(self._query, bound=self._bound, offset=self._offset)
        if self._pages == 1 and page.total is not None and page.total >= page.length:
            self.claimed = page.total
        longest = reader.longest
        reader.longest = max(longest, page.length)
        if not page.length or page.length < SHORTEST_PAGE or page.length < longest:
            self.done = True
        if self._query.listing:
            self._offset += page.length
            self._ahead = max(self._ahead, self._offset)
        for chat in page.items:
            self._place(chat)
            self.buffer.append(chat)
        if not (self.done or self._query.listing or reader.stopped()) and reader.group:
            # Where the next page starts is known now: it is asked for while this one is
            # written, the searches of other statuses meanwhile asking for theirs.
            self._next = _Ahead.start(reader, self._query, self._offset, bound=self._bound)

    async def _listing_page(self) -> Page[Chat]:
        """The listing's page at the current offset. Within the total its first page
        claimed, the pages after it are asked for ahead, `reader.window` at a time, so
        that the rate stays full however slow each answer; past that total (wrong, or
        the last page full) one page at a time, until a short one ends the read."""
        reader = self._reader
        step, offset = reader.longest, self._offset
        if self.claimed is not None and reader.window > 1 and step and reader.group:
            while self._ahead < self.claimed and len(self._pending) < reader.window:
                self._pending[self._ahead] = _Ahead.start(reader, self._query, self._ahead)
                self._ahead += step
        ahead = self._pending.pop(offset, None)
        if ahead is None:
            return await reader.read_page(self._query, bound=None, offset=offset)
        return await ahead.page()

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


class _Ahead:
    """A page of the listing asked for ahead, in the reader's task group."""

    def __init__(self) -> None:
        self._done = anyio.Event()
        self._page: Page[Chat] | None = None
        self._error: Exception | None = None

    @classmethod
    def start(
        cls, reader: ChatReader, query: ChatQuery, offset: int, *, bound: int | None = None
    ) -> _Ahead:
        """Ask for the page of `query` at `offset` (from `bound`) in the reader's group."""
        ahead = cls()
        if reader.group is None:  # pages are asked for ahead only within a `read`
            raise RuntimeError("pages are read ahead only within ChatReader.read")
        reader.group.start_soon(ahead._read, reader, query, offset, bound)
        return ahead

    async def _read(
        self, reader: ChatReader, query: ChatQuery, offset: int, bound: int | None
    ) -> None:
        try:
            self._page = await reader.read_page(query, bound=bound, offset=offset)
        except Exception as exc:  # raised where the page is wanted, in order
            self._error = exc
        finally:
            self._done.set()

    async def page(self) -> Page[Chat]:
        """The page, once read; its read's error, raised here."""
        await self._done.wait()
        if self._error is not None:
            raise self._error
        if self._page is None:
            raise RuntimeError("a page read ahead ended without a page")
        return self._page
