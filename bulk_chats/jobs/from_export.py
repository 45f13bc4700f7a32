"""`update` given an export: the steps around validation and the pre-flight that compare
the sheet with what the export read (docs/export.md › Back again).

Before validation, `compare_export` finds the export's record in the workbook and blanks
the cells that equal it (`checks.exported`); after the pre-flight's reads,
`check_both_changed` makes a row `invalid` whose id and name of one field both changed to
name different agents or departments. Whether a change was applied earlier is the
journal's to say, after both.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from bulk_chats.checks.exported import ExportComparison, compare_with_export, read_export_record
from bulk_chats.errors import InputError
from bulk_chats.fields import EXPORTED_SHEET
from bulk_chats.lookups.directory import Directory, Preflight
from bulk_chats.records import ChangeRequest, Outcome, Status
from bulk_chats.settings import Settings
from bulk_chats.sheet.loading import Sheet, normalise_header


def compare_export(settings: Settings, sheet: Sheet) -> ExportComparison | None:
    """`sheet` compared with its export's record, when `settings.input_path` is an export
    (a workbook with the `exported` sheet); None otherwise. `settings.chat_status` fills
    the blank `chat_status` cells before they are compared."""
    record = read_export_record(settings.input_path, settings.sheet)
    if record is None:
        refuse_bare_export(settings, sheet)
        return None
    return compare_with_export(sheet, record, chat_status=settings.chat_status)


EXPORT_ONLY: Final = ("created_with", "last_message_at")
"""Columns only an export's `chats` sheet has: a sheet with them came from an export."""


def refuse_bare_export(settings: Settings, sheet: Sheet) -> None:
    """Raise `InputError` for an export's chats without the record of what it read (saved
    as CSV, or by a program that drops hidden sheets): every cell would be sent as a
    change, not only the edited ones, changing back each chat changed since the export."""
    headers = {normalise_header(header) for header in sheet.headers}
    if not all(name in headers for name in EXPORT_ONLY):
        return
    raise InputError(
        f"{settings.input_path}: an export's chats without its hidden sheet "
        f"{EXPORTED_SHEET!r} (saved as CSV, or by a program that drops hidden sheets): "
        "every cell would be sent, not only those edited, changing back chats changed "
        "since the export. Give the workbook as the export wrote it, or remove the "
        f"columns {' and '.join(EXPORT_ONLY)} to send every cell on purpose"
    )


def check_both_changed(
    preflight: Preflight[ChangeRequest], comparison: ExportComparison, directory: Directory
) -> Preflight[ChangeRequest]:
    """`preflight` with the rows whose id and name of one field both changed and name
    different agents (or departments) moved to `rejected`: `invalid`, since either may be
    the change meant."""
    passed: list[ChangeRequest] = []
    rejected = dict(preflight.rejected)
    for row in preflight.passed:
        wrong = [
            (field, value)
            for field, value in comparison.both_changed.get(row.index, ())
            if not _agrees(row, field, value, directory)
        ]
        if not wrong:
            passed.append(row)
            continue
        rejected[row.index] = Outcome(
            index=row.index,
            status=Status.INVALID,
            chat_id=row.chat_id,
            error_code="; ".join(f"conflicting_{_id_field(field)}" for field, _ in wrong),
            error_message=" | ".join(_disagree(row, field, value) for field, value in wrong),
        )
    return replace(preflight, passed=passed, rejected=rejected)


def _id_field(name_field: str) -> str:
    return "assignee" if name_field == "assignee_email" else "department"


def _agrees(row: ChangeRequest, field: str, value: str, directory: Directory) -> bool:
    if field == "assignee_email":
        return row.assignee in directory.agents_by_email(value)
    return row.department in directory.departments_by_name(value)


def _disagree(row: ChangeRequest, field: str, value: str) -> str:
    id_field = _id_field(field)
    kind = "agent" if id_field == "assignee" else "department"
    return (
        f"{id_field}: {getattr(row, id_field)} and {field} '{value}' both changed since the "
        f"export and name different {kind}s; change one of them"
    )
