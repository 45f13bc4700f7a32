"""The sending stage of transcripts: each conversation's messages in order, each exactly
once across lost answers, held back behind a refusal, and the status after the last."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import httpx
import pytest
import respx

from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.records import ChatRequest, Conversation, FirstMessage, Outcome, Status
from bulk_chats.send.chats import SEARCH_ATTEMPTS
from bulk_chats.send.conversations import send_conversations
from bulk_chats.send.pool import SendResult
from tests.fakes import WALL0, FakeTime, RecordingJournal, RecordingProgress, fake_client

pytestmark = pytest.mark.anyio


@dataclass
class FakeDesk:
    """The endpoints a transcript uses, keeping what they stored: each chat's messages in
    order, and every request in the order it came (`log`).

    `after` makes the n-th `POST /messages` (1-based) store its message and then fail as
    named ("timeout", "500"); `before` makes it fail without storing; `refused` texts are
    refused with 400; `unreadable` makes every listing of a chat's messages fail."""

    log: list[str] = field(default_factory=list)
    chats: dict[int, list[tuple[int, str]]] = field(default_factory=dict)
    statuses: dict[int, str] = field(default_factory=dict)
    after: dict[int, str] = field(default_factory=dict)
    before: dict[int, str] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)
    refuse_chats: bool = False
    unreadable: bool = False
    posts: int = 0
    on_post: Any = None
    next_message: int = 7310001

    def install(self, api: respx.MockRouter) -> None:
        api.post("/chats").mock(side_effect=self.create)
        api.post("/messages").mock(side_effect=self.post)
        api.get(url__regex=r"/chats/\d+/messages").mock(side_effect=self.listing)
        api.put("/chats/status").mock(side_effect=self.status)

    def create(self, request: httpx.Request) -> httpx.Response:
        self.log.append("POST /chats")
        if self.refuse_chats:
            return _errors(400, ("customer", "Customer not found"))
        chat_id = 542336 + len(self.chats)
        self.chats[chat_id] = []
        return httpx.Response(201, json={"id": chat_id, "createdAt": int(WALL0)})

    def post(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.posts += 1
        self.log.append(f"POST /messages {body['chat']} {body['text']}")
        if self.on_post is not None:
            self.on_post(body)
        fault = self.before.get(self.posts)
        if fault == "500":
            return _errors(500, ("internal_error", "Internal error"))
        if body["text"] in self.refused:
            return _errors(400, ("invalid_chat_value", "text value is invalid"))
        message_id = self.next_message
        self.next_message += 1
        self.chats[body["chat"]].append((message_id, body["text"]))
        fault = self.after.get(self.posts)
        if fault == "timeout":
            raise httpx.ReadTimeout("no answer")
        if fault == "500":
            return _errors(500, ("internal_error", "Internal error"))
        return httpx.Response(200, json={"id": message_id, "chat": body["chat"]})

    def listing(self, request: httpx.Request) -> httpx.Response:
        chat_id = int(re.findall(r"/chats/(\d+)/messages", request.url.path)[0])
        self.log.append(f"GET /chats/{chat_id}/messages")
        if self.unreadable:
            return _errors(500, ("internal_error", "Internal error"))
        newest_first = [{"id": i, "text": t} for i, t in reversed(self.chats[chat_id])]
        offset = int(request.url.params.get("offset", 0))
        page = newest_first[offset : offset + int(request.url.params.get("limit", 100))]
        return httpx.Response(200, json={"data": page, "total": len(newest_first)})

    def status(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.log.append(f"PUT /chats/status {body['id']}")
        self.statuses[body["id"]] = body["status"]
        return httpx.Response(200, json={"id": body["id"], "status": body["status"]})

    def texts(self, chat_id: int) -> list[str]:
        return [text for _, text in self.chats[chat_id]]


def _errors(status: int, *entries: tuple[str, str]) -> httpx.Response:
    return httpx.Response(status, json={"errors": [{"code": c, "message": m} for c, m in entries]})


@dataclass
class Harness:
    api: respx.MockRouter
    client: HelpCrunchClient
    time: FakeTime
    desk: FakeDesk = field(default_factory=FakeDesk)
    journal: RecordingJournal = field(default_factory=RecordingJournal)
    progress: RecordingProgress = field(default_factory=RecordingProgress)

    async def send(self, conversations: Sequence[Conversation], **options: Any) -> SendResult:
        options.setdefault("concurrency", 2)
        return await send_conversations(
            conversations,
            self.client,
            progress=self.progress,
            journal=self.journal,
            clock=self.time.clock,
            wall_clock=self.time.wall,
            sleep=self.time.sleep,
            **options,
        )


@pytest.fixture
async def harness(api: respx.MockRouter) -> AsyncIterator[Harness]:
    fake = FakeTime()
    async with fake_client(api, fake) as client:
        made = Harness(api, client, fake)
        made.desk.install(api)
        yield made


def conversation(
    first: int,
    texts: Sequence[str],
    *,
    name: str = "T-1",
    customer: int = 100,
    status: str | None = "closed",
    chat_id: int | None = None,
) -> Conversation:
    """A conversation of `texts`, its rows numbered from index `first`."""
    rows = tuple(
        ChatRequest(
            index=first + n,
            source_row=first + n + 2,
            customer=customer,
            application=9,
            message=FirstMessage(text),
            chat_id=chat_id,
            status=status,
            conversation=name,
            position=n,
        )
        for n, text in enumerate(texts)
    )
    return Conversation(chat=replace(rows[0], message=None), messages=rows, last=rows[-1])


def statuses(result: SendResult) -> list[Status]:
    return [result.outcomes[i].status for i in sorted(result.outcomes)]


async def test_messages_go_in_order_one_after_another_and_the_status_after_the_last(
    harness: Harness,
) -> None:
    """Two conversations side by side: each chat holds its messages in order, its status
    set after its last message, and each row its chat and its own message."""
    first = conversation(0, ["a1", "a2", "a3"], name="A", customer=100)
    second = conversation(3, ["b1", "b2"], name="B", customer=101)
    result = await harness.send([first, second])
    desk = harness.desk
    chat_a, chat_b = (int(o.chat_id or 0) for o in (result.outcomes[0], result.outcomes[3]))
    assert desk.texts(chat_a) == ["a1", "a2", "a3"]
    assert desk.texts(chat_b) == ["b1", "b2"]
    for chat_id, texts in ((chat_a, ["a1", "a2", "a3"]), (chat_b, ["b1", "b2"])):
        mine = [e for e in desk.log if str(chat_id) in e]
        assert mine == [f"POST /messages {chat_id} {t}" for t in texts] + [
            f"PUT /chats/status {chat_id}"
        ]
    assert statuses(result) == [Status.CREATED] * 5
    assert [result.outcomes[i].chat_id for i in range(5)] == [chat_a] * 3 + [chat_b] * 2
    posted = dict(desk.chats[chat_a] + desk.chats[chat_b])
    assert {result.outcomes[i].message_id for i in range(5)} == set(posted)
    assert harness.progress.total == 5
    assert harness.progress.conversations_done == [(0, 2), (1, 2), (2, 2)]


async def test_a_conversation_costs_one_chat_one_request_a_message_and_one_status(
    harness: Harness,
) -> None:
    """Request economy: nothing is read, nothing sent twice."""
    await harness.send([conversation(0, ["x", "y", "z", "w"])])
    kinds = [" ".join(entry.split()[:2]) for entry in harness.desk.log]
    assert kinds == ["POST /chats"] + ["POST /messages"] * 4 + ["PUT /chats/status"]


async def test_a_refused_message_holds_back_the_later_ones_and_the_status(
    harness: Harness,
) -> None:
    """A 400 on the second message: it is message_failed with the API's code, the later
    ones not_sent naming its row, and the status is not set."""
    harness.desk.refused = {"bad"}
    result = await harness.send([conversation(0, ["ok", "bad", "later", "last"])])
    assert statuses(result) == [
        Status.CREATED,
        Status.MESSAGE_FAILED,
        Status.NOT_SENT,
        Status.NOT_SENT,
    ]
    refused = result.outcomes[1]
    assert (refused.error_code, refused.http_status) == ("invalid_chat_value", 400)
    assert result.outcomes[3].error_message == (
        "not sent: held back behind row 3, whose message is not in; a conversation's "
        "messages go in order"
    )
    assert all(result.outcomes[i].chat_id == result.outcomes[0].chat_id for i in range(4))
    assert not any(e.startswith("PUT") for e in harness.desk.log)
    assert ("message-failed", 1, None) in harness.journal.events


async def test_a_lost_answer_after_storing_is_found_in_the_chat_and_not_posted_again(
    harness: Harness,
) -> None:
    """The second message is stored and its answer times out: the chat's messages show
    it, it is taken, and the third follows; each message once."""
    harness.desk.after = {2: "timeout"}
    result = await harness.send([conversation(0, ["one", "two", "three"])])
    chat_id = int(result.outcomes[0].chat_id or 0)
    assert harness.desk.texts(chat_id) == ["one", "two", "three"]
    assert statuses(result) == [Status.CREATED] * 3
    assert result.outcomes[1].message_id == harness.desk.chats[chat_id][1][0]
    # One read of the chat's messages: one page, whose `total` says it is all.
    assert sum(1 for e in harness.desk.log if e.startswith("GET")) == 1


@pytest.mark.parametrize("stored", [True, False], ids=["stored", "not-stored"])
async def test_of_two_identical_texts_the_one_in_is_never_taken_for_the_other(
    harness: Harness, stored: bool
) -> None:
    """ "Hello?" twice; the second one's answer is lost (a 500), after storing it or
    before: the chat is read, the first "Hello?" is known as the first, and the chat ends
    with exactly two."""
    (harness.desk.after if stored else harness.desk.before)[2] = "500"
    result = await harness.send([conversation(0, ["Hello?", "Hello?", "Bye"])])
    chat_id = int(result.outcomes[0].chat_id or 0)
    assert harness.desk.texts(chat_id) == ["Hello?", "Hello?", "Bye"]
    ids = [message_id for message_id, _ in harness.desk.chats[chat_id]]
    assert [result.outcomes[i].message_id for i in range(3)] == ids
    posts = sum(1 for e in harness.desk.log if e.startswith("POST /messages"))
    assert posts == (3 if stored else 4)


async def test_an_unreadable_chat_is_never_taken_for_a_message_not_there(
    harness: Harness,
) -> None:
    """A lost answer and a chat whose messages cannot be read: the message is not posted
    again, its row says why, the rest wait, and the journal leaves it for the next run."""
    harness.desk.after = {1: "timeout"}
    harness.desk.unreadable = True
    result = await harness.send([conversation(0, ["one", "two"])])
    chat_id = int(result.outcomes[0].chat_id or 0)
    assert harness.desk.texts(chat_id) == ["one"]
    assert statuses(result) == [Status.MESSAGE_FAILED, Status.NOT_SENT]
    assert "the next run looks for it in the chat" in result.outcomes[0].error_message
    gets = sum(1 for e in harness.desk.log if e.startswith("GET"))
    assert gets == SEARCH_ATTEMPTS
    assert ("message-unknown", 0, None) in harness.journal.events


async def test_a_message_an_earlier_run_may_have_posted_is_looked_for_first(
    harness: Harness,
) -> None:
    """The chat exists with the first message in it, unconfirmed: it is found and taken
    (already created), not posted; the second is posted."""
    harness.desk.chats[542336] = [(7300001, "one")]
    talk = conversation(0, ["one", "two"], chat_id=542336)
    first = replace(talk.messages[0], search_since=WALL0 - 60)
    talk = replace(talk, messages=(first, talk.messages[1]))
    result = await harness.send([talk])
    assert harness.desk.texts(542336) == ["one", "two"]
    assert statuses(result) == [Status.ALREADY_CREATED, Status.CREATED]
    assert result.outcomes[0].message_id == 7300001
    assert not any(e.startswith("POST /chats") for e in harness.desk.log)


async def test_with_every_message_in_only_the_status_is_set(harness: Harness) -> None:
    """A conversation whose messages an earlier run posted: one PUT, and its last row
    already created with its message."""
    last = replace(conversation(4, ["done"], chat_id=542336).messages[0], message_id=7300009)
    talk = Conversation(chat=replace(last, message=None), messages=(), last=last)
    harness.desk.chats[542336] = [(7300009, "done")]
    result = await harness.send([talk])
    assert harness.desk.log == ["PUT /chats/status 542336"]
    assert result.outcomes == {
        4: Outcome(index=4, status=Status.ALREADY_CREATED, chat_id=542336, message_id=7300009)
    }


async def test_a_status_refused_is_status_failed_on_the_last_row(harness: Harness) -> None:
    """The status could not be set: the last row keeps its chat and message."""
    harness.api.put("/chats/status").respond(404, json={"errors": [{"code": "chat_not_found"}]})
    result = await harness.send([conversation(0, ["a", "b"])])
    assert statuses(result) == [Status.CREATED, Status.STATUS_FAILED]
    assert result.outcomes[1].message_id is not None
    assert result.outcomes[1].error_code == "chat_not_found"


async def test_a_stop_between_messages_posts_no_more_and_sets_no_status(
    harness: Harness,
) -> None:
    """Ctrl-C while the first message is answered: no further message of the
    conversation goes, its rows are not_sent, its status is not set."""
    stop = anyio.Event()
    harness.desk.on_post = lambda body: stop.set()
    result = await harness.send([conversation(0, ["a", "b", "c"])], stop=stop)
    assert statuses(result) == [Status.CREATED, Status.NOT_SENT, Status.NOT_SENT]
    assert result.interrupted
    assert not any(e.startswith("PUT") for e in harness.desk.log)


async def test_a_401_on_a_message_stops_the_run(harness: Harness) -> None:
    """A refused key: the message and the rest are not_sent and the run reports it."""
    harness.api.post("/messages").respond(401, json={"errors": [{"code": "unauthorized"}]})
    result = await harness.send([conversation(0, ["a", "b"])])
    assert result.auth_failed
    assert statuses(result) == [Status.NOT_SENT, Status.NOT_SENT]


async def test_a_chat_refused_fails_every_row_of_its_conversation(harness: Harness) -> None:
    """No chat, no message: every row failed with the API's error."""
    harness.desk.refuse_chats = True
    result = await harness.send([conversation(0, ["a", "b"])])
    assert statuses(result) == [Status.FAILED, Status.FAILED]
    assert {o.error_code for o in result.outcomes.values()} == {"customer"}
    assert not any(e.startswith("POST /messages") for e in harness.desk.log)


async def test_every_message_is_announced_before_it_goes_and_recorded_with_its_id(
    harness: Harness,
) -> None:
    """The journal hears of each message before its request and of its id after."""
    result = await harness.send([conversation(0, ["a", "b"])])
    events = [e for e in harness.journal.events if e[0].startswith("message")]
    ids = [result.outcomes[i].message_id for i in range(2)]
    key_a, key_b = (r.message_key for r in conversation(0, ["a", "b"]).messages)
    assert events == [
        ("message-attempt", 0, key_a),
        ("message-posted", 0, ids[0]),
        ("message-attempt", 1, key_b),
        ("message-posted", 1, ids[1]),
    ]


async def test_a_chat_an_earlier_run_made_found_by_search_is_journalled_before_a_message(
    harness: Harness,
) -> None:
    """The earlier run's chat, unanswered then, found now: the journal hears it exists
    before the first message goes, so that the next run neither searches for it again
    nor takes its messages for unsent."""
    harness.desk.chats[542336] = []
    harness.api.post("/chats/search").respond(
        200,
        json={
            "data": [{"id": 542336, "customer": 100, "createdAt": int(WALL0), "applicationId": 9}],
            "meta": {"total": 1},
        },
    )
    talk = conversation(0, ["a"])
    talk = replace(talk, chat=replace(talk.chat, search_since=WALL0 - 10))
    result = await harness.send([talk])
    assert result.outcomes[0].status is Status.CREATED
    assert not any(e == "POST /chats" for e in harness.desk.log)
    records = [e for e in harness.journal.events if e[0] in ("chat-record", "message-attempt")]
    assert records[0][0] == "chat-record"
    assert (records[0][2].status, records[0][2].chat_id) == (Status.CREATED, 542336)
    assert records[1][0] == "message-attempt"


async def test_messages_a_run_elsewhere_posted_are_found_one_after_another(
    harness: Harness,
) -> None:
    """The chat holds the first two messages, posted by a run this journal does not know
    of: the first is looked for, found, so the second is looked for too, found, and the
    third, not there, is posted; nothing twice."""
    harness.desk.chats[542336] = [(7300001, "one"), (7300002, "two")]
    talk = conversation(0, ["one", "two", "three"], chat_id=542336)
    first = replace(talk.messages[0], search_since=0.0)
    talk = replace(talk, messages=(first, *talk.messages[1:]))
    result = await harness.send([talk])
    assert harness.desk.texts(542336) == ["one", "two", "three"]
    assert statuses(result) == [Status.ALREADY_CREATED, Status.ALREADY_CREATED, Status.CREATED]
    assert [e.split()[0] for e in harness.desk.log] == ["GET", "GET", "GET", "POST", "PUT"]


async def test_a_lost_answer_as_the_run_stops_says_the_stop_kept_it_from_looking(
    harness: Harness,
) -> None:
    """Ctrl-C as a message's answer is lost: the look in the chat is not made, the row
    says the run stopped before it, and the journal leaves the message for the next run
    to look for."""
    stop = anyio.Event()
    harness.desk.after = {1: "timeout"}
    harness.desk.on_post = lambda body: stop.set()
    result = await harness.send([conversation(0, ["one", "two"])], stop=stop, stop_grace=0.0)
    assert statuses(result) == [Status.MESSAGE_FAILED, Status.NOT_SENT]
    assert "the run stopped before the chat's messages could be read" in (
        result.outcomes[0].error_message
    )
    assert ("message-unknown", 0, None) in harness.journal.events
