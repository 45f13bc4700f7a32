"""The page's server at the HTTP level (httpx against the ASGI app): the token and `Host`
checks, uploads (where they land, their permissions, their size cap), escaping of sheet
values, the API key never in an answer or a file, the run registry's rules, and Update,
Close chats and the import options against the sandbox."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest

from bulk_chats.journal.journal import Journal, journal_path, scope_for
from bulk_chats.sandbox import CUSTOMERS, DEPARTMENTS, RunningSandbox, SandboxConfig
from bulk_chats.sandbox.state import Chat
from bulk_chats.settings import ApiKey
from bulk_chats.ui import UiApp
from bulk_chats.ui.jobs import JOB_KINDS, Job, JobView
from tests.sheets import write_csv
from tests.ui.pages import PORT, TOKEN, UPLOAD_HEADERS, client_for, make_ui, q, upload

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data" / "chats.csv"
KEY = "sk-live-5f3a9c2e-never-shown"
RUN_TIMEOUT = 60.0


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    """A sandbox that accepts only `KEY`, with no rate limit."""
    return SandboxConfig(api_key=KEY, rate=None)


async def run(app: UiApp, client: httpx.AsyncClient, kind: str, **body: object) -> None:
    """Start a run and wait for it to end."""
    answer = await client.post("/run", params=q(), json={"kind": kind, **body})
    assert answer.status_code == 200, answer.text
    job = app.job
    assert job is not None
    assert await anyio.to_thread.run_sync(job.join, RUN_TIMEOUT)


async def until_confirm(job: Job) -> None:
    """Wait until `job` shows its plan and waits for Confirm."""
    with anyio.fail_after(RUN_TIMEOUT):
        while job.view().phase != "confirm":
            await anyio.sleep(0.01)


async def run_confirmed(
    app: UiApp, client: httpx.AsyncClient, kind: str, *, go_on: bool = True, **body: object
) -> JobView:
    """Start a run, answer its plan with Confirm (or decline it), wait for it to end."""
    answer = await client.post("/run", params=q(), json={"kind": kind, **body})
    assert answer.status_code == 200, answer.text
    job = app.job
    assert job is not None
    await until_confirm(job)
    assert (await client.post("/confirm", params=q(), json={"go_on": go_on})).status_code == 200
    assert await anyio.to_thread.run_sync(job.join, RUN_TIMEOUT)
    return job.view()


def add_chats(sandbox: RunningSandbox, count: int) -> list[Chat]:
    """`count` chats in the sandbox, in the Support department, as if made earlier."""
    return [
        sandbox.state.add_chat(
            customer=CUSTOMERS[n],
            application=3838,
            assignee=None,
            department=DEPARTMENTS[0],
            payload={},
        )
        for n in range(count)
    ]


async def test_every_request_needs_the_token(ui: tuple[UiApp, httpx.AsyncClient]) -> None:
    """Without the token, or with a wrong one, every path answers 403; with it, 200."""
    _, client = ui
    for path in ("/", "/static/page.js", "/status.css", "/events", "/download/1"):
        assert (await client.get(path)).status_code == 403, path
        assert (await client.get(path, params={"token": "wrong"})).status_code == 403, path
    refused = await client.post("/run", json={"kind": "validate"})
    assert refused.status_code == 403
    assert TOKEN not in refused.text
    assert (await client.get("/", params=q())).status_code == 200
    assert (await client.get("/static/page.js", params=q())).status_code == 200


@pytest.mark.parametrize(
    "host",
    ["evil.example", f"evil.example:{PORT}", "127.0.0.1:9999", f"127.0.0.2:{PORT}", "127.0.0.1"],
)
async def test_a_foreign_host_is_refused(ui: tuple[UiApp, httpx.AsyncClient], host: str) -> None:
    """A `Host` other than the loopback address and port is refused even with the token
    (DNS rebinding)."""
    _, client = ui
    answer = await client.get("/", params=q(), headers={"host": host})
    assert answer.status_code == 403
    assert "loopback" in answer.text


async def test_localhost_is_the_loopback_address_too(ui: tuple[UiApp, httpx.AsyncClient]) -> None:
    """`localhost:PORT` is accepted as well as `127.0.0.1:PORT`."""
    _, client = ui
    answer = await client.get("/", params=q(), headers={"host": f"localhost:{PORT}"})
    assert answer.status_code == 200


async def test_answers_carry_the_security_headers(ui: tuple[UiApp, httpx.AsyncClient]) -> None:
    """Pages forbid scripts from elsewhere, framing and referrers (the token is in the URL)."""
    _, client = ui
    for answer in (await client.get("/", params=q()), await client.get("/")):
        assert "default-src 'self'" in answer.headers["content-security-policy"]
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-content-type-options"] == "nosniff"


@pytest.mark.usefixtures("open_umask")
async def test_an_upload_lands_owner_only_under_reports(
    ui: tuple[UiApp, httpx.AsyncClient], tmp_path: Path
) -> None:
    """The uploaded file is stored under reports/uploads, as sent, 0600 in 0700 folders
    (reports/ and uploads/ included) whatever the umask."""
    _, client = ui
    assert (await upload(client, SAMPLE)).status_code == 200
    [stored] = (tmp_path / "reports" / "uploads").glob("*/chats.csv")
    assert stored.read_bytes() == SAMPLE.read_bytes()
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    folders = [stored.parent, stored.parent.parent, tmp_path / "reports"]
    assert [stat.S_IMODE(f.stat().st_mode) for f in folders] == [0o700] * 3


async def test_an_upload_over_the_cap_is_refused_and_not_kept(tmp_path: Path) -> None:
    """A body over the cap answers 413 and leaves no file, whether its length is declared
    or only found while reading it."""
    app = make_ui(tmp_path, max_upload_bytes=1000)
    async with client_for(app) as client:
        declared = await upload(client, SAMPLE.parent / "chats.xlsx")
        assert declared.status_code == 413
        assert "larger than" in declared.json()["error"]

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(5):
                yield b"x" * 400

        streamed = await client.post(
            "/upload", params=q(name="big.csv"), content=chunks(), headers=UPLOAD_HEADERS
        )
        assert streamed.status_code == 413
    assert not [p for p in (tmp_path / "reports").rglob("*") if p.is_file()]


@pytest.mark.parametrize("name", ["notes.exe", "chats", "../../etc/passwd"])
async def test_an_upload_that_is_not_a_spreadsheet_is_refused(
    ui: tuple[UiApp, httpx.AsyncClient], tmp_path: Path, name: str
) -> None:
    """A name without a spreadsheet suffix is refused (400) and nothing is written."""
    _, client = ui
    answer = await upload(client, SAMPLE, name=name)
    assert answer.status_code == 400
    assert "not a spreadsheet" in answer.json()["error"]
    assert not (tmp_path / "reports").exists()


async def test_a_path_in_the_name_stays_inside_reports(
    ui: tuple[UiApp, httpx.AsyncClient], tmp_path: Path
) -> None:
    """A name with folders in it keeps only its last part, inside the uploads folder."""
    _, client = ui
    assert (await upload(client, SAMPLE, name="../../../outside.csv")).status_code == 200
    assert not (tmp_path / "outside.csv").exists()
    assert list((tmp_path / "reports" / "uploads").glob("*/outside.csv"))


async def test_sheet_values_are_escaped(
    ui: tuple[UiApp, httpx.AsyncClient], tmp_path: Path
) -> None:
    """A header and a cell holding `<script>` are shown as text in the mapping and in the
    Problems table, never as markup."""
    app, client = ui
    sheet = tmp_path / "hostile.csv"
    sheet.write_text(
        "customer,application,<script>alert('head')</script>\n"
        "<script>alert('cell')</script>,3838,x\n",
        encoding="utf-8",
    )
    assert (await upload(client, sheet)).status_code == 200
    await run(app, client, "validate")
    page = (await client.get("/", params=q())).text
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#39;head&#39;)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(&#39;cell&#39;)&lt;/script&gt;" in page
    assert 'aria-label="Problems"' in page


async def test_a_mapping_change_is_a_column_option(
    ui: tuple[UiApp, httpx.AsyncClient], tmp_path: Path
) -> None:
    """Choosing a header for a field reads the sheet as `--column FIELD=HEADER` does, and
    the page shows that option."""
    _app, client = ui
    sheet = tmp_path / "owner.csv"
    sheet.write_text("Customer ID,Application,Owner\n8738438,3838,4188\n", encoding="utf-8")
    assert (await upload(client, sheet)).status_code == 200
    answer = await client.post(
        "/mapping", params=q(), json={"field": "assignee", "header": "Owner"}
    )
    assert answer.status_code == 200
    page = (await client.get("/", params=q())).text
    assert "--column assignee=Owner" in page
    assert '<option value="Owner" selected>' in page


async def test_a_missing_required_column_still_offers_the_headers(
    ui: tuple[UiApp, httpx.AsyncClient], tmp_path: Path
) -> None:
    """A sheet without an application column shows the loader's message and its headers,
    and mapping one makes it usable."""
    app, client = ui
    sheet = tmp_path / "app-code.csv"
    sheet.write_text("Customer ID,App code\n8738438,3838\n", encoding="utf-8")
    assert (await upload(client, sheet)).status_code == 200
    page = (await client.get("/", params=q())).text
    assert "app-code.csv: no application column" in page
    assert '<option value="App code">' in page
    await client.post("/mapping", params=q(), json={"field": "application", "header": "App code"})
    await run(app, client, "validate")
    view = app.job.view() if app.job else None
    assert view is not None
    assert view.result is not None
    assert view.result.counts == {"valid": 1}


async def test_the_key_is_in_no_answer_and_no_file(tmp_path: Path, sandbox: RunningSandbox) -> None:
    """A key typed into the page reaches the API but no response, event stream, results
    workbook or journal."""
    app = make_ui(tmp_path, base_url=sandbox.base_url)
    async with client_for(app) as client:
        assert (await upload(client, SAMPLE)).status_code == 200
        await run(app, client, "dry_run", api_key=KEY)
        assert app.job is not None
        answers = [
            await client.get("/", params=q()),
            await client.get("/events", params=q()),
            await client.get(f"/download/{app.job.id}", params=q()),
        ]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert "would be sent" in answers[0].text  # the run did reach the API with the key
    for answer in answers:
        assert KEY.encode() not in answer.content
    for path in (tmp_path / "reports").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


async def test_a_refused_key_says_so_and_creates_nothing(
    tmp_path: Path, sandbox: RunningSandbox
) -> None:
    """A wrong key: the page says "the API refused the key" and no chat exists."""
    app = make_ui(tmp_path, base_url=sandbox.base_url)
    async with client_for(app) as client:
        await upload(client, SAMPLE)
        await run(app, client, "import", api_key="not-the-key")
        page = (await client.get("/", params=q())).text
    assert "the API refused the key" in page
    assert "not_sent 9" in page
    assert sandbox.state.chats == []


async def test_a_run_that_needs_the_key_is_not_started_without_one(
    ui: tuple[UiApp, httpx.AsyncClient],
) -> None:
    """Dry run, Import, Update and Close chats with no key given anywhere answer 400 and
    start nothing."""
    app, client = ui
    await upload(client, SAMPLE)
    for kind in ("dry_run", "import", "update", "close"):
        answer = await client.post("/run", params=q(), json={"kind": kind})
        assert answer.status_code == 400
        assert "API key" in answer.json()["error"]
    assert app.job is None


async def test_one_run_at_a_time_and_stop_declines_the_plan(
    tmp_path: Path, sandbox: RunningSandbox
) -> None:
    """While an import waits for Confirm, a second run, an upload and a mapping change are
    refused (409); Stop then declines it and nothing is created."""
    app = make_ui(tmp_path, base_url=sandbox.base_url, api_key=ApiKey(KEY))
    async with client_for(app) as client:
        await upload(client, SAMPLE)
        assert (await client.post("/run", params=q(), json={"kind": "import"})).status_code == 200
        job = app.job
        assert job is not None
        await until_confirm(job)
        assert "9 of 18 rows to send" in (job.view().plan or "")
        again = await client.post("/run", params=q(), json={"kind": "validate"})
        assert again.status_code == 409
        assert (await upload(client, SAMPLE)).status_code == 409
        assert (await client.post("/stop", params=q(), json={})).status_code == 200
        assert await anyio.to_thread.run_sync(job.join, RUN_TIMEOUT)
    result = job.view().result
    assert result is not None
    assert result.declined
    assert sandbox.state.chats == []


async def test_confirm_pressed_twice_is_one_confirm(
    tmp_path: Path, sandbox: RunningSandbox
) -> None:
    """A second Confirm of the run just confirmed (a double click) is answered as the
    first was, not with "nothing waits for confirmation"; a Cancel then still is refused,
    since nothing waits for it."""
    app = make_ui(tmp_path, base_url=sandbox.base_url, api_key=ApiKey(KEY))
    async with client_for(app) as client:
        await upload(client, SAMPLE)
        view = await run_confirmed(app, client, "import")
        assert view.result is not None
        again = await client.post("/confirm", params=q(), json={"go_on": True})
        assert again.status_code == 200, again.text
        cancel = await client.post("/confirm", params=q(), json={"go_on": False})
        assert cancel.status_code == 409
    assert len(sandbox.state.chats) == 8


async def test_the_registry_names_the_buttons() -> None:
    """Each run kind's label is a button name PRODUCT.md gives the page."""
    assert [k.label for k in JOB_KINDS.values()] == [
        "Validate",
        "Dry run",
        "Import",
        "Update",
        "Close chats",
    ]


