"""The loopback server-in-a-thread the sandbox and the page share: binding, starting,
answering and stopping, and the one-line errors for a busy port or a host off loopback."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
import uvicorn

from bulk_chats.errors import InputError
from bulk_chats.serving import LOOPBACK, address, bind, quiet_config, serve_in_thread


async def hello(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI app answering every request with 200 and "hello"."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def test_a_port_0_server_starts_answers_and_stops() -> None:
    """Port 0 is bound to a real port before the start; the server answers there, then stops."""
    sock = bind(LOOPBACK, 0, who="test")
    port = sock.getsockname()[1]
    assert port != 0
    assert address(sock) == f"{LOOPBACK}:{port}"
    server = uvicorn.Server(quiet_config(hello))
    with serve_in_thread(server, sock, name="test"):
        response = httpx.get(f"http://{address(sock)}/", timeout=5.0)
        assert (response.status_code, response.text) == (200, "hello")
    assert sock.fileno() == -1  # closed
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{LOOPBACK}:{port}/", timeout=5.0)


def test_a_busy_port_is_one_line_naming_it() -> None:
    """A port already listened on gives a one-line InputError naming who, host and port."""
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(InputError) as raised:
            bind(LOOPBACK, port, who="ui")
    message = str(raised.value)
    assert message.startswith(f"ui: cannot listen on {LOOPBACK}:{port} (")
    assert "\n" not in message


def test_a_host_off_loopback_is_refused() -> None:
    """A host that is not loopback is refused before any socket is made."""
    with pytest.raises(InputError, match=r"^sandbox: '0\.0\.0\.0' is not a loopback address"):
        bind("0.0.0.0", 0, who="sandbox")


def test_an_ipv6_address_is_shown_in_brackets() -> None:
    """An IPv6 loopback socket's address is `[::1]:port`, ready for a URL."""
    try:
        sock = bind("::1", 0, who="test")
    except InputError:
        pytest.skip("no IPv6 loopback here")
    with sock:
        assert address(sock) == f"[::1]:{sock.getsockname()[1]}"


def test_a_server_that_cannot_start_is_a_runtime_error() -> None:
    """A server failing at startup is a RuntimeError naming it, and its socket is closed."""
    sock = bind(LOOPBACK, 0, who="test")
    server = uvicorn.Server(quiet_config(hello, http="no.such.protocol:Nothing"))
    with (
        pytest.raises(RuntimeError, match="the test server did not start"),
        serve_in_thread(server, sock, name="test"),
    ):
        pass  # pragma: no cover
    assert sock.fileno() == -1
