"""End to end over real loopback HTTP: the sample workbook, 429 pressure, a refused key and
every fault kind, each against its own sandbox served by `run_in_thread`.

What each test checks is the sandbox's own state: which chats exist, with which fields,
and how many requests it saw; and that it matches the results workbook (or outcomes).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import openpyxl
import pytest
from click.testing import CliRunner

from bulk_chats.api import retry
from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.api.limiter import RateLimiter
from bulk_chats.cli.main import cli
from bulk_chats.jobs.hooks import Hooks
from bulk_chats.jobs.import_chats import import_file
from bulk_chats.jobs.result import RunResult
from bulk_chats.progress import NullProgress
from bulk_chats.records import ChatRequest, Outcome, Status
from bulk_chats.sandbox import (
    APPLICATIONS,
    CUSTOMERS,
    DEPARTMENTS,
    Chat,
    Faults,
    RunningSandbox,
    SandboxConfig,
    SandboxState,
    Seed,
    create_app,
    run_in_thread,
)
from bulk_chats.sandbox.app import WIDGET_TEXT
from bulk_chats.sandbox.state import API_CHAT
from bulk_chats.send.chats import send_chats
from bulk_chats.settings import ApiKey, Settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data" / "chats.xlsx"
KEY = ApiKey("e2e-key")
FAST = 6000
"""Requests a minute where pacing is not the point: 100 a second."""

#: What `sample_data/chats.xlsx` must become, by source row: the body each valid row's
#: chat is created with (blank optional fields left out), or the status of a row that
#: gets no chat. Row 18's customer is unknown to the account: sent once, refused with 404.
SAMPLE_CHATS = {
    2: {"customer": 8738438, "application": 3838, "assignee": 4188, "department": 233048},
    3: {"customer": 8738439, "application": 3838, "assignee": 4189, "department": 233048},
    4: {"customer": 8738440, "application": 3838, "department": 233049},
    5: {"customer": 8738441, "application": 3838, "assignee": 4190},
    6: {"customer": 8738442, "application": 3839, "assignee": 4192, "department": 233050},
    7: {"customer": 8738443, "application": 3838, "assignee": 4191, "department": 233049},
    8: {"customer": 8738444, "application": 3838, "assignee": 4188, "department": 233048},
    19: {"customer": 8738453, "application": 3838, "assignee": 4188, "department": 233048},
}
SAMPLE_OTHERS = {
    **dict.fromkeys(range(9, 17), "invalid"),
    17: "duplicate",
    18: "failed",
}


def results(path: Path) -> dict[int, dict[str, Any]]:
    """The results sheet of a workbook, one dict per row by header, keyed by source_row."""
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        rows = book["results"].iter_rows(values_only=True)
        header = [str(cell) for cell in next(rows)]
        table = [dict(zip(header, row, strict=True)) for row in rows]
    finally:
        book.close()
    return {int(row["source_row"]): row for row in table}


def chat_fields(chat: Chat) -> tuple[int, int, int | None, int | None]:
    """What a stored chat is: customer, application, assignee, department."""
    return (
        chat.customer.id,
        chat.application,
        None if chat.assignee is None else chat.assignee.id,
        None if chat.department is None else chat.department.id,
    )


def request_fields(request: ChatRequest) -> tuple[int, int, int | None, int | None]:
    """What a row asks for, in the shape of `chat_fields`."""
    return (request.customer, request.application, request.assignee, request.department)


def import_into(sandbox: RunningSandbox, tmp_path: Path, source: Path, *, rate: float) -> RunResult:
    """Import `source` into `sandbox` through the library, as `bulk-chats import` does."""
    settings = Settings(
        input_path=source,
        out=tmp_path / "results.xlsx",
        rate=rate,
        base_url=sandbox.base_url,
        api_key=KEY,
        reports_dir=tmp_path / "reports",
    )

    async def main() -> RunResult:
        return await import_file(settings)

    return anyio.run(main)


def write_rows(path: Path, requests: Sequence[ChatRequest], *, messages: bool = False) -> Path:
    """A CSV with one row per request (customer, application, assignee, department), and
    with `messages` the first message "Hello row N", N the source row."""
    lines = ["customer,application,assignee,department" + (",message" if messages else "")]
    for r in requests:
        cells = ["" if v is None else str(v) for v in request_fields(r)]
        lines.append(",".join(cells + ([f"Hello row {r.source_row}"] if messages else [])))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


#: Every (assignee, department) pair of the seeded account where the agent is a member.
TEAMS = [(agent, d.id) for d in DEPARTMENTS for agent in d.agent_ids]


def distinct_rows(count: int) -> list[ChatRequest]:
    """`count` rows with one customer each (the seeded ones first), ids the sandbox knows."""
    customers = Seed.generated(customers=max(0, count - len(CUSTOMERS))).customers
    return [
        ChatRequest(
            index=n,
            source_row=n + 2,
            customer=customers[n].id,
            application=APPLICATIONS[n % len(APPLICATIONS)],
            assignee=TEAMS[n % len(TEAMS)][0],
            department=TEAMS[n % len(TEAMS)][1],
        )
        for n in range(count)
    ]


def assert_each_row_once(
    requests: Sequence[ChatRequest], outcomes: dict[int, Outcome], state: SandboxState
) -> None:
    """No row has two chats, every chat belongs to a row, and no row is silently lost: a row
    is `created` with its own chat, or `unknown`/`failed` with a reason (and only `unknown`
    may leave a chat it cannot vouch for)."""
    per_row = Counter(chat_fields(chat) for chat in state.chats)
    assert set(per_row) <= {request_fields(r) for r in requests}, "a chat no row asked for"
    for request in requests:
        outcome = outcomes[request.index]
        chats = per_row[request_fields(request)]
        assert chats <= 1, f"row {request.source_row} has {chats} chats"
        if outcome.status is Status.CREATED:
            assert outcome.chat_id is not None
            chat = state.chat(outcome.chat_id)
            assert chat is not None, f"row {request.source_row}: chat {outcome.chat_id} missing"
            assert chat_fields(chat) == request_fields(request)
        else:
            assert outcome.status in {Status.UNKNOWN, Status.FAILED}, outcome
            assert outcome.error_message, f"row {request.source_row}: {outcome.status} unexplained"
            if chats:
                assert outcome.status is Status.UNKNOWN, outcome
    created = [o.chat_id for o in outcomes.values() if o.status is Status.CREATED]
    assert len(created) == len(set(created)), "two rows claim one chat"


def test_the_sample_workbook_creates_each_valid_row_once_with_its_fields(
    tmp_path: Path, quirks: bool
) -> None:
    """sample_data/chats.xlsx: one chat per valid row with its exact body; nothing else sent."""
    with run_in_thread(SandboxConfig(rate=FAST, quirks=quirks)) as sandbox:
        result = import_into(sandbox, tmp_path, SAMPLE, rate=FAST)
        state = sandbox.state
        rows = results(result.out)

    assert {n: row["status"] for n, row in rows.items()} == {
        **dict.fromkeys(SAMPLE_CHATS, "created"),
        **SAMPLE_OTHERS,
    }
    assert len(state.chats) == len(SAMPLE_CHATS)
    for source_row, body in SAMPLE_CHATS.items():
        chat = state.chat(int(rows[source_row]["chat_id"]))
        assert chat is not None, f"row {source_row}: its chat id is not the sandbox's"
        assert chat.payload == body
        assert chat_fields(chat) == (
            body["customer"],
            body["application"],
            body.get("assignee"),
            body.get("department"),
        )
    workbook_ids = {int(row["chat_id"]) for row in rows.values() if row["chat_id"] is not None}
    assert workbook_ids == {chat.id for chat in state.chats}
    # Invalid and duplicate rows never went out: one POST per valid row, the 404 included.
    assert state.requests["POST /v1/chats"] == len(SAMPLE_CHATS) + 1
    assert (rows[18]["error_code"], rows[18]["http_status"]) == ("entity_not_found", 404)


SHORT_WINDOW = 2.0
"""The sandbox's rate window cut from 60 s, so that 429s come and go in seconds."""


