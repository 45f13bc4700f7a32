"""End to end against the sandbox over loopback HTTP: names for ids, first messages, the
pre-flight, the plan and --dry-run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from click.testing import CliRunner

from bulk_chats.cli.main import cli
from bulk_chats.jobs.hooks import Hooks
from bulk_chats.jobs.import_chats import import_file
from bulk_chats.jobs.plan import Plan
from bulk_chats.jobs.result import RunResult
from bulk_chats.sandbox import RunningSandbox, SandboxConfig
from bulk_chats.settings import ApiKey, Settings

ROOT = Path(__file__).resolve().parents[2]

#: Ids mixed with names, with messages of every kind; the last three rows name nothing
#: the account has. Customers N=1..20 are customerN@example.com, userId crm-(1000+N).
MIXED = (
    "customer,customer_email,user_id,application,assignee,agent_email,department_name,"
    "message,message_type,sender_email\n"
    "8738438,,,3838,4188,,Support,Hello from the customer,,\n"
    ",customer2@example.com,,3838,,BEN@example.com,support,An agent writes,message,"
    "ben@example.com\n"
    ",,crm-1003,3839,,chloe@example.com,Sales,A private note,private,chloe@example.com\n"
    ",customer4@example.com,,3838,4191,,,,,\n"
    ",nobody@example.com,,3838,,,,Lost,,\n"
    ",customer6@example.com,,3838,,,Marketing,Lost too,,\n"
    ",customer7@example.com,,3838,,zed@example.com,,Lost as well,,\n"
)


@pytest.fixture
def sandbox_config(quirks: bool) -> SandboxConfig:
    """A fresh sandbox on loopback, with no rate limit to wait for, answering as the
    documentation does and (`quirks`) as its other revisions do."""
    return SandboxConfig(rate=None, quirks=quirks)


def settings(sandbox: RunningSandbox, tmp_path: Path, source: Path, **fields: Any) -> Settings:
    """Settings for importing `source` into `sandbox`, reports under `tmp_path`."""
    fields.setdefault("out", tmp_path / "out.xlsx")
    return Settings(
        input_path=source,
        base_url=sandbox.base_url,
        api_key=ApiKey("sandbox-key"),
        rate=60_000,
        reports_dir=tmp_path / "reports",
        **fields,
    )


def run(
    sandbox: RunningSandbox,
    tmp_path: Path,
    source: Path,
    *,
    confirm: Callable[[Plan], bool] | None = None,
    notes: list[str] | None = None,
    **fields: Any,
) -> RunResult:
    """Import `source` into `sandbox` through the library, as the CLI does."""
    import anyio

    async def main() -> RunResult:
        return await import_file(
            settings(sandbox, tmp_path, source, **fields),
            Hooks(confirm=confirm, notify=(notes if notes is not None else []).append),
        )

    return anyio.run(main)


def rows(path: Path) -> list[dict[str, Any]]:
    """The results sheet as one dict per row, by header."""
    sheet = openpyxl.load_workbook(path)["results"]
    header = [c.value for c in sheet[1]]
    return [dict(zip(header, r, strict=True)) for r in sheet.iter_rows(min_row=2, values_only=True)]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_ids_and_names_mixed_give_each_chat_its_one_message(
    sandbox: RunningSandbox, tmp_path: Path, quirks: bool
) -> None:
    """Each chat gets exactly one message with the right text, type and sender; unknown
    names are invalid and nothing is sent for them."""
    source = write(tmp_path / "mixed.csv", MIXED)
    result = run(sandbox, tmp_path, source)
    state = sandbox.state
    chats = {chat.customer.id: chat for chat in state.chats}
    assert sorted(chats) == [8738438, 8738439, 8738440, 8738441]
    by_chat = {m.chat_id: m for m in state.messages}
    assert len(state.messages) == len(by_chat) == 3
    sent = {
        customer: (m.text, m.type, m.agent.id if m.agent else None)
        for customer, chat in chats.items()
        if (m := by_chat.get(chat.id)) is not None
    }
    assert sent == {
        8738438: ("Hello from the customer", "message", None),
        8738439: ("An agent writes", "message", 4189),
        8738440: ("A private note", "private", 4190),
    }
    assert chats[8738438].payload == {
        "customer": 8738438,
        "application": 3838,
        "assignee": 4188,
        "department": 233048,
    }
    assert chats[8738441].payload == {"customer": 8738441, "application": 3838, "assignee": 4191}
    # The customer names among the rows that passed the pre-flight, in one search.
    assert state.requests["POST /v1/customers/search"] == 1
    # Each listing read once: its one page, and (a wrong total) the empty page that ends it.
    pages = 2 if quirks else 1
    assert state.requests["GET /v1/agents"] == pages
    assert state.requests["GET /v1/departments"] == pages

    table = rows(result.out)
    assert [r["status"] for r in table] == ["created"] * 4 + ["invalid"] * 3
    assert [r["error_code"] for r in table[4:]] == [
        "unresolved_customer_email",
        "unresolved_department_name",
        "unresolved_assignee_email",
    ]
    assert [r["resolved_customer"] for r in table] == [
        8738438,
        8738439,
        8738440,
        8738441,
        None,
        None,
        None,
    ]
    assert [r["resolved_assignee"] for r in table[:4]] == [4188, 4189, 4190, 4191]
    assert [r["resolved_message_agent"] for r in table[:4]] == [None, 4189, 4190, None]
    assert all(r["message_id"] for r in table[:3])
    assert result.counts == {"created": 4, "invalid": 3}


def test_the_original_sheet_run_again_shows_the_ids_its_chats_were_sent_with(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """Run again on the original sheet (not its results workbook), every finished row is
    `already_created`, nothing is sent, and its `resolved_*` columns still give the
    customer, assignee, department and message agent its chat was sent with."""
    source = write(tmp_path / "mixed.csv", MIXED)
    first = rows(run(sandbox, tmp_path, source).out)
    before = dict(sandbox.state.requests)

    again = rows(run(sandbox, tmp_path, source, out=tmp_path / "again.xlsx").out)

    asked = {k: n - before.get(k, 0) for k, n in sandbox.state.requests.items()}
    assert asked.get("POST /v1/chats", 0) == asked.get("POST /v1/messages", 0) == 0
    assert [r["status"] for r in again] == ["already_created"] * 4 + ["invalid"] * 3
    resolved = [c for c in first[0] if c.startswith("resolved_")]
    assert resolved == [
        "resolved_customer",
        "resolved_assignee",
        "resolved_department",
        "resolved_message_agent",
    ]
    assert [[r[c] for c in resolved] for r in again] == [[r[c] for c in resolved] for r in first]
    assert [r["resolved_department"] for r in again[:4]] == [233048, 233048, 233049, None]


def test_unknown_ids_are_invalid_before_anything_is_sent(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """Assignee, department and message agent ids the account lacks are caught by the
    pre-flight; an assignee outside the department is sent, with a warning."""
    source = write(
        tmp_path / "ids.csv",
        "customer,application,assignee,department,message,message_agent\n"
        "8738438,3838,4199,,Hi,\n"
        "8738439,3838,,233999,Hi,\n"
        "8738440,3838,,,Hi,4299\n"
        "8738441,3838,4191,233048,Hi,\n",
    )
    notes: list[str] = []
    result = run(sandbox, tmp_path, source, notes=notes)
    table = rows(result.out)
    assert [(r["status"], r["error_code"]) for r in table] == [
        ("invalid", "unknown_assignee"),
        ("invalid", "unknown_department"),
        ("invalid", "unknown_message_agent"),
        ("created", None),
    ]
    assert table[3]["error_message"] == (
        "warning: assignee 4191 (dmitri@example.com) is not in department 233048 (Support); "
        "sent as it is"
    )
    assert [c.customer.id for c in sandbox.state.chats] == [8738441]
    assert sandbox.state.requests["POST /v1/messages"] == 1
    assert any("1 row with a warning" in note for note in notes)


def test_a_refused_message_is_message_failed_and_a_rerun_posts_only_it(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """An agent removed after the pre-flight: the API refuses the message, the chat stays;
    the same command again posts only that message, into the same chat."""
    source = write(
        tmp_path / "notes.csv",
        "customer_email,application,message,message_type,message_agent_email\n"
        "customer1@example.com,3838,Note by Emma,private,emma@example.com\n"
        "customer2@example.com,3838,Hello,,\n",
    )
    state = sandbox.state
    emma = state.agents[4192]

    def remove_emma(plan: Plan) -> bool:
        del state.agents[4192]
        return True

    first = run(sandbox, tmp_path, source, confirm=remove_emma)
    table = rows(first.out)
    assert [r["status"] for r in table] == ["message_failed", "created"]
    assert (table[0]["error_code"], table[0]["http_status"]) == ("entity_not_found", 404)
    chat_id = table[0]["chat_id"]
    # The two rows are sent concurrently: find each chat by its customer, not by its order.
    chat_of = {c.customer.email: c.id for c in state.chats}
    assert chat_id == chat_of["customer1@example.com"]
    assert state.chat(chat_id).last_message is None  # type: ignore[union-attr]

    state.agents[4192] = emma
    searches = state.requests["POST /v1/customers/search"]
    second = run(sandbox, tmp_path, source, out=tmp_path / "again.xlsx")
    assert len(state.chats) == 2
    assert state.requests["POST /v1/chats"] == 2
    assert state.requests["POST /v1/messages"] == 3
    assert [(m.chat_id, m.text, m.type, m.agent) for m in state.messages[-1:]] == [
        (chat_id, "Note by Emma", "private", emma)
    ]
    assert [(r["status"], r["chat_id"]) for r in rows(second.out)] == [
        ("already_created", chat_id),
        ("already_created", chat_of["customer2@example.com"]),
    ]
    # Only the row with its message left was looked up again.
    assert state.requests["POST /v1/customers/search"] == searches + 1


def test_a_rerun_on_the_results_workbook_posts_only_the_missing_message(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """Fed its own results (no journal), import posts the missing message to the chat
    the workbook names and creates no chat."""
    source = write(
        tmp_path / "note.csv",
        "customer_user_id,application,message,message_type,message_agent\n"
        "crm-1001,3838,Note,private,4192\n",
    )
    state = sandbox.state
    emma = state.agents[4192]

    def remove_emma(plan: Plan) -> bool:
        del state.agents[4192]
        return True

    first = run(sandbox, tmp_path, source, confirm=remove_emma)
    assert first.counts == {"message_failed": 1}
    state.agents[4192] = emma
    again = run(
        sandbox, tmp_path / "elsewhere", first.out, out=tmp_path / "again.xlsx", confirm=None
    )
    assert again.counts == {"already_created": 1}
    assert state.requests["POST /v1/chats"] == 1
    assert [(m.chat_id, m.agent) for m in state.messages] == [(state.chats[0].id, emma)]
    [row] = rows(again.out)
    assert (row["chat_id"], row["message_id"], row["resolved_customer"]) == (
        state.chats[0].id,
        state.messages[0].id,
        8738438,
    )


def test_dry_run_looks_up_and_reports_but_creates_nothing(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """--dry-run reads, checks and looks up, sends no chat or message, and marks the rows
    that would be sent valid."""
    source = write(tmp_path / "mixed.csv", MIXED)
    notes: list[str] = []
    result = run(sandbox, tmp_path, source, dry_run=True, notes=notes)
    requests = sandbox.state.requests
    assert requests["POST /v1/chats"] == 0
    assert requests["POST /v1/messages"] == 0
    assert requests["POST /v1/customers/search"] == 1
    assert result.counts == {"valid": 4, "invalid": 3}
    assert [r["resolved_customer"] for r in rows(result.out)][:4] == [
        8738438,
        8738439,
        8738440,
        8738441,
    ]
    assert notes[0].splitlines()[0] == (
        "dry run: 5 of 7 rows would be sent (5 chats, 4 first messages, 1 customer look-up); "
        "nothing is created"
    )


def test_the_cli_prints_the_plan_before_sending(
    tmp_path: Path, monkeypatch: Any, quirks: bool
) -> None:
    """`import --sandbox --yes` (and `--quirks`) prints rows, requests and time before it
    sends anything."""
    monkeypatch.chdir(tmp_path)
    source = ROOT / "sample_data" / "chats-with-names.csv"
    sandbox = ["--sandbox", "--quirks"] if quirks else ["--sandbox"]
    result = CliRunner().invoke(
        cli, ["import", str(source), *sandbox, "--yes", "--rate", "60000", "--no-progress"]
    )
    assert result.exit_code == 1, result.output
    assert "9 of 12 rows to send: 9 chats, 8 first messages, 1 customer look-up" in result.output
    assert "18 requests, about 1s at 60,000 a minute" in result.output
    assert "12 rows: created 8, invalid 4" in result.output


def test_a_row_an_earlier_workbook_left_unknown_is_held_back_unless_fresh(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """Fed back as `unknown` with no journal entry, a named row is neither looked up nor
    sent; with --fresh it is sent."""
    source = write(
        tmp_path / "results.csv",
        "source_row,customer_email,application,status,chat_id\n"
        "2,customer1@example.com,3838,unknown,\n"
        "3,customer2@example.com,3838,failed,\n",
    )
    notes: list[str] = []
    held = run(sandbox, tmp_path, source, notes=notes)
    assert [(r["status"], r["chat_id"]) for r in rows(held.out)] == [
        ("unknown", None),
        ("created", sandbox.state.chats[0].id),
    ]
    assert [c.customer.id for c in sandbox.state.chats] == [8738439]
    assert sandbox.state.requests["POST /v1/customers/search"] == 1
    assert any("1 row left unknown by an earlier run; held back" in n for n in notes)

    fresh = run(sandbox, tmp_path, source, fresh=True, out=tmp_path / "fresh.xlsx")
    assert fresh.counts == {"created": 2}
