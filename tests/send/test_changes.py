"""The change sender of `update` and `close` against a mocked API: the order of a row's
requests, retries after lost answers, refusals, a refused key, and the journal; and the
status step of `import` (sender and resume plan)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import respx

from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.jobs.resume import sort_by_earlier_runs
from bulk_chats.journal.chats import JournalEntry
from bulk_chats.records import ChangeRequest, ChatChange, ChatRequest, FirstMessage, Status
from bulk_chats.send.changes import APPLIED, FAILED, send_changes
from bulk_chats.send.chats import send_chats
from bulk_chats.send.pool import SendResult
from tests.fakes import API_ROOT, FakeTime, RecordingJournal, RecordingProgress, fake_client

BASE = API_ROOT

pytestmark = pytest.mark.anyio


@dataclass
class Harness:
    api: respx.MockRouter
    client: HelpCrunchClient
    time: FakeTime
    journal: RecordingJournal = field(default_factory=RecordingJournal)

    async def send(self, requests: Sequence[ChangeRequest]) -> SendResult:
        return await send_changes(
            requests,
            self.client,
            concurrency=1,
            progress=RecordingProgress(),
            journal=self.journal.changes,
            sleep=self.time.sleep,
        )

    def bodies(self) -> list[tuple[str, dict[str, Any]]]:
        """(path, body) of every PUT sent, in order."""
        return [
            (call.request.url.path.removeprefix("/v1"), json.loads(call.request.content))
            for call in self.api.calls
        ]


@pytest.fixture
async def harness(api: respx.MockRouter) -> AsyncIterator[Harness]:
    fake = FakeTime()
    async with fake_client(api, fake) as client:
        yield Harness(api, client, fake)


def chat(request: httpx.Request) -> httpx.Response:
    """The API's answer to a PUT that passed: the chat."""
    return httpx.Response(200, json={"id": json.loads(request.content)["id"], "status": "new"})


def answer_all(api: respx.MockRouter) -> None:
    for field_name in ("assignee", "department", "status"):
        api.put(f"/chats/{field_name}").mock(side_effect=chat)


async def test_changes_go_out_assignee_then_department_then_status(harness: Harness) -> None:
    """One PUT per change, in the order assignee, department, status; the row is updated."""
    answer_all(harness.api)
    row = ChangeRequest(0, 2, chat_id=7, assignee=4188, department=233048, status="closed")
    result = await harness.send([row])
    assert harness.bodies() == [
        ("/chats/assignee", {"id": 7, "assignee": 4188}),
        ("/chats/department", {"id": 7, "department": 233048}),
        ("/chats/status", {"id": 7, "status": "closed"}),
    ]
    assert result.outcomes[0].status is Status.UPDATED
    assert result.outcomes[0].chat_id == 7


async def test_unassign_sends_null(harness: Harness) -> None:
    """The cell `none` in assignee becomes `"assignee": null`."""
    answer_all(harness.api)
    await harness.send([ChangeRequest(0, 2, chat_id=7, unassign=True)])
    assert harness.bodies() == [("/chats/assignee", {"id": 7, "assignee": None})]


async def test_changes_applied_earlier_are_not_sent(harness: Harness) -> None:
    """Only the changes not in `applied` go out."""
    answer_all(harness.api)
    row = ChangeRequest(
        0,
        2,
        chat_id=7,
        assignee=4188,
        status="closed",
        applied=frozenset({ChatChange("assignee", 4188)}),
    )
    await harness.send([row])
    assert harness.bodies() == [("/chats/status", {"id": 7, "status": "closed"})]


@pytest.mark.parametrize(
    "failure",
    [httpx.RemoteProtocolError("dropped"), httpx.ReadTimeout("slow")],
    ids=["dropped", "timeout"],
)
async def test_a_lost_answer_is_sent_again(harness: Harness, failure: Exception) -> None:
    """A change whose answer was lost is idempotent: sent again, and the row is updated."""
    harness.api.put("/chats/status").mock(side_effect=[failure, chat])
    result = await harness.send([ChangeRequest(0, 2, chat_id=7, status="closed")])
    assert result.outcomes[0].status is Status.UPDATED
    assert len(harness.api.calls) == 2
    assert harness.journal.events == [
        ("attempt", 7, "status", "closed"),
        (APPLIED, 7, "status", "closed"),
    ]


async def test_a_refusal_fails_the_row_naming_the_change(harness: Harness) -> None:
    """A 404 `chat_not_found` on the department: the row is failed, error_code names the
    change and the code, the assignee made before is said, the status is not sent."""
    harness.api.put("/chats/assignee").mock(side_effect=chat)
    harness.api.put("/chats/department").mock(
        return_value=httpx.Response(
            404, json={"errors": [{"code": "chat_not_found", "message": "Chat is missing"}]}
        )
    )
    status = harness.api.put("/chats/status").mock(side_effect=chat)
    row = ChangeRequest(0, 2, chat_id=7, assignee=4188, department=5, status="closed")
    result = await harness.send([row])
    outcome = result.outcomes[0]
    assert outcome.status is Status.FAILED
    assert outcome.error_code == "department:chat_not_found"
    assert "Chat is missing" in outcome.error_message
    assert "made before: assignee" in outcome.error_message
    assert outcome.http_status == 404
    assert not status.called
    assert (FAILED, 7, "department", "5") in harness.journal.events


