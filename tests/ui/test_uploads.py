"""The page's uploads: one at a time, only the current one kept (removed when replaced,
when refused halfway, when the page stops, and at the next start when the page was
killed), and a workbook too slow to read refused in a time that fits its size."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest

from bulk_chats.journal.journal import Journal, journal_path
from bulk_chats.ui import UiApp, UiConfig, run_ui_in_thread
from bulk_chats.ui import sheet_choice as sheet_module
from bulk_chats.ui.preview import Preview
from bulk_chats.ui.uploads import Upload
from tests.fakes import StuckReader
from tests.ui.pages import UPLOAD_HEADERS, q, upload

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
WAIT = 30.0
"""Seconds any one step may take."""


def stored(reports: Path) -> list[Path]:
    """The files under reports/uploads, whatever their folders."""
    return sorted(p for p in (reports / "uploads").rglob("*") if p.is_file())


async def test_a_second_upload_while_one_is_stored_is_refused(
    ui: tuple[UiApp, httpx.AsyncClient],
) -> None:
    """While an upload's body is still coming, another upload, a mapping change and a run
    are refused (409) with a message that says to wait; the first one then lands."""
    app, client = ui
    arrived, release = anyio.Event(), anyio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield (SAMPLE / "chats.csv").read_bytes()
        arrived.set()
        await release.wait()

    answers: list[httpx.Response] = []

    async def first() -> None:
        answers.append(
            await client.post(
                "/upload", params=q(name="first.csv"), content=slow_body(), headers=UPLOAD_HEADERS
            )
        )

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(first)
            await arrived.wait()
            second = await upload(client, SAMPLE / "chats.csv", name="second.csv")
            run = await client.post("/run", params=q(), json={"kind": "validate"})
            release.set()
    assert second.status_code == 409
    assert second.json()["error"] == "the file is still being read; wait for it, then try again"
    assert (run.status_code, run.json()["error"]) == (409, second.json()["error"])
    assert [a.status_code for a in answers] == [200]
    assert [p.name for p in stored(app.config.reports_dir)] == ["first.csv"]
    assert app.job is None


async def test_a_second_upload_while_one_is_read_is_refused(
    ui: tuple[UiApp, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a stored upload is being read (a big workbook takes a while), another upload
    is refused (409), and so is a change of the mapping."""
    app, client = ui
    reading, release = threading.Event(), threading.Event()
    real = sheet_module.read_preview

    def slow_preview(upload: Upload) -> Preview:
        reading.set()
        release.wait(WAIT)
        return real(upload)

    monkeypatch.setattr(sheet_module, "read_preview", slow_preview)
    answers: list[httpx.Response] = []

    async def first() -> None:
        answers.append(await upload(client, SAMPLE / "chats.csv", name="first.csv"))

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(first)
            await anyio.to_thread.run_sync(reading.wait, WAIT)
            second = await upload(client, SAMPLE / "chats.csv", name="second.csv")
            mapping = await client.post(
                "/mapping", params=q(), json={"field": "assignee", "header": ""}
            )
            release.set()
    assert [second.status_code, mapping.status_code] == [409, 409]
    assert "still being read" in second.json()["error"]
    assert [a.status_code for a in answers] == [200]
    assert [p.name for p in stored(app.config.reports_dir)] == ["first.csv"]


async def test_a_replaced_upload_is_removed(ui: tuple[UiApp, httpx.AsyncClient]) -> None:
    """Each upload replaces the one before, whose file and folder are removed: the
    uploads folder holds the current one only; choosing a sheet keeps it."""
    app, client = ui
    reports = app.config.reports_dir
    for name in ("chats.csv", "chats-with-names.csv", "chats.xlsx"):
        assert (await upload(client, SAMPLE / name)).status_code == 200
        assert [p.name for p in stored(reports)] == [name]
        assert len(list((reports / "uploads").iterdir())) == 1
    chosen = await client.post("/sheet", params=q(), json={"sheet": "chats"})
    assert chosen.status_code == 200, chosen.text
    assert [p.name for p in stored(reports)] == ["chats.xlsx"]