async def test_a_sheet_of_chat_ids_is_offered_to_update_and_close(
    ui: tuple[UiApp, httpx.AsyncClient], tmp_path: Path
) -> None:
    """A sheet with a chat_id column but no customer is not shown as broken: the page says
    Update and Close chats can use it and maps chat_id; a sheet with neither is a problem."""
    _app, client = ui
    changes = write_csv(tmp_path / "changes.csv", ["Chat ID", "Department name"], [[1, "Sales"]])
    assert (await upload(client, changes)).status_code == 200
    page = (await client.get("/", params=q())).text
    assert "Update and Close chats can use this sheet as it is" in page
    assert "changes.csv: no application column" in page
    assert '<option value="Chat ID" selected>' in page
    assert 'class="problem-line"' not in page

    neither = write_csv(tmp_path / "neither.csv", ["Department name"], [["Sales"]])
    assert (await upload(client, neither)).status_code == 200
    page = (await client.get("/", params=q())).text
    assert "Update and Close chats can use" not in page
    assert '<p class="problem-line">neither.csv: no application column' in page


async def test_the_import_options_reach_the_run(tmp_path: Path, sandbox: RunningSandbox) -> None:
    """Create customers makes the customer an email names, and Chat status (any case)
    fills a blank chat_status cell, as `--create-customers --chat-status` do."""
    app = make_ui(tmp_path, base_url=sandbox.base_url, api_key=ApiKey(KEY))
    sheet = write_csv(
        tmp_path / "migration.csv",
        ["customer_email", "customer_name", "application", "message", "chat_status"],
        [
            ["new.person@example.com", "New Person", 3838, "Migrated.", ""],
            ["new.person@example.com", "New Person", 3838, "Migrated too.", "pending"],
        ],
    )
    async with client_for(app) as client:
        await upload(client, sheet)
        view = await run_confirmed(
            app, client, "import", create_customers=True, chat_status="Closed"
        )
    assert view.result is not None
    assert view.result.counts == {"created": 2}
    [customer] = sandbox.state.created_customers
    assert (customer.email, customer.name) == ("new.person@example.com", "New Person")
    assert [chat.status for chat in sandbox.state.chats] == ["closed", "pending"]