async def test_a_refused_key_stops_the_run(harness: Harness) -> None:
    """A 401: the row and every row after it are not_sent, nothing more goes out."""
    harness.api.put("/chats/status").mock(return_value=httpx.Response(401, json={}))
    rows = [ChangeRequest(i, i + 2, chat_id=10 + i, status="closed") for i in range(3)]
    result = await harness.send(rows)
    assert result.auth_failed
    assert [result.outcomes[i].status for i in range(3)] == [Status.NOT_SENT] * 3
    assert len(harness.api.calls) == 1


# --- the status step of import ----------------------------------------------------------


def created_chat(request: httpx.Request) -> httpx.Response:
    return httpx.Response(201, json={"id": 500, "status": "empty"})


def posted_message(request: httpx.Request) -> httpx.Response:
    return httpx.Response(201, json={"id": 900, "chat": 500})


async def send_import(harness: Harness, rows: Sequence[ChatRequest]) -> SendResult:
    return await send_chats(
        rows,
        harness.client,
        concurrency=1,
        progress=RecordingProgress(),
        journal=harness.journal,
        clock=harness.time.clock,
        wall_clock=harness.time.wall,
        sleep=harness.time.sleep,
    )


def import_row(**fields: Any) -> ChatRequest:
    return ChatRequest(
        index=0,
        source_row=2,
        customer=8,
        application=9,
        message=FirstMessage("Hello"),
        status="closed",
        **fields,
    )


async def test_import_sets_the_status_after_the_message(harness: Harness) -> None:
    """Chat, message, then `PUT /chats/status`; the chat is journaled with its message
    before the status goes out; the row is created."""
    harness.api.post("/chats").mock(side_effect=created_chat)
    harness.api.post("/messages").mock(side_effect=posted_message)
    harness.api.put("/chats/status").mock(side_effect=chat)
    result = await send_import(harness, [import_row()])
    assert [c.request.url.path for c in harness.api.calls] == [
        "/v1/chats",
        "/v1/messages",
        "/v1/chats/status",
    ]
    outcome = result.outcomes[0]
    assert (outcome.status, outcome.chat_id, outcome.message_id) == (Status.CREATED, 500, 900)
    events = harness.journal.events
    chat_known = next(
        n for n, e in enumerate(events) if e[0] == "chat-record" and e[2].status is Status.CREATED
    )
    assert chat_known < events.index(("attempt", 500, "status", "closed"))


async def test_a_refused_status_is_status_failed_and_keeps_the_chat(harness: Harness) -> None:
    """A 400 on the status: `status_failed`, with the chat and message ids and the reason."""
    harness.api.post("/chats").mock(side_effect=created_chat)
    harness.api.post("/messages").mock(side_effect=posted_message)
    harness.api.put("/chats/status").mock(
        return_value=httpx.Response(
            400, json={"errors": [{"code": "invalid_chat_value", "message": "status value"}]}
        )
    )
    outcome = (await send_import(harness, [import_row()])).outcomes[0]
    assert (outcome.status, outcome.chat_id, outcome.message_id) == (
        Status.STATUS_FAILED,
        500,
        900,
    )
    assert outcome.error_code == "invalid_chat_value"
    assert (FAILED, 500, "status", "closed") in harness.journal.events


async def test_a_row_with_only_its_status_left_sends_only_the_status(harness: Harness) -> None:
    """A row whose chat and message exist (from an earlier run) sends one PUT and nothing
    else; it is already_created."""
    harness.api.put("/chats/status").mock(side_effect=chat)
    outcome = (
        await send_import(harness, [import_row(chat_id=500, message_id=900, search_since=1.0)])
    ).outcomes[0]
    assert [c.request.url.path for c in harness.api.calls] == ["/v1/chats/status"]
    assert outcome.status is Status.ALREADY_CREATED


def entry(**fields: Any) -> JournalEntry:
    values: dict[str, Any] = dict.fromkeys(JournalEntry.__slots__)
    values.update(state="created", attempts=1, error_code="", error_message="", input_name="")
    values.update(updated_at=0.0, **fields)
    return JournalEntry(**values)


def test_resume_sends_only_a_status_not_yet_applied() -> None:
    """The journal has the chat and message: with the status applied the row is finished;
    without, it is sent with chat and message ids, so only the status goes out."""
    row = import_row()
    entries = {row.key: entry(chat_id=500, message_id=900, created_at=1.0)}
    done = sort_by_earlier_runs([row], entries, applied={(500, "status", "closed")})
    assert [o.status for o in done.finished] == [Status.ALREADY_CREATED]
    left = sort_by_earlier_runs([row], entries, applied={(500, "status", "pending")})
    assert [(r.chat_id, r.message_id) for r in left.to_send] == [(500, 900)]
    assert left.status_only == 1
    assert "1 only the status" in left.describe()
