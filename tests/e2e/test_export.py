"""Export end to end over real loopback HTTP against the sandbox, with and without the
API's quirks: every chat exactly once, in order, with the right fields, filtered or not,
while chats are created and closed meanwhile and while the reads meet faults; the round
trip "export, edit three cells, update" sends exactly three changes, also after the
workbook was saved again by openpyxl or LibreOffice; and Ctrl-C or `kill -9` of the
command leave what they should.

What each test checks is the sandbox's own state: its chats, and the changes it was sent.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import openpyxl
import pytest
from click.testing import CliRunner

from bulk_chats.api import retry
from bulk_chats.cli.main import cli
from bulk_chats.fields import EXPORT_COLUMNS
from bulk_chats.jobs.export_chats import ExportResult, export_chats
from bulk_chats.jobs.hooks import Hooks
from bulk_chats.sandbox import (
    AGENTS,
    DEPARTMENTS,
    Faults,
    RunningSandbox,
    SandboxApp,
    SandboxConfig,
    SandboxState,
    Seed,
    history,
    run_in_thread,
)
from bulk_chats.sandbox.state import Chat
from bulk_chats.settings import ApiKey, ExportFilters, ExportSettings
from tests.sheets import read_sheet, write_csv

KEY = "e2e-export-key"
FAST = 60_000
"""Requests a minute where pacing is not the point."""
RUN_TIMEOUT = 120.0
"""Seconds any subprocess may take before the test fails."""
CHATS = 260
PUTS = ("PUT /v1/chats/assignee", "PUT /v1/chats/department", "PUT /v1/chats/status")
READ_FAULTS = Faults(
    seed=5, unavailable=0.06, drop_before=0.04, error_after=0.05, drop_after=0.05, reads=True
)
"""A fifth of the reads answered 503, dropped before or after the answer is made, or a
500 after it."""


@pytest.fixture(autouse=True)
def short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries after faults wait milliseconds rather than seconds, in this process."""
    monkeypatch.setattr(retry, "BACKOFF_BASE", 0.01)


class Busy(SandboxApp):
    """The sandbox, where before each page of chats is answered a new chat is created and
    the oldest chat still pending is closed: the pages shift while they are read."""

    busy = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        reading = f"{scope.get('method')} {scope.get('path')}" in (
            "GET /v1/chats",
            "POST /v1/chats/search",
        )
        if self.busy and scope["type"] == "http" and reading:
            state = self.state
            chat = state.chats[len(state.chats) % CHATS]
            state.add_chat(
                customer=chat.customer,
                application=chat.application,
                assignee=chat.assignee,
                department=chat.department,
                payload={},
                status="pending",
            )
            pending = next((c for c in state.chats if c.status == "pending"), None)
            if pending is not None:
                state.update_chat(pending, "status", "closed")
        await super().__call__(scope, receive, send)


@pytest.fixture
def seeded(quirks: bool) -> Iterator[RunningSandbox]:
    """A sandbox on loopback holding `CHATS` chats of the past 90 days with their
    messages, accepting only `KEY`, answering with `quirks` or not."""
    state = SandboxState(Seed(chats=history(CHATS, end=time.time() - 3600)))
    app = Busy(SandboxConfig(api_key=KEY, rate=None, quirks=quirks), state)
    with run_in_thread(app) as running:
        yield running


def export(sandbox: RunningSandbox, out: Path, **settings: Any) -> ExportResult:
    """Export from `sandbox` through the library, to `out`."""
    chosen = ExportSettings(
        base_url=sandbox.base_url,
        api_key=ApiKey(KEY),
        rate=FAST,
        reports_dir=out.parent / "reports",
        out=out,
        **settings,
    )
    result: ExportResult = anyio.run(export_chats, chosen, Hooks())
    return result


def sheet(path: Path, name: str = "chats") -> list[dict[str, Any]]:
    return read_sheet(path, name)


