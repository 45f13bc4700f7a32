"""The guided page at its edges, in a real browser against the sandbox over loopback: two
columns for one field chosen between, the same file chosen again after it changed, a run
that ended saying no pace, every option of a column's select reached by keyboard, a
second tab seeing the mapping the first one chose, the page's server gone, results of an
earlier mapping, and a Confirm pressed twice. Elements are found as a person finds them,
by role and name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bulk_chats.sandbox import CUSTOMERS, RunningSandbox
from bulk_chats.ui import RunningUi
from tests.ui.test_browser import (  # noqa: F401 - fixtures used by name
    SAMPLE,
    SLOW,
    Shots,
    browser,
    expect,
    go_to,
    page,
    rows_csv,
    sandbox_config,
    shots,
    start_run,
    ui,
    wait_for_rows,
)
from tests.ui.test_browser_steps import open_tab


def test_two_columns_for_one_field_are_chosen_between(
    page: Any,  # noqa: F811
    tmp_path: Path,
    shots: Shots,  # noqa: F811
) -> None:
    """A sheet whose Customer ID and customer columns both give customer says so, and
    shows its columns to choose the one read as customer; once chosen, Next goes on."""
    sheet = tmp_path / "twice.csv"
    sheet.write_text(
        "Customer ID,customer,Application,Agent ID\n"
        f"{CUSTOMERS[1].id},{CUSTOMERS[0].id},3838,4188\n",
        encoding="utf-8",
    )
    page.get_by_label("Spreadsheet", exact=True).set_input_files(sheet)
    columns = page.get_by_role("region", name="Columns", exact=True)
    expect(columns.get_by_text("two columns give customer")).to_be_visible()
    following = columns.get_by_role("button", name="Next")
    expect(following).to_be_disabled()
    chosen = page.get_by_label("Read customer as", exact=True)
    expect(chosen).to_have_value("")
    shots(page, "two-columns")

    chosen.select_option("customer")
    expect(page.get_by_label("customer", exact=True)).to_have_value("customer")
    expect(columns.get_by_text("two columns give customer")).to_be_hidden()
    expect(following).to_be_enabled()
    following.click()
    page.get_by_role("button", name="Validate").click()
    expect(page.get_by_role("status", name="Summary")).to_contain_text("valid 1")

    go_to(page, "Columns")
    page.get_by_label("customer", exact=True).select_option("Customer ID")
    expect(page.get_by_label("Read Customer ID as", exact=True)).to_have_value("customer")
    expect(page.get_by_label("Read customer as", exact=True)).to_have_value("")


def test_the_same_file_chosen_again_is_read_again(
    page: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A file changed on disk and chosen again, from the File step or after Choose
    another file, is uploaded again: the page shows its new rows."""
    sheet = tmp_path / "edit-me.csv"
    lines = [f"{customer.id},3838,4188" for customer in CUSTOMERS[:4]]
    sheet.write_text("\n".join(["Customer ID,Application,Agent ID", *lines[:2]]), "utf-8")
    spreadsheet = page.get_by_label("Spreadsheet", exact=True)
    spreadsheet.set_input_files(sheet)
    expect(page.get_by_text("edit-me.csv · 2 data rows")).to_be_attached()

    sheet.write_text("\n".join(["Customer ID,Application,Agent ID", *lines[:3]]), "utf-8")
    go_to(page, "File")
    spreadsheet.set_input_files(sheet)
    expect(page.get_by_text("edit-me.csv · 3 data rows")).to_be_attached()

    go_to(page, "Plan")
    page.get_by_role("button", name="Import", exact=True).click()
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("status", name="Summary")).to_contain_text("created 3")
    sheet.write_text("\n".join(["Customer ID,Application,Agent ID", *lines]), "utf-8")
    page.get_by_role("button", name="Choose another file").click()
    spreadsheet.set_input_files(sheet)
    expect(page.get_by_text("edit-me.csv · 4 data rows")).to_be_attached()


def test_every_option_of_a_column_is_reached_by_keyboard(
    page: Any,  # noqa: F811
    tmp_path: Path,
    shots: Shots,  # noqa: F811
) -> None:
    """Arrow keys on a column's select pass over the options without saving any, the one
    another column gives too; Enter saves the one reached, and a field another column
    gives is refused out loud when chosen so."""
    sheet = tmp_path / "owners.csv"
    sheet.write_text(
        f"Customer ID,Application,Agent ID,Owner\n{CUSTOMERS[0].id},3838,4188,4192\n", "utf-8"
    )
    page.get_by_label("Spreadsheet", exact=True).set_input_files(sheet)
    owner = page.get_by_label("Read Owner as", exact=True)
    expect(owner).to_have_value("")
    options = owner.evaluate("select => [...select.options].map(option => option.value)")
    page.evaluate(
        """() => {
            window.saved = 0;
            const fetched = window.fetch;
            window.fetch = (url, init) => {
                if (String(url).startsWith("/mapping")) window.saved += 1;
                return fetched(url, init);
            };
        }"""
    )
    owner.focus()
    for option in options[1:]:
        page.keyboard.press("ArrowDown")
        expect(owner).to_have_value(option)
        assert page.evaluate("() => window.saved") == 0
    alert = page.get_by_role("alert")
    expect(alert).to_be_hidden()
    page.keyboard.press("Enter")
    expect(page.get_by_label(options[-1], exact=True)).to_have_value("Owner")
    expect(page.get_by_label("Read Owner as", exact=True)).to_be_focused()
    shots(page, "keyboard-mapped")

    page.keyboard.press("Home")
    page.keyboard.press("ArrowDown")
    expect(owner).to_have_value("customer")
    page.keyboard.press("Enter")
    expect(alert).to_contain_text("customer is read from Customer ID already")
    expect(page.get_by_label("Read Owner as", exact=True)).to_have_value(options[-1])


