"""`update` and `close` end to end over real loopback HTTP against the sandbox, with and
without the API's quirks, with faults on the `PUT /v1/chats/...` endpoints: exactly the
changes asked, status last, a re-run sends nothing, `close` undoes an import, and a
`kill -9` during the changes loses and repeats nothing but the changes in flight.

What each test checks is the sandbox's own record of changes (`SandboxState.changes`).
"""

from __future__ import annotations

import collections
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner

from bulk_chats.api import retry
from bulk_chats.cli.main import cli
from bulk_chats.jobs.change_chats import close_file, update_file
from bulk_chats.jobs.hooks import Hooks
from bulk_chats.jobs.import_chats import import_file
from bulk_chats.jobs.result import RunResult
from bulk_chats.sandbox import (
    AGENTS,
    CUSTOMERS,
    DEPARTMENTS,
    Faults,
    RunningSandbox,
    SandboxConfig,
    run_in_thread,
)
from bulk_chats.sandbox.state import Change
from bulk_chats.settings import ApiKey, Settings
from tests.e2e.test_durability import Gate, GatedSandbox, SandboxState, Seed
from tests.sheets import read_results, write_csv

ROOT = Path(__file__).resolve().parents[2]
KEY = "e2e-updates-key"
FAST = 60000
"""Requests a minute where pacing is not the point."""
RUN_TIMEOUT = 60.0
"""Seconds any subprocess or wait may take before the test fails."""
PUTS = ("PUT /v1/chats/assignee", "PUT /v1/chats/department", "PUT /v1/chats/status")

FAULTS = Faults(seed=11, drop_after=0.2, error_after=0.1, unavailable=0.1, updates=True)
"""Changes applied and then the connection dropped or a 500; 503s that applied nothing."""


@pytest.fixture(autouse=True)
def short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries after faults wait 50 ms rather than seconds, in this process."""
    monkeypatch.setattr(retry, "BACKOFF_BASE", 0.05)


@pytest.fixture
def sandbox_config(quirks: bool) -> SandboxConfig:
    """A sandbox with faults on its changes, with or without the documentation's quirks."""
    return SandboxConfig(api_key=KEY, rate=None, faults=FAULTS, quirks=quirks)


def settings(source: Path, base_url: str, out: Path, **extra: Any) -> Settings:
    return Settings(
        input_path=source,
        out=out,
        base_url=base_url,
        api_key=ApiKey(KEY),
        rate=FAST,
        reports_dir=out.parent,
        **extra,
    )


def add_chats(state: SandboxState, count: int) -> list[int]:
    """`count` chats in the sandbox, as if made earlier; their ids."""
    return [
        state.add_chat(
            customer=CUSTOMERS[n % len(CUSTOMERS)],
            application=3838,
            assignee=None,
            department=None,
            payload={},
        ).id
        for n in range(count)
    ]


def asked(state: SandboxState) -> list[tuple[int, str, Any]]:
    """Each distinct (chat, field, new value) the updates made, in first-seen order."""
    return list(dict.fromkeys((c.chat_id, c.field, c.new) for c in updates(state)))


def updates(state: SandboxState) -> list[Change]:
    return [c for c in state.changes if c.cause == "update"]


def puts(state: SandboxState) -> int:
    return sum(state.requests[p] for p in PUTS)


UPDATE_HEADER = ["chat_id", "assignee", "assignee_email", "department_name", "chat_status"]


def update_rows(chats: list[int]) -> tuple[list[list[object]], set[tuple[int, str, Any]]]:
    """Rows changing `chats` in every way a sheet can, and the changes they ask."""
    rows: list[list[object]] = []
    wanted: set[tuple[int, str, Any]] = set()
    for n, chat in enumerate(chats):
        agent = AGENTS[n % len(AGENTS)]
        department = DEPARTMENTS[n % len(DEPARTMENTS)]
        if n % 4 == 0:
            rows.append([chat, agent.id, "", department.name, "closed"])
            wanted |= {(chat, "assignee", agent.id), (chat, "department", department.id)}
            wanted.add((chat, "status", "closed"))
        elif n % 4 == 1:
            rows.append([chat, "", agent.email, "", "On-Hold"])
            wanted |= {(chat, "assignee", agent.id), (chat, "status", "on hold")}
        elif n % 4 == 2:
            rows.append([chat, "none", "", "", ""])
            wanted.add((chat, "assignee", None))
        else:
            rows.append([chat, "", "", department.name.upper(), "pending"])
            wanted |= {(chat, "department", department.id), (chat, "status", "pending")}
    return rows, wanted