@pytest.mark.parametrize("no_prefix", [False, True], ids=["prefix", "no-prefix"])
async def test_a_transcript_is_imported_with_or_without_its_time_prefix(
    tmp_path: Path, sandbox: RunningSandbox, no_prefix: bool
) -> None:
    """A transcript uploaded: one chat, its messages in order, the progress counting its
    conversations; "No time prefix" sends the text as it is."""
    app = make_ui(tmp_path, base_url=sandbox.base_url, api_key=ApiKey(KEY))
    sheet = write_csv(
        tmp_path / "talk.csv",
        ["ticket", "customer", "application", "sent_at", "message"],
        [
            ["T-1", 8738438, 3838, "2023-04-01 10:05", "second"],
            ["T-1", "", "", "2023-04-01 10:00", "first"],
        ],
    )
    async with client_for(app) as client:
        await upload(client, sheet)
        view = await run_confirmed(app, client, "import", no_time_prefix=no_prefix)
        page = (await client.get("/", params=q())).text
    assert view.result is not None
    assert view.result.counts == {"created": 2}
    assert view.progress.conversations == (1, 1)
    assert "1 of 1 conversation · 2 of 2 messages" in page
    expected = ["first", "second"]
    if not no_prefix:
        expected = ["[2023-04-01 10:00] first", "[2023-04-01 10:05] second"]
    assert [m.text for m in sandbox.state.messages] == expected


