"""The page in a real browser (the system's Chromium, driven by Playwright) against the
sandbox over loopback: the whole path on the sample data, a refused key, Stop then resume,
a reload during a run, a migration closed again from its results workbook, and an update.
Elements are found as a person finds them, by role and name.

Each step leaves a screenshot under the test's tmp_path, to look at when one fails. Where
no Chromium exists the tests fail with one line saying how to install it: never skipped.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from bulk_chats.sandbox import (
    CUSTOMERS,
    DEPARTMENTS,
    RunningSandbox,
    SandboxConfig,
)
from bulk_chats.settings import ApiKey
from bulk_chats.ui import RunningUi, UiConfig, run_ui_in_thread

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
CHROMIUM_ENV = "BULK_CHATS_CHROMIUM"
INSTALLER = str(ROOT / ".ci" / "install-chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STEP_TIMEOUT = 20_000
"""Milliseconds any one browser step may take."""
FAST = 60_000
"""Requests a minute where pacing is not the point."""
SLOW = 240
"""Requests a minute for runs the test stops or reloads midway: four rows a second."""


def chromium_path() -> str:
    """The browser to drive; a one-line failure saying how to get one when there is none."""
    path = os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file() and CHROMIUM_ENV not in os.environ:
        # As .ci/run does: on a fresh machine, as root, the README's test command gets it.
        subprocess.run([INSTALLER], check=False, timeout=1900)
        path = shutil.which("chromium") or path
    if not Path(path).is_file():
        pytest.fail(
            f"no Chromium at {path}: install it (`apt-get install -y chromium`, as .ci/run "
            f"does) or set {CHROMIUM_ENV} to a Chromium binary",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module's tests."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: pip install -e '.[test]'", pytrace=False)
    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        yield launched
        launched.close()


@dataclass
class Shots:
    """Numbered screenshots of each step, under the test's tmp_path."""

    folder: Path
    taken: list[Path] = field(default_factory=list)

    def __call__(self, page: Any, name: str) -> None:
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=path, full_page=True)
        self.taken.append(path)


@pytest.fixture
def shots(tmp_path: Path) -> Shots:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    return Shots(folder)


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    """A sandbox with no rate limit that accepts only the key "right-key"."""
    return SandboxConfig(api_key="right-key", rate=None)


def serve(tmp_path: Path, sandbox: RunningSandbox, *, key: str | None) -> Any:
    config = UiConfig(
        base_url=sandbox.base_url,
        api_key=ApiKey(key) if key else None,
        sandbox=key is not None,
        reports_dir=tmp_path / "reports",
        rate=FAST,
    )
    return run_ui_in_thread(config)


@pytest.fixture
def ui(tmp_path: Path, sandbox: RunningSandbox) -> Iterator[RunningUi]:
    """The page against the sandbox, the key given by the server (as `ui --sandbox` does)."""
    with serve(tmp_path, sandbox, key="right-key") as running:
        yield running