def test_a_rate_above_the_limit_draws_429s_yet_creates_each_row_once(
    tmp_path: Path, quirks: bool
) -> None:
    """Told five times the sandbox's limit, the tool meets 429s, backs off and still creates
    every row exactly once."""
    requests = distinct_rows(30)
    limit = 20  # per 2-second window: 600 a minute
    state = SandboxState(Seed.generated(customers=len(requests)))
    app = create_app(SandboxConfig(rate=limit, window=SHORT_WINDOW, quirks=quirks), state=state)
    source = write_rows(tmp_path / "chats.csv", requests)
    with run_in_thread(app) as sandbox:
        result = import_into(sandbox, tmp_path, source, rate=5 * limit * 60 / SHORT_WINDOW)
    rows = results(result.out)

    assert state.rate_limited > 0
    assert {row["status"] for row in rows.values()} == {"created"}
    assert sorted(chat_fields(c) for c in state.chats) == sorted(map(request_fields, requests))
    assert {int(row["chat_id"]) for row in rows.values()} == {c.id for c in state.chats}
    # A POST beyond one per row was refused with 429, and a 429 creates nothing.
    assert len(requests) < state.requests["POST /v1/chats"] <= len(requests) + state.rate_limited


def test_a_refused_key_exits_3_sends_no_chat_and_marks_every_row_not_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 401 on the pre-flight: exit 3, no POST /v1/chats, every sendable row not_sent."""
    monkeypatch.chdir(tmp_path)
    key_file = tmp_path / "key.txt"
    key_file.write_text("not-the-key\n", encoding="utf-8")
    with run_in_thread(SandboxConfig(api_key="the-key", rate=FAST)) as sandbox:
        outcome = CliRunner().invoke(
            cli,
            [
                "import",
                str(SAMPLE),
                "--base-url",
                sandbox.base_url,
                "--api-key-file",
                str(key_file),
                "--out",
                "results.xlsx",
                "--yes",
                "--no-progress",
            ],
            catch_exceptions=False,
        )
        state = sandbox.state
    rows = results(tmp_path / "results.xlsx")

    assert outcome.exit_code == 3, outcome.output
    assert state.requests["POST /v1/chats"] == 0
    assert state.chats == []
    sendable = {*SAMPLE_CHATS, 18}
    assert {n: row["status"] for n, row in rows.items()} == {
        **dict.fromkeys(sendable, "not_sent"),
        **{n: s for n, s in SAMPLE_OTHERS.items() if n not in sendable},
    }
    assert all(rows[n]["chat_id"] is None for n in sendable)


async def quick_sleep(seconds: float) -> None:
    """The sender's back-off, cut short: the sandbox stores before it fails, so the search
    that follows needs no real pause."""
    await anyio.sleep(min(seconds, 0.05))


@pytest.mark.anyio
@pytest.mark.parametrize("kind", Faults.KINDS)
async def test_each_fault_kind_ends_with_no_duplicate_and_no_row_lost(
    kind: str, quirks: bool
) -> None:
    """With 30% of chat requests failing this way, every row ends created once (or unknown
    or failed with a reason) and no chat is created twice."""
    requests = distinct_rows(20)
    faults = Faults(seed=3, slow_seconds=10.0, **{kind: 0.3})
    with run_in_thread(SandboxConfig(rate=None, faults=faults, quirks=quirks)) as sandbox:
        # A client timeout well under slow_seconds: a slow_after answer times out.
        async with HelpCrunchClient(
            sandbox.base_url, KEY, limiter=RateLimiter(FAST), timeout=1.0
        ) as client:
            result = await send_chats(
                requests, client, concurrency=8, progress=NullProgress(), sleep=quick_sleep
            )
        state = sandbox.state
        assert state.faults[kind] > 0, "the fault never struck"
        assert_each_row_once(requests, dict(result.outcomes), state)
        # The search for a lost answer never fails in the sandbox, so every row ends created.
        assert {o.status for o in result.outcomes.values()} == {Status.CREATED}


def test_every_fault_kind_at_once_through_the_pipeline_keeps_the_workbook_true(
    tmp_path: Path, quirks: bool
) -> None:
    """A whole import with every fault kind mixed in: the workbook's chat ids are exactly the
    sandbox's chats, one per row, and no row is left without a status and a reason."""
    requests = distinct_rows(20)
    # With this seed the first 20 chat requests meet each kind exactly once and the retries
    # meet none, so the real back-off costs about a second.
    chance = dict.fromkeys(Faults.KINDS, 0.05)
    faults = Faults(seed=3995, slow_seconds=0.3, **chance)
    state = SandboxState(Seed.generated(customers=len(requests)))
    source = write_rows(tmp_path / "chats.csv", requests)
    config = SandboxConfig(rate=None, faults=faults, quirks=quirks)
    with run_in_thread(create_app(config, state=state)) as sb:
        result = import_into(sb, tmp_path, source, rate=FAST)
    rows = results(result.out)

    assert state.faults == Counter(Faults.KINDS)
    outcomes = {
        r.index: Outcome(
            index=r.index,
            status=Status(rows[r.source_row]["status"]),
            chat_id=rows[r.source_row]["chat_id"],
            error_message=rows[r.source_row]["error_message"] or "",
        )
        for r in requests
    }
    assert_each_row_once(requests, outcomes, state)
    # The search for a lost answer never fails in the sandbox, so every row ends created.
    assert {row["status"] for row in rows.values()} == {"created"}
    assert {int(row["chat_id"]) for row in rows.values()} == {c.id for c in state.chats}


