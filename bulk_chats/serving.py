"""uvicorn on a loopback socket, from a background thread: what the sandbox and the page share.

The socket is bound here rather than by uvicorn, so port 0 picks a free port that is known
before the first request, and a busy port is a one-line `InputError` rather than a log
record. uvicorn's access log stays off (the page's token is in every URL), and the host
program's logging is left as it is.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from bulk_chats.errors import InputError
from bulk_chats.settings import is_loopback_host

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 10.0
"""Seconds to wait for a server to start."""
STOP_TIMEOUT = 5.0
"""Seconds to wait for a server to stop gracefully, then as long again with in-flight
requests abandoned."""


def bind(host: str, port: int, *, who: str) -> socket.socket:
    """A socket bound to (`host`, `port`) on loopback, not yet listening.

    `who` starts the error message ("sandbox", "ui"). Raises `InputError` for a host that
    is not loopback or a port that cannot be bound.
    """
    if not is_loopback_host(host):
        raise InputError(
            f"{who}: {host!r} is not a loopback address; the {who} listens only on "
            "127.0.0.1, ::1 or localhost"
        )
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise InputError(f"{who}: cannot listen on {host}:{port} ({exc})") from None
    try:
        if os.name != "nt":  # on Windows SO_REUSEADDR would let two servers share a port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise InputError(f"{who}: cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    return sock


def address(sock: socket.socket) -> str:
    """The `host:port` a bound socket has, for a URL (an IPv6 host in brackets)."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}"


def quiet_config(app: Any, **options: Any) -> uvicorn.Config:
    """A uvicorn config for `app` with no lifespan, no access log and no logging setup.

    `options` are further `uvicorn.Config` arguments (such as `http`).
    """
    return uvicorn.Config(
        app,
        lifespan="off",
        loop="asyncio",
        log_config=None,  # leave the host program's logging as it is
        log_level="warning",
        access_log=False,  # the page's token is in every URL
        timeout_graceful_shutdown=int(STOP_TIMEOUT),
        **options,
    )


@contextlib.contextmanager
def serve_in_thread(server: uvicorn.Server, sock: socket.socket, *, name: str) -> Iterator[None]:
    """Run `server` on the bound `sock` from a background thread for the `with` block.

    Waits up to `START_TIMEOUT` seconds for it to start (else `RuntimeError`, naming
    `name` and chained to what the server raised, if anything). On exit the server stops
    and its thread is joined within `STOP_TIMEOUT` seconds, twice that if requests are
    still in flight, and the socket is closed.
    """
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # reported to the caller's thread below
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"bulk-chats-{name}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if failure or not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {name} server did not start on {address(sock)}") from (
                    failure[0] if failure else None
                )
            time.sleep(0.005)
        yield
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            server.force_exit = True
            thread.join(STOP_TIMEOUT)
        sock.close()
