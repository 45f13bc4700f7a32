"""Confirmation: whether a request that got no usable answer took effect after all.

After a lost answer to `POST /v1/chats` (or a run that died with one in flight) the chat
may exist, and sending again would make a second one; after a lost `POST /v1/messages`
the message may be in the chat. Both are decided from a search for the customer's chats
created since the attempt, less `CONFIRM_SKEW`. The sender owns when to ask and what to
do with the answer; this module owns what counts as a match.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Set
from dataclasses import dataclass

from bulk_chats.answers import ABSENT, PUBLIC_API, Chat
from bulk_chats.records import ChatRequest

CONFIRM_SKEW = 120.0
"""Seconds subtracted from an attempt's start when searching for its chat: our clock and
the API's may disagree, and a chat created a little "before" the attempt must be found."""

EMPTY_CHAT = "empty"
"""A chat's `status` while it has no message (the API documents it for a new chat)."""

SearchChats = Callable[[int, int], Awaitable[list[Chat]]]
"""Chats of a customer created at or after unix seconds: `HelpCrunchClient.search_chats`,
with whatever retries the caller wants."""


async def find_chat(
    search: SearchChats, request: ChatRequest, *, since: float, claimed: Set[int]
) -> int | None:
    """The id of the earliest chat matching `request`, created since `since` (unix seconds,
    less `CONFIRM_SKEW`) and not in `claimed`; None when there is none.

    Raises the search's `ApiError` when it cannot be done.
    """
    created_since = math.floor(since - CONFIRM_SKEW)
    chats = await search(request.customer, created_since)
    return pick_chat(chats, request, created_since=created_since, claimed=claimed)


@dataclass(frozen=True, slots=True)
class MessageCheck:
    """What a search showed of a chat's first message.

    `message_id` is set when the message is the chat's last one; `empty` when the chat was
    seen with no message at all. Neither: the answer cannot tell.
    """

    message_id: int | None = None
    empty: bool = False


async def look_for_message(
    search: SearchChats, request: ChatRequest, *, chat_id: int, chat_since: float
) -> MessageCheck:
    """Whether `request`'s first message is in chat `chat_id` already, created no earlier
    than `chat_since` (unix seconds). Raises the search's `ApiError`."""
    message = request.message
    if message is None:
        return MessageCheck()
    chats = await search(request.customer, math.floor(chat_since - CONFIRM_SKEW))
    for chat in chats:
        if chat.id != chat_id:
            continue
        if chat.status == EMPTY_CHAT:
            return MessageCheck(empty=True)
        text = chat.last_message_text
        if text is not None and text.strip() == message.text.strip():
            return MessageCheck(message_id=chat.last_message_id)
    return MessageCheck()


def pick_chat(
    chats: Iterable[Chat], request: ChatRequest, *, created_since: int, claimed: Set[int]
) -> int | None:
    """The earliest created chat among `chats` that matches `request` and is unclaimed."""
    best: tuple[float, int] | None = None
    for chat in chats:
        if chat.id in claimed or not matches(chat, request, created_since=created_since):
            continue
        key = (chat.created_at if chat.created_at is not None else math.inf, chat.id)
        if best is None or key < best:
            best = key
    return best[1] if best is not None else None


def matches(chat: Chat, request: ChatRequest, *, created_since: int) -> bool:
    """Whether a searched chat could be the one `request` asked for.

    Only a chat made through the API: a customer may open one in the widget at any moment,
    and taking that for ours would post our message into their conversation. A field the
    answer leaves out (`createdWith` included, which older revisions lack) is not held
    against it; an assignee or department the row left blank may have been set by the
    account's routing rules, so any will do.
    """
    if chat.created_with is not None and chat.created_with != PUBLIC_API:
        return False
    asked = (
        (chat.customer, request.customer),
        (chat.application, request.application),
        (chat.assignee, request.assignee),
        (chat.department, request.department),
    )
    for shown, wanted in asked:
        if wanted is not None and shown is not ABSENT and shown != wanted:
            return False
    return chat.created_at is None or chat.created_at >= created_since
