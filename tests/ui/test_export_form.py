"""The page's Export at the HTTP level (httpx against the ASGI app) with the sandbox on
loopback: the form's fields become an export's filters, the run is watched as any other,
its workbook downloaded, and that workbook fed back to Update sends only what changed."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import openpyxl
import pytest

from bulk_chats.errors import InputError
from bulk_chats.fields import EXPORT_COLUMNS
from bulk_chats.sandbox import (
    AGENTS,
    DEPARTMENTS,
    RunningSandbox,
    SandboxConfig,
    SandboxState,
    Seed,
    create_app,
    history,
)
from bulk_chats.ui import UiApp
from bulk_chats.ui.export_form import export_filters
from tests.fakes import StartSandbox
from tests.ui.test_app import KEY, RUN_TIMEOUT, client_for, make_ui, q, until_confirm, upload

pytestmark = pytest.mark.anyio


@pytest.fixture
def seeded(start_sandbox: StartSandbox) -> RunningSandbox:
    """A sandbox on loopback with 40 chats of the past weeks, accepting only `KEY`."""
    state = SandboxState(Seed(chats=history(40, end=time.time() - 600, days=20)))
    return start_sandbox(create_app(SandboxConfig(api_key=KEY, rate=None), state=state))


async def export(app: UiApp, client: httpx.AsyncClient, **body: Any) -> Any:
    """Start the page's Export, wait for it to end; its view."""
    answer = await client.post("/export", params=q(), json=body)
    assert answer.status_code == 200, answer.text
    job = app.job
    assert job is not None
    if body.get("messages"):
        await until_confirm(job)
        assert (await client.post("/confirm", params=q(), json={"go_on": True})).status_code == 200
    assert await anyio.to_thread.run_sync(job.join, RUN_TIMEOUT)
    return job.view()


async def test_the_form_becomes_the_filters_of_an_export() -> None:
    """Digits are an id, anything else a name or an email; dates are local days."""
    filters = export_filters(
        {
            "statuses": ["pending", "On Hold"],
            "assignee": "anna@example.com",
            "department": "233049",
            "customer_user_id": " crm-1001 ",
            "since": "2026-10-01",
            "until": "",
        }
    )
    assert filters.statuses == ("pending", "on hold")
    assert (filters.assignee, filters.assignee_email) == (None, "anna@example.com")
    assert (filters.department, filters.department_name) == (233049, None)
    assert filters.customer_user_id == "crm-1001"
    assert filters.since is not None
    assert filters.until is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"statuses": ["archived"]}, "status: 'archived' is not a chat status"),
        ({"customer_email": "a@b.co", "customer_user_id": "x"}, "not both"),
        (
            {"since": "2026-10-02", "until": "2026-10-01"},
            "Created since must come before Created before",
        ),
        ({"since": "soon"}, "Created since: 'soon' is not a date"),
        ({"until": "later"}, "Created before: 'later' is not a date"),
    ],
)
async def test_a_field_that_cannot_be_used_is_one_line(body: dict[str, Any], message: str) -> None:
    """Each unusable field says which, in the page's words."""
    with pytest.raises(InputError, match=message):
        export_filters(body)


async def test_export_on_the_page_writes_the_workbook_to_download(
    tmp_path: Path, seeded: RunningSandbox
) -> None:
    """Export with a status and a department: the run ends Done with the chats counted as
    `exported`, and its workbook downloads with exactly those chats."""
    app = make_ui(tmp_path, base_url=seeded.base_url)
    async with client_for(app) as client:
        view = await export(
            app, client, statuses=["pending", "closed"], department=DEPARTMENTS[1].name, api_key=KEY
        )
        assert view.phase == "finished"
        page = (await client.get("/", params=q())).text
        download = await client.get(f"/download/{view.id}", params=q())
    wanted = [
        c.id
        for c in seeded.state.chats
        if c.status in ("pending", "closed") and c.department is DEPARTMENTS[1]
    ]
    assert view.result.counts == {"exported": len(wanted)}
    assert f"exported {len(wanted)}" in page
    assert "Download results" in page
    book = openpyxl.load_workbook(io.BytesIO(download.content))
    assert [row[0] for row in book["chats"].iter_rows(min_row=2, values_only=True)] == wanted


async def test_export_needs_the_key_and_waits_for_a_run_to_end(
    tmp_path: Path, seeded: RunningSandbox
) -> None:
    """Without a key the Export is refused (400); a name that matches nothing ends the run
    failed, with the one line and nothing read."""
    app = make_ui(tmp_path, base_url=seeded.base_url)
    async with client_for(app) as client:
        refused = await client.post("/export", params=q(), json={})
        assert refused.status_code == 400
        assert "API key" in refused.json()["error"]
        view = await export(app, client, assignee="nobody@example.com", api_key=KEY)
    assert view.phase == "failed"
    assert "'nobody@example.com' matches no agent" in str(view.error)
    assert seeded.state.requests["GET /v1/chats"] == 0


async def test_the_export_fed_back_to_update_sends_only_the_changed_cell(
    tmp_path: Path, seeded: RunningSandbox
) -> None:
    """Export, one assignee email changed in the workbook, the workbook uploaded and
    Update run: one change sent, every other row unchanged."""
    app = make_ui(tmp_path, base_url=seeded.base_url)
    async with client_for(app) as client:
        view = await export(app, client, api_key=KEY)
        download = await client.get(f"/download/{view.id}", params=q())
        book = openpyxl.load_workbook(io.BytesIO(download.content))
        first = seeded.state.chats[0]
        agent = next(a for a in AGENTS if first.assignee is None or a.id != first.assignee.id)
        book["chats"].cell(
            row=2, column=EXPORT_COLUMNS.index("assignee_email") + 1
        ).value = agent.email
        edited = tmp_path / "edited.xlsx"
        book.save(edited)
        assert (await upload(client, edited)).status_code == 200
        answer = await client.post("/run", params=q(), json={"kind": "update", "api_key": KEY})
        assert answer.status_code == 200, answer.text
        job = app.job
        assert job is not None
        await until_confirm(job)
        await client.post("/confirm", params=q(), json={"go_on": True})
        assert await anyio.to_thread.run_sync(job.join, RUN_TIMEOUT)
    assert job.view().result.counts == {"updated": 1, "unchanged": 39}
    assert [(c.chat_id, c.field, c.new) for c in seeded.state.changes if c.cause == "update"] == [
        (first.id, "assignee", agent.id)
    ]


async def test_messages_wait_for_confirm_then_fill_their_sheet(
    tmp_path: Path, seeded: RunningSandbox
) -> None:
    """With Messages ticked, the run shows the plan of the messages and waits for
    Confirm; then the workbook has every chat's messages."""
    app = make_ui(tmp_path, base_url=seeded.base_url)
    async with client_for(app) as client:
        view = await export(app, client, statuses=["closed"], messages=True, api_key=KEY)
        download = await client.get(f"/download/{view.id}", params=q())
    closed = [c for c in seeded.state.chats if c.status == "closed"]
    assert view.plan is not None
    assert f"{len(closed)} chats read; their messages take at least" in view.plan
    book = openpyxl.load_workbook(io.BytesIO(download.content))
    rows = list(book["messages"].iter_rows(min_row=2, values_only=True))
    assert [(r[0], r[1]) for r in rows] == [(c.id, m.id) for c in closed for m in c.messages]
