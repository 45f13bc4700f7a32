"""What every `/v1` request meets around its endpoint: latency, counting, the key, the
rate limit and the faults.

The rate limit counts the requests it lets through in a sliding window (60 seconds
unless `SandboxConfig.window` says otherwise), all `/v1` endpoints together; 401s and
429s do not count. A 429 carries `Retry-After` (whole seconds until a slot frees)
unless `retry_after_header` is off, as the real API documents none.

Order of work for each `/v1` request: latency, count, authenticate (401), rate limit (429),
draw a fault, then the endpoint (400, 404, store, answer).

Faults hit `POST /v1/chats`, and `POST /v1/messages`, `POST /v1/customers`, the
`PUT /v1/chats/...` endpoints and the reads (listings and searches) when
`Faults.messages`, `Faults.customers`, `Faults.updates` and `Faults.reads` say so. Each
such request that passes authentication and the rate limit draws one number from
`random.Random(seed)` and gets at most one fault, so the n-th request meets the same
fault in every run with the same seed. "Before" faults answer without reading the body;
"after" faults strike only when something was stored or changed, or for a read once it
is answered (a request refused with 400/404 is answered normally):

- `error_before`: 500, nothing stored;
- `unavailable`: 503, nothing stored;
- `drop_before`: the connection is closed without an answer, nothing stored;
- `error_after`: stored, then 500;
- `drop_after`: stored, then the connection is closed without an answer;
- `slow_after`: stored, then answered normally after `slow_seconds`, so that a client with
  a shorter timeout gives up first;
- `widget_chat` (`POST /v1/chats` only; elsewhere it is no fault): the customer opens a
  chat of their own in the widget (`createdWith` `customer_message`, with a message from
  them), then the requested chat is stored and the connection closed without an answer,
  so a search for the customer's new chats finds two, the widget's first.

`Faults.drop_probe` is apart from these, on any endpoint and drawing no number: the first
request admitted `PROBE_GAP` seconds or more after the first 429 is served (stored, if it
stores anything), then its connection closed without an answer, once (`drop_probe` in the
faults counted): the probe a client sends to learn the window's length, lost.

Closing a connection needs the sandbox's own server (`run_in_thread`, `serve`). In process,
under `httpx.ASGITransport`, a drop raises `httpx.RemoteProtocolError`, the error httpx
raises when a server closes the connection without answering.
"""

from __future__ import annotations

import hmac
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bulk_chats.sandbox.config import PROBE_GAP, WINDOW_SECONDS, SandboxConfig
from bulk_chats.sandbox.refusals import Refusal, error_response, json_object
from bulk_chats.sandbox.state import SandboxState
from bulk_chats.timing import Clock, Sleep

Handler = Callable[[Request], Awaitable[Response]]
"""An endpoint."""

DROP_CONNECTION = "bulk_chats.sandbox.drop_connection"
"""The key under `scope["extensions"]` of the sandbox server's "close this connection"."""

_BEFORE = frozenset({"error_before", "unavailable", "drop_before"})
"""The faults answered before the endpoint reads the body."""


