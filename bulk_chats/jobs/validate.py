"""`validate`: every row read and checked offline, the results workbook written, nothing
sent. Its reading and checking are the first steps of `import` too (`read_and_validate`).
"""

from __future__ import annotations

import datetime as dt

from bulk_chats.checks.new_chats import Validation, validate_sheet
from bulk_chats.checks.transcripts import validate_transcript
from bulk_chats.jobs.result import (
    RunResult,
    make_reports_dir,
    prepare_results,
    results_path,
    write_run,
)
from bulk_chats.results.workbook import Summary, Written
from bulk_chats.settings import Settings
from bulk_chats.sheet.loading import Sheet, load_sheet


def validate_file(
    settings: Settings, *, now: dt.datetime | None = None, written: Written | None = None
) -> RunResult:
    """Read and validate every row of `settings.input_path`; send nothing; write the
    results workbook (`written` hears how far that is: most of the time of a big file).
    Raises InputError when the file cannot be used."""
    now = now or dt.datetime.now()
    sheet, validation = read_and_validate(settings)
    if settings.out is None:
        make_reports_dir(settings.reports_dir)
    out = results_path(settings, now)
    prepare_results(out, sheet)
    summary = Summary(settings.input_path, "validate", "", now, settings.input_name)
    return write_run(
        sheet, validation, {}, out, summary, out_given=settings.out is not None, written=written
    )


def read_and_validate(settings: Settings) -> tuple[Sheet, Validation]:
    """The offline part of `validate` and `import`: load the sheet and validate every row,
    as a transcript (`TranscriptValidation`) when it has a `conversation` column."""
    sheet = load_sheet(settings.input_path, sheet=settings.sheet, columns=settings.columns)
    validate = validate_transcript if sheet.transcript else validate_sheet
    return sheet, validate(sheet, chat_status=settings.chat_status)
