"""What a lost answer did: whether a request that got no usable answer took effect after all.

After a lost answer to `POST /v1/chats` (or a run that died with one in flight) the chat
may exist, and sending again would make a second one: a search for the customer's chats
created since the attempt (less `SEARCH_SKEW`) finds it. After a lost `POST
/v1/messages` the message may be in the chat: the chat's messages show it. The sender
owns when to ask and what to do with the answer; this module owns what counts as a match.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Set
from dataclasses import dataclass

from bulk_chats.api.entities import ABSENT, PUBLIC_API, Chat, Message
from bulk_chats.errors import ApiError
from bulk_chats.records import ChatRequest

SEARCH_SKEW = 120.0
"""Seconds subtracted from an attempt's start when searching for its chat: our clock and
the API's may disagree, and a chat created a little "before" the attempt must be found."""

SearchChats = Callable[[int, int], Awaitable[list[Chat]]]
"""Chats of a customer created at or after unix seconds: `HelpCrunchClient.search_chats`,
with whatever retries the caller wants."""


async def find_chat(
    search: SearchChats, request: ChatRequest, *, since: float, claimed: Set[int]
) -> int | None:
    """The id of the earliest chat matching `request`, created since `since` (unix seconds,
    less `SEARCH_SKEW`) and not in `claimed`; None when there is none.

    Raises the search's `ApiError` when it cannot be done.
    """
    created_since = math.floor(since - SEARCH_SKEW)
    chats = await search(request.customer_id, created_since)
    return pick_chat(chats, request, created_since=created_since, claimed=claimed)


@dataclass(frozen=True, slots=True)
class MessageCheck:
    """What a chat's messages showed of a row's first message.

    `message_id` is set when the message is there; `absent` when the messages were read
    and it is not among them, so posting it makes no duplicate. Neither: they could not
    be read (`error` says why), which is never taken for "not there".
    """

    message_id: int | None = None
    absent: bool = False
    error: ApiError | None = None


def find_message(messages: Iterable[Message], request: ChatRequest) -> MessageCheck:
    """Whether `request`'s first message is among a chat's `messages` (its whole list,
    read from `GET /v1/chats/{id}/messages`): the same text, spaces around aside."""
    if request.message is None:
        return MessageCheck()
    text = request.message.text.strip()
    found = next((m for m in messages if m.text is not None and m.text.strip() == text), None)
    return MessageCheck(message_id=found.id) if found is not None else MessageCheck(absent=True)


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


def find_posted(messages: Iterable[Message], text: str, *, known: Set[int]) -> MessageCheck:
    """Whether a message of a transcript whose answer was lost is among its chat's
    `messages` (the whole list, read from `GET /v1/chats/{id}/messages`): one with its
    `text` (spaces around aside) that is none of the conversation's messages `known` to
    be in already. A conversation may say the same thing twice; the known ids are what
    tell the one looked for from the one posted before it. The oldest (the last of the
    list, which comes newest first), when several."""
    wanted = text.strip()
    found = [m.id for m in messages if m.text is not None and m.text.strip() == wanted]
    unknown = [message_id for message_id in found if message_id not in known]
    return MessageCheck(message_id=unknown[-1]) if unknown else MessageCheck(absent=True)
