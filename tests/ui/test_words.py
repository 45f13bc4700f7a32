"""The page's words: each message the library words for the terminal, made to say it by
the library itself, comes out with the page's controls instead of the command line's
options; counts read as a person reads them."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from bulk_chats.checks.new_chats import validate_sheet
from bulk_chats.errors import InputError
from bulk_chats.jobs import resume, resume_transcripts
from bulk_chats.jobs.export_chats import SHEET_FULL
from bulk_chats.jobs.export_filters import export_queries
from bulk_chats.lookups.directory import Directory
from bulk_chats.results.workbook import MAX_TEXT, Summary, check_room, write_results
from bulk_chats.settings import ExportFilters
from bulk_chats.sheet.loading import load_sheet
from bulk_chats.ui.jobs import JOB_KINDS, JobView, ProgressView
from bulk_chats.ui.words import count, in_page_words, number, progress_text
from tests.results.test_workbook import results_frame
from tests.sheets import read_results, write_csv

OPTION = re.compile(r"--[a-z]")


def said(text: str) -> str:
    """`text` in the page's words, which name no command-line option."""
    words = in_page_words(text)
    assert not OPTION.search(words), words
    return words


def refusal(call: object, *args: object) -> str:
    with pytest.raises(InputError) as caught:
        call(*args)  # type: ignore[operator]
    return str(caught.value)


def test_a_column_of_names_asks_for_the_mapping_in_the_page_s_words(tmp_path: Path) -> None:
    """The issue's example: "map the column with --column customer_email=Customer ID"
    becomes "choose customer_email for Customer ID in the column mapping"."""
    source = write_csv(
        tmp_path / "names.csv", ["Customer ID", "application"], [["anna@x.example", 1]]
    )
    verdict = validate_sheet(load_sheet(source))
    [message] = verdict.error_message.tolist()
    assert "map the column with --column customer_email=Customer ID" in message
    assert said(message).endswith(
        "to use names or emails choose customer_email for Customer ID in the column mapping"
    )


def test_a_missing_column_and_two_columns_for_one_field(tmp_path: Path) -> None:
    """The loader's "name one with --column application=HEADER" and "map the one to use
    with --column customer=HEADER" name the column mapping instead."""
    missing = write_csv(tmp_path / "m.csv", ["customer", "App code"], [[1, 2]])
    assert said(refusal(load_sheet, missing)).endswith(
        "choose one for application in the column mapping"
    )
    twice = write_csv(tmp_path / "t.csv", ["customer", "customer_id", "application"], [[1, 2, 3]])
    assert said(refusal(load_sheet, twice)).endswith(
        "remove one, or choose customer for the one to use in the column mapping"
    )


def test_the_fresh_start_the_page_does_not_offer_is_not_offered() -> None:
    """Rows held back after an unknown answer keep the way out the page has (look for the
    chat, then run again), without "--fresh"."""
    for held in (resume.HELD_UNKNOWN, resume_transcripts.HELD_UNKNOWN):
        assert "--fresh" in held
        assert said(held).endswith("then run again")


def test_results_too_big_for_a_workbook_point_at_csv(tmp_path: Path) -> None:
    """ "write CSV with --out NAME.csv" becomes the page's Results file choice; a cell cut
    to fit a workbook says CSV keeps it whole."""
    too_big = refusal(check_room, tmp_path / "r.xlsx", 2_000_000, 5)
    assert said(too_big).endswith("choose CSV for Results file")
    frame = read_results(
        write_results(
            results_frame(note=["x" * (MAX_TEXT + 1)]),
            tmp_path / "cut.xlsx",
            Summary(Path("in.csv"), "validate"),
        )
    )
    assert said(frame[0]["error_message"]).endswith("CSV results keep the whole text")


def test_the_export_form_s_fields_are_named_as_the_form_names_them() -> None:
    """An agent or a department the account lacks, and a sheet too full, name the form's
    fields (Assignee, Department, Created since and before), not the options."""
    directory = Directory(agents={}, departments={})
    agent = refusal(export_queries, ExportFilters(assignee=5), directory, None)
    assert said(agent) == "Assignee: 5 is not an agent of this account"
    named = refusal(export_queries, ExportFilters(department_name="Sales"), directory, None)
    assert said(named).startswith("Department: 'Sales' matches no department")
    assert "Created since and Created before" in said(SHEET_FULL)


def test_an_upload_is_named_as_it_was_chosen_and_a_results_file_by_its_name() -> None:
    """The stored upload's path becomes the name it was chosen by; a file in the reports
    folder is named alone."""
    upload = Path("reports/uploads/4242-ab12/march.csv")
    text = f"{upload}: no data rows below the header; reports/march-results-1.xlsx: cannot"
    words = in_page_words(text, files=[(upload, "march.csv"), (Path("reports"), "")])
    assert words == "march.csv: no data rows below the header; march-results-1.xlsx: cannot"


@pytest.mark.parametrize(
    ("value", "noun", "text"),
    [(1, "row", "1 row"), (0, "row", "0 rows"), (1_000_000, "row", "1,000,000 rows")],
)
def test_counts_read_as_a_person_reads_them(value: int, noun: str, text: str) -> None:
    """ "1 row", "1,000,000 rows"."""
    assert count(value, noun) == text
    assert number(1_048_575) == "1,048,575"


def run_view(phase: str, *, done: int, total: int, kind: str = "import") -> JobView:
    """A run of `kind` at `phase`, `done` of `total` rows along at 115 rows a minute."""
    progress = ProgressView(
        total=total, done=done, counts={}, per_minute=115.0, eta=27.0, started=True
    )
    return JobView(
        id=1,
        kind=JOB_KINDS[kind],
        phase=phase,
        input_name="sixty.csv",
        notices=(),
        progress=progress,
        plan=None,
        result=None,
        error=None,
        stopping=False,
        version=1,
    )


def test_a_run_that_ended_says_no_pace() -> None:
    """A running run says its pace and the time left; once it ended (stopped, failed)
    short of its last row it says where it got to and nothing about a pace it no longer
    has."""
    assert progress_text(run_view("running", done=10, total=60)) == (
        "10 of 60 rows · 115 rows a minute · about 27s left"
    )
    for phase in ("finished", "failed"):
        assert progress_text(run_view(phase, done=10, total=60)) == "10 of 60 rows"


def test_the_progress_line_counts_one_as_one() -> None:
    """One row of one says `1 of 1 row`, as the plan says `1 row`; so do a pace of one
    row a minute, one conversation and the results' one row being written."""
    one = run_view("running", done=0, total=1)
    one = replace(one, progress=replace(one.progress, per_minute=1.0, eta=None))
    assert progress_text(one) == "0 of 1 row · 1 row a minute"
    assert progress_text(run_view("finished", done=1, total=1)) == "1 of 1 row"
    transcript = replace(
        one.progress, total=1, done=1, conversations=(1, 1), per_minute=None, written=(0, 1)
    )
    assert progress_text(replace(one, progress=transcript)) == (
        "1 of 1 conversation · 1 of 1 message · writing the results: 0 of 1 row"
    )