@pytest.fixture
def page(browser: Any, ui: RunningUi) -> Iterator[Any]:
    """A fresh tab on the page."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(STEP_TIMEOUT)
    opened.goto(ui.url)
    yield opened
    context.close()


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator, message=None)


def summary_counts(page: Any) -> Counter[str]:
    """The Summary region's `<status> <count>` pairs (a count as the page writes it:
    `1,000`)."""
    text = page.get_by_role("status", name="Summary").inner_text()
    pairs = re.findall(r"([a-z_]+) (\d[\d,]*)", text)
    return Counter({s: int(n.replace(",", "")) for s, n in pairs})


def go_to(page: Any, step: str) -> None:
    """Open a step from the list of steps at the top of the page."""
    steps = page.get_by_role("navigation", name="Steps")
    steps.get_by_role("button", name=step, exact=True).click()
    expect(page.get_by_role("region", name=step, exact=True)).to_be_visible()


def rows_csv(path: Path, rows: int) -> Path:
    """`rows` valid rows, each a distinct chat of a seeded customer."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["Customer ID", "Application", "Agent ID"])
        for i in range(rows):
            customer = CUSTOMERS[i % len(CUSTOMERS)].id
            writer.writerow([customer, 3838, 4188 + i // len(CUSTOMERS)])
    return path


def start_run(page: Any, button: str = "Import", *, rate: int = FAST) -> None:
    """Open the Plan step, press `button` (Import, Update, Close chats) at `rate`, and
    Confirm the plan."""
    go_to(page, "Plan")
    page.get_by_label("Requests per minute", exact=True).fill(str(rate))
    page.get_by_role("button", name=button, exact=True).click()
    page.get_by_role("button", name="Confirm").click()


def download_results(page: Any, path: Path) -> list[dict[str, Any]]:
    """Save the run's results workbook at `path`; its rows, by header."""
    with page.expect_download() as download:
        page.get_by_role("link", name="Download results").click()
    download.value.save_as(path)
    book = openpyxl.load_workbook(path, read_only=True)
    header, *rows = book["results"].iter_rows(values_only=True)
    book.close()
    return [dict(zip(header, row, strict=True)) for row in rows]


def wait_for_rows(page: Any, at_least: int) -> int:
    """Wait until the progress bar shows at least `at_least` rows done; how many it shows."""
    bar = page.get_by_role("progressbar")
    page.wait_for_function(
        "n => Number(document.getElementById('progress')?.getAttribute('aria-valuenow')) >= n",
        arg=at_least,
        timeout=STEP_TIMEOUT,
    )
    return int(bar.get_attribute("aria-valuenow"))


def test_the_whole_path(
    page: Any, ui: RunningUi, sandbox: RunningSandbox, tmp_path: Path, shots: Shots
) -> None:
    """Upload the sample with an unrecognised header, fix its mapping, validate, dry run,
    import with the progress bar reaching the end, and read the downloaded workbook."""
    sheet = tmp_path / "chats.csv"
    sheet.write_text(
        (SAMPLE / "chats.csv").read_text(encoding="utf-8").replace("Agent ID", "Owner", 1),
        encoding="utf-8",
    )
    shots(page, "empty")
    page.get_by_label("Spreadsheet", exact=True).set_input_files(sheet)
    assignee = page.get_by_label("assignee", exact=True)
    expect(assignee).to_have_value("")
    shots(page, "uploaded")

    assignee.select_option("Owner")
    expect(page.get_by_text("--column assignee=Owner")).to_be_visible()
    expect(page.get_by_label("assignee", exact=True)).to_have_value("Owner")
    shots(page, "mapped")

    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Validate").click()
    summary = page.get_by_role("status", name="Summary")
    expect(summary).to_contain_text("valid 9")
    problems = page.get_by_role("table", name="Problems")
    expect(problems).to_contain_text("4,188")
    expect(problems).to_contain_text("remove the separator")
    assert summary_counts(page) == {"valid": 9, "invalid": 8, "duplicate": 1}
    shots(page, "validated")

    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Dry run").click()
    expect(page.get_by_text("dry run: 9 of 18 rows would be sent")).to_be_visible()
    expect(summary).to_contain_text("valid 9")
    assert sandbox.state.chats == []
    shots(page, "dry-run")

    page.get_by_role("button", name="Import").click()
    confirm = page.get_by_role("button", name="Confirm")
    expect(confirm).to_be_focused()
    expect(page.get_by_text("9 of 18 rows to send")).to_be_visible()
    shots(page, "plan")
    confirm.click()
    expect(summary).to_contain_text("created 8")
    bar = page.get_by_role("progressbar")
    expect(bar).to_have_attribute("aria-valuemax", "9")
    expect(bar).to_have_attribute("aria-valuenow", "9")
    assert summary_counts(page) == {"created": 8, "failed": 1, "invalid": 8, "duplicate": 1}
    refused = (
        page.get_by_role("table", name="Problems").get_by_role("row").filter(has_text="not found")
    )
    expect(refused.get_by_role("cell").first).to_have_text("18")
    expect(refused).to_contain_text("failed")
    shots(page, "imported")

    rows = download_results(page, tmp_path / "downloaded.xlsx")
    statuses = Counter(row["status"] for row in rows)
    assert statuses == {"created": 8, "failed": 1, "invalid": 8, "duplicate": 1}
    assert len(sandbox.state.chats) == 8


def test_a_wrong_key(browser: Any, sandbox: RunningSandbox, tmp_path: Path, shots: Shots) -> None:
    """A key typed into the page that the API refuses: the page says so and nothing is
    created. The workbook's sheet is offered in the Sheet picker."""
    with serve(tmp_path, sandbox, key=None) as running:
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.set_default_timeout(STEP_TIMEOUT)
        page.goto(running.url)
        page.get_by_label("Spreadsheet", exact=True).set_input_files(SAMPLE / "chats.xlsx")
        expect(page.get_by_role("region", name="Columns")).to_be_visible()
        go_to(page, "File")
        expect(page.get_by_label("Sheet", exact=True)).to_be_visible()
        page.get_by_label("API key", exact=True).fill("wrong-key")
        shots(page, "key-typed")
        go_to(page, "Plan")
        page.get_by_role("button", name="Import").click()
        expect(page.get_by_text("the API refused the key").first).to_be_visible()
        expect(page.get_by_role("status", name="Summary")).to_contain_text("not_sent 9")
        shots(page, "key-refused")
        context.close()
    assert sandbox.state.chats == []


def test_stop_in_the_middle_then_resume(
    page: Any, sandbox: RunningSandbox, tmp_path: Path, shots: Shots
) -> None:
    """Stop ends a run after the rows in flight, the rest not_sent; Import again sends only
    those, and every row has exactly one chat."""
    page.get_by_label("Spreadsheet", exact=True).set_input_files(
        rows_csv(tmp_path / "sixty.csv", 60)
    )
    start_run(page, rate=SLOW)
    wait_for_rows(page, 2)
    shots(page, "running")
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_text("Stopped.")).to_be_visible()
    first = summary_counts(page)
    shots(page, "stopped")
    bar = page.get_by_role("progressbar")
    expect(bar).to_have_attribute("aria-valuenow", str(first["created"]))
    expect(bar).to_have_attribute("aria-valuemax", "60")
    assert first["created"] >= 2
    assert first["not_sent"] >= 1
    assert first["created"] + first["not_sent"] == 60

    start_run(page)
    expect(page.get_by_role("status", name="Summary")).to_contain_text(
        f"created {first['not_sent']}"
    )
    assert summary_counts(page) == {
        "created": first["not_sent"],
        "already_created": first["created"],
    }
    shots(page, "resumed")
    chats = {(c.customer, c.assignee) for c in sandbox.state.chats}
    assert len(sandbox.state.chats) == len(chats) == 60


def test_a_reload_during_a_run(page: Any, tmp_path: Path, shots: Shots) -> None:
    """A reload in the middle of a run finds it still running and goes on following it."""
    page.get_by_label("Spreadsheet", exact=True).set_input_files(
        rows_csv(tmp_path / "sixty.csv", 60)
    )
    start_run(page, rate=SLOW)
    before = wait_for_rows(page, 1)
    page.reload()
    expect(page.get_by_text("Running…")).to_be_visible()
    expect(page.get_by_role("button", name="Stop")).to_be_enabled()
    wait_for_rows(page, before + 1)
    shots(page, "reloaded")
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_text("Stopped.")).to_be_visible()