def test_update_applies_exactly_the_changes_asked_status_last(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """Every change asked is made, nothing else; per chat assignee, department, status in
    that order; the workbook says updated; a re-run sends no PUT at all."""
    state = sandbox.state
    chats = add_chats(state, 24)
    rows, wanted = update_rows(chats)
    source = write_csv(tmp_path / "changes.csv", UPDATE_HEADER, rows)

    result = anyio.run(
        update_file, settings(source, sandbox.base_url, tmp_path / "reports" / "a.xlsx")
    )

    assert result.counts == {"updated": 24}, result.error_codes
    assert result.all_done
    assert set(asked(state)) == wanted
    order = {"assignee": 0, "department": 1, "status": 2}
    for chat in chats:
        fields = [order[f] for c, f, _ in asked(state) if c == chat]
        assert fields == sorted(fields)
    by_id = {chat.id: chat for chat in state.chats}
    for chat, field, value in wanted:
        current = getattr(by_id[chat], field)
        assert (current.id if current is not None and field != "status" else current) == value
    assert sum(state.faults.values()) > 0, "the faults never struck"

    sent = puts(state)
    again = anyio.run(
        update_file, settings(source, sandbox.base_url, tmp_path / "reports" / "b.xlsx")
    )
    assert again.counts == {"already_updated": 24}
    assert puts(state) == sent


def test_close_on_an_import_results_workbook_closes_exactly_its_chats(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """Import the sample, then close its results workbook: the chats it created are
    closed, other chats are untouched, rows without a chat are skipped, exit 0."""
    state = sandbox.state
    others = add_chats(state, 3)
    reports = tmp_path / "reports"
    imported = anyio.run(
        import_file,
        settings(ROOT / "sample_data" / "chats.csv", sandbox.base_url, reports / "i.xlsx"),
    )
    created = {
        int(row["chat_id"]) for row in read_results(imported.out) if row["status"] == "created"
    }
    assert created

    closed: RunResult = anyio.run(
        close_file, settings(imported.out, sandbox.base_url, reports / "c.xlsx")
    )

    assert closed.all_done
    assert closed.counts["updated"] == len(created)
    assert closed.counts["skipped"] == imported.total - len(created)
    assert {c for c, _, _ in asked(state)} == created
    assert {f for _, f, _ in asked(state)} == {"status"}
    by_id = {chat.id: chat for chat in state.chats}
    assert all(by_id[c].status == "closed" for c in created)
    assert all(by_id[c].status != "closed" for c in others)
    results = read_results(closed.out)
    assert {int(r["chat_id"]) for r in results if r["status"] == "updated"} == created


def test_update_with_a_missing_chat_fails_naming_the_change(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """A chat the account does not have: failed, error_code `status:chat_not_found`."""
    source = write_csv(tmp_path / "c.csv", ["chat_id", "chat_status"], [[999_999, "closed"]])
    result = anyio.run(
        update_file, settings(source, sandbox.base_url, tmp_path / "reports" / "a.xlsx")
    )
    assert result.counts == {"failed": 1}
    assert result.error_codes == {"status:chat_not_found": 1}
    assert not result.all_done


# --- kill -9 during the changes ---------------------------------------------------------


@pytest.fixture(params=[False, True], ids=["plain", "quirks"])
def gated(request: pytest.FixtureRequest) -> Iterator[tuple[GatedSandbox, str]]:
    """A sandbox whose answers can be held (see tests/e2e/test_durability.py), dropping the
    connection after one change in ten; at the end its gate is opened and the server
    stopped. (Fewer faults than `FAULTS`: the killed run's back-off is not shortened.)"""
    faults = Faults(seed=5, drop_after=0.1, updates=True)
    app = GatedSandbox(
        SandboxConfig(api_key=KEY, rate=None, faults=faults, quirks=request.param),
        SandboxState(Seed()),
    )
    with contextlib.ExitStack() as stack:
        running = stack.enter_context(run_in_thread(app))
        stack.callback(app.open_gate)
        yield app, running.base_url


def test_kill_during_the_updates_then_run_again(
    gated: tuple[GatedSandbox, str], tmp_path: Path
) -> None:
    """kill -9 while the 12th status change is applied but unanswered, then the same
    command again: every change asked is made, none is lost, and only the changes in
    flight at the kill (at most the concurrency, 4) or met by a fault are sent twice."""
    app, base_url = gated
    chats = add_chats(app.state, 30)
    rows, wanted = update_rows(chats)
    source = write_csv(tmp_path / "changes.csv", UPDATE_HEADER, rows)
    out = tmp_path / "reports" / "results.xlsx"
    gate = app.gate = Gate("PUT /v1/chats/status", 12)
    env = {**os.environ, "HELPCRUNCH_API_KEY": KEY}
    command = [sys.executable, "-m", "bulk_chats", "update", str(source), "--base-url"]
    options = ["--yes", "--no-progress", "--rate", str(FAST), "--concurrency", "4"]
    process = subprocess.Popen(
        [*command, base_url, *options, "--out", str(out)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        held = gate.held.wait(RUN_TIMEOUT)
        process.kill()
        _, stderr = process.communicate(timeout=RUN_TIMEOUT)
        assert held, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    app.gate = None
    gate.released.set()
    assert updates(app.state)

    again = anyio.run(update_file, settings(source, base_url, out, concurrency=4))

    assert again.all_done, again.counts
    assert set(again.counts) <= {"updated", "already_updated"}
    assert again.counts.get("already_updated", 0) > 0
    assert set(asked(app.state)) == wanted
    repeats = collections.Counter((c.chat_id, c.field, c.new) for c in updates(app.state))
    sent_twice = sum(n - 1 for n in repeats.values())
    assert sent_twice <= 4 + app.state.faults["drop_after"]


# --- the command line -------------------------------------------------------------------


def run_cli(*args: str, key: str = KEY) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, list(args), env={"HELPCRUNCH_API_KEY": key}, catch_exceptions=False
    )
    return result.exit_code, result.output


def test_cli_exit_statuses(
    sandbox: RunningSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """update/close: 0 when every row is updated or skipped (or was earlier), 1 with an
    invalid row, 2 for a bad --chat-status or a sheet without chat_id, 3 on a refused key;
    one PUT in all, as the close after the update finds the chat closed by it."""
    monkeypatch.chdir(tmp_path)
    chats = add_chats(sandbox.state, 2)
    good = write_csv(tmp_path / "good.csv", ["chat_id", "chat_status"], [[chats[0], ""], ["", ""]])
    bad = write_csv(tmp_path / "bad.csv", ["chat_id", "chat_status"], [[chats[1], "archived"]])
    no_chat = write_csv(tmp_path / "none.csv", ["customer", "application"], [[1, 2]])
    root = ["--base-url", sandbox.base_url, "--no-progress"]

    def out(name: str) -> list[str]:
        return ["--out", str(tmp_path / f"{name}.xlsx")]

    status, output = run_cli("update", str(good), *root, *out("a"), "--chat-status", "closed")
    assert status == 0, output
    assert run_cli("close", str(good), *root, *out("b"))[0] == 0
    assert run_cli("update", str(bad), *root, *out("c"))[0] == 1
    status, output = run_cli("update", str(good), *root, *out("d"), "--chat-status", "archived")
    assert (status, output.count("\n")) == (2, 1)
    assert "--chat-status: 'archived' is not a chat status" in output
    status, output = run_cli("close", str(no_chat), *root, *out("e"))
    assert (status, output.count("\n")) == (2, 1)
    assert "no chat_id column" in output
    assert run_cli("close", str(good), *root, *out("f"), key="wrong")[0] == 3
    assert sandbox.state.requests["PUT /v1/chats/status"] == 1


# --- chat_status on import --------------------------------------------------------------

IMPORT_HEADER = ["customer", "application", "message", "chat_status"]
IMPORT_STATUSES = ["closed", "", "pending", "On-Hold", "closed", "open"]


def import_rows(count: int) -> list[list[object]]:
    """`count` rows of distinct customers, each with a first message, most with a status
    (blank cells take `--chat-status closed`)."""
    return [
        [CUSTOMERS[n].id, 3838, f"From the old desk, ticket {n}", IMPORT_STATUSES[n % 6]]
        for n in range(count)
    ]


def wanted_status(n: int) -> str:
    cell = IMPORT_STATUSES[n % 6]
    return {"": "closed", "On-Hold": "on hold", "open": "opened"}.get(cell, cell)


def test_import_sets_each_chat_status_after_its_message(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """With faults on messages and changes: every chat ends in its chat_status (blank
    cells take --chat-status), set after its first message; the plan counts the status
    requests; a re-run on the results workbook sends nothing."""
    state = sandbox.state
    source = write_csv(tmp_path / "history.csv", IMPORT_HEADER, import_rows(12))
    plans: list[str] = []
    reports = tmp_path / "reports"
    result = anyio.run(
        import_file,
        settings(source, sandbox.base_url, reports / "a.xlsx", chat_status="closed"),
        Hooks(notify=plans.append),
    )
    if not result.all_done:  # a fault may leave a row for the re-run, as it would a user
        result = anyio.run(
            import_file,
            settings(result.out, sandbox.base_url, reports / "b.xlsx", chat_status="closed"),
        )
    assert result.all_done, (result.counts, result.error_codes)
    assert any("12 status changes" in text for text in plans), plans
    by_customer = {chat.customer.id: chat for chat in state.chats}
    assert len(by_customer) == len(state.chats) == 12
    for n in range(12):
        chat = by_customer[CUSTOMERS[n].id]
        assert chat.status == wanted_status(n)
        message = [m.order for m in state.messages if m.chat_id == chat.id]
        statuses = [c.order for c in updates(state) if c.chat_id == chat.id]
        assert len(message) == 1
        assert statuses
        assert min(statuses) > message[0]

    sent = dict(state.requests)
    again = anyio.run(
        import_file,
        settings(result.out, sandbox.base_url, reports / "c.xlsx", chat_status="closed"),
    )
    assert again.all_done
    assert {k: v for k, v in state.requests.items() if k.startswith(("POST", "PUT"))} == {
        k: v for k, v in sent.items() if k.startswith(("POST", "PUT"))
    }


def test_a_status_that_cannot_be_set_is_status_failed_and_a_rerun_sets_only_it(
    tmp_path: Path,
) -> None:
    """Every status refused (the chats vanish from under the status endpoint): the rows
    are status_failed and keep chat_id and message_id; the next run sends only the status."""
    app = GatedSandbox(SandboxConfig(api_key=KEY, rate=None), SandboxState(Seed()))
    source = write_csv(tmp_path / "history.csv", IMPORT_HEADER, import_rows(3))
    reports = tmp_path / "reports"
    with run_in_thread(app) as running:
        app.broken = frozenset({"PUT /v1/chats/status"})
        first = anyio.run(
            import_file, settings(source, running.base_url, reports / "a.xlsx", chat_status="new")
        )
        rows = read_results(first.out)
        assert {r["status"] for r in rows} == {"status_failed"}
        assert all(r["chat_id"] and r["message_id"] for r in rows)
        posts = app.state.requests["POST /v1/chats"], app.state.requests["POST /v1/messages"]

        app.broken = frozenset()
        second = anyio.run(import_file, settings(source, running.base_url, reports / "b.xlsx"))
        assert second.counts == {"already_created": 3}
        assert (
            app.state.requests["POST /v1/chats"],
            app.state.requests["POST /v1/messages"],
        ) == posts
        by_customer = {c.customer.id: c.status for c in app.state.chats}
        assert [by_customer[CUSTOMERS[n].id] for n in range(3)] == ["closed", "new", "pending"]
