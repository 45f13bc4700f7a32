"""The guided import in a real browser against the sandbox over loopback, step by step:
the columns with their values (a field another column gives refused out loud, Back and
Next), the plan that says what it knows before Confirm, the run with its counts and its
file locked, a second tab that follows a run and stops it, and the list of runs across a
restart of the page. Elements are found as a person finds them, by role and name."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import openpyxl

from bulk_chats.sandbox import CUSTOMERS, RunningSandbox
from bulk_chats.ui import RunningUi
from tests.ui.test_browser import (  # noqa: F401 - fixtures used by name
    SAMPLE,
    SLOW,
    STEP_TIMEOUT,
    Shots,
    browser,
    expect,
    go_to,
    page,
    rows_csv,
    sandbox_config,
    serve,
    shots,
    start_run,
    summary_counts,
    ui,
    wait_for_rows,
)


def open_tab(browser: Any, url: str, **options: Any) -> Any:  # noqa: F811
    """A fresh tab on `url` at 1200×900 in a context of its own."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, **options)
    tab = context.new_page()
    tab.set_default_timeout(STEP_TIMEOUT)
    tab.goto(url)
    return tab


def test_the_columns_step(page: Any, tmp_path: Path, shots: Shots) -> None:  # noqa: F811
    """The file's columns with their first values and the field each is read as; Owner
    as assignee is refused while Agent ID gives it, said in the alert and left as it was;
    Agent ID read as nothing frees it; the preview shows the rows as they will be read;
    Back goes to the file and Next returns."""
    sheet = tmp_path / "owners.csv"
    with sheet.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["Customer ID", "Application", "Agent ID", "Owner"])
        writer.writerows([[CUSTOMERS[n].id, 3838, "?", 4188 + n] for n in range(3)])
    page.get_by_label("Spreadsheet", exact=True).set_input_files(sheet)
    columns = page.get_by_role("table", name="Columns")
    expect(columns).to_be_visible()
    expect(columns.get_by_role("row").filter(has_text="Owner")).to_contain_text("4188")
    owner = page.get_by_label("Read Owner as", exact=True)
    expect(owner).to_have_value("")
    owner.select_option("assignee")
    alert = page.get_by_role("alert")
    expect(alert).to_have_text(
        "assignee is read from Agent ID already: choose (not read) for Agent ID first, or "
        "another field for Owner"
    )
    expect(page.get_by_label("Read Owner as", exact=True)).to_have_value("")
    expect(page.get_by_label("assignee", exact=True)).to_have_value("Agent ID")
    shots(page, "refused")

    page.get_by_label("Read Agent ID as", exact=True).select_option("")
    expect(page.get_by_label("assignee", exact=True)).to_have_value("")
    page.get_by_label("Read Owner as", exact=True).select_option("assignee")
    expect(page.get_by_label("assignee", exact=True)).to_have_value("Owner")
    expect(alert).to_be_hidden()
    preview = page.get_by_role("table", name="Preview")
    expect(preview.get_by_role("row").nth(1)).to_contain_text("4188")
    expect(preview.get_by_role("columnheader").last).to_contain_text("Owner")
    shots(page, "mapped")

    page.get_by_role("button", name="Back").click()
    expect(page.get_by_role("region", name="File")).to_be_visible()
    expect(page.get_by_role("heading", name="Choose the file")).to_be_focused()
    expect(page.get_by_text("owners.csv · 3 data rows · 4 columns")).to_be_visible()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("region", name="Columns")).to_be_visible()
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Validate").click()
    expect(page.get_by_role("status", name="Summary")).to_contain_text("valid 3")


def test_the_plan_says_what_it_knows_before_confirm(
    page: Any,  # noqa: F811
    sandbox: RunningSandbox,
    tmp_path: Path,
    shots: Shots,  # noqa: F811
) -> None:
    """The customers matching no one are counted before Confirm, without Create customers
    and with it; Confirm stands under the plan and Cancel declines; a row sent with a
    warning is listed with it."""
    page.get_by_label("Spreadsheet", exact=True).set_input_files(SAMPLE / "migration.csv")
    go_to(page, "Plan")
    page.get_by_role("button", name="Import", exact=True).click()
    plan = page.get_by_label("The plan", exact=True)
    expect(plan).to_contain_text("4 customers matching no one; 6 rows left out for it")
    confirm = page.get_by_role("button", name="Confirm")
    expect(confirm).to_be_focused()
    # Confirm comes after the plan, and so does Cancel: the way out, under what it declines.
    under = plan.locator("xpath=following::button[normalize-space()='Confirm']")
    expect(under).to_be_visible()
    expect(under.locator("xpath=following::button[1]")).to_have_text("Cancel")
    shots(page, "unmatched")
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_text("Not confirmed: nothing was created.")).to_be_visible()

    page.get_by_label("Create customers", exact=True).check()
    page.get_by_role("button", name="Import", exact=True).click()
    expect(plan).to_contain_text("4 customers to create")
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_text("Not confirmed: nothing was created.")).to_be_visible()
    assert sandbox.state.chats == sandbox.state.created_customers == []

    sheet = tmp_path / "warned.csv"
    sheet.write_text(
        "customer,application,assignee,department\n"
        f"{CUSTOMERS[0].id},3838,4188,233048\n{CUSTOMERS[1].id},3838,4192,233048\n",
        encoding="utf-8",
    )
    go_to(page, "File")
    page.get_by_label("Spreadsheet", exact=True).set_input_files(sheet)
    go_to(page, "Plan")
    page.get_by_role("button", name="Import", exact=True).click()
    warnings = page.get_by_role("table", name="Warnings")
    expect(warnings).to_contain_text("Sent anyway, with a warning: 1 row")
    expect(warnings.get_by_role("row").last).to_contain_text("3")
    expect(warnings).to_contain_text("assignee 4192 (emma@example.com) is not in department")
    shots(page, "warned")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("status", name="Summary")).to_contain_text("created 2")