def tab_to(page: Any, target: Any, *, presses: int = 80) -> None:
    """Press Tab until `target` has the keyboard (at most `presses` times)."""
    for _ in range(presses):
        if target.evaluate("element => element === document.activeElement"):
            return
        page.keyboard.press("Tab")
    expect(target).to_be_focused()


def test_the_keyboard_drives_the_guided_import(page: Any, shots: Shots) -> None:
    """From the file to the results with the keyboard alone: each step opens with the
    keyboard on its heading, Tab reaches Next and Enter takes it; Enter on Validate leaves
    the keyboard on the Summary; on the Plan step the options are reached with Tab and set
    with Space; Enter on Import never puts the keyboard on Cancel or Stop while the plan is
    coming, then on Confirm; Enter there, and when the run ends the keyboard is on its
    Summary, which a screen reader announces."""
    page.get_by_label("Spreadsheet", exact=True).set_input_files(SAMPLE / "chats.csv")
    expect(page.get_by_role("heading", name="Check the columns")).to_be_focused()
    tab_to(page, page.get_by_role("button", name="Next"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Check every row")).to_be_focused()
    validate = page.get_by_role("button", name="Validate")
    tab_to(page, validate)
    page.keyboard.press("Enter")
    summary = page.get_by_role("status", name="Summary")
    expect(summary).to_contain_text("valid 9")
    expect(summary).to_be_focused()
    shots(page, "validated")

    tab_to(page, page.get_by_role("button", name="Next"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Plan, then send")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Requests per minute", exact=True)).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Chat status", exact=True)).to_be_focused()
    page.keyboard.press("Tab")
    create = page.get_by_label("Create customers", exact=True)
    expect(create).to_be_focused()
    page.keyboard.press("Space")
    expect(create).to_be_checked()
    page.keyboard.press("Tab")
    expect(page.get_by_label("No time prefix", exact=True)).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Dry run")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Import")).to_be_focused()
    page.evaluate(
        """() => {
            window.focused = [];
            document.addEventListener("focusin", e => window.focused.push(e.target.id));
        }"""
    )
    page.keyboard.press("Enter")
    confirm = page.get_by_role("button", name="Confirm")
    expect(confirm).to_be_focused()
    landed = page.evaluate("() => window.focused")
    assert "cancel" not in landed
    assert "stop" not in landed
    shots(page, "plan")
    page.keyboard.press("Enter")
    expect(summary).to_contain_text("created 8")
    expect(summary).to_be_focused()
    shots(page, "keyboard")


