"""The page's door: the token and `Host` checks every request passes, and the security
headers every answer carries.

A local server is still a server. Every request must carry the random token the command
printed, and a `Host` of the loopback address and port it serves on: a page elsewhere
cannot reach in by DNS rebinding, nor guess the token.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse

SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; form-action 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
"""No script, style or frame from elsewhere; no referrer (the token is in the URL); no copy
kept by a cache."""


class Guard:
    """ASGI middleware: refuse (403) a request without the token or with a `Host` not in
    `hosts`; add `SECURITY_HEADERS` to every answer, refusals included."""

    def __init__(self, app: Callable[..., Awaitable[None]], *, token: str, hosts: set[str]) -> None:
        self._app = app
        self._token = token
        self._hosts = hosts

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":  # the page has none: refuse before anything else
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        request = Request(scope)
        host = request.headers.get("host", "").lower()
        token = request.query_params.get("token", "")
        if host not in self._hosts:
            refusal = "refused: this page answers only on its loopback address"
        elif not secrets.compare_digest(token.encode(), self._token.encode()):
            refusal = "refused: open the address `bulk-chats ui` printed, token included"
        else:
            refusal = ""
        if refusal:
            response = PlainTextResponse(refusal, status_code=403)
            await response(scope, receive, _with_headers(send))
            return
        await self._app(scope, receive, _with_headers(send))


def _with_headers(send: Any) -> Any:
    async def sending(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
        await send(message)

    return sending