async def test_a_chat_status_that_is_none_is_refused(ui: tuple[UiApp, httpx.AsyncClient]) -> None:
    """A Chat status the API does not know answers 400 naming the ones it does."""
    app, client = ui
    await upload(client, SAMPLE)
    answer = await client.post("/run", params=q(), json={"kind": "validate", "chat_status": "done"})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert "chat status: 'done' is not a chat status; use one of new, opened" in error
    assert app.job is None


async def test_update_changes_the_chats(tmp_path: Path, sandbox: RunningSandbox) -> None:
    """Update sets a chat's department and, with Chat status, the status of the rows whose
    cell is blank; the Summary counts them updated."""
    app = make_ui(tmp_path, base_url=sandbox.base_url, api_key=ApiKey(KEY))
    first, second = add_chats(sandbox, 2)
    sheet = write_csv(
        tmp_path / "changes.csv",
        ["chat_id", "department_name", "chat_status"],
        [[first.id, DEPARTMENTS[1].name, ""], [second.id, "", "pending"]],
    )
    async with client_for(app) as client:
        await upload(client, sheet)
        view = await run_confirmed(app, client, "update", chat_status="on hold")
        page = (await client.get("/", params=q())).text
    assert view.result is not None
    assert view.result.counts == {"updated": 2}
    assert (first.department, first.status) == (DEPARTMENTS[1], "on hold")
    assert (second.department, second.status) == (DEPARTMENTS[0], "pending")
    assert "updated 2" in page
    assert 'aria-label="Problems"' not in page