def test_a_migration_closed_again_from_its_results(
    page: Any, sandbox: RunningSandbox, tmp_path: Path, shots: Shots
) -> None:
    """Import the migration sample with Create customers and Chat status closed, then
    upload the downloaded results workbook and Close chats: every chat the import made
    ends closed, and the Summary counts each row updated or already_updated."""
    page.get_by_label("Spreadsheet", exact=True).set_input_files(SAMPLE / "migration.csv")
    expect(page.get_by_role("region", name="Columns")).to_be_visible()
    go_to(page, "Plan")
    page.get_by_label("Create customers", exact=True).check()
    page.get_by_label("Chat status", exact=True).select_option("closed")
    shots(page, "migration-options")
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.get_by_text("4 new customers")).to_be_visible()
    shots(page, "migration-plan")
    page.get_by_role("button", name="Confirm").click()
    summary = page.get_by_role("status", name="Summary")
    expect(summary).to_contain_text("created 10")
    assert len(sandbox.state.created_customers) == 4
    statuses = Counter(chat.status for chat in sandbox.state.chats)
    assert statuses == {"closed": 8, "pending": 1, "opened": 1}
    shots(page, "migration-imported")

    results = tmp_path / "migration-results.xlsx"
    created = {row["chat_id"] for row in download_results(page, results)}
    go_to(page, "File")
    page.get_by_label("Spreadsheet", exact=True).set_input_files(results)
    expect(page.get_by_label("chat_id", exact=True)).to_have_value("chat_id")
    shots(page, "results-uploaded")
    go_to(page, "Plan")
    page.get_by_role("button", name="Close chats").click()
    # The journal knows the import set 8 of them closed already.
    expect(page.get_by_text("2 of 10 rows to send")).to_be_visible()
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Done.", exact=True)).to_be_visible()
    counts = summary_counts(page)
    assert counts == {"updated": 2, "already_updated": 8}
    expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "2")
    shots(page, "closed")
    assert {chat.id for chat in sandbox.state.chats} == created
    assert {chat.status for chat in sandbox.state.chats} == {"closed"}