async def test_a_refused_upload_leaves_nothing_and_keeps_the_current_one(
    ui: tuple[UiApp, httpx.AsyncClient], tmp_path: Path
) -> None:
    """An empty file is refused and leaves no folder behind; the upload before it stays
    the current one, file and all."""
    app, client = ui
    assert (await upload(client, SAMPLE / "chats.csv")).status_code == 200
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    refused = await upload(client, empty)
    assert refused.status_code == 400
    assert refused.json()["error"] == "empty.csv: the file is empty"
    assert [p.name for p in stored(app.config.reports_dir)] == ["chats.csv"]
    assert len(list((app.config.reports_dir / "uploads").iterdir())) == 1
    assert "<strong>chats.csv</strong>" in (await client.get("/", params=q())).text


@pytest.mark.timeout(60)
async def test_a_workbook_too_slow_to_list_is_refused_in_time(
    ui: tuple[UiApp, httpx.AsyncClient], stuck_reader: StuckReader
) -> None:
    """A workbook whose reader does not answer within the time its size allows is refused
    (400) by the name the user gave it, the child is ended, and nothing is kept."""
    app, client = ui
    started = time.monotonic()
    answer = await upload(client, SAMPLE / "chats.xlsx", name="bomb.xlsx")
    assert time.monotonic() - started < WAIT
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error.startswith("bomb.xlsx: reading the workbook took more than 1 s")
    assert "uploads" not in error
    assert stored(app.config.reports_dir) == []
    stuck_reader.assert_ended()


def test_the_upload_is_removed_when_the_page_stops(tmp_path: Path) -> None:
    """When the page stops, its upload is removed; the results workbook of its run and the
    journal stay."""
    reports = tmp_path / "reports"
    with Journal.open(journal_path(reports), scope="https://api.helpcrunch.com/v1"):
        pass
    config = UiConfig(reports_dir=reports, rate=60_000)
    with run_ui_in_thread(config) as running, httpx.Client(timeout=WAIT) as client:
        root, _, token = running.url.partition("/?token=")
        answer = client.post(
            f"{root}/upload",
            params={"token": token, "name": "chats.csv"},
            content=(SAMPLE / "chats.csv").read_bytes(),
            headers=UPLOAD_HEADERS,
        )
        assert answer.status_code == 200
        started = client.post(f"{root}/run", params={"token": token}, json={"kind": "validate"})
        assert started.status_code == 200
        job = running.app.job
        assert job is not None
        assert job.join(WAIT)
        assert [p.name for p in stored(reports)] == ["chats.csv"]
    assert stored(reports) == []
    assert list(reports.glob("chats-results-*.xlsx"))
    assert journal_path(reports).is_file()


@pytest.fixture
def gone_pid() -> int:
    """The number of a process that has ended."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
        timeout=WAIT,
    )
    return int(child.stdout)


def test_uploads_of_pages_no_longer_running_are_removed_at_start(
    tmp_path: Path, gone_pid: int
) -> None:
    """A page killed before it could remove its upload leaves it behind: the next page to
    start removes it (and the uploads of versions that kept them all), but not the upload
    of a page still running."""
    uploads = tmp_path / "reports" / "uploads"
    left = {
        "killed": uploads / f"{gone_pid}-0123456789abcdef" / "march.csv",
        "old": uploads / "0123456789abcdef" / "march.xlsx",
        "running": uploads / f"{os.getppid()}-fedcba9876543210" / "april.csv",
    }
    for path in left.values():
        path.parent.mkdir(parents=True)
        path.write_text("customer,application\n1,2\n", encoding="utf-8")
    with run_ui_in_thread(UiConfig(reports_dir=tmp_path / "reports")):
        assert stored(tmp_path / "reports") == [left["running"]]