class Watched(httpx.AsyncHTTPTransport):
    """Real HTTP that notes, at the first 401 answer, how many other requests were on the
    wire, and counts every request sent after it."""

    def __init__(self) -> None:
        super().__init__()
        self.on_the_wire = 0
        self.refused = 0
        self.on_the_wire_at_first_401: int | None = None
        self.sent_after_first_401 = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.on_the_wire_at_first_401 is not None:
            self.sent_after_first_401 += 1
        self.on_the_wire += 1
        try:
            response = await super().handle_async_request(request)
        finally:
            self.on_the_wire -= 1
        if response.status_code == 401:
            self.refused += 1
            if self.on_the_wire_at_first_401 is None:
                self.on_the_wire_at_first_401 = self.on_the_wire
        return response


@pytest.mark.anyio
async def test_a_key_revoked_mid_run_draws_no_401_beyond_the_requests_already_sent(
    tmp_path: Path, quirks: bool
) -> None:
    """At 1200 a minute (about 60 requests queued at the limiter) the key is revoked after
    the 25th request: no request leaves after the first 401 comes back, so the sandbox
    sees that one 401 plus only those already on the wire; every row without a chat is
    not_sent, and every created row's chat exists."""
    requests = distinct_rows(120)
    state = SandboxState(Seed.generated(customers=len(requests)))
    config = SandboxConfig(rate=None, revoke_key_after=25, quirks=quirks)
    source = write_rows(tmp_path / "chats.csv", requests)
    transport = Watched()
    with run_in_thread(create_app(config, state=state)) as sandbox:
        settings = Settings(
            input_path=source,
            out=tmp_path / "results.xlsx",
            rate=1200,
            base_url=sandbox.base_url,
            api_key=KEY,
            reports_dir=tmp_path / "reports",
        )
        with anyio.fail_after(60):
            result = await import_file(settings, Hooks(transport=transport))
    rows = results(result.out)

    assert result.auth_failed
    assert transport.on_the_wire_at_first_401 is not None
    assert transport.sent_after_first_401 == 0
    assert state.unauthorized == transport.refused
    assert 1 <= state.unauthorized <= 1 + transport.on_the_wire_at_first_401
    created = {n: row for n, row in rows.items() if row["status"] == "created"}
    assert {int(row["chat_id"]) for row in created.values()} == {c.id for c in state.chats}
    assert {row["status"] for n, row in rows.items() if n not in created} == {"not_sent"}
    assert len(created) == len(state.chats) > 0


