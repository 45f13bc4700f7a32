"""The page's door: the token, `Host`, `Origin` and content-type checks every request
passes, and the security headers every answer carries.

A local server is still a server. Every request must carry the random token the command
printed, and a `Host` of the loopback address and port it serves on: a page elsewhere
cannot reach in by DNS rebinding, nor guess the token.

A request that changes anything (any method but GET and HEAD) must also come from the page
itself. A browser sends such a request to another site without asking first when it looks
like a form's (`text/plain`, a form's types, or no body at all), and with the token in hand
another site could then start runs with the owner's key. So the request's `Origin` (or,
without one, its `Referer`) must be the page's own, a browser's `Sec-Fetch-Site` must not
say it came from another site, and its content type must be one a form cannot send: JSON,
or for the upload `application/octet-stream` with the `X-Bulk-Chats-Upload` header, which
a browser sends across sites only after asking, and this server never says yes. A request
with none of those headers is no browser's: a script with the token, as `curl` is.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

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

JSON_TYPE = "application/json"
"""The content type of every changing request the page sends, but the upload."""

UPLOAD_TYPE = "application/octet-stream"
"""The content type of the upload: the file itself as the body."""

UPLOAD_HEADER = "x-bulk-chats-upload"
"""The header the page's upload carries; a form cannot set it."""

OPEN_PATHS = frozenset({"/favicon.ico"})
"""Paths a browser asks for by itself, without the token: they tell nothing."""

_SAFE_METHODS = frozenset({"GET", "HEAD"})
_OTHER_SITES = frozenset({"cross-site", "same-site"})


class Guard:
    """ASGI middleware: refuse (403) a request without the token or with a `Host` not in
    `hosts`, and a changing request not from the page itself or of a content type a form
    could send (see the module's docstring); `upload_paths` take the file as their body.
    Adds `SECURITY_HEADERS` to every answer, refusals included."""

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        *,
        token: str,
        hosts: set[str],
        upload_paths: frozenset[str] = frozenset(),
    ) -> None:
        self._app = app
        self._token = token
        self._hosts = hosts
        self._upload_paths = upload_paths

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":  # the page has none: refuse before anything else
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        refusal = self._refusal(Request(scope))
        if refusal:
            response = PlainTextResponse(refusal, status_code=403)
            await response(scope, receive, _with_headers(send))
            return
        await self._app(scope, receive, _with_headers(send))

    def _refusal(self, request: Request) -> str:
        """Why `request` is refused, or "" when it may go on."""
        host = request.headers.get("host", "").lower()
        if host not in self._hosts:
            return "refused: this page answers only on its loopback address"
        if request.method in _SAFE_METHODS and request.url.path in OPEN_PATHS:
            return ""
        token = request.query_params.get("token", "")
        if not secrets.compare_digest(token.encode(), self._token.encode()):
            return "refused: open the address `bulk-chats ui` printed, token included"
        if request.method in _SAFE_METHODS:
            return ""
        if not _from_the_page(request, f"http://{host}"):
            return "refused: another site cannot act on this page"
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if request.url.path in self._upload_paths:
            if media_type != UPLOAD_TYPE or UPLOAD_HEADER not in request.headers:
                return f"refused: an upload is sent as {UPLOAD_TYPE} with {UPLOAD_HEADER}"
        elif media_type != JSON_TYPE:
            return f"refused: this page sends {JSON_TYPE}"
        return ""


def _from_the_page(request: Request, own: str) -> bool:
    """Whether a changing request came from the page at `own` (`http://host:port`), as far
    as its headers say: a browser names the origin of every changing request."""
    headers = request.headers
    origin = headers.get("origin")
    if origin is not None:
        return origin.lower() == own
    referer = headers.get("referer")
    if referer is not None:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower() == own
    return headers.get("sec-fetch-site", "").lower() not in _OTHER_SITES


def _with_headers(send: Any) -> Any:
    async def sending(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
        await send(message)

    return sending
