"""Paging and the filter language of `POST /v1/chats/search` and `POST /v1/customers/search`.

A search body is `{"filter": [{"field", "operator", "value"}, ...], "comparison": "AND" |
"OR", "sort": field, "order": "asc" | "desc", "offset", "limit"}`, all optional. Number
fields take `= != > >= < <=` and a JSON integer (or null for `=`/`!=` on a field that may
be empty); text fields take `= != ~` and a string. Anything else is a 400 naming the entry,
e.g. code `filter[0].value`.

The documentation does not say whether `=` on text ignores case. By default the sandbox
takes the lenient reading, `=` and `!=` ignoring case (`ANNA@X.COM` finds `anna@x.com`);
with `exact_text` (`--quirks`) they compare exactly, case and all. `~` (contains) ignores
case either way. An empty text field contains nothing.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bulk_chats.sandbox.refusals import (
    ARRAY,
    NOT_BLANK,
    NOT_VALID,
    NUMERIC,
    STRING,
    Entry,
    Refusal,
    is_id,
)
from bulk_chats.sandbox.seed import Customer
from bulk_chats.sandbox.state import Chat

MAX_LIMIT = 100
"""Default and largest page size of every listing and search."""

T = TypeVar("T")

_NUMBER_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_EXACT_TEXT_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "~": lambda have, want: want.casefold() in have.casefold(),
}
_CASELESS_TEXT_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    **_EXACT_TEXT_OPERATORS,
    "=": lambda have, want: have.casefold() == want.casefold(),
    "!=": lambda have, want: have.casefold() != want.casefold(),
}


@dataclass(frozen=True, slots=True)
class Field(Generic[T]):
    """A searchable field: whether it is text, may be empty, and how to read it."""

    text: bool
    get: Callable[[T], Any]
    nullable: bool = False


def _seconds(value: float | None) -> int | None:
    """A time as the API shows and compares it: whole unix seconds."""
    return None if value is None else int(value)


CHAT_FIELDS: dict[str, Field[Chat]] = {
    "chats.id": Field(False, lambda c: c.id),
    "chats.customer": Field(False, lambda c: c.customer.id),
    "chats.application": Field(False, lambda c: c.application),
    "chats.createdAt": Field(False, lambda c: int(c.created_at)),  # whole seconds, as shown
    "chats.assignee": Field(False, lambda c: c.assignee and c.assignee.id, nullable=True),
    "chats.department": Field(False, lambda c: c.department and c.department.id, nullable=True),
    "chats.status": Field(True, lambda c: c.status),
    "chats.customer.email": Field(True, lambda c: c.customer.email, nullable=True),
    "chats.customer.userId": Field(True, lambda c: c.customer.user_id, nullable=True),
    "chats.closedAt": Field(False, lambda c: _seconds(c.closed_at), nullable=True),
    "chats.rating": Field(True, lambda c: c.rating, nullable=True),
}
"""The chat fields a search filters and sorts on."""

CHAT_SORTS: dict[str, Callable[[Chat], Any]] = {
    "chats.createdAt": lambda c: int(c.created_at),
    "chats.lastMessageAt": lambda c: _seconds(c.messages[-1].created_at if c.messages else None),
    "chats.lastCustomerMessageAt": lambda c: _seconds(
        next((m.created_at for m in reversed(c.messages) if m.agent is None), None)
    ),
    "chats.closedAt": lambda c: _seconds(c.closed_at),
}
"""What `GET /v1/chats` sorts by (`sort`), as the documentation lists it."""

CUSTOMER_FIELDS: dict[str, Field[Customer]] = {
    "customers.id": Field(False, lambda c: c.id),
    "customers.email": Field(True, lambda c: c.email),
    "customers.userId": Field(True, lambda c: c.user_id),
    "customers.name": Field(True, lambda c: c.name),
}


@dataclass(frozen=True, slots=True)
class Page:
    """Which slice of a listing to answer."""

    offset: int = 0
    limit: int = MAX_LIMIT

    def of(self, items: Sequence[T]) -> list[T]:
        """This page of `items`."""
        return list(items[self.offset : self.offset + self.limit])


def _paging_value(name: str, value: object, *, from_query: bool, errors: list[Entry]) -> int | None:
    if from_query and isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    if not from_query and is_id(value):
        return value
    errors.append((name, NUMERIC))
    return None


def parse_page(offset: object, limit: object, *, from_query: bool, errors: list[Entry]) -> Page:
    """`offset` and `limit` (None when absent) as a `Page`, appending problems to `errors`.

    From a query string they are digit strings; from a JSON body, integers. A limit over
    100 is refused rather than cut down, so a client that expects more per page finds out.
    """
    page = Page()
    if offset is not None:
        value = _paging_value("offset", offset, from_query=from_query, errors=errors)
        if value is not None and value < 0:
            errors.append(("offset", "This value should be greater than or equal to 0."))
        elif value is not None:
            page = Page(value, page.limit)
    if limit is not None:
        value = _paging_value("limit", limit, from_query=from_query, errors=errors)
        if value is not None and not 1 <= value <= MAX_LIMIT:
            errors.append(("limit", f"This value should be between 1 and {MAX_LIMIT}."))
        elif value is not None:
            page = Page(page.offset, value)
    return page


@dataclass(frozen=True, slots=True)
class _Condition(Generic[T]):
    field: Field[T]
    operator: str
    test: Callable[[Any, Any], bool]
    value: Any

    def holds(self, item: T) -> bool:
        have = self.field.get(item)
        if have is None or self.value is None:
            # An empty field equals only null, contains nothing and is neither above nor
            # below anything.
            if self.operator in ("=", "!="):
                same = (have is None) == (self.value is None)
                return same == (self.operator == "=")
            return False
        return self.test(have, self.value)


def _condition(
    index: int,
    entry: object,
    fields: dict[str, Field[T]],
    errors: list[Entry],
    *,
    exact_text: bool,
) -> _Condition[T] | None:
    where = f"filter[{index}]"
    if not isinstance(entry, dict):
        errors.append((where, ARRAY))
        return None
    name, op, value = entry.get("field"), entry.get("operator"), entry.get("value")
    field = fields.get(name) if isinstance(name, str) else None
    if name is None or name == "":
        errors.append((f"{where}.field", NOT_BLANK))
    elif field is None:
        errors.append((f"{where}.field", NOT_VALID))
    if field is None:
        return None
    if not field.text:
        operators = _NUMBER_OPERATORS
    else:
        operators = _EXACT_TEXT_OPERATORS if exact_text else _CASELESS_TEXT_OPERATORS
    test = operators.get(op) if isinstance(op, str) else None
    if test is None or not isinstance(op, str):
        errors.append((f"{where}.operator", NOT_BLANK if op in (None, "") else NOT_VALID))
        return None
    if value is None:
        if not (field.nullable and op in ("=", "!=")):
            errors.append((f"{where}.value", NOT_BLANK))
            return None
    elif field.text and not isinstance(value, str):
        errors.append((f"{where}.value", STRING))
        return None
    elif not field.text and not is_id(value):
        errors.append((f"{where}.value", NUMERIC))
        return None
    return _Condition(field, op, test, value)


def search(
    body: dict[str, Any],
    items: Sequence[T],
    fields: dict[str, Field[T]],
    *,
    exact_text: bool = False,
    always: Sequence[T] = (),
) -> dict[str, Any]:
    """Answer a search `body` over `items`: `{"data": [...matches], "meta": {"total": N}}`.

    `data` holds the items themselves; the caller turns them into JSON. The default sort
    is the first of `fields` (the id). `exact_text` makes `=` on text case-sensitive;
    `always` are counted among the matches whatever the filter says (an answer not to be
    taken on trust). Raises `Refusal` (400) listing every problem.
    """
    errors: list[Entry] = []
    raw_filters = body.get("filter", [])
    conditions: list[_Condition[T]] = []
    if not isinstance(raw_filters, list):
        errors.append(("filter", ARRAY))
    else:
        for index, entry in enumerate(raw_filters):
            condition = _condition(index, entry, fields, errors, exact_text=exact_text)
            if condition is not None:
                conditions.append(condition)
    comparison = body.get("comparison", "AND")
    if not isinstance(comparison, str) or comparison.upper() not in ("AND", "OR"):
        errors.append(("comparison", NOT_VALID))
        comparison = "AND"
    sort_name = body.get("sort", next(iter(fields)))
    sort = fields.get(sort_name) if isinstance(sort_name, str) else None
    if sort is None:
        errors.append(("sort", NOT_VALID))
    order = body.get("order", "asc")
    if not isinstance(order, str) or order.lower() not in ("asc", "desc"):
        errors.append(("order", NOT_VALID))
        order = "asc"
    page = parse_page(body.get("offset"), body.get("limit"), from_query=False, errors=errors)
    if errors or sort is None:
        raise Refusal(400, *errors)

    combine = any if comparison.upper() == "OR" else all
    matches = [
        i for i in items if i in always or not conditions or combine(c.holds(i) for c in conditions)
    ]
    matches.sort(key=lambda i: (sort.get(i) is None, sort.get(i)), reverse=order.lower() == "desc")
    return {"data": page.of(matches), "meta": {"total": len(matches)}}


def list_chats(
    query: Mapping[str, str], by_creation: Sequence[Chat], *, page_size: int = MAX_LIMIT
) -> tuple[list[Chat], int]:
    """Answer `GET /v1/chats` with the query string `query` (`sort`, `order`, `offset`,
    `limit`) over every chat, `by_creation` oldest first: the page and the total. Chats
    with no value to sort by come last; ties keep creation order. `page_size` caps a page
    below `limit` (a revision that answers 50 whatever is asked). Raises `Refusal` (400).
    """
    errors: list[Entry] = []
    sort_name = query.get("sort", "chats.createdAt")
    sort = CHAT_SORTS.get(sort_name)
    if sort is None:
        errors.append(("sort", NOT_VALID))
    order = query.get("order", "asc")
    if order.lower() not in ("asc", "desc"):
        errors.append(("order", NOT_VALID))
    page = parse_page(query.get("offset"), query.get("limit"), from_query=True, errors=errors)
    if errors or sort is None:
        raise Refusal(400, *errors)
    page = Page(page.offset, min(page.limit, page_size))
    descending = order.lower() == "desc"
    if sort_name == "chats.createdAt":
        # Already in order: a slice, however many chats there are.
        ordered: Sequence[Chat] = by_creation[::-1] if descending else by_creation
    else:
        ordered = sorted(by_creation, key=lambda c: (sort(c) is None, sort(c)), reverse=descending)
    return page.of(ordered), len(by_creation)


def created_since(body: Mapping[str, Any], by_creation: Sequence[Chat]) -> Sequence[Chat]:
    """The chats of `by_creation` (oldest first) that a search `body` can match, given its
    lower bounds on `chats.createdAt` under `AND`: a search that moves its lower bound
    through 100,000 chats scans only what lies past it."""
    if str(body.get("comparison", "AND")).upper() != "AND":
        return by_creation
    filters = body.get("filter")
    bounds = [
        entry["value"] + (entry["operator"] == ">")
        for entry in (filters if isinstance(filters, list) else [])
        if isinstance(entry, dict)
        and entry.get("field") == "chats.createdAt"
        and entry.get("operator") in (">=", ">")
        and is_id(entry.get("value"))
    ]
    if not bounds:
        return by_creation
    start = bisect.bisect_left(by_creation, max(bounds), key=lambda c: int(c.created_at))
    return by_creation[start:]
