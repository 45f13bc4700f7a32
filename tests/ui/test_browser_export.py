"""The page's Export in a real browser against the sandbox over loopback: the form found by
its labels, the progress bar and the workbook to download, and that workbook, one cell
edited, fed back to Update."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from bulk_chats.fields import EXPORT_COLUMNS
from bulk_chats.sandbox import (
    DEPARTMENTS,
    RunningSandbox,
    SandboxConfig,
    SandboxState,
    Seed,
    create_app,
    history,
)
from bulk_chats.ui import RunningUi
from tests.fakes import StartSandbox
from tests.ui.test_browser import (  # noqa: F401 - fixtures used by name
    STEP_TIMEOUT,
    Shots,
    browser,
    expect,
    go_to,
    serve,
    shots,
    summary_counts,
)

CHATS = 30


@pytest.fixture
def seeded(start_sandbox: StartSandbox) -> RunningSandbox:
    """A sandbox on loopback with `CHATS` chats of the past weeks, accepting "right-key"."""
    state = SandboxState(Seed(chats=history(CHATS, end=time.time() - 600, days=20)))
    return start_sandbox(create_app(SandboxConfig(api_key="right-key", rate=None), state=state))


@pytest.fixture
def page(browser: Any, tmp_path: Path, seeded: RunningSandbox) -> Iterator[Any]:  # noqa: F811
    """A fresh tab on a page against `seeded`, the key given by the server."""
    with serve(tmp_path, seeded, key="right-key") as running:
        assert isinstance(running, RunningUi)
        context = browser.new_context(
            accept_downloads=True, viewport={"width": 1200, "height": 1400}
        )
        opened = context.new_page()
        opened.set_default_timeout(STEP_TIMEOUT)
        opened.goto(running.url)
        yield opened
        context.close()


def test_export_then_update_from_the_downloaded_workbook(
    page: Any,
    seeded: RunningSandbox,
    tmp_path: Path,
    shots: Shots,  # noqa: F811
) -> None:
    """Export the pending and closed chats of Sales, download the workbook, change one
    chat's status in it, choose it as the spreadsheet and Update: one change sent, the
    other rows unchanged."""
    sales = DEPARTMENTS[1]
    page.get_by_role("checkbox", name="pending").check()
    page.get_by_role("checkbox", name="closed").check()
    page.get_by_label("Department", exact=True).fill(sales.name)
    shots(page, "export-form")
    page.get_by_role("button", name="Export", exact=True).click()
    summary = page.get_by_role("status", name="Summary")
    wanted = [
        c for c in seeded.state.chats if c.status in ("pending", "closed") and c.department is sales
    ]
    expect(summary).to_contain_text(f"exported {len(wanted)}")
    expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", str(len(wanted)))
    shots(page, "exported")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download results").click()
    exported = tmp_path / "export.xlsx"
    download.value.save_as(exported)

    book = openpyxl.load_workbook(exported)
    first = wanted[0]
    status = "opened" if first.status != "opened" else "pending"
    book["chats"].cell(row=2, column=EXPORT_COLUMNS.index("chat_status") + 1).value = status
    book.save(exported)
    go_to(page, "File")
    page.get_by_label("Spreadsheet", exact=True).set_input_files(exported)
    expect(page.get_by_label("chat_id", exact=True)).to_have_value("chat_id")
    go_to(page, "Plan")
    page.get_by_role("button", name="Update", exact=True).click()
    expect(page.get_by_text(f"{len(wanted) - 1} rows unchanged since the export")).to_be_visible()
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Done.", exact=True)).to_be_visible()
    assert summary_counts(page) == {"updated": 1, "unchanged": len(wanted) - 1}
    shots(page, "updated")
    assert first.status == status
