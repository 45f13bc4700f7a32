"""Transcripts end to end: conversations imported over loopback into the sandbox, as it
answers by the documentation and with `--quirks`, through kills, faults and refusals.

Whatever happens, a run and its re-runs must end with exactly one chat per conversation
holding every message of it exactly once, in `sent_at` order, and the status set after
the last one. The harness is that of `test_durability`: `python -m bulk_chats import`
subprocesses killed while the sandbox holds the answer to a chosen request after storing
what it asked for, and in-process runs against seeded faults.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import random
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import Response

from bulk_chats.api import retry
from bulk_chats.jobs.hooks import Hooks
from bulk_chats.jobs.import_chats import import_file
from bulk_chats.sandbox import AGENTS, Faults, SandboxConfig, Seed
from bulk_chats.sandbox import run_in_thread as serve_in_thread
from bulk_chats.sandbox.refusals import Refusal, json_object
from bulk_chats.sandbox.state import SandboxState
from bulk_chats.settings import ApiKey, Settings
from tests.e2e import test_durability
from tests.e2e.test_durability import (
    KEY,
    GatedSandbox,
    Importer,
    Sandbox,
    ShortTimeouts,
    customer,
    journal_integrity,
    statuses,
    wait_until,
)
from tests.sheets import read_results, write_csv

ROOT = Path(__file__).resolve().parents[2]

importers = test_durability.importers
"""Importer subprocesses, each killed at the end if still running (the durability
tests' fixture)."""

HEADER = ["Ticket", "Customer", "Application", "Chat status", "Sent at", "Sender", "Message"]
START = dt.datetime(2023, 4, 1, 9, 0)


@dataclass(frozen=True)
class Talk:
    """One conversation of the generated transcript: its name and its texts in order."""

    name: str
    texts: list[str]


def transcript(path: Path, conversations: int, messages: int, *, seed: int = 7) -> list[Talk]:
    """A transcript of `conversations` conversations of `messages` messages each, their
    rows shuffled (interleaved, out of order). Every fifth conversation shares the
    customer of the one before; in each, the customer says "Hello?" twice at the same
    minute; agents answer some messages; each ends closed. The talks, texts in order."""
    rows: list[list[object]] = []
    talks = []
    for n in range(conversations):
        name = f"T-{n:03d}"
        who = customer(n - 1 if n % 5 == 4 else n)
        texts = []
        for k in range(messages):
            minute = k if k < 2 else k - 1  # messages 1 and 2 share a minute
            when = START + dt.timedelta(hours=n, minutes=minute)
            text = "Hello?" if k in (1, 2) else f"{name}: message {k}"
            agent = AGENTS[k % len(AGENTS)].id if k % 3 == 0 and k else ""
            first = k == 0
            rows.append(
                [
                    name,
                    who if first else "",
                    3838 if first or k == messages - 1 else "",
                    "closed" if first else "",
                    when.strftime("%Y-%m-%d %H:%M"),
                    agent,
                    text,
                ]
            )
            texts.append(f"[{when:%Y-%m-%d %H:%M}] {text}")
        talks.append(Talk(name, texts))
    # The ties of each conversation ("Hello?" twice) keep their file order: only whole
    # rows move, and the two are identical.
    random.Random(seed).shuffle(rows)
    write_csv(path, HEADER, rows)
    return talks


def assert_transcript_in(
    sandbox: Sandbox, results: list[dict[str, Any]], talks: list[Talk]
) -> None:
    """One chat per conversation and no more; each holding exactly its messages, in
    order; the status set after its last message; every row with its chat and its own
    message id, as the sandbox has them."""
    state = sandbox.state
    assert len(state.chats) == len(talks), f"{len(state.chats)} chats for {len(talks)}"
    by_talk: dict[str, set[int]] = collections.defaultdict(set)
    for row in results:
        assert row["status"] in ("created", "already_created"), row
        by_talk[str(row["Ticket"])].add(int(row["chat_id"]))
    assert all(len(chats) == 1 for chats in by_talk.values()), by_talk
    chats = {chat.id: chat for chat in state.chats}
    for talk in talks:
        (chat_id,) = by_talk[talk.name]
        chat = chats[chat_id]
        assert [m.text for m in chat.messages] == talk.texts, talk.name
        assert chat.status == "closed", talk.name
        closed = [c for c in state.changes if c.chat_id == chat_id and c.new == "closed"]
        assert closed, talk.name
        assert closed[-1].order > chat.messages[-1].order, talk.name
    by_id = {m.id: m for m in state.messages}
    for row in results:
        message = by_id[int(row["message_id"])]
        assert message.chat_id == int(row["chat_id"])
        assert message.text.endswith(str(row["Message"]))
    assert len({int(r["message_id"]) for r in results}) == len(results)


def in_process(tmp_path: Path, source: Path, sandbox: Sandbox) -> Settings:
    """The settings of an import of `source` into `sandbox` run in this process, fast,
    its results and journal in `tmp_path`."""
    return Settings(
        input_path=source,
        out=tmp_path / "results.xlsx",
        rate=60_000,
        base_url=sandbox.base_url,
        api_key=ApiKey(KEY),
        reports_dir=tmp_path / "reports",
    )


class RefusingSandbox(GatedSandbox):
    """The gated sandbox, refusing for good (400) every message whose text holds
    `REFUSED`, as the API refuses a message it will never take."""

    async def _create_message(self, request: Request) -> Response:
        if REFUSED in str((await json_object(request)).get("text", "")):
            raise Refusal(400, ("invalid_chat_value", "text value is invalid"))
        return await super()._create_message(request)


REFUSED = "<refuse me>"


@pytest.fixture
def sandbox_factory(quirks: bool) -> Iterator[Callable[..., Sandbox]]:
    """Sandboxes accepting only `KEY`, with no rate limit unless told otherwise, answering
    with `quirks` or not; each one's gate opened and its server stopped at the end."""
    with contextlib.ExitStack() as stack:

        def start(
            config: SandboxConfig | None = None, app: type[GatedSandbox] = GatedSandbox
        ) -> Sandbox:
            made = app(
                replace(config or SandboxConfig(api_key=KEY, rate=None), quirks=quirks),
                SandboxState(Seed.generated(customers=200)),
            )
            running = stack.enter_context(serve_in_thread(made))
            stack.callback(made.open_gate)
            return Sandbox(running.base_url, made)

        yield start


def test_interleaved_rows_land_in_order_at_one_chat_a_message_and_a_status_each(
    tmp_path: Path, sandbox_factory: Callable[..., Sandbox], importers: Callable[..., Importer]
) -> None:
    """Shuffled rows of 12 conversations: each chat holds its messages in sent_at order,
    closed after the last, and nothing is sent beyond one chat, one request a message and
    one status per conversation (and the pre-flight's reads)."""
    sandbox = sandbox_factory()
    talks = transcript(tmp_path / "talks.csv", 12, 6)
    run = importers(tmp_path, tmp_path / "talks.csv", sandbox)
    assert run.wait() == 0, run.stderr
    assert "12 conversations, 12 chats, 72 messages, 12 status changes" in run.stderr
    assert_transcript_in(sandbox, read_results(run.out), talks)
    requests = dict(sandbox.state.requests)
    assert requests.pop("POST /v1/chats") == 12
    assert requests.pop("POST /v1/messages") == 72
    assert requests.pop("PUT /v1/chats/status") == 12
    assert set(requests) == {"GET /v1/agents"}, requests  # the pre-flight: the agents read


@pytest.mark.parametrize(
    ("endpoint", "nth"),
    [
        pytest.param("POST /v1/chats", 3, id="chat"),
        pytest.param("POST /v1/messages", 9, id="message"),
        pytest.param("POST /v1/messages", 3, id="second-of-two-identical"),
        pytest.param("PUT /v1/chats/status", 1, id="status"),
    ],
)
def test_a_kill_anywhere_then_a_rerun_leaves_each_message_once_in_order(
    tmp_path: Path,
    sandbox_factory: Callable[..., Sandbox],
    importers: Callable[..., Importer],
    endpoint: str,
    nth: int,
) -> None:
    """kill -9 while the answer to a chat, a message (the second of two identical ones
    among them) or a status is held after the sandbox stored it: the re-run finds what
    went, sends the rest, and every conversation ends whole, once, in order."""
    sandbox = sandbox_factory()
    talks = transcript(tmp_path / "talks.csv", 6, 5)
    source = tmp_path / "talks.csv"
    gate = sandbox.hold(endpoint, nth)
    first = importers(tmp_path, source, sandbox, "--concurrency", "1")
    wait_until(gate.held.is_set, f"request {nth} to {endpoint}")
    first.kill()
    gate.released.set()
    assert journal_integrity(tmp_path) == "ok"
    stored = len(sandbox.state.messages)

    second = importers(tmp_path, source, sandbox)
    assert second.wait() == 0, second.stderr
    results = read_results(second.out)
    assert_transcript_in(sandbox, results, talks)
    if endpoint == "POST /v1/messages":
        assert f"{stored - 1} messages were already posted" in second.stderr
        assert "1 first looked for" in second.stderr
        assert statuses(results)["already_created"] == stored
    lookups = sandbox.state.requests["GET /v1/chats/{id}/messages"]
    assert lookups <= 2, "one read (two pages at most) for the one lost answer"


def test_a_chat_found_by_a_rerun_then_killed_again_is_not_filled_twice(
    tmp_path: Path, sandbox_factory: Callable[..., Sandbox], importers: Callable[..., Importer]
) -> None:
    """kill -9 with the first chat's answer held; the re-run finds that chat by search and
    is killed in turn among its messages; the third run knows the chat and what is in it,
    and posts no message twice."""
    sandbox = sandbox_factory()
    talks = transcript(tmp_path / "talks.csv", 6, 5)
    source = tmp_path / "talks.csv"
    gate = sandbox.hold("POST /v1/chats", 1)
    first = importers(tmp_path, source, sandbox, "--concurrency", "3")
    wait_until(gate.held.is_set, "the first chat")
    first.kill()
    gate.released.set()
    gate = sandbox.hold("POST /v1/messages", 4)
    second = importers(tmp_path, source, sandbox, "--concurrency", "3")
    wait_until(gate.held.is_set, "the fourth message")
    second.kill()
    gate.released.set()

    third = importers(tmp_path, source, sandbox)
    assert third.wait() == 0, third.stderr
    assert_transcript_in(sandbox, read_results(third.out), talks)


def test_ctrl_c_between_messages_then_a_rerun_completes_in_order(
    tmp_path: Path, sandbox_factory: Callable[..., Sandbox], importers: Callable[..., Importer]
) -> None:
    """The first Ctrl-C: no further message of a conversation under way goes, its status
    is not set, the rest is not_sent; the same command then completes every conversation."""
    sandbox = sandbox_factory()
    talks = transcript(tmp_path / "talks.csv", 6, 5)
    source = tmp_path / "talks.csv"
    gate = sandbox.hold("POST /v1/messages", 7)
    first = importers(tmp_path, source, sandbox, "--concurrency", "2")
    wait_until(gate.held.is_set, "the seventh message")
    first.signal(signal.SIGINT)
    gate.released.set()
    assert first.wait() == 130, first.stderr
    stopped = statuses(read_results(first.out))
    assert set(stopped) == {"created", "not_sent"}, stopped
    assert stopped["created"] == len(sandbox.state.messages)

    second = importers(tmp_path, source, sandbox)
    assert second.wait() == 0, second.stderr
    assert_transcript_in(sandbox, read_results(second.out), talks)


@pytest.mark.anyio
async def test_seeded_faults_on_chats_messages_and_statuses_end_whole_and_once(
    tmp_path: Path, sandbox_factory: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    """5xx, dropped connections and answers too slow to wait for, before and after the
    sandbox stored the chat, the message or the status: at most two re-runs leave every
    conversation whole, each message once, in order."""
    monkeypatch.setattr(retry, "BACKOFF_BASE", 0.05)
    faults = Faults(
        seed=5,
        error_before=0.03,
        unavailable=0.03,
        drop_before=0.03,
        error_after=0.08,
        drop_after=0.08,
        slow_after=0.06,
        slow_seconds=1.0,
        messages=True,
        updates=True,
    )
    sandbox = sandbox_factory(SandboxConfig(api_key=KEY, rate=None, faults=faults))
    talks = transcript(tmp_path / "talks.csv", 16, 5)
    settings = in_process(tmp_path, tmp_path / "talks.csv", sandbox)
    result = await import_file(settings, Hooks(transport=ShortTimeouts()))
    for _ in range(2):
        if result.all_done:
            break
        result = await import_file(settings, Hooks(transport=ShortTimeouts()))
    assert result.all_done, result.counts
    assert_transcript_in(sandbox, read_results(result.out), talks)
    assert set(sandbox.state.faults) == set(Faults.KINDS)


def test_a_refused_message_holds_back_the_rest_until_it_is_fixed(
    tmp_path: Path, sandbox_factory: Callable[..., Sandbox], importers: Callable[..., Importer]
) -> None:
    """A message the API refuses: it is message_failed, the later ones of its
    conversation not_sent naming its row, the status not set, the other conversations
    whole. Fixed in the sheet, the same command goes on from there."""
    sandbox = sandbox_factory(app=RefusingSandbox)
    source = tmp_path / "talks.csv"
    talks = transcript(source, 4, 5)
    text = source.read_text(encoding="utf-8")
    broken = text.replace("T-002: message 3", f"T-002: message 3 {REFUSED}")
    source.write_text(broken, encoding="utf-8")
    first = importers(tmp_path, source, sandbox)
    assert first.wait() == 1, first.stderr
    results = read_results(first.out)
    of_two = sorted((r for r in results if r["Ticket"] == "T-002"), key=lambda r: str(r["Sent at"]))
    assert [r["status"] for r in of_two] == [
        "created",
        "created",
        "created",
        "message_failed",
        "not_sent",
    ]
    assert of_two[3]["error_code"] == "invalid_chat_value"
    assert f"held back behind row {of_two[3]['source_row']}" in of_two[4]["error_message"]
    held_chat = next(c for c in sandbox.state.chats if c.id == int(of_two[0]["chat_id"]))
    assert held_chat.status != "closed"
    assert statuses(results) == {"created": 18, "message_failed": 1, "not_sent": 1}

    source.write_text(text, encoding="utf-8")
    second = importers(tmp_path, source, sandbox)
    assert second.wait() == 0, second.stderr
    assert "18 messages were already posted" in second.stderr
    assert_transcript_in(sandbox, read_results(second.out), talks)


def test_the_results_workbook_elsewhere_goes_on_after_its_last_message(
    tmp_path: Path, sandbox_factory: Callable[..., Sandbox], importers: Callable[..., Importer]
) -> None:
    """A run cut short, its results workbook imported where its journal is not: the
    messages it gives are not sent again, the first one missing is looked for first."""
    sandbox = sandbox_factory()
    _, talks, second = cut_short_then_go_on_elsewhere(tmp_path, sandbox, importers, 4, 5, 8)
    assert_transcript_in(sandbox, read_results(second.out), talks)


def cut_short_then_go_on_elsewhere(
    tmp_path: Path,
    sandbox: Sandbox,
    importers: Callable[..., Importer],
    conversations: int,
    messages: int,
    nth: int,
) -> tuple[Path, list[Talk], Importer]:
    """A transcript of `conversations` of `messages` each imported in `tmp_path/first`,
    one at a time, Ctrl-C while the answer to its `nth` message is held; then its results
    workbook imported in `tmp_path/second`, where its journal is not. The first folder,
    the talks, and the second run (ended, exit 0)."""
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    talks = transcript(first_dir / "talks.csv", conversations, messages)
    gate = sandbox.hold("POST /v1/messages", nth)
    first = importers(first_dir, first_dir / "talks.csv", sandbox, "--concurrency", "1")
    wait_until(gate.held.is_set, f"message {nth}")
    first.signal(signal.SIGINT)
    gate.released.set()
    assert first.wait() == 130, first.stderr
    assert len(sandbox.state.messages) == nth
    second = importers(second_dir, first.out, sandbox)
    assert second.wait() == 0, second.stderr
    return first_dir, talks, second


def test_the_sheet_run_again_after_its_workbook_went_on_elsewhere_posts_nothing_twice(
    tmp_path: Path, sandbox_factory: Callable[..., Sandbox], importers: Callable[..., Importer]
) -> None:
    """Ctrl-C mid-conversation; the results workbook imported in another directory posts
    the rest; then the original sheet run again where it began: its journal says the rest
    was never sent, but the chat shows it is in, so nothing is posted twice."""
    sandbox = sandbox_factory()
    first_dir, talks, _ = cut_short_then_go_on_elsewhere(tmp_path, sandbox, importers, 1, 8, 5)
    posted = len(sandbox.state.messages)
    assert posted == 8

    third = importers(first_dir, first_dir / "talks.csv", sandbox)
    assert third.wait() == 0, third.stderr
    assert len(sandbox.state.messages) == posted
    assert_transcript_in(sandbox, read_results(third.out), talks)


@pytest.mark.anyio
async def test_a_row_the_pre_flight_refuses_holds_its_conversation_back_as_invalid(
    tmp_path: Path, sandbox_factory: Callable[..., Sandbox]
) -> None:
    """A message agent the account does not know, on the last row of one conversation:
    that row is invalid, its conversation's other rows too (`invalid_conversation`, naming
    it), the plan counts only the other conversation, and only that one is sent."""
    sandbox = sandbox_factory()
    source = write_csv(
        tmp_path / "talks.csv",
        ["conversation", "customer", "application", "message", "message_agent"],
        [
            ["R-1", customer(1), 3838, "first", ""],
            ["R-2", customer(2), 3838, "hello", ""],
            ["R-1", "", "", "second", ""],
            ["R-1", "", "", "third", 9999],
        ],
    )
    settings = in_process(tmp_path, source, sandbox)
    notes: list[str] = []
    result = await import_file(settings, Hooks(notify=notes.append))

    plan = next(note for note in notes if "to send" in note)
    assert "1 of 4 rows to send: 1 conversation, 1 chat, 1 message" in plan
    rows = {row["source_row"]: row for row in read_results(result.out)}
    assert rows[5]["error_code"] == "unknown_message_agent"
    for held in (2, 4):
        assert (rows[held]["status"], rows[held]["error_code"]) == (
            "invalid",
            "invalid_conversation",
        )
        assert "row 5 of this conversation is invalid" in rows[held]["error_message"]
    assert rows[3]["status"] == "created"
    assert len(sandbox.state.chats) == len(sandbox.state.messages) == 1


@pytest.mark.anyio
async def test_the_sheet_run_again_shows_the_ids_each_chat_and_message_was_sent_with(
    tmp_path: Path, sandbox_factory: Callable[..., Sandbox]
) -> None:
    """The sample transcript (customers, assignees, departments and senders by name)
    imported, then the same sheet again: nothing is posted, and every row (each
    `already_created` but the two of the conversation that disagrees) still gives in its
    `resolved_*` columns the customer, assignee and department of its chat and the agent
    its own message was sent as."""
    sandbox = sandbox_factory()
    settings = in_process(tmp_path, ROOT / "sample_data" / "transcripts.csv", sandbox)
    first = await import_file(settings)
    assert first.counts == {"created": 10, "invalid": 2}  # one conversation disagrees
    posted = sandbox.state.requests["POST /v1/messages"]

    again = await import_file(replace(settings, out=tmp_path / "again.xlsx"))

    assert sandbox.state.requests["POST /v1/messages"] == posted
    before, after = read_results(first.out), read_results(again.out)
    assert again.counts == {"already_created": 10, "invalid": 2}
    resolved = [column for column in before[0] if column.startswith("resolved_")]
    assert resolved == [
        "resolved_customer",
        "resolved_assignee",
        "resolved_department",
        "resolved_message_agent",
    ]
    assert [[r[c] for c in resolved] for r in after] == [[r[c] for c in resolved] for r in before]
    done = [row for row in after if row["status"] == "already_created"]
    assert all(row["resolved_customer"] and row["resolved_department"] for row in done)
    assert any(row["resolved_message_agent"] for row in done)
