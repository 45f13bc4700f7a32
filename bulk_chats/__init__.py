"""bulk-chats: create HelpCrunch chats in bulk from a CSV or Excel sheet.

The command line (`bulk-chats`) is a thin layer over these functions:

    from bulk_chats import Settings, validate_file
    result = validate_file(Settings(input_path=Path("march.xlsx")))
"""

from bulk_chats.checks.changes import validate_changes
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
from bulk_chats.settings import DEFAULT_BASE_URL, DEFAULT_RATE, ApiKey, Settings, read_api_key
from bulk_chats.sheet.loading import Sheet, load_sheet

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_RATE",
    "ApiError",
    "ApiKey",
    "AuthenticationError",
    "BulkChatsError",
    "ChangeRequest",
    "ChatChange",
    "ChatRequest",
    "FirstMessage",
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
