"""`update` and `close` given an export (in process against the sandbox): only the cells
that differ from what the export read are sent, an id and its name that both changed
must agree, unchanged rows cost nothing, and `close` closes every chat."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import openpyxl

from bulk_chats.fields import EXPORT_COLUMNS
from bulk_chats.jobs.change_chats import close_file, update_file
from bulk_chats.jobs.export_chats import export_chats
from bulk_chats.jobs.hooks import Hooks
from bulk_chats.jobs.result import RunResult
from bulk_chats.sandbox import (
    AGENTS,
    SandboxConfig,
    SandboxState,
    Seed,
    create_app,
    history,
)
from bulk_chats.settings import ApiKey, ExportSettings, Settings
from tests.sheets import read_results

NOW = 1_790_000_000.0
ROOT = "http://sandbox.test/v1"


def exported(tmp_path: Path, count: int = 12) -> tuple[SandboxState, Hooks, Path]:
    """A sandbox of `count` chats, a way to it, and an export of them all."""
    state = SandboxState(Seed(chats=history(count, end=NOW, days=4)), wall_clock=lambda: NOW)
    app = create_app(SandboxConfig(rate=None), state=state)
    hooks = Hooks(transport=httpx.ASGITransport(app=app))
    settings = ExportSettings(
        base_url=ROOT,
        api_key=ApiKey("k"),
        rate=60_000,
        reports_dir=tmp_path / "reports",
        out=tmp_path / "export.xlsx",
    )
    result = anyio.run(export_chats, settings, hooks)
    return state, hooks, result.out


def edit(path: Path, cells: dict[tuple[int, str], Any]) -> Path:
    """Set cells of the chats sheet, by (chat row, 1-based below the header; column)."""
    book = openpyxl.load_workbook(path)
    sheet = book["chats"]
    for (row, column), value in cells.items():
        sheet.cell(row=row + 1, column=EXPORT_COLUMNS.index(column) + 1, value=value)
    edited = path.with_name("edited.xlsx")
    book.save(edited)
    return edited


def change(job: Any, path: Path, hooks: Hooks, tmp_path: Path, **extra: Any) -> RunResult:
    settings = Settings(
        input_path=path,
        base_url=ROOT,
        api_key=ApiKey("k"),
        rate=60_000,
        reports_dir=tmp_path / "reports",
        out=tmp_path / f"{job.__name__}.xlsx",
        **extra,
    )
    result: RunResult = anyio.run(job, settings, hooks)
    return result


def sent(state: SandboxState) -> list[tuple[int, str, Any]]:
    return [(c.chat_id, c.field, c.new) for c in state.changes if c.cause == "update"]


def test_an_id_and_its_name_both_changed_must_name_the_same_agent(tmp_path: Path) -> None:
    """Both cells changed to the same agent: one change. To different agents: the row is
    invalid (`conflicting_assignee`) and nothing is sent for it."""
    state, hooks, export = exported(tmp_path)
    ben, chloe = AGENTS[1], AGENTS[2]
    chats = state.chats
    path = edit(
        export,
        {
            (1, "assignee"): ben.id,
            (1, "assignee_email"): ben.email,
            (2, "assignee"): ben.id,
            (2, "assignee_email"): chloe.email,
        },
    )
    result = change(update_file, path, hooks, tmp_path)
    assert sent(state) == [(chats[0].id, "assignee", ben.id)]
    rows = read_results(result.out)
    assert rows[1]["status"] == "invalid"
    assert rows[1]["error_code"] == "conflicting_assignee"
    assert "both changed since the export" in rows[1]["error_message"]
    assert result.counts == {"updated": 1, "invalid": 1, "unchanged": 10}


def test_unchanged_rows_keep_their_cells_in_the_results_and_the_plan_counts_them(
    tmp_path: Path,
) -> None:
    """The results workbook echoes every cell as the sheet has it (not blanked), and the
    plan says how many rows are unchanged."""
    state, hooks, export = exported(tmp_path, count=3)
    path = edit(
        export, {(3, "chat_status"): "closed" if state.chats[2].status != "closed" else "new"}
    )
    result = change(update_file, path, hooks, tmp_path)
    rows = read_results(result.out)
    assert [r["status"] for r in rows] == ["unchanged", "unchanged", "updated"]
    assert rows[0]["chat_status"] == state.chats[0].status
    assert result.plan is not None
    assert "2 rows unchanged since the export; not sent" in result.plan.describe()
    assert result.all_done


def test_close_closes_every_chat_of_an_export(tmp_path: Path) -> None:
    """`close` compares nothing: every chat the export names is closed, each a request."""
    state, hooks, export = exported(tmp_path, count=4)
    result = change(close_file, export, hooks, tmp_path)
    assert result.counts == {"updated": 4}
    # Changes go out several at once: which chat comes first is not the point.
    assert sorted(sent(state)) == [(c.id, "status", "closed") for c in state.chats]
