"""bulk-chats: create HelpCrunch chats in bulk from a CSV or Excel sheet.

The command line (`bulk-chats`) is a thin layer over these functions:

    from bulk_chats import Settings, validate_file
    result = validate_file(Settings(input_path=Path("march.xlsx")))
"""

from bulk_chats.changing import close_file, update_file
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
from bulk_chats.loading import Sheet, load_sheet
from bulk_chats.pipeline import import_file, validate_file
from bulk_chats.plan import Plan
from bulk_chats.records import (
    ChangeRequest,
    ChatChange,
    ChatRequest,
    FirstMessage,
    Outcome,
    RowProblem,
    Status,
)
from bulk_chats.runs import RunResult
from bulk_chats.settings import DEFAULT_BASE_URL, DEFAULT_RATE, ApiKey, Settings, read_api_key
from bulk_chats.validation import Validation, validate_sheet
from bulk_chats.validation_changes import validate_changes

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
