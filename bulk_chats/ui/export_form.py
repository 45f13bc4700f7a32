"""The page's Export form, read into the filters of an export (docs/export.md › On the
page): the same filters as `bulk-chats export`, in the page's own words.

Its fields take an agent by id or email and a department by id or name in one field each
(digits are an id); the dates are the browser's (`YYYY-MM-DD`), in local time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bulk_chats.checks.columns import chat_status_option
from bulk_chats.errors import InputError
from bulk_chats.jobs.export_filters import parse_when
from bulk_chats.settings import ExportFilters


def export_filters(body: Mapping[str, Any]) -> ExportFilters:
    """The filters the form's fields (`statuses`, `assignee`, `department`,
    `customer_email`, `customer_user_id`, `since`, `until`) give; `InputError` with one
    line, in the page's words, for one that cannot be used."""
    statuses = body.get("statuses") or []
    if not isinstance(statuses, list):
        raise InputError("status: choose among the statuses listed")
    assignee, assignee_email = _id_or_name(_field(body, "assignee"))
    department, department_name = _id_or_name(_field(body, "department"))
    customer_email = _field(body, "customer_email")
    customer_user_id = _field(body, "customer_user_id")
    if customer_email and customer_user_id:
        raise InputError("give the customer's email or their user ID, not both")
    filters = ExportFilters(
        statuses=tuple(dict.fromkeys(chat_status_option(str(s), named="status") for s in statuses)),
        assignee=assignee,
        assignee_email=assignee_email,
        department=department,
        department_name=department_name,
        customer_email=customer_email,
        customer_user_id=customer_user_id,
        since=parse_when(_field(body, "since"), "Created since"),
        until=parse_when(_field(body, "until"), "Created before"),
    )
    if filters.since and filters.until and filters.since >= filters.until:
        raise InputError("Created since must come before Created before")
    return filters


def _field(body: Mapping[str, Any], name: str) -> str | None:
    value = str(body.get(name) or "").strip()
    return value or None


def _id_or_name(value: str | None) -> tuple[int | None, str | None]:
    """Digits are an id; anything else a name (or an agent's email)."""
    if value is None:
        return None, None
    if value.isascii() and value.isdigit() and int(value) > 0:
        return int(value), None
    return None, value