def beside_their_chat(
    tmp_path: Path, quirks: bool, seconds_ago: float, faults: Faults
) -> tuple[dict[str, Any], SandboxState, Chat]:
    """One row imported, its first message with it, against a sandbox with `faults` that
    holds another API client's chat for the row's fields, made `seconds_ago`: the row's
    results, the sandbox's state, and that other chat."""
    request = distinct_rows(1)[0]
    state, theirs = with_their_chat(request, seconds_ago=seconds_ago)
    source = write_rows(tmp_path / "chats.csv", [request], messages=True)
    config = SandboxConfig(rate=None, faults=faults, quirks=quirks)
    with run_in_thread(create_app(config, state=state)) as sandbox:
        result = import_into(sandbox, tmp_path, source, rate=FAST)
    (row,) = results(result.out).values()
    return row, state, theirs


def with_their_chat(request: ChatRequest, *, seconds_ago: float) -> tuple[SandboxState, Chat]:
    """A sandbox's state holding another API client's chat for `request`'s customer,
    application, assignee and department, made `seconds_ago`; the state and the chat."""
    assert request.assignee is not None
    assert request.department is not None
    earlier = [time.time() - seconds_ago]  # their chat then; from there the clock runs
    state = SandboxState(
        Seed.generated(customers=0), wall_clock=lambda: earlier[0] if earlier else time.time()
    )
    theirs = state.add_chat(
        customer=state.customers[request.customer],
        application=request.application,
        assignee=state.agents[request.assignee],
        department=state.departments[request.department],
        payload=request.payload(),
    )
    earlier.clear()
    return state, theirs


