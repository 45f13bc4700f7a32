"""bulk-chats: create HelpCrunch chats in bulk from a CSV or Excel sheet.

The command line (`bulk-chats`) is a thin layer over these functions:

    from bulk_chats import Settings, validate_file
    result = validate_file(Settings(input_path=Path("march.xlsx")))

Each name below is imported from the stage that owns it when it is first used, so that
importing one part of the package (the workbook-reading child, the sandbox, the command
line) does not import every other part, and no circle can hide behind import order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bulk_chats._exports import lazy_names

if TYPE_CHECKING:
    from bulk_chats.checks.changes import ChangeValidation, validate_changes
    from bulk_chats.checks.new_chats import Validation, validate_sheet
    from bulk_chats.errors import (
        ApiError,
        AuthenticationError,
        BulkChatsError,
        InputError,
        JournalError,
        MaybeSentError,
        NotSentError,
        RateLimitedError,
        RefusedError,
        ReportError,
    )
    from bulk_chats.jobs.change_chats import close_file, update_file
    from bulk_chats.jobs.hooks import Hooks
    from bulk_chats.jobs.import_chats import import_file
    from bulk_chats.jobs.plan import Plan
    from bulk_chats.jobs.result import RunResult
    from bulk_chats.jobs.validate import validate_file
    from bulk_chats.records import (
        ChangeRequest,
        ChatChange,
        ChatRequest,
        FirstMessage,
        Outcome,
        RowProblem,
        Status,
    )
    from bulk_chats.settings import (
        DEFAULT_BASE_URL,
        DEFAULT_RATE,
        ApiKey,
        Settings,
        read_api_key,
    )
    from bulk_chats.sheet.loading import Sheet, load_sheet

_OWNERS: dict[str, str] = {
    "ChangeValidation": "bulk_chats.checks.changes",
    "validate_changes": "bulk_chats.checks.changes",
    "Validation": "bulk_chats.checks.new_chats",
    "validate_sheet": "bulk_chats.checks.new_chats",
    "ApiError": "bulk_chats.errors",
    "AuthenticationError": "bulk_chats.errors",
    "BulkChatsError": "bulk_chats.errors",
    "InputError": "bulk_chats.errors",
    "JournalError": "bulk_chats.errors",
    "MaybeSentError": "bulk_chats.errors",
    "NotSentError": "bulk_chats.errors",
    "RateLimitedError": "bulk_chats.errors",
    "RefusedError": "bulk_chats.errors",
    "ReportError": "bulk_chats.errors",
    "close_file": "bulk_chats.jobs.change_chats",
    "update_file": "bulk_chats.jobs.change_chats",
    "Hooks": "bulk_chats.jobs.hooks",
    "import_file": "bulk_chats.jobs.import_chats",
    "Plan": "bulk_chats.jobs.plan",
    "RunResult": "bulk_chats.jobs.result",
    "validate_file": "bulk_chats.jobs.validate",
    "ChangeRequest": "bulk_chats.records",
    "ChatChange": "bulk_chats.records",
    "ChatRequest": "bulk_chats.records",
    "FirstMessage": "bulk_chats.records",
    "Outcome": "bulk_chats.records",
    "RowProblem": "bulk_chats.records",
    "Status": "bulk_chats.records",
    "DEFAULT_BASE_URL": "bulk_chats.settings",
    "DEFAULT_RATE": "bulk_chats.settings",
    "ApiKey": "bulk_chats.settings",
    "Settings": "bulk_chats.settings",
    "read_api_key": "bulk_chats.settings",
    "Sheet": "bulk_chats.sheet.loading",
    "load_sheet": "bulk_chats.sheet.loading",
}
"""Each public name → the module that defines it."""

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_RATE",
    "ApiError",
    "ApiKey",
    "AuthenticationError",
    "BulkChatsError",
    "ChangeRequest",
    "ChangeValidation",
    "ChatChange",
    "ChatRequest",
    "FirstMessage",
    "Hooks",
    "InputError",
    "JournalError",
    "MaybeSentError",
    "NotSentError",
    "Outcome",
    "Plan",
    "RateLimitedError",
    "RefusedError",
    "ReportError",
    "RowProblem",
    "RunResult",
    "Settings",
    "Sheet",
    "Status",
    "Validation",
    "close_file",
    "import_file",
    "load_sheet",
    "read_api_key",
    "update_file",
    "validate_changes",
    "validate_file",
    "validate_sheet",
]


__getattr__, __dir__ = lazy_names(__name__, _OWNERS, globals())
