"""The guided import at the HTTP level: the columns with their values and a preview, the
mapping changed from either side (a field another column gives refused out loud), the
page's words, the plan that waits with what it knows, results as CSV past a worksheet,
the writing's progress, and the list of runs across a restart of the page."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import openpyxl
import pytest

from bulk_chats.journal.journal import journal_path
from bulk_chats.journal.page_runs import PageRuns
from bulk_chats.results import workbook as workbook_module
from bulk_chats.sandbox import RunningSandbox, SandboxConfig
from bulk_chats.settings import ApiKey
from bulk_chats.ui import UiApp
from bulk_chats.ui import preview as preview_module
from bulk_chats.ui.jobs import JobProgress
from tests.sheets import write_csv
from tests.ui.pages import client_for, make_ui, q, upload
from tests.ui.test_app import KEY, RUN_TIMEOUT, run, until_confirm
from tests.ui.test_uploads import gone_pid  # noqa: F401 - a fixture used by name

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
HEADER = ["Customer ID", "Application", "Agent ID", "Owner"]


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    """A sandbox that accepts only `KEY`, with no rate limit."""
    return SandboxConfig(api_key=KEY, rate=None)


def owners(tmp_path: Path) -> Path:
    """Two rows whose Agent ID column is read as assignee by its header, and an Owner
    column no header rule reads."""
    return write_csv(
        tmp_path / "owners.csv", HEADER, [[8738438, 3838, "x", 4188], [8738439, 3838, "y", 4189]]
    )


async def page_of(client: httpx.AsyncClient) -> str:
    return (await client.get("/", params=q())).text


async def test_the_columns_show_their_first_values_and_the_rows_as_read(
    ui: tuple[UiApp, httpx.AsyncClient],
) -> None:
    """Each column of the file is listed with its first values and the field it is read
    as, and the first rows are shown as they will be read, with their row numbers."""
    _, client = ui
    assert (await upload(client, SAMPLE / "chats.csv")).status_code == 200
    page = await page_of(client)
    assert 'aria-label="Columns"' in page
    assert '<span class="sample">8738438</span><span class="sample">8738439</span>' in page
    assert 'aria-label="Read Customer ID as"' in page
    assert '<option value="customer" selected>customer</option>' in page
    assert 'aria-label="Preview"' in page
    assert "The first 5 of 18 rows shown" in page
    assert '<td class="num">2</td><td>8738438</td><td>3838</td><td>4188</td>' in page


async def test_a_field_another_column_gives_is_refused_until_it_is_freed(
    ui: tuple[UiApp, httpx.AsyncClient], tmp_path: Path
) -> None:
    """Owner as assignee while Agent ID gives it: refused (409), saying which column has
    it; once Agent ID is read as nothing, Owner takes it, as `--column` would."""
    app, client = ui
    await upload(client, owners(tmp_path))
    taken = await client.post("/mapping", params=q(), json={"column": "Owner", "field": "assignee"})
    assert taken.status_code == 409
    assert taken.json()["error"] == (
        "assignee is read from Agent ID already: choose (not read) for Agent ID first, or "
        "another field for Owner"
    )
    freed = await client.post("/mapping", params=q(), json={"column": "Agent ID", "field": ""})
    assert freed.status_code == 200
    given = await client.post("/mapping", params=q(), json={"column": "Owner", "field": "assignee"})
    assert given.status_code == 200
    assert "--column assignee=Owner" in await page_of(client)
    await run(app, client, "validate")
    assert app.job is not None
    assert app.job.view().result.counts == {"valid": 2}  # type: ignore[union-attr]


async def test_a_field_its_header_names_can_be_left_unread(
    ui: tuple[UiApp, httpx.AsyncClient], tmp_path: Path
) -> None:
    """Unmapping a field read by its header: the column is read as nothing (its bad ids
    are no problem) and copied to the results as it is."""
    app, client = ui
    await upload(client, owners(tmp_path))
    answer = await client.post("/mapping", params=q(), json={"field": "assignee", "header": ""})
    assert answer.status_code == 200
    page = await page_of(client)
    assert '<select id="field-assignee" data-action="mapping" data-field="assignee">' in page
    assert "--column assignee=" in page
    await run(app, client, "validate")
    result = app.job.view().result  # type: ignore[union-attr]
    assert result is not None
    assert result.counts == {"valid": 2}
    header = [c.value for c in openpyxl.load_workbook(result.out)["results"][1]]
    assert "Agent ID" in header


async def test_messages_about_the_file_are_in_the_page_s_words(
    ui: tuple[UiApp, httpx.AsyncClient], tmp_path: Path
) -> None:
    """A sheet lacking a column is told by its own name and pointed at the column mapping,
    never at an option or the folder the upload is stored in."""
    _, client = ui
    await upload(client, write_csv(tmp_path / "app.csv", ["Customer ID", "App"], [[1, 2]]))
    await client.post("/mapping", params=q(), json={"field": "application", "header": ""})
    page = await page_of(client)
    assert "app.csv: no application column" in page
    assert "choose one for application in the column mapping" in page
    assert "--column application=HEADER" not in page
    assert "uploads" not in page


async def test_the_summary_sheet_names_the_upload_as_it_was_chosen(
    ui: tuple[UiApp, httpx.AsyncClient],
) -> None:
    """The results' summary sheet names the input by the file's own name, not the path the
    page stored it under."""
    app, client = ui
    await upload(client, SAMPLE / "chats.csv")
    await run(app, client, "validate")
    result = app.job.view().result  # type: ignore[union-attr]
    assert result is not None
    summary = openpyxl.load_workbook(result.out)["summary"]
    assert (summary["A1"].value, summary["B1"].value) == ("input", "chats.csv")


async def test_a_file_with_odd_characters_in_its_name_is_named_as_it_was_chosen(
    ui: tuple[UiApp, httpx.AsyncClient],
) -> None:
    """ "we ird&name <x>.csv": the page and the summary sheet say that name (escaped on
    the page); the file is stored under a name made safe."""
    app, client = ui
    await upload(client, SAMPLE / "chats.csv", name="we ird&name <x>.csv")
    assert "we ird&amp;name &lt;x&gt;.csv" in await page_of(client)
    assert [p.name for p in (app.config.reports_dir / "uploads").rglob("*.csv")] == [
        "we ird_name _x_.csv"
    ]
    await run(app, client, "validate")
    result = app.job.view().result  # type: ignore[union-attr]
    assert result is not None
    summary = openpyxl.load_workbook(result.out)["summary"]
    assert summary["B1"].value == "we ird&name <x>.csv"


async def test_an_input_past_a_worksheet_has_its_results_as_csv(
    ui: tuple[UiApp, httpx.AsyncClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More rows than a worksheet holds (here made 10): the page chooses CSV by itself and
    says why, the results and their problems come from CSV; a workbook chosen anyway is
    refused in the page's words."""
    monkeypatch.setattr(preview_module, "WORKSHEET_ROWS", 10)
    monkeypatch.setattr(workbook_module, "WORKSHEET_ROWS", 10)
    app, client = ui
    rows = [[8738438 + n, 3838 if n else "abc"] for n in range(20)]
    await upload(client, write_csv(tmp_path / "big.csv", ["customer", "application"], rows))
    page = await page_of(client)
    assert '<option value="csv" selected>CSV</option>' in page
    assert "20 rows: more than a workbook sheet holds" in page
    await run(app, client, "validate")
    view = app.job.view()  # type: ignore[union-attr]
    assert view.result is not None
    assert view.result.out.suffix == ".csv"
    page = await page_of(client)
    assert "Problems: 1 row" in page
    assert "application: &#39;abc&#39;" in page

    assert (await client.post("/options", params=q(), json={"results": "xlsx"})).status_code == 200
    await run(app, client, "validate")
    failed = app.job.view()  # type: ignore[union-attr]
    assert failed.phase == "failed"
    assert failed.error is not None
    assert failed.error.endswith("choose CSV for Results file")
    assert "--out" not in failed.error


