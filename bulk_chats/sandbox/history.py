"""Chats seeded in the sandbox's past, with their messages, so that an export can be tried
and tested offline: made up (`history`) or read from a JSON file (`load_seed_chats`,
`bulk-chats sandbox --seed-chats FILE`).

The file holds `{"chats": [...]}` (or the list alone), each chat an object:

    {"customer": 8738438, "application": 3838, "assignee": 4188, "department": 233048,
     "status": "pending", "createdAt": "2025-10-01T09:30:00Z", "closedAt": null,
     "rating": null,
     "messages": [{"text": "Hello", "createdAt": "2025-10-01T09:30:00Z"},
                  {"text": "Hi, Anna here", "agent": 4188, "type": "message",
                   "createdAt": "2025-10-01T09:31:00Z"}]}

`customer` and `application` are required; ids are those of the seed (`bulk_chats.sandbox.seed`).
A time is unix seconds or an ISO 8601 date-time (UTC unless it carries an offset). A
message without `agent` is the customer's.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bulk_chats.errors import InputError
from bulk_chats.sandbox.seed import (
    APPLICATIONS,
    CUSTOMERS,
    DEPARTMENTS,
    SeedChat,
    SeedMessage,
)

HISTORY_STATUSES = ("closed", "pending", "opened", "closed", "on hold", "new", "closed")
"""The statuses `history` gives its chats, in turn."""

RATINGS = ("great", "average", "poor")
"""A chat's rating, as the API spells it."""

_CHAT_FIELDS = frozenset(
    {
        "customer",
        "application",
        "assignee",
        "department",
        "status",
        "createdAt",
        "closedAt",
        "rating",
        "messages",
    }
)
_MESSAGE_FIELDS = frozenset({"text", "createdAt", "agent", "type"})


def history(
    count: int, *, end: float, days: float = 90.0, messages: int = 2
) -> tuple[SeedChat, ...]:
    """`count` made-up chats of the default seed, created evenly over the `days` before
    `end` (unix seconds), oldest first: customers, agents, departments and statuses in
    turn (one chat in five unassigned), each with `messages` messages a minute apart,
    the customer's first. The same arguments give the same chats."""
    span = days * 86_400
    step = span / max(count, 1)
    chats = []
    for n in range(count):
        created = end - span + n * step
        status = HISTORY_STATUSES[n % len(HISTORY_STATUSES)]
        department = DEPARTMENTS[n % len(DEPARTMENTS)]
        assignee = None if n % 5 == 4 else department.agent_ids[n % len(department.agent_ids)]
        said = tuple(
            SeedMessage(
                text=f"Message {k + 1} of chat {n + 1}",
                created_at=created + 60 * k,
                agent=None if k % 2 == 0 or assignee is None else assignee,
            )
            for k in range(messages)
        )
        chats.append(
            SeedChat(
                customer=CUSTOMERS[n % len(CUSTOMERS)].id,
                application=APPLICATIONS[n % len(APPLICATIONS)],
                created_at=created,
                assignee=assignee,
                department=department.id,
                status=status,
                closed_at=created + 3_600 if status == "closed" else None,
                rating=RATINGS[n % len(RATINGS)] if status == "closed" else None,
                messages=said,
            )
        )
    return tuple(chats)


def load_seed_chats(path: Path) -> tuple[SeedChat, ...]:
    """The chats of the seed file at `path` (see the module docstring); `InputError` with
    one line naming the file, the chat and the field for anything unusable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read the seed file ({exc.strerror})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a JSON file ({exc})") from None
    chats = data.get("chats") if isinstance(data, dict) else data
    if not isinstance(chats, list):
        raise InputError(f'{path}: expected {{"chats": [...]}} or a list of chats')
    return tuple(_chat(path, f"chats[{n}]", entry) for n, entry in enumerate(chats))


def _chat(path: Path, where: str, entry: object) -> SeedChat:
    if not isinstance(entry, dict):
        raise InputError(f"{path}: {where}: not an object")
    _known(path, where, entry, _CHAT_FIELDS)
    messages = entry.get("messages") or []
    if not isinstance(messages, list):
        raise InputError(f"{path}: {where}.messages: not a list")
    return SeedChat(
        customer=_id(path, where, entry, "customer", required=True) or 0,
        application=_id(path, where, entry, "application", required=True) or 0,
        created_at=_time(path, where, entry, "createdAt", required=True) or 0.0,
        assignee=_id(path, where, entry, "assignee"),
        department=_id(path, where, entry, "department"),
        status=_text(path, where, entry, "status"),
        closed_at=_time(path, where, entry, "closedAt"),
        rating=_text(path, where, entry, "rating"),
        messages=tuple(
            _message(path, f"{where}.messages[{k}]", message) for k, message in enumerate(messages)
        ),
    )


def _message(path: Path, where: str, entry: object) -> SeedMessage:
    if not isinstance(entry, dict):
        raise InputError(f"{path}: {where}: not an object")
    _known(path, where, entry, _MESSAGE_FIELDS)
    text = _text(path, where, entry, "text")
    if not text:
        raise InputError(f"{path}: {where}.text: required")
    return SeedMessage(
        text=text,
        created_at=_time(path, where, entry, "createdAt", required=True) or 0.0,
        agent=_id(path, where, entry, "agent"),
        type=_text(path, where, entry, "type") or "message",
    )


def _known(path: Path, where: str, entry: Mapping[str, Any], fields: frozenset[str]) -> None:
    unknown = sorted(set(entry) - fields)
    if unknown:
        raise InputError(
            f"{path}: {where}: unknown field {unknown[0]!r}; fields are {', '.join(sorted(fields))}"
        )


def _id(
    path: Path, where: str, entry: Mapping[str, Any], name: str, *, required: bool = False
) -> int | None:
    value = entry.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{path}: {where}.{name}: {value!r} is not an id (a whole number)")
    return value


def _text(path: Path, where: str, entry: Mapping[str, Any], name: str) -> str | None:
    value = entry.get(name)
    if value is not None and not isinstance(value, str):
        raise InputError(f"{path}: {where}.{name}: {value!r} is not text")
    return value


def _time(
    path: Path, where: str, entry: Mapping[str, Any], name: str, *, required: bool = False
) -> float | None:
    value = entry.get(name)
    if value is None and not required:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
            return moment.timestamp()
    raise InputError(
        f"{path}: {where}.{name}: {value!r} is not a time (unix seconds, or a date-time "
        "such as 2025-10-01T09:30:00Z)"
    )
