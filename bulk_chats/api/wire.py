"""One run's wire to the HelpCrunch API: the connection pool, the key, the turn at the rate
limiter, and every failure classed by what the caller must do about it.

The only module that sees httpx and the API's raw bodies (with `api.client`, which asks
it for the endpoints): every failure leaves it as one of `bulk_chats.errors`:

- `AuthenticationError`: 401, and every request after it (see below).
- `RateLimitedError` (a `NotSentError`): 429, with `Retry-After` when the server sent it.
- `NotSentError`: 503; the connection could not be made (refused, connect timeout); no
  connection came free in the pool. Nothing reached the server, so sending again is safe.
- `MaybeSentError`: no answer after the request went out (read or write timeout, dropped
  connection, read error), any other 5xx, or a 2xx whose body cannot be read. The request
  may have taken effect: a chat is looked for by search before it is sent again.
- `RefusedError`: any other answer outside 2xx, with the API's codes and messages.

Every request waits its turn at the run's `RateLimiter`, look-ups included, and reports
429s to it. `stop_waiting` (a run stopping on Ctrl-C) ends those waits at once with
`NotSentError`: a request that has not had its turn has sent nothing. The first 401 does
the same with `AuthenticationError`, and no later request leaves: a revoked key would
otherwise draw one more 401 for every request already queued at the limiter (about 60 at
1200 a minute).

The key goes into the Authorization header and nowhere else: error messages are built
from our own words, the status and the API's error entries, never from the request or its
headers, and any outside text is scrubbed of the key. Nothing is logged.
"""

from __future__ import annotations

import email.utils
import importlib.metadata
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import anyio
import httpx

from bulk_chats.api.entities import parse_id
from bulk_chats.api.limiter import RateLimiter
from bulk_chats.api.server_clock import ServerClock
from bulk_chats.errors import (
    ApiError,
    AuthenticationError,
    InputError,
    MaybeSentError,
    NotSentError,
    RateLimitedError,
    RefusedError,
)
from bulk_chats.settings import DEFAULT_RATE, ApiKey

DEFAULT_TIMEOUT = 30.0
"""Seconds to wait for an answer (read, write, pool)."""

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a connection; shorter, since a failed connect is safe to retry."""

PAGE_SIZE = 100
"""The API's largest page for `offset`/`limit` paging."""

SHORTEST_PAGE = 50
"""The shortest page a revision of the API is known to answer with, whatever was asked."""

MAX_PAGES = 10_000
"""A paged read stops with an error past this many pages rather than loop forever."""

_DETAIL_LIMIT = 300
"""Characters of outside text (exception text, error messages) kept in our messages."""


def _package_version() -> str:
    try:
        return importlib.metadata.version("bulk-chats")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


USER_AGENT = f"bulk-chats/{_package_version()}"

T = TypeVar("T")

Transport = httpx.AsyncBaseTransport
"""What carries a client's requests: the network by default; a mock or an in-process app
in tests (so that no other module needs httpx for the type)."""


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP-date.

    None when absent or unreadable; never negative. `now` is unix seconds (wall clock) for
    the HTTP-date form.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when: datetime = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


