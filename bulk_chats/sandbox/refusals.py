"""Error answers in the API's shape, and the checks of request values that produce them.

Every 4xx body is `{"errors": [{"code": "invalid_request", "message": "Invalid request"},
...]}`: the generic entry first, then one entry per problem, as HelpCrunch's documentation
shows. The entry's code is the offending field's name for a 400, a fixed code otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeGuard

from starlette.requests import Request
from starlette.responses import JSONResponse

NOT_BLANK = "This value should not be blank."
NUMERIC = "This value should be of type numeric."
STRING = "This value should be of type string."
ARRAY = "This value should be of type array."
NOT_VALID = "This value is not valid."

Entry = tuple[str, str]
"""One error entry: (code, message)."""

INVALID_REQUEST: Entry = ("invalid_request", "Invalid request")


def error_body(*entries: Entry, generic: bool = True) -> dict[str, Any]:
    """The `{"errors": [...]}` body; `generic` puts `invalid_request` first."""
    listed = ([INVALID_REQUEST] if generic else []) + list(entries)
    return {"errors": [{"code": code, "message": message} for code, message in listed]}


def error_response(
    status: int, *entries: Entry, generic: bool = True, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An error answer with `error_body(*entries)`."""
    return JSONResponse(error_body(*entries, generic=generic), status_code=status, headers=headers)


class Refusal(Exception):
    """A request the API refuses: raised by the checks, answered by the endpoint wrapper."""

    def __init__(self, status: int, *entries: Entry) -> None:
        super().__init__(status, entries)
        self.status = status
        self.entries = entries

    def response(self) -> JSONResponse:
        """The error answer."""
        return error_response(self.status, *self.entries)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; anything else is a bare 400 `invalid_request`.

    NaN and Infinity, which Python's json module accepts, are refused as the JSON they
    are not.
    """
    raw = await request.body()
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise Refusal(400) from None
    if not isinstance(body, dict):
        raise Refusal(400)
    return body


def is_id(value: object) -> TypeGuard[int]:
    """True for a JSON integer. Booleans, floats (even 4188.0) and digit strings are not.

    Stricter than HelpCrunch's "type numeric" (which may let "4188" through): a client
    that sends anything but a JSON integer as an id has a bug the sandbox should show.
    """
    return type(value) is int


def id_field(body: dict[str, Any], name: str, errors: list[Entry], *, required: bool) -> int | None:
    """`body[name]` as an id, or None, appending to `errors` what is wrong with it.

    Missing and null are blank (an error when `required`); an empty string is blank too
    for a required field and a type error for an optional one.
    """
    value = body.get(name)
    if value is None or (required and value == ""):
        if required:
            errors.append((name, NOT_BLANK))
        return None
    if not is_id(value):
        errors.append((name, NUMERIC))
        return None
    return value


def text_field(
    body: dict[str, Any], name: str, errors: list[Entry], *, required: bool
) -> str | None:
    """`body[name]` as text, or None, appending to `errors` what is wrong with it.

    Missing, null and blank (only spaces) are errors when `required`.
    """
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors.append((name, NOT_BLANK))
        return None
    if not isinstance(value, str):
        errors.append((name, STRING))
        return None
    return value