def second(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(math.floor(value), dt.UTC).replace(tzinfo=None)


def expected_row(chat: Chat) -> dict[str, Any]:
    """The cells an export should hold for `chat`; times to the second."""
    last = chat.messages[-1] if chat.messages else None
    return {
        "chat_id": chat.id,
        "chat_status": chat.status,
        "assignee": chat.assignee.id if chat.assignee else None,
        "assignee_email": chat.assignee.email if chat.assignee else None,
        "department": chat.department.id if chat.department else None,
        "department_name": chat.department.name if chat.department else None,
        "customer": chat.customer.id,
        "customer_email": chat.customer.email,
        "customer_name": chat.customer.name,
        "customer_user_id": chat.customer.user_id,
        "application": chat.application,
        "created_at": second(chat.created_at),
        "closed_at": second(chat.closed_at) if chat.closed_at else None,
        "last_message_at": second(last.created_at) if last else None,
        "created_with": chat.created_with,
        "rating": chat.rating,
        "last_message_text": last.text if last else None,
    }


def to_seconds(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its times cut to the second (the quirks' timestamps carry milliseconds)."""
    return {
        k: v.replace(microsecond=0) if isinstance(v, dt.datetime) else v for k, v in row.items()
    }


def test_every_chat_exactly_once_in_order_with_its_fields(
    seeded: RunningSandbox, tmp_path: Path
) -> None:
    """No filter: each chat of the account once, oldest first, every column right, in
    ceil(chats / 100) pages."""
    result = export(seeded, tmp_path / "all.xlsx")
    rows = [to_seconds(r) for r in sheet(result.out)]
    assert rows == [expected_row(chat) for chat in seeded.state.chats]
    assert result.partial == ""
    pages = seeded.state.requests["GET /v1/chats"]
    assert pages == math.ceil(CHATS / (50 if seeded.app.config.quirks else 100))


def test_combined_filters_give_exactly_the_chats_meeting_all_of_them(
    seeded: RunningSandbox, tmp_path: Path
) -> None:
    """Two statuses, a department by name, an agent by email and a window of creation
    times, joined with AND: exactly those chats, once each, in order."""
    chats = seeded.state.chats
    since = dt.datetime.fromtimestamp(chats[20].created_at, dt.UTC)
    until = dt.datetime.fromtimestamp(chats[230].created_at, dt.UTC)
    support, anna = DEPARTMENTS[0], AGENTS[0]
    filters = ExportFilters(
        statuses=("pending", "closed"),
        department_name=support.name.upper(),
        assignee_email=anna.email,
        since=since,
        until=until,
    )
    result = export(seeded, tmp_path / "some.xlsx", filters=filters)
    wanted = [
        chat
        for chat in chats
        if chat.status in ("pending", "closed")
        and chat.department is not None
        and chat.department.id == support.id
        and chat.assignee is not None
        and chat.assignee.id == anna.id
        and math.ceil(since.timestamp()) <= int(chat.created_at) < math.ceil(until.timestamp())
    ]
    assert wanted
    assert [to_seconds(r) for r in sheet(result.out)] == [expected_row(c) for c in wanted]


@pytest.mark.parametrize("statuses", [(), ("pending",), ("pending", "opened")])
def test_chats_created_and_closed_while_it_pages_skip_or_repeat_none(
    seeded: RunningSandbox, tmp_path: Path, statuses: tuple[str, ...]
) -> None:
    """Before every page a new chat arrives and a pending one is closed: every chat there
    at the start that matches and is not closed meanwhile is exported once, in order."""
    state = seeded.state
    before = {chat.id: chat.status for chat in state.chats}
    seeded.app.busy = True  # type: ignore[attr-defined]
    result = export(seeded, tmp_path / "busy.xlsx", filters=ExportFilters(statuses=statuses))
    seeded.app.busy = False  # type: ignore[attr-defined]
    ids = [row["chat_id"] for row in sheet(result.out)]
    assert len(ids) == len(set(ids))
    assert ids == sorted(ids)  # creation order: ids follow it here
    now = {chat.id: chat.status for chat in state.chats}
    unchanged = [
        i
        for i, status in before.items()
        if (not statuses or status in statuses) and now[i] == status
    ]
    assert set(unchanged) <= set(ids)
    assert all(not statuses or before.get(i, "pending") in statuses for i in ids)


def assert_exact(result: ExportResult, chats: list[Chat]) -> None:
    """The workbook holds `chats` once each, in order, and their messages, or (partial,
    and saying so) a beginning of them, the messages of the chats in `result.unread`
    left out and nothing else: nothing is missing that the summary does not own to."""
    ids = [row["chat_id"] for row in sheet(result.out)]
    assert ids == [chat.id for chat in chats[: len(ids)]]
    assert result.partial or len(ids) == len(chats)
    if result.messages is None:
        return
    read = [chat for chat in chats[: len(ids)] if chat.id not in result.unread]
    messages = [(m["chat_id"], m["message_id"]) for m in sheet(result.out, "messages")]
    assert messages == [(chat.id, m.id) for chat in read for m in chat.messages]
    assert not result.unread or "could not be read" in result.partial


def test_reads_that_meet_faults_still_give_every_chat_once(quirks: bool, tmp_path: Path) -> None:
    """503s, dropped connections and 500s on a fifth of the listings, searches and
    messages: every chat and every message once, in order; or, where a read failed four
    times over, the export says it is partial and holds exactly what was read."""
    state = SandboxState(Seed(chats=history(CHATS, end=time.time() - 3600)))
    config = SandboxConfig(api_key=KEY, rate=None, quirks=quirks, faults=READ_FAULTS)
    with run_in_thread(SandboxApp(config, state)) as running:
        plain = export(running, tmp_path / "all.xlsx")
        filtered = export(
            running,
            tmp_path / "some.xlsx",
            filters=ExportFilters(statuses=("closed", "pending")),
            messages=True,
        )
    assert sum(state.faults.values()) > 20
    assert_exact(plain, state.chats)
    assert_exact(filtered, [c for c in state.chats if c.status in ("closed", "pending")])


def libreoffice() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


def resave(path: Path, how: str, folder: Path) -> Path:
    """The workbook at `path` opened and saved again by openpyxl or by LibreOffice."""
    if how == "openpyxl":
        book = openpyxl.load_workbook(path)
        again = folder / f"openpyxl-{path.name}"
        book.save(again)
        return again
    office = libreoffice()
    if office is None:
        if os.environ.get("CI"):
            pytest.fail("LibreOffice (soffice) is missing; .ci/install-libreoffice installs it")
        pytest.skip("LibreOffice (soffice) is not installed here")
    out = folder / "libreoffice"
    done = subprocess.run(
        [
            office,
            f"-env:UserInstallation=file://{folder / 'profile'}",
            "--headless",
            "--calc",
            "--convert-to",
            "xlsx",
            "--outdir",
            str(out),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    again = out / path.name
    assert again.is_file(), done.stderr
    return again


def edit_three_cells(path: Path, chats: list[Chat], folder: Path) -> tuple[Path, set[Any]]:
    """A status, an agent by email and a department by name changed on three rows, with
    openpyxl; the changes the sandbox should then be sent."""
    book = openpyxl.load_workbook(path)
    sheet_ = book["chats"]
    first, second_, third = chats[0], chats[1], chats[2]
    status = "closed" if first.status != "closed" else "pending"
    agent = next(a for a in AGENTS if not second_.assignee or a.id != second_.assignee.id)
    department = next(d for d in DEPARTMENTS if not third.department or d.id != third.department.id)
    column = {name: EXPORT_COLUMNS.index(name) + 1 for name in EXPORT_COLUMNS}
    sheet_.cell(row=2, column=column["chat_status"], value=status.upper())
    sheet_.cell(row=3, column=column["assignee_email"], value=agent.email)
    sheet_.cell(row=4, column=column["department_name"], value=department.name)
    edited = folder / "edited.xlsx"
    book.save(edited)
    wanted = {
        (first.id, "status", status),
        (second_.id, "assignee", agent.id),
        (third.id, "department", department.id),
    }
    return edited, wanted


def run_cli(*args: str) -> tuple[int, str]:
    """The command line in process, with the key in the environment, fast."""
    result = CliRunner().invoke(
        cli, [*args, "--rate", str(FAST)], env={"HELPCRUNCH_API_KEY": KEY}, catch_exceptions=False
    )
    return result.exit_code, result.output


def updates(state: SandboxState) -> set[tuple[int, str, Any]]:
    return {(c.chat_id, c.field, c.new) for c in state.changes if c.cause == "update"}


@pytest.mark.parametrize("resaved", ["as-edited", "openpyxl", "libreoffice"])
def test_export_edit_three_cells_update_sends_exactly_three_changes(
    seeded: RunningSandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    resaved: str,
) -> None:
    """`export`, three cells edited in openpyxl and saved (then, maybe, the workbook
    opened and saved again by openpyxl or LibreOffice), `update`: three requests, the three
    changes, every other row `unchanged`; a second `update` sends nothing."""
    monkeypatch.chdir(tmp_path)
    status, output = run_cli(
        "export", "--base-url", seeded.base_url, "--out", "export.xlsx", "--no-progress"
    )
    assert status == 0, output
    edited, wanted = edit_three_cells(tmp_path / "export.xlsx", seeded.state.chats, tmp_path)
    if resaved != "as-edited":
        edited = resave(edited, resaved, tmp_path)
        assert openpyxl.load_workbook(edited)["exported"].sheet_state == "hidden"
    state = seeded.state
    status, output = run_cli(
        "update", str(edited), "--base-url", seeded.base_url, "--yes", "--out", "updated.xlsx"
    )
    assert status == 0, output
    assert sum(state.requests[p] for p in PUTS) == 3
    assert updates(state) == wanted
    counts = Counter(row["status"] for row in sheet(tmp_path / "updated.xlsx", "results"))
    assert counts == {"updated": 3, "unchanged": CHATS - 3}
    status, output = run_cli(
        "update", str(edited), "--base-url", seeded.base_url, "--yes", "--out", "again.xlsx"
    )
    assert status == 0, output
    assert sum(state.requests[p] for p in PUTS) == 3


def test_an_unedited_export_saved_again_sends_nothing(
    seeded: RunningSandbox, tmp_path: Path
) -> None:
    """Opened and saved by LibreOffice (ids now numbers written otherwise, dates its own
    way) with nothing changed: every row is unchanged and no request is sent."""
    result = export(seeded, tmp_path / "export.xlsx")
    again = resave(result.out, "libreoffice", tmp_path)
    status, output = run_cli(
        "update",
        str(again),
        "--base-url",
        seeded.base_url,
        "--yes",
        "--out",
        str(tmp_path / "u.xlsx"),
    )
    assert status == 0, output
    assert sum(seeded.state.requests[p] for p in PUTS) == 0
    assert f"{CHATS} rows: unchanged {CHATS}" in output


def test_an_export_saved_as_csv_is_refused_by_update_until_its_export_columns_go(
    seeded: RunningSandbox, tmp_path: Path
) -> None:
    """The chats sheet saved as CSV loses the hidden record of what the export read:
    `update` would send every cell and change back chats changed since. It is refused
    (exit 2, one line, nothing sent); without the export's own columns it is a plain
    sheet of changes and is sent."""
    result = export(seeded, tmp_path / "export.xlsx")
    rows = sheet(result.out)
    header = list(rows[0])
    csv = tmp_path / "chats.csv"
    write_csv(csv, header, [[row[h] for h in header] for row in rows])
    status, output = run_cli(
        "update", str(csv), "--base-url", seeded.base_url, "--yes", "--out", "u.xlsx"
    )
    assert status == 2, output
    assert len(output.strip().splitlines()) == 1
    assert "without its hidden sheet 'exported'" in output
    assert "Traceback" not in output
    assert sum(seeded.state.requests[p] for p in PUTS) == 0

    kept = [h for h in header if h not in ("created_with", "last_message_at")]
    write_csv(csv, kept, [[row[h] for h in kept] for row in rows[:2]])
    status, output = run_cli(
        "update",
        str(csv),
        "--base-url",
        seeded.base_url,
        "--yes",
        "--out",
        str(tmp_path / "v.xlsx"),
    )
    assert status == 0, output
    assert "2 rows: updated 2" in output
    assert sum(seeded.state.requests[p] for p in PUTS) > 0


class Exporter:
    """`python -m bulk_chats export` in `cwd`, against `base_url`."""

    def __init__(self, cwd: Path, base_url: str, *extra: str) -> None:
        env = {**os.environ, "HELPCRUNCH_API_KEY": KEY, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bulk_chats",
                "export",
                "--base-url",
                base_url,
                "--yes",
                "--no-progress",
                "--rate",
                str(FAST),
                *extra,
            ],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait(self) -> tuple[int, str]:
        try:
            _, stderr = self.process.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
            pytest.fail(f"the export did not end in time:\n{stderr}")
        return self.process.returncode, stderr


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def slow(quirks: bool) -> Iterator[RunningSandbox]:
    """A sandbox of `CHATS` chats answering each request 0.3 s late: an export of them
    takes a few seconds, long enough to be stopped midway."""
    state = SandboxState(Seed(chats=history(CHATS, end=time.time() - 3600)))
    config = SandboxConfig(api_key=KEY, rate=None, quirks=quirks, latency=0.3)
    with run_in_thread(SandboxApp(config, state)) as running:
        yield running


def test_ctrl_c_writes_what_was_read_marked_partial_exit_130(
    slow: RunningSandbox, tmp_path: Path
) -> None:
    """SIGINT after the first page: exit 130; the workbook holds the chats read, in
    order, and its summary says the export is partial."""
    exporter = Exporter(tmp_path, slow.base_url, "--out", "stopped.xlsx")
    try:
        wait_for(lambda: slow.state.requests["GET /v1/chats"] >= 1, "the first page")
        exporter.process.send_signal(signal.SIGINT)
        status, stderr = exporter.wait()
    finally:
        if exporter.process.poll() is None:
            exporter.process.kill()
    assert status == 130, stderr
    ids = [row["chat_id"] for row in sheet(tmp_path / "stopped.xlsx")]
    assert 0 < len(ids) < CHATS
    assert ids == [chat.id for chat in slow.state.chats[: len(ids)]]
    summary = {
        r[0]: r[1]
        for r in openpyxl.load_workbook(tmp_path / "stopped.xlsx")["summary"].iter_rows(
            values_only=True
        )
        if r[0]
    }
    assert str(summary["complete"]).startswith("no: interrupted")


def test_kill_9_leaves_no_half_workbook_and_the_next_export_is_whole(
    slow: RunningSandbox, tmp_path: Path
) -> None:
    """`kill -9` while the chats are read leaves no workbook at all (not half of one);
    the export run again writes every chat once."""
    exporter = Exporter(tmp_path, slow.base_url, "--out", "export.xlsx")
    try:
        wait_for(lambda: slow.state.requests["GET /v1/chats"] >= 2, "the second page")
        exporter.process.kill()
        exporter.process.communicate(timeout=RUN_TIMEOUT)
    finally:
        if exporter.process.poll() is None:
            exporter.process.kill()
    assert not (tmp_path / "export.xlsx").exists()
    status, stderr = Exporter(tmp_path, slow.base_url, "--out", "export.xlsx").wait()
    assert status == 0, stderr
    assert [r["chat_id"] for r in sheet(tmp_path / "export.xlsx")] == [
        chat.id for chat in slow.state.chats
    ]


UPDATE_FAULTS = Faults(seed=3, drop_after=0.15, error_after=0.1, unavailable=0.1, updates=True)
"""Changes applied and then the answer lost (dropped, or a 500), and 503s that applied
nothing."""


def test_update_of_an_export_killed_and_run_again_makes_each_change_once(
    quirks: bool, tmp_path: Path
) -> None:
    """An export with forty statuses changed, given to `update` against faults on the
    changes; `kill -9` after twelve, then the same command again: every change is made,
    none is sent for a row as read, and only a change in flight or with a lost answer is
    sent twice."""
    state = SandboxState(Seed(chats=history(CHATS, end=time.time() - 3600)))
    config = SandboxConfig(
        api_key=KEY, rate=None, quirks=quirks, latency=0.02, faults=UPDATE_FAULTS
    )
    with run_in_thread(SandboxApp(config, state)) as running:
        result = export(running, tmp_path / "export.xlsx")
        book = openpyxl.load_workbook(result.out)
        column = EXPORT_COLUMNS.index("chat_status") + 1
        wanted = {}
        for row, chat in enumerate(state.chats[:40], start=2):
            status = "closed" if chat.status != "closed" else "pending"
            book["chats"].cell(row=row, column=column, value=status)
            wanted[chat.id] = status
        edited = tmp_path / "edited.xlsx"
        book.save(edited)
        command = [
            *(sys.executable, "-m", "bulk_chats", "update", str(edited)),
            *("--base-url", running.base_url, "--rate", "1200", "--yes", "--no-progress"),
            *("--out", "updated.xlsx"),
        ]
        env = {**os.environ, "HELPCRUNCH_API_KEY": KEY}
        first = subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: state.requests["PUT /v1/chats/status"] >= 12, "twelve changes")
            first.kill()
            first.communicate(timeout=RUN_TIMEOUT)
        finally:
            if first.poll() is None:
                first.kill()
        again = subprocess.run(
            command,
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    assert again.returncode == 0, again.stderr
    made = Counter(c.chat_id for c in state.changes if c.cause == "update")
    assert set(made) == set(wanted)
    assert {c.chat_id: c.new for c in state.changes if c.cause == "update"} == wanted
    lost = state.faults["drop_after"] + state.faults["error_after"]
    assert sum(made.values()) - len(wanted) <= lost + 4  # in flight at the kill: a few
    statuses = Counter(row["status"] for row in sheet(tmp_path / "updated.xlsx", "results"))
    assert statuses["unchanged"] == CHATS - 40
    assert statuses["updated"] + statuses["already_updated"] == 40