def test_a_second_tab_shows_the_mapping_the_first_one_chose(
    browser: Any,  # noqa: F811
    page: Any,  # noqa: F811
    ui: RunningUi,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A mapping changed in one tab shows in another on the same file, which runs with
    it: what each tab shows is what the server will use."""
    second = open_tab(browser, ui.url)
    sheet = tmp_path / "owners.csv"
    sheet.write_text(
        f"Customer ID,Application,Agent ID,Owner\n{CUSTOMERS[0].id},3838,?,4192\n", "utf-8"
    )
    page.get_by_label("Spreadsheet", exact=True).set_input_files(sheet)
    expect(second.get_by_label("assignee", exact=True)).to_have_value("Agent ID")
    page.get_by_label("assignee", exact=True).select_option("Owner")
    expect(page.get_by_label("Read Owner as", exact=True)).to_have_value("assignee")
    expect(second.get_by_label("assignee", exact=True)).to_have_value("Owner")
    expect(second.get_by_label("Read Owner as", exact=True)).to_have_value("assignee")
    expect(second.get_by_text("--column assignee=Owner")).to_be_visible()
    go_to(second, "Check")
    second.get_by_role("button", name="Validate").click()
    expect(second.get_by_role("status", name="Summary")).to_contain_text("valid 1")
    second.context.close()


def test_a_tab_whose_server_is_gone_says_so(
    page: Any,  # noqa: F811
    ui: RunningUi,  # noqa: F811
    tmp_path: Path,
    shots: Shots,  # noqa: F811
) -> None:
    """Once nothing answers the tab any more (its event stream ended, every request
    fails as to a server that was killed), the alert says the page's server stopped, and
    Stop pressed then throws no error."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.get_by_label("Spreadsheet", exact=True).set_input_files(
        rows_csv(tmp_path / "sixty.csv", 60)
    )
    start_run(page, rate=SLOW)
    wait_for_rows(page, 1)
    page.route("**/*", lambda route: route.abort())
    ui.app.closing = True  # its event streams end, as a killed server's do
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("This page's server has stopped")
    page.get_by_role("button", name="Stop").click()
    expect(alert).to_contain_text("This page's server has stopped")
    shots(page, "server-gone")
    page.unroute("**/*")
    assert errors == []


def test_results_of_an_earlier_mapping_are_marked_out_of_date(
    page: Any,  # noqa: F811
    shots: Shots,  # noqa: F811
) -> None:
    """Validate's results, once a column is read otherwise, say they are out of date on
    the Check step; Validate again and they are current."""
    page.get_by_label("Spreadsheet", exact=True).set_input_files(SAMPLE / "chats.csv")
    go_to(page, "Check")
    page.get_by_role("button", name="Validate").click()
    summary = page.get_by_role("status", name="Summary")
    expect(summary).to_contain_text("valid 9")
    out_of_date = page.get_by_text("Out of date: the file or its columns changed")
    expect(out_of_date).to_be_hidden()

    page.get_by_role("button", name="Back").click()
    page.get_by_label("Read Agent ID as", exact=True).select_option("")
    expect(page.get_by_label("assignee", exact=True)).to_have_value("")
    page.get_by_role("region", name="Columns").get_by_role("button", name="Next").click()
    expect(out_of_date).to_be_visible()
    shots(page, "out-of-date")
    page.get_by_role("button", name="Validate").click()
    expect(summary).to_contain_text("valid 12")
    expect(out_of_date).to_be_hidden()


def test_a_double_clicked_confirm_confirms_once(
    page: Any,  # noqa: F811
    sandbox: RunningSandbox,
) -> None:
    """Confirm double-clicked sends one answer and shows no alert; the run goes on."""
    page.get_by_label("Spreadsheet", exact=True).set_input_files(SAMPLE / "chats.csv")
    go_to(page, "Plan")
    page.get_by_role("button", name="Import", exact=True).click()
    confirm = page.get_by_role("button", name="Confirm")
    expect(confirm).to_be_focused()
    page.evaluate(
        """() => {
            window.answers = 0;
            const fetched = window.fetch;
            window.fetch = (url, init) => {
                if (String(url).startsWith("/confirm")) window.answers += 1;
                return fetched(url, init);
            };
        }"""
    )
    confirm.dblclick()
    expect(page.get_by_role("status", name="Summary")).to_contain_text("created 8")
    expect(page.get_by_role("alert")).to_be_hidden()
    assert page.evaluate("() => window.answers") == 1
    assert len(sandbox.state.chats) == 8
