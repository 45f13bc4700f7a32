"""The page's door against another web site: a changing request from another origin, or of
a content type a cross-site form or `fetch` could send without asking, is refused (403)
even with the token, and changes nothing; the page's own requests go through; the icon a
browser asks for by itself answers without the token."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from bulk_chats.ui import UiApp
from tests.ui.pages import PORT, TOKEN, UPLOAD_HEADERS, client_for, make_ui, q, upload

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data" / "chats.csv"
EVIL = "http://evil.example"
OWN = f"http://127.0.0.1:{PORT}"

JSON_REQUESTS = {
    "/sheet": {"sheet": "Sheet1"},
    "/mapping": {"field": "assignee", "header": "Agent ID"},
    "/run": {"kind": "validate"},
    "/confirm": {"go_on": True},
    "/stop": {},
}
"""Each changing request the page sends as JSON, with a body it would send."""


def assert_refused(answer: httpx.Response) -> None:
    assert answer.status_code == 403, answer.text
    assert answer.text.startswith("refused: ")
    assert TOKEN not in answer.text


async def test_the_issue_s_attack_is_refused(ui: tuple[UiApp, httpx.AsyncClient]) -> None:
    """`POST /upload`, `/run` and `/confirm` with `Origin: http://evil.example` and
    `Content-Type: text/plain`, as a page elsewhere sends them without asking, are refused:
    no upload is stored, no run starts."""
    app, client = ui
    hostile = {"origin": EVIL, "content-type": "text/plain"}
    answers = [
        await client.post(
            "/upload", params=q(name="evil.csv"), content=SAMPLE.read_bytes(), headers=hostile
        ),
        await client.post("/run", params=q(), content='{"kind": "validate"}', headers=hostile),
        await client.post("/confirm", params=q(), content='{"go_on": true}', headers=hostile),
    ]
    for answer in answers:
        assert_refused(answer)
    assert "another site" in answers[0].text
    assert (app.job, app.config.reports_dir.exists()) == (None, False)


@pytest.mark.parametrize("path", sorted(JSON_REQUESTS))
@pytest.mark.parametrize(
    "headers",
    [
        {"origin": EVIL},
        {"origin": "null"},
        {"origin": f"http://127.0.0.1:{PORT + 1}"},
        {"origin": f"https://127.0.0.1:{PORT}"},
        {"referer": f"{EVIL}/page.html"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
    ],
    ids=["evil", "null", "other-port", "https", "referer", "cross-site", "same-site"],
)
async def test_a_json_request_from_elsewhere_is_refused(
    ui: tuple[UiApp, httpx.AsyncClient], path: str, headers: dict[str, str]
) -> None:
    """Every changing request carrying another origin (in `Origin`, `Referer` or
    `Sec-Fetch-Site`) is refused, JSON and token notwithstanding, and starts no run."""
    app, client = ui
    assert (await upload(client, SAMPLE)).status_code == 200
    answer = await client.post(path, params=q(), json=JSON_REQUESTS[path], headers=headers)
    assert_refused(answer)
    assert "another site" in answer.text
    assert app.job is None


@pytest.mark.parametrize("path", sorted(JSON_REQUESTS))
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""],
    ids=["text", "urlencoded", "multipart", "none"],
)
async def test_a_form_s_content_type_is_refused(
    ui: tuple[UiApp, httpx.AsyncClient], path: str, content_type: str
) -> None:
    """A changing request whose body a form (or a `fetch` that does not ask first) could
    send, even without any origin header, is refused: the page sends JSON."""
    app, client = ui
    assert (await upload(client, SAMPLE)).status_code == 200
    headers = {"content-type": content_type} if content_type else {}
    body = '{"kind": "validate"}' if content_type else None
    answer = await client.post(path, params=q(), content=body, headers=headers)
    assert_refused(answer)
    assert "application/json" in answer.text
    assert app.job is None


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "application/octet-stream"},
        {"content-type": "text/plain", "x-bulk-chats-upload": "1"},
        {"content-type": "multipart/form-data; boundary=x", "x-bulk-chats-upload": "1"},
        {"x-bulk-chats-upload": "1"},
        {**UPLOAD_HEADERS, "origin": EVIL},
    ],
    ids=["no-header", "text", "multipart", "no-type", "evil-origin"],
)
async def test_an_upload_not_sent_as_the_page_sends_it_is_refused(
    ui: tuple[UiApp, httpx.AsyncClient], headers: dict[str, str]
) -> None:
    """An upload needs the page's own type and header (which a form cannot set), and the
    page's origin; refused, it stores nothing."""
    app, client = ui
    answer = await client.post(
        "/upload", params=q(name="chats.csv"), content=SAMPLE.read_bytes(), headers=headers
    )
    assert_refused(answer)
    assert not app.config.reports_dir.exists()


@pytest.mark.parametrize("host", [f"127.0.0.1:{PORT}", f"localhost:{PORT}"])
async def test_the_page_s_own_requests_go_through(tmp_path: Path, host: str) -> None:
    """The page's own requests, with its origin (127.0.0.1 or localhost, as it was opened)
    and the headers its script sends, upload, map, validate and read the events."""
    app = make_ui(tmp_path)
    own = {"host": host, "origin": f"http://{host}", "sec-fetch-site": "same-origin"}
    async with client_for(app) as client:
        stored = await client.post(
            "/upload",
            params=q(name="chats.csv"),
            content=SAMPLE.read_bytes(),
            headers={**UPLOAD_HEADERS, **own},
        )
        assert stored.status_code == 200, stored.text
        mapped = await client.post(
            "/mapping", params=q(), json={"field": "assignee", "header": ""}, headers=own
        )
        assert mapped.status_code == 200, mapped.text
        started = await client.post("/run", params=q(), json={"kind": "validate"}, headers=own)
        assert started.status_code == 200, started.text
        assert app.job is not None
        assert await anyio.to_thread.run_sync(app.job.join, 30.0)
        # EventSource sends no Origin to its own origin; a GET is never refused for it.
        events = await client.get("/events", params=q(), headers={"host": host})
    assert events.status_code == 200
    assert '"phase": "finished"' in events.text


async def test_a_script_with_the_token_still_works(ui: tuple[UiApp, httpx.AsyncClient]) -> None:
    """A request with no origin header at all is no browser's (curl, a script): with the
    token and JSON it is served."""
    app, client = ui
    assert (await upload(client, SAMPLE)).status_code == 200
    assert (await client.post("/run", params=q(), json={"kind": "validate"})).status_code == 200
    assert app.job is not None


async def test_the_icon_answers_without_the_token(ui: tuple[UiApp, httpx.AsyncClient]) -> None:
    """`/favicon.ico`, which a browser asks for without the token, answers with an icon
    (no 403 in the console on every load); a foreign `Host` is still refused."""
    _, client = ui
    icon = await client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"
    assert (await client.get("/favicon.ico", headers={"host": "evil.example"})).status_code == 403
    assert (await client.post("/favicon.ico", json={})).status_code == 403