def test_the_run_counts_as_it_goes_and_locks_its_file(
    page: Any,  # noqa: F811
    tmp_path: Path,
    shots: Shots,  # noqa: F811
) -> None:
    """While a run goes: its counts by status beside the bar, the time left, and the file
    input locked; Stop ends it and the file can be chosen again."""
    page.get_by_label("Spreadsheet", exact=True).set_input_files(rows_csv(tmp_path / "s.csv", 60))
    start_run(page, rate=SLOW)
    wait_for_rows(page, 2)
    counts = page.get_by_role("list", name="Counts so far")
    expect(counts).to_contain_text("created")
    expect(page.locator("#progress-text")).to_contain_text("left")
    shots(page, "running")
    go_to(page, "File")
    expect(page.get_by_label("Spreadsheet", exact=True)).to_be_disabled()
    expect(page.get_by_text("The file is locked while Import is running")).to_be_visible()
    go_to(page, "Run")
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_text("Stopped.")).to_be_visible()
    go_to(page, "File")
    expect(page.get_by_label("Spreadsheet", exact=True)).to_be_enabled()


def test_a_second_tab_follows_a_run_and_stops_it(
    browser: Any,  # noqa: F811
    page: Any,  # noqa: F811
    ui: RunningUi,  # noqa: F811
    tmp_path: Path,
    shots: Shots,  # noqa: F811
) -> None:
    """A tab opened before the run starts moves to it when another tab starts it, shows
    its progress, and its Stop stops it for both."""
    second = open_tab(browser, ui.url)
    expect(second.get_by_role("region", name="File")).to_be_visible()
    page.get_by_label("Spreadsheet", exact=True).set_input_files(rows_csv(tmp_path / "s.csv", 60))
    expect(second.get_by_role("region", name="Columns")).to_be_visible()
    start_run(page, rate=SLOW)
    expect(second.get_by_role("region", name="Run")).to_be_visible()
    wait_for_rows(second, 2)
    shots(second, "second-tab")
    second.get_by_role("button", name="Stop").click()
    expect(page.get_by_text("Stopped.")).to_be_visible()
    expect(second.get_by_text("Stopped.")).to_be_visible()
    assert summary_counts(page) == summary_counts(second)
    second.context.close()


def test_the_runs_list_survives_a_restart_of_the_page(
    browser: Any,  # noqa: F811
    sandbox: RunningSandbox,
    tmp_path: Path,
    shots: Shots,  # noqa: F811
) -> None:
    """A validate and an import, the page stopped and started again in the same folder:
    its Runs table lists both, newest first, with their counts and workbooks to download."""
    with serve(tmp_path, sandbox, key="right-key") as running:
        tab = open_tab(browser, running.url)
        tab.get_by_label("Spreadsheet", exact=True).set_input_files(SAMPLE / "chats.csv")
        go_to(tab, "Check")
        tab.get_by_role("button", name="Validate").click()
        expect(tab.get_by_role("status", name="Summary")).to_contain_text("valid 9")
        start_run(tab)
        expect(tab.get_by_role("status", name="Summary")).to_contain_text("created 8")
        tab.context.close()
    with serve(tmp_path, sandbox, key="right-key") as running:
        tab = open_tab(browser, running.url, accept_downloads=True)
        runs = tab.get_by_role("table", name="Runs")
        rows = runs.get_by_role("row")
        expect(rows).to_have_count(3)
        expect(rows.nth(1)).to_contain_text("Import")
        expect(rows.nth(1)).to_contain_text("created 8")
        expect(rows.nth(2)).to_contain_text("Validate")
        expect(rows.nth(2)).to_contain_text("valid 9")
        shots(tab, "runs")
        with tab.expect_download() as download:
            rows.nth(1).get_by_role("link").click()
        saved = tmp_path / "again.xlsx"
        download.value.save_as(saved)
        book = openpyxl.load_workbook(saved, read_only=True)
        statuses = [row[0] for row in book["summary"].iter_rows(min_row=8, values_only=True)]
        book.close()
        assert "created" in statuses
        tab.context.close()