class Wire:
    """One run's connection to the API: one pool, one rate limiter, one key.

    `base_url` is the API root (`https://api.helpcrunch.com/v1`); `api_key` None sends no
    Authorization header (the sandbox needs none). `limiter` paces every request; when None,
    one at `DEFAULT_RATE`. `timeout` is in seconds, `connect_timeout` the shorter wait for a
    connection. `transport` replaces the network (tests, the in-process sandbox);
    `wall_clock` (unix seconds) reads `Retry-After` dates. TLS certificates are always
    verified. `HelpCrunchClient` is one, with the endpoints; use it as an async context
    manager.
    """

    def __init__(
        self,
        base_url: str,
        api_key: ApiKey | None,
        *,
        limiter: RateLimiter | None = None,
        transport: Transport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        self._secret: str | None = None
        if api_key is not None:
            bearer = api_key.bearer()
            # httpx would reject such a value with an exception that quotes it, key and all.
            if not all(" " <= ch <= "~" for ch in bearer):
                raise InputError(
                    "the API key contains characters that cannot go in an HTTP header; "
                    "copy it again from Settings → Developers → Public API"
                )
            headers["Authorization"] = bearer
            self._secret = api_key.reveal()
        self._limiter = limiter if limiter is not None else RateLimiter(DEFAULT_RATE)
        self._waits: set[anyio.CancelScope] = set()
        self._waits_stopped = False
        self._key_refused = False
        self._wall_clock = wall_clock
        self.server_clock = ServerClock()
        """The API's clock against ours, from every answer's `Date`."""
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(connect_timeout, timeout)),
            transport=transport,
            follow_redirects=False,
        )

    @property
    def limiter(self) -> RateLimiter:
        """The rate limiter every request of this client waits at."""
        return self._limiter

    async def __aenter__(self) -> Self:
        await self._http.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.__aexit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={str(self._http.base_url)!r})"

    def stop_waiting(self) -> None:
        """End every wait for a turn at the limiter, now and later, with `NotSentError`.

        For a run that is stopping: requests already sent still get their answers, but none
        that has not had its turn goes out, however long the limiter would hold it (a long
        `Retry-After`). Call it from the event loop that runs the requests. The client
        calls it itself on the first 401.
        """
        self._waits_stopped = True
        for scope in list(self._waits):
            scope.cancel()

    async def paged(
        self,
        method: str,
        path: str,
        *,
        parse: Callable[[Mapping[str, Any]], T | None],
        query: dict[str, Any] | None = None,
        lists: tuple[str, ...] = ("data",),
    ) -> list[T]:
        """All items of a paged read, each through `parse` (items it cannot read are left
        out): `offset`/`limit` in the query string for GET, in the body for search.

        `meta.total` never ends a read on its own (the API's own examples show `total: 0`
        beside data, and a total too high), and a server may answer pages shorter than
        asked (50 where 100 were asked). So a GET listing ends at an empty page, or at a
        page shorter than any a server pages by (`SHORTEST_PAGE`) when `meta.total` agrees
        that everything is read: a small account with a truthful total costs one request,
        any other one more. A search ends at a page shorter than asked. Each page is read
        by `page`.
        """
        label = f"{method} {path}"
        items: list[T] = []
        offset = 0
        for _ in range(MAX_PAGES):
            page = await self.page(
                method, path, parse=parse, query=query, offset=offset, lists=lists
            )
            items.extend(page.items)
            offset += page.length
            if not page.length:
                return items
            if method != "GET" and page.length < PAGE_SIZE:
                return items
            if page.length < SHORTEST_PAGE and page.total == offset:
                return items
        raise ApiError(f"{label}: more than {MAX_PAGES} pages; the answer does not end")

    async def page(
        self,
        method: str,
        path: str,
        *,
        parse: Callable[[Mapping[str, Any]], T | None],
        query: Mapping[str, Any] | None = None,
        offset: int = 0,
        lists: tuple[str, ...] = ("data",),
    ) -> Page[T]:
        """One page of a paged read, from `offset`, `PAGE_SIZE` asked: `offset`/`limit` in
        the query string for GET (with `query` beside them), in the body for search.

        The items are the list under the first of `lists` the answer has; an answer with
        none of them raises `MaybeSentError`, never reads as empty.
        """
        label = f"{method} {path}"
        window = {"offset": offset, "limit": PAGE_SIZE}
        if method == "GET":
            response = await self.request(method, path, params={**(query or {}), **window})
        else:
            response = await self.request(method, path, json={**(query or {}), **window})
        body = self.json_object(response, label)
        entries = next((body[key] for key in lists if isinstance(body.get(key), list)), None)
        if entries is None:
            # Unreadable is not empty: a caller that took it for "nothing there" would
            # send again what may be there already.
            raise MaybeSentError(
                f"{label}: the answer has no list of {' or '.join(lists)}",
                http_status=response.status_code,
            )
        parsed = (parse(entry) for entry in entries if isinstance(entry, dict))
        items = [item for item in parsed if item is not None]
        return Page(items, len(entries), _total(body))

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
        unless: anyio.Event | None = None,
    ) -> httpx.Response:
        """Send one request at its turn; the response if 2xx, else one of our errors.

        `unless` set before the turn comes (Ctrl-C) ends the wait with `NotSentError`:
        the request does not go out. The limiter hears of every answer, and of every
        request whose answer never came (`RateLimiter.lost`), so that a probe of its
        window is never left waiting for an answer that will not come.
        """
        label = f"{method} {path}"
        granted = await self._turn(label, unless=unless)
        answered = False
        try:
            response = await self._http.request(method, path, params=params, json=json)
            answered = True
        except httpx.RequestError as exc:
            error = self._transport_error(exc, label)
            if not self._reveals_key(str(exc)):
                raise error from exc
        else:
            return self._answer(response, label, granted=granted)
        finally:
            if not answered:
                self._limiter.lost(sent_at=granted)
        # The original text quotes the key: raised here, outside the handler, so that no
        # traceback or `__context__` carries it.
        raise error

    async def _turn(self, label: str, *, unless: anyio.Event | None = None) -> float:
        """Wait for this request's turn at the limiter; once `stop_waiting`, or `unless` is
        set, `NotSentError`, or `AuthenticationError` when a 401 stopped the waits."""
        granted: float | None = None
        with anyio.CancelScope() as scope:
            if not self._waits_stopped and not (unless is not None and unless.is_set()):
                self._waits.add(scope)
                try:
                    if unless is None:
                        return await self._limiter.acquire()
                    async with anyio.create_task_group() as group:

                        async def end_wait() -> None:
                            await unless.wait()
                            scope.cancel()

                        group.start_soon(end_wait)
                        granted = turn = await self._limiter.acquire()
                        group.cancel_scope.cancel()
                    if not unless.is_set():  # set as the turn came: it does not go either
                        return turn
                finally:
                    self._waits.discard(scope)
        if granted is not None:
            # Its turn came as the wait was ended: it does not go, and no answer will come.
            self._limiter.lost(sent_at=granted)
        if self._key_refused:
            raise AuthenticationError(
                f"{label}: not sent: the API refused the key (401) on an earlier request"
            )
        raise NotSentError(f"{label}: not sent: the run stopped before this request's turn")

    def _answer(self, response: httpx.Response, label: str, *, granted: float) -> httpx.Response:
        """Report the answer to the limiter; the response if 2xx, else one of our errors."""
        status = response.status_code
        self.server_clock.observe(response.headers.get("Date"), self._wall_clock())
        retry_after: float | None = None
        if status == 429:
            retry_after = parse_retry_after(
                response.headers.get("Retry-After"), now=self._wall_clock()
            )
            self._limiter.throttled(retry_after, sent_at=granted)
        elif status < 500:
            self._limiter.succeeded(sent_at=granted)
        else:
            # A 5xx says nothing of the rate: a probe it answered is sent again.
            self._limiter.lost(sent_at=granted)
        if status == 401:
            self._key_refused = True
            self.stop_waiting()
        if 200 <= status < 300:
            return response
        raise self._status_error(response, label, retry_after=retry_after)

    def _reveals_key(self, text: str) -> bool:
        return self._secret is not None and self._secret in text

    def _scrub(self, text: str) -> str:
        """Outside text, fit for a message: the key masked, one line, bounded length."""
        if self._secret is not None:
            text = text.replace(self._secret, "***")
        text = " ".join(text.split())
        return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 1] + "…"

    def _transport_error(self, exc: httpx.RequestError, label: str) -> ApiError:
        """Class a failure without an answer by whether the request can have reached the API."""
        name = type(exc).__name__
        text = self._scrub(str(exc))
        detail = f"{name}: {text}" if text else name
        if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
            return NotSentError(f"{label}: could not connect to the API ({detail})")
        if isinstance(exc, httpx.PoolTimeout):
            # Waiting for a free connection of our own pool: nothing was written yet.
            return NotSentError(f"{label}: no connection came free in time ({detail})")
        if isinstance(exc, httpx.UnsupportedProtocol):
            return NotSentError(f"{label}: the API root is not an http(s) URL ({detail})")
        if isinstance(exc, httpx.TimeoutException):
            return MaybeSentError(f"{label}: no answer in time ({detail})")
        return MaybeSentError(f"{label}: the connection failed after sending ({detail})")

    def _status_error(
        self, response: httpx.Response, label: str, *, retry_after: float | None
    ) -> ApiError:
        """Turn an answer outside 2xx into our error, with the API's codes and messages."""
        status = response.status_code
        codes, messages = self._error_entries(response)
        summary = f"{label}: HTTP {status} {response.reason_phrase}".rstrip()
        detail = "; ".join(m for m in messages if m)
        message = f"{summary}: {detail}" if detail else summary
        fields: dict[str, Any] = {"http_status": status, "codes": codes, "messages": messages}
        if status == 401:
            return AuthenticationError(message, **fields)
        if status == 429:
            return RateLimitedError(message, retry_after=retry_after, **fields)
        if status == 503:
            return NotSentError(message, **fields)
        if status >= 500:
            return MaybeSentError(message, **fields)
        return RefusedError(message, **fields)

    def _error_entries(self, response: httpx.Response) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The codes and messages of `{"errors": [{"code", "message"}, …]}`; empty when the
        body is not that shape (an HTML error page from a proxy, say)."""
        try:
            body = response.json()
        except ValueError:
            return (), ()
        entries = body.get("errors") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            return (), ()
        codes: list[str] = []
        messages: list[str] = []
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            code = entry.get("code")
            if code is None or not str(code).strip():
                continue
            text = entry.get("message")
            codes.append(self._scrub(str(code)))
            messages.append(self._scrub(str(text)) if text is not None else "")
        return tuple(codes), tuple(messages)

    def json_object(self, response: httpx.Response, label: str) -> dict[str, Any]:
        """A 2xx answer's JSON object; `MaybeSentError` when the body is not one."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise MaybeSentError(
                f"{label}: HTTP {response.status_code} but the answer is not a JSON object",
                http_status=response.status_code,
            )
        return body

    def entity(
        self,
        response: httpx.Response,
        label: str,
        parse: Callable[[Mapping[str, Any]], T | None],
    ) -> T:
        """The created object of a 2xx answer (bare or under `data`), through `parse`;
        `MaybeSentError` when it carries no readable id."""
        body = self.json_object(response, label)
        entity = body
        if "id" not in body and isinstance(body.get("data"), dict):
            entity = body["data"]
        parsed = parse(entity)
        if parsed is None:
            raise MaybeSentError(
                f"{label}: HTTP {response.status_code} but the answer carries no id",
                http_status=response.status_code,
            )
        return parsed


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a paged read: the `items` read from it, how many entries the server
    answered (`length`, readable or not: what paging counts) and the total it claims
    (`meta.total`, or a top-level `total`; a hint, never the end alone)."""

    items: list[T]
    length: int
    total: int | None


def _total(body: Mapping[str, Any]) -> int | None:
    """`meta.total` of a paged answer, or the top-level `total` that a chat's messages (and
    one revision's customers) carry, when it is a count."""
    meta = body.get("meta")
    if isinstance(meta, Mapping):
        return parse_id(meta.get("total"))
    return parse_id(body.get("total"))
