"""Durability end to end: kill -9, Ctrl-C, faults and workbook re-runs against the sandbox.

The importers are real `python -m bulk_chats import` subprocesses where a signal is
needed (the command line in-process, or the library, where none is), talking HTTP over
loopback to a sandbox served from a thread of this test process, so the sandbox outlives
any importer that is killed and its state can be read directly.

Kill points are made exact with `GatedSandbox`, which holds the answer to the n-th request
to one endpoint *after* the sandbox stored what it asked for: killing the importer while
that answer is held is "the chat (or message) exists, the importer never heard". The kill
points: the key check's answer held (nothing sent yet); the first chat's answer held; the
twentieth chat's answer held with three more rows in flight; the fifth first message's
answer held. The kill during the final write watches the reports directory for the
temporary file the workbook is written to (`.<name>.*.tmp`, renamed into place when
complete) and kills as soon as it appears; 5,000 duplicate rows, never sent but all
written, keep that write open for a tenth of a second, long enough to be caught by a
millisecond poll. Each kill is followed by the same command run to completion, and the
sandbox must then hold exactly one chat per valid row, with the workbook's ids.

Faults are seeded (`Faults.seed`), so the sequence of faults is the same in every run;
which row meets which fault depends on how concurrent requests interleave, so the tests
check what must hold whatever the interleaving: no duplicate, no row missing.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import openpyxl
import pytest
from click.testing import CliRunner

from bulk_chats.api import retry
from bulk_chats.cli.main import cli
from bulk_chats.jobs.hooks import Hooks
from bulk_chats.jobs.import_chats import import_file
from bulk_chats.jobs.resume import HELD_UNKNOWN
from bulk_chats.journal.journal import JOURNAL_NAME
from bulk_chats.sandbox import AGENTS, DEPARTMENTS, Faults, SandboxApp, SandboxConfig, Seed
from bulk_chats.sandbox import run_in_thread as serve_in_thread
from bulk_chats.sandbox.refusals import error_response
from bulk_chats.sandbox.seed import FIRST_CUSTOMER_ID
from bulk_chats.sandbox.state import SandboxState
from bulk_chats.send import stopping
from bulk_chats.settings import ApiKey, Settings
from tests.sheets import read_results, write_csv

KEY = "durability-test-key"
RATE = "60000"
"""The importer's rate: fast enough that no test waits for it."""
RUN_TIMEOUT = 60.0
"""Seconds any importer subprocess may take before the test fails."""


# --- the sandbox -----------------------------------------------------------------------


class Gate:
    """Holds the answer to the `nth` request to `endpoint` ("POST /v1/chats") until released."""

    def __init__(self, endpoint: str, nth: int) -> None:
        self.endpoint = endpoint
        self.nth = nth
        self.seen = 0
        self.held = threading.Event()
        self.released = threading.Event()


class GatedSandbox(SandboxApp):
    """The sandbox app, with an optional `Gate` on one endpoint, and endpoints that can be
    made to refuse every request (400)."""

    gate: Gate | None = None
    broken: frozenset[str] = frozenset()

    def lift_rate_limit(self) -> None:
        """From now on, no 429s."""
        self._limiter = None

    def open_gate(self) -> None:
        """Let a held answer go, if there is one."""
        if self.gate is not None:
            self.gate.released.set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        gate = self.gate
        endpoint = f"{scope.get('method')} {scope.get('path')}"
        if endpoint in self.broken:
            refusal = error_response(400, ("filter", "This value is not valid."))
            await refusal(scope, receive, send)
            return
        if gate is None or scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if endpoint == gate.endpoint:
            gate.seen += 1
            if gate.seen == gate.nth:
                await super().__call__(scope, receive, _held(gate, send))
                return
        await super().__call__(scope, receive, send)