async def test_close_chats_skips_rows_without_a_chat(
    tmp_path: Path, sandbox: RunningSandbox
) -> None:
    """Close chats closes the chats the sheet names and nothing else; a row without a
    chat_id is skipped, which is not a problem to fix."""
    app = make_ui(tmp_path, base_url=sandbox.base_url, api_key=ApiKey(KEY))
    first, second = add_chats(sandbox, 2)
    sheet = write_csv(
        tmp_path / "close.csv", ["chat_id", "chat_status"], [[first.id, "pending"], ["", "pending"]]
    )
    async with client_for(app) as client:
        await upload(client, sheet)
        view = await run_confirmed(app, client, "close")
        page = (await client.get("/", params=q())).text
    assert view.result is not None
    assert view.result.counts == {"updated": 1, "skipped": 1}
    assert (first.status, second.status) == ("closed", "empty")
    assert "Close chats: close.csv" in page
    assert 'aria-label="Problems"' not in page


async def test_a_declined_update_changes_nothing(tmp_path: Path, sandbox: RunningSandbox) -> None:
    """An Update whose plan is not confirmed sends no change, and the page says so."""
    app = make_ui(tmp_path, base_url=sandbox.base_url, api_key=ApiKey(KEY))
    [chat] = add_chats(sandbox, 1)
    sheet = write_csv(tmp_path / "changes.csv", ["chat_id", "chat_status"], [[chat.id, "closed"]])
    async with client_for(app) as client:
        await upload(client, sheet)
        view = await run_confirmed(app, client, "update", go_on=False)
        page = (await client.get("/", params=q())).text
    assert view.result is not None
    assert view.result.declined
    assert "Not confirmed: nothing was changed." in page
    assert sandbox.state.changes == []


async def test_a_run_without_a_typed_rate_starts_at_the_learned_limit(
    tmp_path: Path, sandbox: RunningSandbox
) -> None:
    """The page's rate field left blank is `--rate` left out: the run starts at the limit an
    earlier run learned for this API root; a typed rate wins, as on the command line."""
    app = make_ui(tmp_path, base_url=sandbox.base_url, rate=None)
    scope = scope_for(sandbox.base_url)
    with Journal.open(journal_path(tmp_path / "reports"), scope=scope) as journal:
        journal.limits.remember(600.0)
    async with client_for(app) as client:
        assert (await upload(client, SAMPLE)).status_code == 200
        rates = []
        for typed in ("", "900"):
            await run(app, client, "dry_run", api_key=KEY, rate=typed)
            result = app.job.view().result  # type: ignore[union-attr]
            assert result is not None
            assert result.plan is not None
            rates.append(result.plan.rate)
    assert rates == [600.0, 900.0]
