"""The export job against the sandbox in process: which chats, in what order, with what
fields; names resolved before any chat is read; the plan of the messages; and what a
stop, a refused key or a failing read leave in the workbook."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import openpyxl
import pytest

from bulk_chats.errors import InputError
from bulk_chats.jobs.export_chats import ExportResult, export_chats
from bulk_chats.jobs.hooks import Hooks
from bulk_chats.jobs.plan import Plan
from bulk_chats.sandbox import (
    AGENTS,
    CUSTOMERS,
    DEPARTMENTS,
    SandboxConfig,
    SandboxState,
    Seed,
    create_app,
    history,
)
from bulk_chats.settings import ApiKey, ExportFilters, ExportSettings
from tests.fakes import RecordingProgress
from tests.sheets import read_sheet

NOW = 1_790_000_000.0
KEY = "export-job-key"
CHATS = history(160, end=NOW, days=16)


def sandbox(**config: Any) -> SandboxState:
    return SandboxState(Seed(chats=CHATS), wall_clock=lambda: NOW)


class Counting(httpx.AsyncBaseTransport):
    """The sandbox app as a transport, counting requests; `after(n)` runs before the
    n-th request is answered."""

    def __init__(self, state: SandboxState, *, key: str = KEY, **config: Any) -> None:
        app = create_app(SandboxConfig(rate=None, api_key=key, **config), state=state)
        self._inner = httpx.ASGITransport(app=app)
        self.paths: list[str] = []
        self.after: Callable[[int], None] = lambda n: None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(f"{request.method} {request.url.path}")
        self.after(len(self.paths))
        return await self._inner.handle_async_request(request)


def settings(tmp_path: Path, **changes: Any) -> ExportSettings:
    fields: dict[str, Any] = {
        "base_url": "http://sandbox.test/v1",
        "api_key": ApiKey(KEY),
        "rate": 60_000,
        "reports_dir": tmp_path / "reports",
        "out": tmp_path / "export.xlsx",
    }
    fields.update(changes)
    return ExportSettings(**fields)


def run(
    tmp_path: Path, transport: Counting, hooks: Hooks | None = None, **changes: Any
) -> ExportResult:
    async def main() -> ExportResult:
        given = hooks or Hooks()
        return await export_chats(
            settings(tmp_path, **changes),
            Hooks(
                progress=given.progress,
                confirm=given.confirm,
                notify=given.notify,
                stop=given.stop,
                transport=transport,
            ),
        )

    return anyio.run(main)


def sheet(path: Path, name: str = "chats") -> list[dict[str, Any]]:
    return read_sheet(path, name)


def summary(path: Path) -> dict[Any, Any]:
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        return {row[0]: row[1] for row in book["summary"].iter_rows(values_only=True) if row[0]}
    finally:
        book.close()


def test_every_chat_once_oldest_first_with_its_fields(tmp_path: Path) -> None:
    """Without filters: every chat, in creation order, with the chat's, the agent's, the
    department's and the customer's fields, times in UTC."""
    state = sandbox()
    transport = Counting(state)
    progress = RecordingProgress()
    result = run(tmp_path, transport, Hooks(progress=progress))
    rows = sheet(result.out)
    assert [r["chat_id"] for r in rows] == [c.id for c in state.chats]
    assert (result.chats, result.counts, result.partial) == (160, {"exported": 160}, "")
    first, chat = rows[0], state.chats[0]
    assert first["chat_status"] == chat.status
    assert (first["assignee"], first["assignee_email"]) == (chat.assignee.id, chat.assignee.email)
    assert (first["department"], first["department_name"]) == (233048, "Support")
    assert (first["customer"], first["customer_email"], first["customer_user_id"]) == (
        CUSTOMERS[0].id,
        CUSTOMERS[0].email,
        CUSTOMERS[0].user_id,
    )
    created = dt.datetime.fromtimestamp(int(chat.created_at), dt.UTC).replace(tzinfo=None)
    assert first["created_at"] == created
    assert (first["created_with"], first["rating"]) == ("public_api", chat.rating)
    assert first["last_message_text"] == chat.messages[-1].text
    assert transport.paths.count("GET /v1/chats") == 2  # ceil(160 / 100)
    assert (len(progress.outcomes), progress.total) == (160, 160)
    assert summary(result.out)["complete"] == "yes"


def test_combined_filters_read_a_search_per_status(tmp_path: Path) -> None:
    """Two statuses in one department within a window: the chats meeting all of it, in
    order, from one search per status."""
    state = sandbox()
    since = dt.datetime.fromtimestamp(NOW - 12 * 86_400, dt.UTC)
    until = dt.datetime.fromtimestamp(NOW - 3 * 86_400, dt.UTC)
    filters = ExportFilters(
        statuses=("pending", "closed"), department_name="billing", since=since, until=until
    )
    transport = Counting(state)
    result = run(tmp_path, transport, filters=filters)
    wanted = [
        c.id
        for c in state.chats
        if c.status in ("pending", "closed")
        and c.department is DEPARTMENTS[2]
        and since.timestamp() <= int(c.created_at) < until.timestamp()
    ]
    assert [r["chat_id"] for r in sheet(result.out)] == wanted
    assert transport.paths.count("POST /v1/chats/search") == 2
    assert summary(result.out)["department_name"] == "billing"


def test_a_customer_named_by_email_is_looked_up_and_their_chats_read(tmp_path: Path) -> None:
    """`--customer-email` in any case finds the customer, then reads their chats."""
    state = sandbox()
    filters = ExportFilters(customer_email=CUSTOMERS[3].email.upper(), assignee=AGENTS[0].id)
    result = run(tmp_path, Counting(state), filters=filters)
    wanted = [
        c.id
        for c in state.chats
        if c.customer is CUSTOMERS[3] and c.assignee is not None and c.assignee.id == AGENTS[0].id
    ]
    assert wanted
    assert [r["chat_id"] for r in sheet(result.out)] == wanted


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (
            ExportFilters(assignee_email="nobody@example.com"),
            "--assignee-email: 'nobody@example.com' matches no agent",
        ),
        (
            ExportFilters(department_name="Legal"),
            "--department-name: 'Legal' matches no department",
        ),
        (ExportFilters(assignee=7), "--assignee: 7 is not an agent of this account"),
        (ExportFilters(department=9), "--department: 9 is not a department of this account"),
        (
            ExportFilters(customer_user_id="crm-0"),
            "--customer-user-id: 'crm-0' matches no customer",
        ),
    ],
)
def test_a_name_that_matches_nothing_stops_before_any_chat_is_read(
    tmp_path: Path, filters: ExportFilters, message: str
) -> None:
    """An unknown name or id is an `InputError` (exit 2) and no chat is read."""
    transport = Counting(sandbox())
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        run(tmp_path, transport, filters=filters)
    assert not [p for p in transport.paths if p.startswith(("GET /v1/chats", "POST /v1/chats"))]
    assert not (tmp_path / "export.xlsx").exists()


def test_messages_are_planned_confirmed_then_read_oldest_first(tmp_path: Path) -> None:
    """With messages: once the chats are read the plan is told and confirmed, then each
    chat's messages are written oldest first, a request a chat."""
    state = sandbox()
    transport = Counting(state)
    asked: list[Plan] = []
    told: list[str] = []
    hooks = Hooks(confirm=lambda plan: asked.append(plan) or True, notify=told.append)
    filters = ExportFilters(statuses=("closed",))
    result = run(tmp_path, transport, hooks, filters=filters, messages=True)
    closed = [c for c in state.chats if c.status == "closed"]
    assert asked[0].describe() in told
    assert (
        f"{len(closed)} chats read; their messages take at least {len(closed)} requests" in told[-1]
    )
    messages = sheet(result.out, "messages")
    assert [(m["chat_id"], m["message_id"]) for m in messages] == [
        (c.id, m.id) for c in closed for m in c.messages
    ]
    assert messages[1]["from"] == "agent"
    assert messages[1]["agent_email"] == closed[0].assignee.email
    assert sum(p.endswith("/messages") for p in transport.paths) == len(closed)
    assert (result.messages, result.partial) == (2 * len(closed), "")