def _held(gate: Gate, send: Any) -> Any:
    async def held_send(message: Any) -> None:
        if message["type"] == "http.response.start":
            gate.held.set()
            while not gate.released.is_set():
                await anyio.sleep(0.005)
        await send(message)

    return held_send


@dataclass
class Sandbox:
    """A sandbox served from this process, and its app."""

    base_url: str
    app: GatedSandbox

    @property
    def state(self) -> SandboxState:
        return self.app.state

    def hold(self, endpoint: str, nth: int) -> Gate:
        gate = Gate(endpoint, nth)
        self.app.gate = gate
        return gate

    def chat_posts(self) -> int:
        return self.state.requests["POST /v1/chats"]


@pytest.fixture
def quirks() -> bool:
    """Sandboxes answer as the documentation the tool follows, unless a test asks for both
    revisions (`BOTH_REVISIONS`): these runs are long, and most exercise the journal."""
    return False


BOTH_REVISIONS = pytest.mark.parametrize("quirks", [False, True], ids=["docs", "quirks"])
"""Run a test against the sandbox's documented answers and its `quirks`."""


@pytest.fixture
def sandbox_factory(quirks: bool) -> Iterator[Callable[..., Sandbox]]:
    """Start sandboxes with 200 extra customers, by default accepting only `KEY` and with
    no rate limit, with `quirks` or not; at the end each one's gate is opened and its server
    stopped."""
    with contextlib.ExitStack() as stack:

        def start(config: SandboxConfig | None = None) -> Sandbox:
            app = GatedSandbox(
                replace(config or SandboxConfig(api_key=KEY, rate=None), quirks=quirks),
                SandboxState(Seed.generated(customers=200)),
            )
            running = stack.enter_context(serve_in_thread(app))
            stack.callback(app.open_gate)  # first, so that the server can stop
            return Sandbox(running.base_url, app)

        yield start


@pytest.fixture
def sandbox(sandbox_factory: Callable[..., Sandbox]) -> Sandbox:
    """A sandbox that accepts only `KEY`, with no rate limit."""
    return sandbox_factory()


# --- inputs and results ----------------------------------------------------------------

HEADER = ["customer", "application", "assignee", "department", "message", "note"]


def customer(n: int) -> int:
    """The id of the n-th seeded customer (0-based)."""
    return FIRST_CUSTOMER_ID + n


def valid_rows(count: int, *, messages: bool = True) -> list[list[object]]:
    """`count` valid rows: distinct customers, some sharing one with other fields."""
    rows: list[list[object]] = []
    for n in range(count):
        # Every fifth row reuses the previous row's customer with another assignee, so a
        # search for a lost answer has to tell two chats of one customer apart.
        who = customer(n - 1 if n % 5 == 4 else n)
        agent = AGENTS[n % len(AGENTS)].id
        home = next(d.id for d in DEPARTMENTS if agent in d.agent_ids)
        department = home if n % 3 else ""
        text = f"Hello from row {n}" if messages else ""
        rows.append([who, 3838, agent, department, text, f"note {n}"])
    return rows


def statuses(results: list[dict[str, Any]]) -> collections.Counter[str]:
    return collections.Counter(str(r["status"]) for r in results)


def chat_fields(chat: Any) -> tuple[int | None, ...]:
    return (
        chat.customer.id,
        chat.application,
        chat.assignee.id if chat.assignee else None,
        chat.department.id if chat.department else None,
    )


def as_id(value: object) -> int | None:
    """An id cell as the results workbook echoes it: text from a CSV, a number from Excel."""
    if value is None or value == "":
        return None
    return int(value) if isinstance(value, float) else int(str(value))


def row_fields(row: dict[str, Any]) -> tuple[int | None, ...]:
    return tuple(as_id(row[name]) for name in ("customer", "application", "assignee", "department"))


