"""The page's app at the HTTP level: one made for a test, an httpx client on it, and the
requests the page's own script sends (the token in the query, JSON, the upload's header)."""

from __future__ import annotations

from pathlib import Path

import httpx

from bulk_chats.ui import UiApp, UiConfig

PORT = 8765
TOKEN = "test-token-0123456789"
BASE = f"http://127.0.0.1:{PORT}"
UPLOAD_HEADERS = {"content-type": "application/octet-stream", "x-bulk-chats-upload": "1"}
"""What the page's script sends with an upload."""


def make_ui(tmp_path: Path, **config: object) -> UiApp:
    """An app whose reports go under `tmp_path`, at a rate no test waits for."""
    settings = {"reports_dir": tmp_path / "reports", "rate": 60_000, **config}
    return UiApp(UiConfig(**settings), token=TOKEN, port=PORT)  # type: ignore[arg-type]


def client_for(app: UiApp) -> httpx.AsyncClient:
    """A client that calls `app` in-process, as if at its loopback address."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app.asgi), base_url=BASE)


def q(**params: str) -> dict[str, str]:
    """Query parameters: the token and `params`."""
    return {"token": TOKEN, **params}


async def upload(client: httpx.AsyncClient, path: Path, name: str | None = None) -> httpx.Response:
    """Upload the file at `path` (named `name`, else its own name) as the page does."""
    return await client.post(
        "/upload",
        params=q(name=name or path.name),
        content=path.read_bytes(),
        headers=UPLOAD_HEADERS,
    )