def test_declined_messages_leave_the_chats_and_say_so(tmp_path: Path) -> None:
    """Not confirmed: no message is read; the chats are written; the export is partial."""
    transport = Counting(sandbox())
    result = run(tmp_path, transport, Hooks(confirm=lambda plan: False), messages=True)
    assert result.declined
    assert result.partial == "the messages were not read: the run was not confirmed"
    assert sheet(result.out, "messages") == []
    assert len(sheet(result.out)) == 160
    assert not any(p.endswith("/messages") for p in transport.paths)


def test_a_stop_writes_what_was_read_marked_partial(tmp_path: Path) -> None:
    """Stop (Ctrl-C) while the first page is asked for: its chats are written, in order,
    no other page is asked for, and the summary says the export is partial."""
    state = sandbox()
    transport = Counting(state)

    async def main() -> ExportResult:
        stop = anyio.Event()
        transport.after = lambda n: stop.set() if n == 3 else None  # agents, departments, page
        return await export_chats(settings(tmp_path), Hooks(stop=stop, transport=transport))

    result = anyio.run(main)
    rows = sheet(result.out)
    assert result.interrupted
    assert result.partial.startswith("interrupted")
    assert [r["chat_id"] for r in rows] == [c.id for c in state.chats[:100]]
    assert transport.paths.count("GET /v1/chats") == 1
    assert summary(result.out)["complete"].startswith("no: interrupted")


def test_a_refused_key_ends_the_export_with_an_empty_workbook(tmp_path: Path) -> None:
    """A 401 at the first read: nothing read, the result says the key was refused."""
    result = run(tmp_path, Counting(sandbox(), key="another-key"))
    assert result.auth_failed
    assert (result.chats, result.partial) == (0, "the API refused the key (401)")
    assert sheet(result.out) == []


def test_a_read_that_keeps_failing_leaves_the_chats_read_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page that fails four times ends the export with the chats read until then."""
    from bulk_chats.api import retry

    monkeypatch.setattr(retry, "BACKOFF_BASE", 0.001)
    state = sandbox()
    transport = Counting(state)
    real = transport.handle_async_request

    async def failing(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("offset") == "100":
            return httpx.Response(500, json={"errors": [{"code": "internal", "message": "x"}]})
        return await real(request)

    transport.handle_async_request = failing  # type: ignore[method-assign]
    result = run(tmp_path, transport)
    assert (result.chats, result.auth_failed, result.interrupted) == (100, False, False)
    assert result.partial.startswith("reading the chats failed: GET /chats: HTTP 500")


def test_an_export_is_a_workbook(tmp_path: Path) -> None:
    """`--out x.csv` is refused before anything is read."""
    with pytest.raises(InputError, match="an export is a workbook"):
        run(tmp_path, Counting(sandbox()), out=tmp_path / "x.csv")