def assert_converged(sandbox: Sandbox, results: list[dict[str, Any]], valid: int) -> None:
    """One chat per valid row and no more; the workbook's ids are the sandbox's; every
    first message posted exactly once."""
    chats = sandbox.state.chats
    done = [r for r in results if r["status"] in ("created", "already_created")]
    assert len(done) == valid, statuses(results)
    assert len(chats) == valid, f"{len(chats)} chats for {valid} rows"
    by_id = {chat.id: chat for chat in chats}
    assert sorted(int(r["chat_id"]) for r in done) == sorted(by_id)
    for row in done:
        assert chat_fields(by_id[int(row["chat_id"])]) == row_fields(row)
    texts = collections.Counter((m.chat_id, m.text) for m in sandbox.state.messages)
    wanted = collections.Counter(
        (int(r["chat_id"]), r["message"]) for r in done if r.get("message")
    )
    assert texts == wanted
    with_message = [r for r in done if r.get("message")]
    assert all(r["message_id"] is not None for r in with_message)


# --- the importer as a subprocess ------------------------------------------------------


class Importer:
    """`python -m bulk_chats import` (or `command`) in `cwd`, so `reports/` and the journal
    land there."""

    def __init__(
        self, cwd: Path, source: Path, sandbox: Sandbox, *extra: str, command: str = "import"
    ) -> None:
        self.cwd = cwd
        self.out = cwd / "reports" / "results.xlsx"
        env = {**os.environ, "HELPCRUNCH_API_KEY": KEY, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bulk_chats",
                command,
                str(source),
                "--base-url",
                sandbox.base_url,
                "--yes",
                "--no-progress",
                "--out",
                str(self.out),
                "--rate",
                RATE,
                *extra,
            ],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr = ""

    def wait(self, timeout: float = RUN_TIMEOUT) -> int:
        """The exit status, once the importer has ended."""
        try:
            _, self.stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, self.stderr = self.process.communicate()
            pytest.fail(f"the importer did not end within {timeout} s:\n{self.stderr}")
        return self.process.returncode

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    def kill(self) -> None:
        """SIGKILL, then reap it."""
        self.process.kill()
        self.wait()
        assert self.process.returncode == -signal.SIGKILL

    def end(self) -> None:
        """Kill it if it still runs; for `finally`."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


@pytest.fixture
def importers() -> Iterator[Callable[..., Importer]]:
    """Start importers; any still running at the end is killed."""
    started: list[Importer] = []

    def start(
        cwd: Path, source: Path, sandbox: Sandbox, *extra: str, command: str = "import"
    ) -> Importer:
        importer = Importer(cwd, source, sandbox, *extra, command=command)
        started.append(importer)
        return importer

    try:
        yield start
    finally:
        for importer in started:
            importer.end()


def wait_until(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.001)


def journal_integrity(cwd: Path) -> str:
    connection = sqlite3.connect(cwd / "reports" / JOURNAL_NAME)
    try:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        connection.close()


# --- kill -9 -----------------------------------------------------------------------------

VALID = 40


@pytest.mark.parametrize(
    ("endpoint", "resume_says"),
    [
        pytest.param("GET /v1/agents", "40 of 40 rows to send", id="pre-flight"),
        pytest.param("POST /v1/chats", "1 first looked for", id="first-chat"),
    ],
)
def test_kill_before_the_first_answer_then_resume_creates_each_chat_once(
    tmp_path: Path,
    sandbox: Sandbox,
    importers: Callable[..., Importer],
    endpoint: str,
    resume_says: str,
) -> None:
    """kill -9 before any answer (the key check), or with the first chat created and its
    answer on the way: the resume finds that chat by search and creates the rest once."""
    source = write_csv(tmp_path / "chats.csv", HEADER, valid_rows(VALID))
    gate = sandbox.hold(endpoint, 1)
    first = importers(tmp_path, source, sandbox, "--concurrency", "1")
    wait_until(gate.held.is_set, f"the first {endpoint}")
    first.kill()
    gate.released.set()
    assert journal_integrity(tmp_path) == "ok"

    second = importers(tmp_path, source, sandbox)
    assert second.wait() == 0, second.stderr
    assert resume_says in second.stderr
    assert_converged(sandbox, read_results(second.out), VALID)


@BOTH_REVISIONS
@pytest.mark.parametrize(
    ("endpoint", "nth"),
    [
        pytest.param("POST /v1/chats", VALID // 2, id="chat-mid-run"),
        pytest.param("POST /v1/messages", 5, id="message-in-flight"),
    ],
)
def test_kill_mid_run_then_resume_creates_each_chat_once(
    tmp_path: Path,
    sandbox: Sandbox,
    importers: Callable[..., Importer],
    endpoint: str,
    nth: int,
) -> None:
    """kill -9 mid-run with a chat or first message unanswered: the resume sends only what
    is left, says what it found, and posts no chat or message twice."""
    source = write_csv(tmp_path / "chats.csv", HEADER, valid_rows(VALID))
    gate = sandbox.hold(endpoint, nth)
    first = importers(tmp_path, source, sandbox, "--concurrency", "4")
    wait_until(gate.held.is_set, f"request {nth} to {endpoint}")
    first.kill()
    gate.released.set()
    assert not first.out.exists()
    assert journal_integrity(tmp_path) == "ok"

    second = importers(tmp_path, source, sandbox)
    assert second.wait() == 0, second.stderr
    assert "rows were already created" in second.stderr
    results = read_results(second.out)
    assert_converged(sandbox, results, VALID)
    assert statuses(results)["already_created"] >= nth - 1


def test_kill_during_the_final_write_then_resume_writes_every_row(
    tmp_path: Path, sandbox: Sandbox, importers: Callable[..., Importer]
) -> None:
    """kill -9 while the workbook is being written: no half workbook; the resume sends
    nothing and writes every row as already created."""
    rows = valid_rows(VALID, messages=False)
    duplicates = [rows[0]] * 5_000
    source = write_csv(tmp_path / "chats.csv", HEADER, rows + duplicates)
    reports = tmp_path / "reports"
    first = importers(tmp_path, source, sandbox)

    def temp_file_appeared() -> bool:
        if first.process.poll() is not None:
            pytest.fail(f"the importer ended before its write was caught:\n{first.stderr}")
        return reports.is_dir() and any(p.name.endswith(".tmp") for p in reports.iterdir())

    wait_until(temp_file_appeared, "the workbook's temporary file")
    first.kill()
    assert not first.out.exists()
    assert len(sandbox.state.chats) == VALID
    posts = sandbox.chat_posts()

    second = importers(tmp_path, source, sandbox)
    assert second.wait() == 1, second.stderr  # the duplicates are not sent
    assert f"{VALID} rows were already created" in second.stderr
    assert sandbox.chat_posts() == posts
    results = read_results(second.out)
    assert statuses(results) == {"already_created": VALID, "duplicate": len(duplicates)}
    assert_converged(sandbox, results, VALID)


# --- Ctrl-C -------------------------------------------------------------------------------


def test_ctrl_c_writes_the_workbook_exits_130_and_the_resume_completes(
    tmp_path: Path, sandbox: Sandbox, importers: Callable[..., Importer]
) -> None:
    """The first Ctrl-C lets the rows in flight finish, writes every row (the rest
    not_sent) and exits 130; the same command then completes the run, each chat once."""
    source = write_csv(tmp_path / "chats.csv", HEADER, valid_rows(VALID))
    gate = sandbox.hold("POST /v1/chats", 10)
    first = importers(tmp_path, source, sandbox, "--concurrency", "4")
    wait_until(gate.held.is_set, "the tenth chat")
    first.signal(signal.SIGINT)
    time.sleep(0.2)
    gate.released.set()
    assert first.wait() == 130, first.stderr
    assert "stopping: no new rows" in first.stderr
    stopped = statuses(read_results(first.out))
    assert set(stopped) == {"created", "not_sent"}, stopped
    assert stopped["created"] == len(sandbox.state.chats) >= 10

    second = importers(tmp_path, source, sandbox)
    assert second.wait() == 0, second.stderr
    assert f"{stopped['created']} rows were already created" in second.stderr
    assert_converged(sandbox, read_results(second.out), VALID)


def test_second_ctrl_c_exits_at_once_and_the_journal_stays_consistent(
    tmp_path: Path, sandbox: Sandbox, importers: Callable[..., Importer]
) -> None:
    """A second Ctrl-C exits 130 at once, a chat's answer still held; the journal it leaves
    lets the same command complete the run without a duplicate."""
    source = write_csv(tmp_path / "chats.csv", HEADER, valid_rows(VALID))
    gate = sandbox.hold("POST /v1/chats", 10)
    first = importers(tmp_path, source, sandbox, "--concurrency", "4")
    wait_until(gate.held.is_set, "the tenth chat")
    first.signal(signal.SIGINT)
    time.sleep(0.3)
    first.signal(signal.SIGINT)
    assert first.wait(timeout=10) == 130, first.stderr
    assert "interrupted again: exiting now" in first.stderr
    assert not first.out.exists()
    gate.released.set()
    assert journal_integrity(tmp_path) == "ok"

    second = importers(tmp_path, source, sandbox)
    assert second.wait() == 0, second.stderr
    assert "first looked for" in second.stderr
    assert_converged(sandbox, read_results(second.out), VALID)


def test_ctrl_c_during_a_long_retry_after_stops_within_seconds(
    tmp_path: Path,
    sandbox_factory: Callable[..., Sandbox],
    importers: Callable[..., Importer],
) -> None:
    """Ctrl-C while every request sits out a minute-long Retry-After: exit 130 within
    seconds, the waiting rows not_sent (they sent nothing), and the resume completes
    without searching for them."""
    sandbox = sandbox_factory(SandboxConfig(api_key=KEY, rate=12))
    source = write_csv(tmp_path / "chats.csv", HEADER, valid_rows(VALID, messages=False))
    first = importers(tmp_path, source, sandbox, "--concurrency", "4")
    wait_until(lambda: sandbox.state.rate_limited > 0, "a 429")
    time.sleep(0.5)  # the rows refused are back at the limiter, to wait a minute
    interrupted_at = time.monotonic()
    first.signal(signal.SIGINT)
    assert first.wait(timeout=20) == 130, first.stderr
    assert time.monotonic() - interrupted_at < stopping.STOP_GRACE + 5
    stopped = statuses(read_results(first.out))
    assert set(stopped) == {"created", "not_sent"}, stopped
    assert stopped["created"] == len(sandbox.state.chats)

    sandbox.app.lift_rate_limit()
    searches = sandbox.state.requests["POST /v1/chats/search"]
    second = importers(tmp_path, source, sandbox)
    assert second.wait() == 0, second.stderr
    assert_converged(sandbox, read_results(second.out), VALID)
    # What surely created nothing is not looked for.
    assert "first looked for" not in second.stderr
    assert sandbox.state.requests["POST /v1/chats/search"] == searches


# --- faults --------------------------------------------------------------------------------


class ShortTimeouts(httpx.AsyncHTTPTransport):
    """HTTP with a 0.5 s wait for answers, so that `slow_after` answers time out."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.extensions["timeout"] = {"connect": 5.0, "read": 0.5, "write": 5.0, "pool": 5.0}
        return await super().handle_async_request(request)


