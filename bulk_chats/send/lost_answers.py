"""What a lost answer did: whether a request that got no usable answer took effect after all.

After a lost answer to `POST /v1/chats` (or a run that died with one in flight) the chat
may exist, and sending again would make a second one: a search for the customer's chats
created since the attempt began (on the API's clock, `api.server_clock`) finds it. After
a lost `POST /v1/messages` the message may be in the chat: the chat's messages show it.
The sender owns when to ask and what to do with the answer; this module owns what counts
as a match.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Set
from dataclasses import dataclass

from bulk_chats.api.entities import ABSENT, PUBLIC_API, Chat, Message
from bulk_chats.errors import ApiError
from bulk_chats.records import ChatRequest

SEARCH_SKEW = 120.0
"""Seconds subtracted from an attempt's start when searching for its chat while the API's
clock is not known: ours and the API's may disagree, and a chat created a little "before"
the attempt must be found."""

CLOCK_MARGIN = 0.5
"""Seconds subtracted from an attempt's start on the API's clock, when that is known: the
answers' `Date` that tells it and the chats' `createdAt` may come from different hosts."""

DATE_SLACK = 3.0
"""Seconds after the window's start within which a chat may still have been made before
the attempt: the `Date` that put the attempt on the API's clock is to the second, and a
server may stamp it a second late (it keeps one per second), besides `CLOCK_MARGIN`."""

SearchChats = Callable[[int, int], Awaitable[list[Chat]]]
"""Chats of a customer created at or after unix seconds: `HelpCrunchClient.search_chats`,
with whatever retries the caller wants."""


async def find_chat(
    search: SearchChats,
    request: ChatRequest,
    *,
    since: float,
    claimed: Set[int],
    lead: Callable[[], float | None] = lambda: None,
) -> int | None:
    """The id of the chat matching `request` that an attempt started at `since` (unix
    seconds, our clock) made, not in `claimed`, as `pick_chat` tells it among the
    customer's chats created since `since` less `SEARCH_SKEW`; None when there is none.
    `lead()` is how far the API's clock is at least ahead of ours (`api.server_clock`),
    None when unknown: asked once the search is answered, whose `Date` tells it too.

    Raises the search's `ApiError` when it cannot be done.
    """
    chats = await search(request.customer_id, math.floor(since - SEARCH_SKEW))
    return pick_chat(chats, request, since=since, claimed=claimed, lead=lead())


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
    chats: Iterable[Chat],
    request: ChatRequest,
    *,
    since: float,
    claimed: Set[int],
    lead: float | None = None,
) -> int | None:
    """Which of `chats`, unclaimed and matching `request`, an attempt started at `since`
    (unix seconds, our clock) made: the first the API dated at or after the attempt's
    start on its clock (`lead`: how far it is at least ahead of ours). Raises
    `AmbiguousChat` when that first one may have been made before the attempt and
    another may be the attempt's.

    The attempt's chat was made after the attempt began, so a chat of the same customer
    made before it by anyone else (another import, a script) is older: taking the
    earliest of the last two minutes would put our messages into that one, or, when the
    attempt made none, adopt it. But the API dates chats to the second and its `Date`
    may be a second old, so a chat dated within `DATE_SLACK` of the window's start may
    be from just before the attempt: with another to choose from, none is taken. With no
    `lead` known (no answer gave its `Date`), the window is `SEARCH_SKEW` wide: the first
    chat dated at or after `since` (its second), else, the API's clock behind ours, the
    last one before it.
    """
    created_since = math.floor(since - SEARCH_SKEW)
    if lead is not None:
        created_since = math.floor(since + lead - CLOCK_MARGIN)
    after: list[tuple[float, int]] = []
    before: list[tuple[float, int]] = []
    start = created_since if lead is not None else math.floor(since)
    for chat in chats:
        if chat.id in claimed or not matches(chat, request, created_since=created_since):
            continue
        created = chat.created_at if chat.created_at is not None else math.inf
        (after if created >= start else before).append((created, chat.id))
    after.sort()
    if lead is not None and len(after) > 1 and after[0][0] < start + DATE_SLACK:
        raise AmbiguousChat(tuple(chat_id for _, chat_id in after))
    if after:
        return after[0][1]
    return max(before)[1] if before else None


class AmbiguousChat(Exception):
    """Several chats may be the one an attempt made, and nothing tells which: none is
    taken, and the row is left for a person to settle. `ids` are those chats."""

    def __init__(self, ids: tuple[int, ...]) -> None:
        super().__init__(
            f"chats {', '.join(map(str, ids))} of this customer were all made about when "
            "this row's chat was sent, and any of them may be its own: look at them in "
            "HelpCrunch and put the row's in chat_id (or clear this status cell if none "
            "is), then run again"
        )
        self.ids = ids


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
