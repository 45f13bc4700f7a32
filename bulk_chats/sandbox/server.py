"""The sandbox on a real HTTP server (uvicorn), on loopback only.

`run_in_thread` serves in a background thread for tests and `import --sandbox`;
`serve` blocks until Ctrl-C for `bulk-chats sandbox`. Both bind the socket with
`bulk_chats.serving`, so port 0 picks a free port that is known before the first request,
and a busy port is a one-line `InputError` rather than a log record.

The server speaks HTTP/1.1 through uvicorn's h11 protocol, extended so that the app can
close a connection without answering (the `drop_*` faults): uvicorn answers 500 to an
app that raises before it responds, so raising cannot imitate a dropped connection.
uvicorn's access log stays off, and nothing logs request headers, so the key stays out
of every log.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from bulk_chats.sandbox.app import SandboxApp, create_app
from bulk_chats.sandbox.config import SandboxConfig
from bulk_chats.sandbox.gate import DROP_CONNECTION
from bulk_chats.sandbox.state import SandboxState
from bulk_chats.serving import LOOPBACK, address, bind, quiet_config, serve_in_thread


class _DroppingH11Protocol(H11Protocol):
    """uvicorn's h11 protocol that offers the app a way to close the connection unanswered.

    The app finds it as `scope["extensions"][DROP_CONNECTION]`, a function of no argument.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        inner = self.app

        async def app(scope: Any, receive: Any, send: Any) -> None:
            cycle = self.cycle  # the request this call serves: h11 serves one at a time

            def drop() -> None:
                # Marked disconnected, the cycle ignores the app's later sends and does
                # not answer 500 on its behalf; the client reads end-of-file and nothing.
                cycle.disconnected = True
                self.transport.close()

            scope["extensions"] = {**(scope.get("extensions") or {}), DROP_CONNECTION: drop}
            await inner(scope, receive, send)

        self.app = app


class _SandboxServer(uvicorn.Server):
    """A uvicorn server that cuts the app's pauses short when it shuts down.

    Without that, a `slow_after` answer or a long latency would hold up the shutdown.
    """

    def __init__(self, app: SandboxApp) -> None:
        super().__init__(quiet_config(app, http=_DroppingH11Protocol))
        self.sandbox = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.sandbox.close()
        await super().shutdown(sockets=sockets)


@dataclass(frozen=True, slots=True)
class RunningSandbox:
    """A sandbox being served: where it is and what it holds."""

    base_url: str
    """The API root, e.g. "http://127.0.0.1:54321/v1"."""
    app: SandboxApp

    @property
    def state(self) -> SandboxState:
        """The chats, messages and counters of the running sandbox."""
        return self.app.state


def _as_app(app_or_config: SandboxApp | SandboxConfig | None) -> SandboxApp:
    if isinstance(app_or_config, SandboxApp):
        return app_or_config
    return create_app(app_or_config)


def _base_url(sock: socket.socket) -> str:
    return f"http://{address(sock)}/v1"


@contextlib.contextmanager
def run_in_thread(
    app_or_config: SandboxApp | SandboxConfig | None = None,
    *,
    host: str = LOOPBACK,
    port: int = 0,
) -> Iterator[RunningSandbox]:
    """Serve a sandbox from a background thread for the duration of the `with` block.

    `app_or_config` is an app (to keep its state and injected clock) or a config (for a
    fresh seeded state). Port 0 picks a free port; `.base_url` shows the real one. On exit
    the server stops and its thread is joined, within `serving.STOP_TIMEOUT` seconds
    (twice that if requests are still in flight). Raises `InputError` for a host that is not
    loopback or a port that cannot be bound, `RuntimeError` if the server does not start.
    """
    app = _as_app(app_or_config)
    sock = bind(host, port, who="sandbox")
    with serve_in_thread(_SandboxServer(app), sock, name="sandbox"):
        yield RunningSandbox(_base_url(sock), app)


def _print_url(base_url: str) -> None:
    print(f"HelpCrunch sandbox listening at {base_url} (Ctrl-C to stop)", flush=True)


def serve(
    config: SandboxConfig | None = None,
    *,
    host: str = LOOPBACK,
    port: int = 0,
    state: SandboxState | None = None,
    announce: Callable[[str], None] = _print_url,
) -> None:
    """Serve a sandbox in this thread until Ctrl-C (`bulk-chats sandbox`).

    `announce` receives the API root once the server listens (by default it is printed;
    with port 0 it shows the port picked). Ctrl-C stops the server gracefully, after which
    uvicorn raises `KeyboardInterrupt` again for the caller to map to exit status 130.
    Raises `InputError` for a host that is not loopback or a port that cannot be bound.
    """
    app = create_app(config, state=state)
    sock = bind(host, port, who="sandbox")
    server = _SandboxServer(app)

    async def main() -> None:
        serving = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.005)
        if server.started:
            announce(_base_url(sock))
        await serving

    try:
        asyncio.run(main())
    finally:
        sock.close()