def test_a_chat_another_client_made_just_before_is_not_taken_for_the_rows_own(
    tmp_path: Path, quirks: bool
) -> None:
    """Another API client opens a chat for the row's customer and application a moment
    before the import, whose chat's answer is then lost: the search finds both, and the
    row adopts its own chat (the newer), its message goes there, the other is untouched."""
    row, state, theirs = beside_their_chat(tmp_path, quirks, 5.0, Faults(drop_after=1.0))
    request = distinct_rows(1)[0]
    assert row["status"] == "created"
    assert int(row["chat_id"]) != theirs.id
    ours = state.chat(int(row["chat_id"]))
    assert ours is not None
    assert [m.text for m in ours.messages] == [f"Hello row {request.source_row}"]
    assert theirs.messages == []
    assert state.faults["drop_after"] == len(state.chats) - 1 == 1


def test_a_chat_another_client_made_the_same_moment_leaves_the_row_unknown(
    tmp_path: Path, quirks: bool
) -> None:
    """Another API client's chat for the row's customer made the moment before the
    import's, whose answer is lost: the API dates chats to the second, so nothing tells
    the two apart. The row is `unknown`, naming both chats; neither gets its message."""
    row, state, theirs = beside_their_chat(tmp_path, quirks, 0.0, Faults(drop_after=1.0))
    assert (row["status"], row["chat_id"]) == ("unknown", None)
    ours = next(chat for chat in state.chats if chat.id != theirs.id)
    assert f"chats {theirs.id}, {ours.id} of this customer" in row["error_message"]
    assert state.messages == []


def test_a_chat_another_client_made_is_not_adopted_when_the_attempt_made_none(
    tmp_path: Path, quirks: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another API client's chat for the row's customer, five seconds old; every attempt
    of the row dropped before anything is stored: the searches after each find only that
    chat, made before the attempt on the API's own clock (its answers' `Date`), and never
    take it. The row fails; the other chat gets no message."""
    monkeypatch.setattr(retry, "BACKOFF_BASE", 0.01)
    row, state, theirs = beside_their_chat(tmp_path, quirks, 5.0, Faults(drop_before=1.0))
    assert row["chat_id"] is None
    assert row["status"] in ("failed", "unknown")
    assert theirs.messages == []
    assert state.requests["POST /v1/chats/search"] >= 1
    assert len(state.chats) == 1


def test_widget_chats_and_dropped_connections_never_get_a_message_of_ours(
    tmp_path: Path, quirks: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Customers open chats of their own in the widget just before our chat's answer is
    lost, and connections drop before and after storing: every row's chat_id is a
    public_api chat with that row's fields, and no message of ours lands in a chat the tool
    did not create."""
    monkeypatch.setattr(retry, "BACKOFF_BASE", 0.05)
    # Half the rows leave assignee and department blank, as a widget chat has them: only
    # how a chat began tells it from ours.
    requests = [
        replace(r, assignee=None, department=None) if r.index % 2 else r for r in distinct_rows(30)
    ]
    faults = Faults(seed=5, widget_chat=0.3, drop_before=0.1, drop_after=0.1, messages=True)
    state = SandboxState(Seed.generated(customers=len(requests)))
    source = write_rows(tmp_path / "chats.csv", requests, messages=True)
    config = SandboxConfig(rate=None, faults=faults, quirks=quirks)
    with run_in_thread(create_app(config, state=state)) as sandbox:
        result = import_into(sandbox, tmp_path, source, rate=FAST)
    rows = results(result.out)

    assert state.faults["widget_chat"] > 0
    assert state.faults["drop_before"] > 0
    assert state.faults["drop_after"] > 0
    assert {row["status"] for row in rows.values()} == {"created"}
    for request in requests:
        row = rows[request.source_row]
        chat = state.chat(int(row["chat_id"]))
        assert chat is not None, row
        assert chat.created_with == API_CHAT, row
        assert chat_fields(chat) == request_fields(request)
        assert [m.text for m in chat.messages] == [f"Hello row {request.source_row}"]
    widget = [c for c in state.chats if c.created_with != API_CHAT]
    assert len(widget) == state.faults["widget_chat"]
    assert all([m.text for m in c.messages] == [WIDGET_TEXT] for c in widget)
    assert len(state.chats) == len(requests) + len(widget)