@BOTH_REVISIONS
@pytest.mark.anyio
async def test_faults_after_storing_leave_no_duplicate_and_no_row_missing(
    tmp_path: Path, sandbox_factory: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    """5xx, dropped connections and answers too slow to wait for, after the sandbox stored
    the chat or message (and before): one run and at most one re-run create every chat and
    post every message exactly once."""
    monkeypatch.setattr(retry, "BACKOFF_BASE", 0.05)
    faults = Faults(
        seed=11,
        error_before=0.04,
        unavailable=0.04,
        drop_before=0.04,
        error_after=0.1,
        drop_after=0.1,
        slow_after=0.1,
        slow_seconds=1.0,
        messages=True,
    )
    sandbox = sandbox_factory(SandboxConfig(api_key=KEY, rate=None, faults=faults))
    rows = 60
    source = write_csv(tmp_path / "chats.csv", HEADER, valid_rows(rows))
    settings = Settings(
        input_path=source,
        out=tmp_path / "results.xlsx",
        rate=60_000,
        base_url=sandbox.base_url,
        api_key=ApiKey(KEY),
        reports_dir=tmp_path / "reports",
    )
    result = await import_file(settings, Hooks(transport=ShortTimeouts()))
    if not result.all_done:
        result = await import_file(settings, Hooks(transport=ShortTimeouts()))
    assert result.all_done, result.counts
    assert_converged(sandbox, read_results(result.out), rows)
    assert set(sandbox.state.faults) == set(Faults.KINDS)


# --- unknown rows ---------------------------------------------------------------------------


@BOTH_REVISIONS
def test_rows_left_unknown_are_confirmed_by_search_first_on_the_next_run(
    tmp_path: Path, sandbox_factory: Callable[..., Sandbox], importers: Callable[..., Importer]
) -> None:
    """A run whose searches for lost answers fail leaves rows unknown; the next run finds their
    chats by search and sends no chat again."""
    faults = Faults(seed=3, drop_after=0.3)
    sandbox = sandbox_factory(SandboxConfig(api_key=KEY, rate=None, faults=faults))
    source = write_csv(tmp_path / "chats.csv", HEADER, valid_rows(VALID, messages=False))
    sandbox.app.broken = frozenset({"POST /v1/chats/search"})
    first = importers(tmp_path, source, sandbox)
    assert first.wait() == 1, first.stderr
    left = statuses(read_results(first.out))
    assert set(left) == {"created", "unknown"}, left
    assert len(sandbox.state.chats) == VALID
    posts = sandbox.chat_posts()

    sandbox.app.broken = frozenset()
    second = importers(tmp_path, source, sandbox)
    assert second.wait() == 0, second.stderr
    assert f"{left['unknown']} first looked for" in second.stderr
    assert sandbox.chat_posts() == posts
    results = read_results(second.out)
    assert statuses(results) == {"already_created": VALID}
    assert_converged(sandbox, results, VALID)


# --- re-running a results workbook ---------------------------------------------------------


def run_in_process(cwd: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    """`bulk-chats import` in this process, in `cwd`; the exit status and what it printed."""
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(
        cli,
        ["import", *args, "--yes", "--no-progress", "--rate", RATE],
        env={"HELPCRUNCH_API_KEY": KEY},
        catch_exceptions=False,
    )
    return result.exit_code, result.output


def rewrite_results(
    results: Path, fixed: Path, edit: Callable[[dict[str, Any]], None], *, reverse: bool
) -> None:
    """Save the results sheet of `results` as `fixed`, each row passed through `edit`, its
    columns in reverse order when `reverse` (as a person might rearrange them)."""
    rows = read_results(results)
    for row in rows:
        edit(row)
    header = list(rows[0])
    if reverse:
        header.reverse()
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "results"
    sheet.append(header)
    for row in rows:
        sheet.append([row[name] for name in header])
    book.save(fixed)


def by_note(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(r["note"]): r for r in results}


def test_fixed_results_workbook_sends_only_the_fixed_rows_and_keeps_the_ids(
    tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The results workbook, its invalid rows fixed and its columns rearranged, imported
    where no journal is: only the fixed rows are sent; the others keep their chat ids."""
    rows = valid_rows(12)
    rows[3][0] = "abc"
    rows[7][1] = ""
    rows[10][2] = "4,189"
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    source = write_csv(first_dir / "chats.csv", HEADER, rows)
    status, output = run_in_process(
        first_dir, monkeypatch, str(source), "--base-url", sandbox.base_url, "--out", "out.xlsx"
    )
    assert status == 1, output
    before = read_results(first_dir / "out.xlsx")
    assert statuses(before) == {"created": 9, "invalid": 3}
    posts, messages = sandbox.chat_posts(), len(sandbox.state.messages)

    fixes = {"note 3": ("customer", customer(150)), "note 7": ("application", 3838)}
    fixes["note 10"] = ("assignee", 4189)

    def fix(row: dict[str, Any]) -> None:
        if row["note"] in fixes:
            name, value = fixes[row["note"]]
            row[name] = value

    fixed = second_dir / "fixed.xlsx"
    rewrite_results(first_dir / "out.xlsx", fixed, fix, reverse=True)
    status, output = run_in_process(
        second_dir, monkeypatch, str(fixed), "--base-url", sandbox.base_url, "--out", "out.xlsx"
    )
    assert status == 0, output
    assert sandbox.chat_posts() == posts + 3
    assert len(sandbox.state.messages) == messages + 3
    after = read_results(second_dir / "out.xlsx")
    assert statuses(after) == {"already_created": 9, "created": 3}
    earlier, now = by_note(before), by_note(after)
    for note, row in earlier.items():
        if note in fixes:
            assert now[note]["status"] == "created"
        else:
            assert (now[note]["status"], now[note]["chat_id"]) == (
                "already_created",
                row["chat_id"],
            )
    assert_converged(sandbox, after, 12)


def test_unknown_rows_of_a_workbook_without_its_journal_are_held_until_settled(
    tmp_path: Path, sandbox_factory: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A results workbook with unknown rows, imported where its journal is not: those rows
    are held back (unknown, nothing sent) until a person fills in their chat ids."""
    faults = Faults(seed=3, drop_after=0.3)
    sandbox = sandbox_factory(SandboxConfig(api_key=KEY, rate=None, faults=faults))
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    source = write_csv(first_dir / "chats.csv", HEADER, valid_rows(20, messages=False))
    sandbox.app.broken = frozenset({"POST /v1/chats/search"})
    status, _ = run_in_process(
        first_dir, monkeypatch, str(source), "--base-url", sandbox.base_url, "--out", "out.xlsx"
    )
    assert status == 1
    left = statuses(read_results(first_dir / "out.xlsx"))
    assert set(left) == {"created", "unknown"}, left
    sandbox.app.broken = frozenset()
    posts = sandbox.chat_posts()

    fed_back = second_dir / "fed-back.xlsx"
    rewrite_results(first_dir / "out.xlsx", fed_back, lambda row: None, reverse=False)
    args = (str(fed_back), "--base-url", sandbox.base_url, "--out", "out.xlsx")
    status, output = run_in_process(second_dir, monkeypatch, *args)
    assert status == 1, output
    assert f"{left['unknown']} held back" in output
    assert sandbox.chat_posts() == posts
    held = [r for r in read_results(second_dir / "out.xlsx") if r["status"] == "unknown"]
    assert len(held) == left["unknown"]
    assert {r["error_message"] for r in held} == {HELD_UNKNOWN}

    # The person looks each chat up (here: in the sandbox) and fills in its id.
    chats = {chat_fields(chat): chat.id for chat in sandbox.state.chats}

    def settle(row: dict[str, Any]) -> None:
        if row["status"] == "unknown":
            row["chat_id"] = chats[row_fields(row)]

    rewrite_results(second_dir / "out.xlsx", fed_back, settle, reverse=False)
    status, output = run_in_process(second_dir, monkeypatch, *args)
    assert status == 0, output
    assert sandbox.chat_posts() == posts
    assert_converged(sandbox, read_results(second_dir / "out.xlsx"), 20)
