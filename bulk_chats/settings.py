"""Everything a run needs to know, built once by the CLI (or by a Python caller)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bulk_chats.errors import InputError

DEFAULT_RATE = 120
"""Requests per minute, all endpoints together: HelpCrunch's default account limit."""

DEFAULT_BASE_URL = "https://api.helpcrunch.com/v1"
REPORTS_DIR = Path("reports")
API_KEY_ENV = "HELPCRUNCH_API_KEY"
BASE_URL_ENV = "HELPCRUNCH_BASE_URL"


class ApiKey:
    """The API key. Its repr and str are redacted; only `bearer()` reveals it.

    Keep it in this object and hand it to nothing but the Authorization header.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        value = value.strip()
        if not value:
            raise InputError("the API key is empty")
        self._value = value

    def bearer(self) -> str:
        """The Authorization header's value."""
        return f"Bearer {self._value}"

    def reveal(self) -> str:
        """The key itself, for scrubbing it out of text that might carry it."""
        return self._value

    def __repr__(self) -> str:
        return "ApiKey('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiKey) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def read_api_key(key_file: Path | None = None, environ: dict[str, str] | None = None) -> ApiKey:
    """The key from `key_file` when given, else from `HELPCRUNCH_API_KEY`.

    Never from the command line, where it would land in shell history and `ps`.
    """
    env = os.environ if environ is None else environ
    if key_file is not None:
        try:
            text = key_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{key_file}: cannot read the API key file ({exc.strerror})") from None
        return ApiKey(text)
    value = env.get(API_KEY_ENV, "")
    if not value.strip():
        raise InputError(
            f"no API key: set {API_KEY_ENV} or pass --api-key-file "
            "(or try the built-in sandbox with --sandbox)"
        )
    return ApiKey(value)


def is_loopback_host(host: str) -> bool:
    """True for localhost and addresses in 127.0.0.0/8 or ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(url: str) -> str:
    """`url` without a trailing slash, if it is https, or plain http to a loopback host."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"--base-url: {url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise InputError(
            f"--base-url: {url!r} uses plain http; use https (plain http is allowed only "
            "for loopback addresses)"
        )
    return url.strip().rstrip("/")


@dataclass(frozen=True, slots=True)
class Settings:
    """One run's settings. Rates are in requests per minute, all requests counted."""

    input_path: Path
    out: Path | None = None
    sheet: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    rate: float | None = None
    """Requests per minute; None: the account's limit an earlier run learned for this API
    root (the journal keeps it), else `DEFAULT_RATE`."""
    concurrency: int | None = None
    base_url: str = DEFAULT_BASE_URL
    api_key: ApiKey | None = None
    dry_run: bool = False
    fresh: bool = False
    reports_dir: Path = REPORTS_DIR
    chat_status: str | None = None
    """`--chat-status`, as the API spells it: the status of rows whose cell is blank."""
    create_customers: bool = False
    """`import --create-customers`: a customer for each email or userId that matches no one."""
    time_prefix: bool = True
    """A transcript's messages start with their `sent_at` (`[2023-04-01 10:02] `);
    `import --no-time-prefix` sends the text as it is."""
    input_name: str | None = None
    """The input as its user knows it, for the summary sheet (the page's upload: the name
    the file was chosen by); None: `input_path`."""
    csv_results: bool = False
    """Without `out`: the results as CSV at the default path (`.csv`), as the page offers
    for an input past what a worksheet holds."""
    lookups_first: bool = False
    """Look the customers up before the plan, so that it counts those that match no one
    (the page does; `create_customers` always does)."""


@dataclass(frozen=True, slots=True)
class ExportFilters:
    """Which chats `bulk-chats export` reads; every filter optional, all joined with AND
    (docs/export.md › Filters).

    `statuses`: any of them, as the API spells them. An assignee or a department by id or
    by name (email for an agent), a customer by email or userId: one of each at most.
    `since` and `until` bound the creation time (aware date-times; `since` inclusive,
    `until` exclusive).
    """

    statuses: tuple[str, ...] = ()
    assignee: int | None = None
    assignee_email: str | None = None
    department: int | None = None
    department_name: str | None = None
    customer_email: str | None = None
    customer_user_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def described(self) -> tuple[tuple[str, str], ...]:
        """The filters given, as (name, value) in the words of the command line."""
        named: list[tuple[str, object]] = [
            ("status", ", ".join(self.statuses)),
            ("assignee", self.assignee),
            ("assignee_email", self.assignee_email),
            ("department", self.department),
            ("department_name", self.department_name),
            ("customer_email", self.customer_email),
            ("customer_user_id", self.customer_user_id),
            ("since", self.since and self.since.isoformat(sep=" ")),
            ("until", self.until and self.until.isoformat(sep=" ")),
        ]
        return tuple((name, str(value)) for name, value in named if value not in (None, ""))


@dataclass(frozen=True, slots=True)
class ExportSettings:
    """One export's settings: `filters`, `messages` (the `messages` sheet too), where the
    workbook goes (`out`; None: `reports/chats-export-<time>.xlsx`), and the API as for
    `Settings`. `rate` is in requests per minute; None: the account's limit an earlier
    run learned for this API root, else `DEFAULT_RATE`. `concurrency` is how many chats'
    messages are read at once (None: enough to keep the rate full)."""

    filters: ExportFilters = field(default_factory=ExportFilters)
    messages: bool = False
    out: Path | None = None
    rate: float | None = None
    concurrency: int | None = None
    base_url: str = DEFAULT_BASE_URL
    api_key: ApiKey | None = None
    reports_dir: Path = REPORTS_DIR