class _Answered(Exception):
    """A request answered before its endpoint did its work (a "before" fault)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class SlidingWindow:
    """At most `rate` admissions in any `window` seconds of `clock`."""

    def __init__(self, rate: int, clock: Clock, window: float = WINDOW_SECONDS) -> None:
        self._rate = rate
        self._clock = clock
        self._window = window
        self._admitted: deque[float] = deque()

    def admit(self) -> float | None:
        """Admit one request now and return None, or return the seconds until one fits."""
        now = self._clock()
        while self._admitted and self._admitted[0] <= now - self._window:
            self._admitted.popleft()
        if len(self._admitted) < self._rate:
            self._admitted.append(now)
            return None
        return self._admitted[0] + self._window - now


class Gate:
    """The routing, latency, counting, authentication, rate limit and faults of a sandbox's
    requests, around the `/v1` endpoints a subclass (`SandboxApp`) provides."""

    def __init__(
        self,
        config: SandboxConfig,
        state: SandboxState,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self.config = config
        self.state = state
        self._sleep = sleep
        self._limiter = (
            None if config.rate is None else SlidingWindow(config.rate, clock, window=config.window)
        )
        self._clock = clock
        self._first_429: float | None = None
        self._probe_dropped = False
        self._fault_rng = random.Random(config.faults.seed)
        # Latency has its own generator so that it never shifts the sequence of faults.
        self._latency_rng = random.Random(f"latency-{config.faults.seed}")
        self._pauses: set[anyio.CancelScope] = set()
        self._closing = False
        self._authenticated = 0
        self._router = Starlette(
            routes=[
                *(
                    Route(
                        path,
                        self._v1(handler, f"{method} {path.replace(':int', '')}"),
                        methods=[method],
                    )
                    for method, path, handler in self._endpoints()
                ),
                Route("/_sandbox/state", self._inspect, methods=["GET"]),
            ],
            exception_handlers={HTTPException: _http_error},  # type: ignore[dict-item]
        )

    def _endpoints(self) -> list[tuple[str, str, Handler]]:
        """The `/v1` endpoints: (method, path, handler) each."""
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._router(scope, receive, send)

    async def _inspect(self, request: Request) -> Response:
        return JSONResponse(self.state.snapshot())

    def close(self) -> None:
        """Cut short every pause in progress and skip later ones, so a server stops soon.

        Call it from the event loop that runs the app.
        """
        self._closing = True
        for scope in list(self._pauses):
            scope.cancel()

    async def _pause(self, seconds: float) -> None:
        if seconds <= 0 or self._closing:
            return
        with anyio.CancelScope() as scope:
            self._pauses.add(scope)
            try:
                await self._sleep(seconds)
            finally:
                self._pauses.discard(scope)

    def _latency(self) -> float:
        latency = self.config.latency
        if isinstance(latency, tuple):
            return self._latency_rng.uniform(*latency)
        return latency

    def _authorized(self, request: Request) -> bool:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return False
        expected = self.config.api_key
        if expected is not None and not hmac.compare_digest(key.encode(), expected.encode()):
            return False
        revoke_after = self.config.revoke_key_after
        if revoke_after is not None and self._authenticated >= revoke_after:
            return False
        self._authenticated += 1
        return True

    def _v1(self, handler: Handler, label: str) -> Handler:
        """`handler` behind latency, counting (as `label`), authentication and the rate
        limit."""

        async def endpoint(request: Request) -> Response:
            await self._pause(self._latency())
            self.state.count(label)
            if not self._authorized(request):
                self.state.count_unauthorized()
                return error_response(401, ("unauthorized", "Unauthorized"))
            wait = None if self._limiter is None else self._limiter.admit()
            if wait is not None:
                if self._first_429 is None:
                    self._first_429 = self._clock()
                self.state.count_rate_limited()
                headers = None
                if self.config.retry_after_header:
                    headers = {"Retry-After": str(max(1, math.ceil(wait)))}
                return error_response(
                    429, ("too_many_requests", "Too many requests"), headers=headers
                )
            probe = self._drops_probe()
            try:
                response = await handler(request)
            except Refusal as refusal:
                response = refusal.response()
            except _Answered as answered:
                response = answered.response
            return _drop(request) if probe else response

        return endpoint

    def _drops_probe(self) -> bool:
        """Whether this request, just admitted, is the probe `Faults.drop_probe` drops."""
        first = self._first_429
        if not self.config.faults.drop_probe or self._probe_dropped or first is None:
            return False
        if self._clock() - first < PROBE_GAP:
            return False
        self._probe_dropped = True
        self.state.count_fault("drop_probe")
        return True

    def _draw_fault(self, endpoint: str) -> str | None:
        """The fault for one request to `endpoint` ("chats", or a `Faults` flag's name)."""
        faults = self.config.faults
        if endpoint != "chats" and not getattr(faults, endpoint):
            return None
        kind = faults.draw(self._fault_rng)
        if kind == "widget_chat" and endpoint != "chats":
            return None
        if kind in _BEFORE:
            self.state.count_fault(kind)
        return kind

    def _read_fault(self, request: Request) -> str | None:
        """The fault for a read (a listing, a search, a chat's messages) when
        `Faults.reads` says so; a "before" fault is answered at once."""
        fault = self._draw_fault("reads")
        if fault in _BEFORE:
            raise _Answered(_before_fault(request, fault))
        return fault

    async def _begin(self, request: Request, endpoint: str) -> tuple[str | None, dict[str, Any]]:
        """Draw the request's fault (see `_draw_fault`) and read its body; a "before" fault
        is answered at once, without reading it."""
        fault = self._draw_fault(endpoint)
        if fault in _BEFORE:
            raise _Answered(_before_fault(request, fault))
        return fault, await json_object(request)

    async def _answer(self, request: Request, fault: str | None, response: Response) -> Response:
        """`response` after something was stored, unless an "after" fault strikes."""
        if fault is None or fault in _BEFORE:
            return response
        self.state.count_fault(fault)
        if fault == "error_after":
            return _server_error()
        if fault in ("drop_after", "widget_chat"):
            return _drop(request)
        await self._pause(self.config.faults.slow_seconds)
        return response


def _server_error() -> Response:
    return error_response(500, ("internal_error", "Internal server error"), generic=False)


def _before_fault(request: Request, fault: str | None) -> Response:
    if fault == "error_before":
        return _server_error()
    if fault == "unavailable":
        return error_response(503, ("service_unavailable", "Service unavailable"), generic=False)
    return _drop(request)


def _drop(request: Request) -> Response:
    """Close the connection without an answer (see the module docstring)."""
    drop = request.scope.get("extensions", {}).get(DROP_CONNECTION)
    if drop is None:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
    drop()
    # The connection is closed: this answer goes nowhere, it only ends the handler.
    return Response(status_code=500)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    """Unknown paths and methods answer in the API's error shape too."""
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, (code, str(exc.detail)), headers=exc.headers)