async def test_validate_says_how_far_its_writing_is(
    ui: tuple[UiApp, httpx.AsyncClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validate of 40,000 rows: the page hears the results written chunk by chunk, up to
    all of them, which its progress bar shows."""
    heard: list[tuple[int, int]] = []
    writing = JobProgress.writing

    def spy(progress: JobProgress, done: int, total: int) -> None:
        heard.append((done, total))
        writing(progress, done, total)

    monkeypatch.setattr(JobProgress, "writing", spy)
    app, client = ui
    rows = [[8738438 + n, 3838] for n in range(40_000)]
    await upload(client, write_csv(tmp_path / "many.csv", ["customer", "application"], rows))
    await run(app, client, "validate")
    assert heard == [(16_384, 40_000), (32_768, 40_000), (40_000, 40_000)]
    assert app.job.view().progress.written == (40_000, 40_000)  # type: ignore[union-attr]


async def test_the_plan_waits_with_what_it_knows(tmp_path: Path, sandbox: RunningSandbox) -> None:
    """Import of new customers' emails without Create customers: before Confirm the plan
    counts the customers matching no one, the file is locked, Confirm and Cancel stand
    under the plan; Cancel declines and nothing is created."""
    app = make_ui(tmp_path, base_url=sandbox.base_url, api_key=ApiKey(KEY))
    async with client_for(app) as client:
        await upload(client, SAMPLE / "migration.csv")
        assert (await client.post("/run", params=q(), json={"kind": "import"})).status_code == 200
        job = app.job
        assert job is not None
        await until_confirm(job)
        page = await page_of(client)
        cancelled = await client.post("/confirm", params=q(), json={"go_on": False})
        assert await anyio.to_thread.run_sync(job.join, RUN_TIMEOUT)
        after = await page_of(client)
    planned = job.view().planned
    assert planned is not None
    assert planned.unmatched == 4
    assert "4 customers matching no one; 6 rows left out for it" in page
    plan_at, confirm_at = page.index('aria-label="The plan"'), page.index(">Confirm</button>")
    assert plan_at < confirm_at < page.index(">Cancel</button>")
    assert 'aria-describedby="spreadsheet-hint" disabled>' in page
    assert cancelled.status_code == 200
    assert "Not confirmed: nothing was created." in after
    assert sandbox.state.chats == []


async def test_the_runs_are_listed_after_a_restart_with_their_results(tmp_path: Path) -> None:
    """A page started again in the same folder lists the runs of the one before, newest
    first, with their results to download while the file is there."""
    first = make_ui(tmp_path)
    async with client_for(first) as client:
        await upload(client, SAMPLE / "chats.csv")
        await run(first, client, "validate")
        await upload(client, SAMPLE / "transcripts.csv")
        await run(first, client, "validate")
    first_out = sorted((tmp_path / "reports").glob("chats-results-*.xlsx"))[0]
    written = first_out.read_bytes()
    again = make_ui(tmp_path)
    async with client_for(again) as client:
        page = await page_of(client)
        download = await client.get("/runs/1/results", params=q())
        first_out.unlink()
        gone = await client.get("/runs/1/results", params=q())
        later = await page_of(client)
    assert 'aria-label="Runs"' in page
    assert page.index("transcripts.csv") < page.index(">chats.csv<")
    assert "valid 9" in page
    assert [download.status_code, gone.status_code] == [200, 404]
    assert download.content == written
    assert 'href="/runs/1/results?token=' in page
    assert 'href="/runs/1/results?token=' not in later


async def test_a_run_whose_page_stopped_first_is_listed_as_not_finished(
    tmp_path: Path,
    gone_pid: int,  # noqa: F811
) -> None:
    """A run begun by a page that was killed before it ended (its process gone) is listed
    as not finished, not as running and not forgotten."""
    runs = PageRuns(journal_path(tmp_path / "reports"))
    runs.begin(kind="import", input_name="march.csv", api_root="", page=gone_pid)
    async with client_for(make_ui(tmp_path)) as client:
        page = await page_of(client)
    assert "march.csv" in page
    assert "not finished: its page stopped first" in page
