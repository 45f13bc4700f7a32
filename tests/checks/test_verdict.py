"""Validation's verdict as records: the rows to send and what a fed-back workbook says."""

from __future__ import annotations

from pathlib import Path

from bulk_chats.checks.new_chats import validate_sheet
from bulk_chats.checks.verdict import fed_back, problems, rows_to_send
from bulk_chats.records import FedBack, FirstMessage, Status
from bulk_chats.sheet.loading import load_sheet


def test_rows_take_ids_first_and_names_only_where_ids_are_blank(tmp_path: Path) -> None:
    """A row with an id and an email uses the id; one with the email alone names it."""
    source = tmp_path / "mixed.csv"
    source.write_text(
        "customer,customer_email,application,agent_email,message,sender_email\n"
        "8738438,customer1@example.com,3838,anna@example.com,Hi,\n"
        ",customer2@example.com,3838,,Note,ben@example.com\n",
        encoding="utf-8",
    )
    sheet = load_sheet(source)
    first, second = rows_to_send(sheet, validate_sheet(sheet))
    assert (first.customer, first.names) == (8738438, (("assignee_email", "anna@example.com"),))
    assert first.message == FirstMessage("Hi", "message", None)
    assert (second.index, second.source_row, second.customer, second.names) == (
        1,
        3,
        None,
        (("customer_email", "customer2@example.com"), ("message_agent_email", "ben@example.com")),
    )
    assert second.customer_lookup == ("customer_email", "customer2@example.com")


def test_email_before_user_id_stands_in_for_the_customer(tmp_path: Path) -> None:
    """With both customer name columns given, the email is the one looked up."""
    source = tmp_path / "both.csv"
    source.write_text(
        "customer_email,customer_user_id,application\na@example.com,crm-1,3838\n,crm-2,3838\n",
        encoding="utf-8",
    )
    sheet = load_sheet(source)
    first, second = rows_to_send(sheet, validate_sheet(sheet))
    assert first.names == (("customer_email", "a@example.com"),)
    assert second.names == (("customer_user_id", "crm-2"),)


def test_fed_back_workbook_says_what_an_earlier_run_did(tmp_path: Path) -> None:
    """Rows with a chat and their message are finished, a row with a chat but no message is
    sent for its message only, `unknown` rows are listed, and every chat id is claimed."""
    source = tmp_path / "march-results.csv"
    source.write_text(
        "source_row,customer,application,message,status,chat_id,message_id\n"
        "2,101,3838,Hi,created,555,9\n"
        "3,102,3838,Hi,message_failed,556,\n"
        "4,103,3838,Hi,unknown,,\n"
        "5,104,3838,Hi,not_sent,,\n",
        encoding="utf-8",
    )
    sheet = load_sheet(source)
    validation = validate_sheet(sheet)

    assert fed_back(sheet, validation) == FedBack(
        finished=1, unknown=frozenset({2}), chat_ids=frozenset({555, 556})
    )
    rows = rows_to_send(sheet, validation)
    assert [(r.index, r.chat_id) for r in rows] == [(1, 556), (2, None), (3, None)]


def test_a_sheet_that_is_no_results_workbook_says_nothing_of_earlier_runs(tmp_path: Path) -> None:
    """A `status` column alone does not make a sheet a fed-back results workbook."""
    source = tmp_path / "plain.csv"
    source.write_text("customer,application,status\n101,3838,unknown\n", encoding="utf-8")
    sheet = load_sheet(source)
    assert fed_back(sheet, validate_sheet(sheet)) == FedBack()


def test_problems_list_each_rejected_row_with_its_codes_and_fix(tmp_path: Path) -> None:
    """Invalid and duplicate rows become RowProblem records in input order; valid rows none."""
    source = tmp_path / "bad.csv"
    source.write_text(
        "customer,application\n101,3838\nabc,3838\n101,3838\n",
        encoding="utf-8",
    )
    sheet = load_sheet(source)
    invalid, duplicate = problems(sheet, validate_sheet(sheet))
    assert (invalid.index, invalid.source_row, invalid.status) == (1, 3, Status.INVALID)
    assert invalid.error_code == "invalid_customer"
    assert "'abc'" in invalid.error_message
    assert (duplicate.source_row, duplicate.status, duplicate.error_code) == (
        4,
        Status.DUPLICATE,
        "duplicate",
    )
