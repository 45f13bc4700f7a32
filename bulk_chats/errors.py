"""The exceptions of bulk-chats, split by what a caller does about them.

    BulkChatsError
    ├── InputError            the input or command line is unusable: exit 2, nothing sent
    ├── JournalError          the journal cannot be written: stop before sending unrecorded
    ├── ReportError           the results workbook cannot be written (after the run)
    └── ApiError              a request to the API did not succeed
        ├── AuthenticationError   401: stop the run, the rest is not_sent, exit 3
        ├── NotSentError          surely created nothing (429, 503, connection refused): retry
        │   └── RateLimitedError  429, with the server's Retry-After when it sent one
        ├── MaybeSentError        may have created something (timeout, other 5xx, dropped
        │                         connection after sending): look for it by search before resending
        └── RefusedError          any other 4xx: the row is failed, never retried

A bad row is not an exception: validation returns it as data, a stable `error_code` and
a message per row (`checks.columns.Verdict`).
Only `client.py` turns httpx exceptions and API error bodies into these.
"""

from __future__ import annotations


class BulkChatsError(Exception):
    """Base of every error bulk-chats raises on purpose."""


class InputError(BulkChatsError):
    """The input file or the command line cannot be used; the message is one human line."""


class JournalError(BulkChatsError):
    """The journal could not be written: stop, so that no request goes out unrecorded."""


class ReportError(BulkChatsError):
    """The results workbook could not be written; the journal still holds every outcome."""


class ApiError(BulkChatsError):
    """A request to the HelpCrunch API did not succeed.

    `codes` and `messages` are the API's error entries, `http_status` the answer's status
    (None when no answer came).
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        codes: tuple[str, ...] = (),
        messages: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.codes = codes
        self.messages = messages

    @property
    def error_code(self) -> str:
        """The codes as the results workbook shows them.

        The generic `invalid_request` only when it is the sole code (docs/sending.md › Refusals).
        """
        specific = [c for c in self.codes if c != "invalid_request"]
        return "; ".join(specific or list(self.codes))

    @property
    def error_message(self) -> str:
        """The API's messages matching `error_code`, or this error's own text."""
        pairs = list(zip(self.codes, self.messages, strict=False))
        specific = [m for c, m in pairs if c != "invalid_request"]
        chosen = specific or [m for _, m in pairs]
        return "; ".join(chosen) if chosen else str(self)


class AuthenticationError(ApiError):
    """The API answered 401: the key is wrong or revoked."""


class NotSentError(ApiError):
    """The request surely created nothing and may be sent again."""


class RateLimitedError(NotSentError):
    """The API answered 429. `retry_after` is in seconds, None when not given."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class MaybeSentError(ApiError):
    """The request may have taken effect though no usable answer came back."""


class RefusedError(ApiError):
    """The API refused the request for good (a 4xx other than 401 and 429)."""