def test_an_update_changes_status_and_department(
    page: Any, sandbox: RunningSandbox, tmp_path: Path, shots: Shots
) -> None:
    """Update on a sheet of chat ids: a chat's status and department change, a chat the
    API does not have shows in the Problems table as failed."""
    support, sales = DEPARTMENTS[0], DEPARTMENTS[1]
    chats = [
        sandbox.state.add_chat(
            customer=customer, application=3838, assignee=None, department=support, payload={}
        )
        for customer in CUSTOMERS[:2]
    ]
    sheet = tmp_path / "changes.csv"
    with sheet.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["Chat ID", "Department name", "Chat status"])
        writer.writerow([chats[0].id, sales.name, "pending"])
        writer.writerow([chats[1].id, "", "closed"])
        writer.writerow([999_999, "", "closed"])
    page.get_by_label("Spreadsheet", exact=True).set_input_files(sheet)
    expect(page.get_by_text("Update and Close chats can use this sheet")).to_be_visible()
    expect(page.get_by_label("chat_id", exact=True)).to_have_value("Chat ID")
    shots(page, "update-uploaded")
    start_run(page, "Update")
    summary = page.get_by_role("status", name="Summary")
    expect(summary).to_contain_text("updated 2")
    assert summary_counts(page) == {"updated": 2, "failed": 1}
    missing = (
        page.get_by_role("table", name="Problems").get_by_role("row").filter(has_text="failed")
    )
    expect(missing.get_by_role("cell")).to_have_text(
        ["4", "failed", "chat_id", "999999", re.compile(r"\w")]
    )
    shots(page, "updated")
    assert (chats[0].department, chats[0].status) == (sales, "pending")
    assert (chats[1].department, chats[1].status) == (support, "closed")


def test_the_small_things(browser: Any, ui: RunningUi) -> None:
    """Loading the page logs no console error (the icon a browser asks for answers), the
    rate field shows its whole placeholder, and the checkbox is at least 24 px square."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT)
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(ui.url)
    expect(page.get_by_label("Spreadsheet", exact=True)).to_be_visible()
    page.get_by_label("Spreadsheet", exact=True).set_input_files(SAMPLE / "chats.csv")
    expect(page.get_by_role("region", name="Columns")).to_be_visible()
    go_to(page, "Plan")
    root = ui.url.partition("/?token=")[0]
    icon = context.request.get(f"{root}/favicon.ico")
    assert (icon.status, icon.headers["content-type"]) == (200, "image/x-icon")
    rate = page.get_by_label("Requests per minute", exact=True)
    text_width, room = rate.evaluate(
        """field => {
            const style = getComputedStyle(field);
            const context = document.createElement("canvas").getContext("2d");
            context.font = style.font;
            const room = field.clientWidth - parseFloat(style.paddingLeft)
                - parseFloat(style.paddingRight);
            return [context.measureText(field.placeholder).width, room];
        }"""
    )
    assert text_width > 100  # the placeholder is measured, not blank
    assert text_width + 20 <= room  # and a spin button beside it still leaves it whole
    box = page.get_by_label("Create customers", exact=True).bounding_box()
    assert box is not None
    assert min(box["width"], box["height"]) >= 24
    assert errors == []
    context.close()


def test_a_transcript_with_no_time_prefix(
    page: Any, sandbox: RunningSandbox, tmp_path: Path, shots: Shots
) -> None:
    """The transcripts sample: validated, then imported with "No time prefix" ticked, the
    plan counting conversations and messages, the progress bar reaching the last message,
    every chat holding its messages in order, as the sheet wrote them."""
    page.get_by_label("Spreadsheet", exact=True).set_input_files(SAMPLE / "transcripts.csv")
    expect(page.get_by_label("conversation", exact=True)).to_have_value("Ticket ID")
    go_to(page, "Check")
    page.get_by_role("button", name="Validate").click()
    expect(page.get_by_role("status", name="Summary")).to_contain_text("valid 10")
    expect(page.get_by_role("table", name="Problems")).to_contain_text("disagrees")
    shots(page, "validated")

    go_to(page, "Plan")
    page.get_by_label("No time prefix", exact=True).check()
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.get_by_text("3 conversations, 3 chats, 10 messages")).to_be_visible()
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("status", name="Summary")).to_contain_text("created 10")
    bar = page.get_by_role("progressbar")
    expect(bar).to_have_attribute("aria-valuenow", "10")
    expect(page.get_by_text("3 of 3 conversations")).to_be_visible()
    shots(page, "imported")

    by_chat = {chat.id: [m.text for m in chat.messages] for chat in sandbox.state.chats}
    assert len(by_chat) == 3
    assert ["Hello?", "Hello?", "Hi, sorry for the wait! How can I help?"] in by_chat.values()
    assert not any(text.startswith("[") for texts in by_chat.values() for text in texts)
