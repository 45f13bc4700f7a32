"""The sending stage: retries, confirmation by search, messages, stopping, journaling."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
import respx

from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.api.limiter import RateLimiter
from bulk_chats.api.retry import BACKOFF_BASE
from bulk_chats.records import ChatRequest, FirstMessage, Outcome, Status
from bulk_chats.send.chats import SEARCH_ATTEMPTS, send_chats
from bulk_chats.send.lost_answers import SEARCH_SKEW
from bulk_chats.send.pool import SendResult
from bulk_chats.settings import ApiKey
from tests.fakes import (
    API_ROOT,
    WALL0,
    FakeTime,
    RecordingJournal,
    RecordingProgress,
    fake_client,
)

BASE = API_ROOT


@dataclass
class Harness:
    """A client on a mocked API and fake time, and a way to send through it."""

    api: respx.MockRouter
    client: HelpCrunchClient
    time: FakeTime
    journal: RecordingJournal = field(default_factory=RecordingJournal)
    progress: RecordingProgress = field(default_factory=RecordingProgress)

    async def send(self, requests: Sequence[ChatRequest], **options: Any) -> SendResult:
        options.setdefault("concurrency", 2)
        return await send_chats(
            requests,
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
    """A client at 6000/min on a fake clock over the mocked API."""
    fake = FakeTime()
    async with fake_client(api, fake) as client:
        yield Harness(api, client, fake)


def row(index: int, **fields: Any) -> ChatRequest:
    fields.setdefault("customer", 100 + index)
    fields.setdefault("application", 9)
    return ChatRequest(index=index, source_row=index + 2, **fields)


def chat(chat_id: int, customer: int, **fields: Any) -> dict[str, Any]:
    """A chat object as the API returns it."""
    return {
        "id": chat_id,
        "status": "empty",
        "createdAt": str(int(WALL0)),
        "applicationId": 9,
        "customer": {"id": customer, "name": "C"},
        "assignee": None,
        "department": None,
        **fields,
    }


def created(chat_id: int) -> httpx.Response:
    return httpx.Response(201, json=chat(chat_id, 0))


def errors(status: int, *entries: tuple[str, str]) -> httpx.Response:
    return httpx.Response(status, json={"errors": [{"code": c, "message": m} for c, m in entries]})


def found(*chats: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"data": list(chats), "meta": {"total": len(chats)}})


def body(call: Any) -> Any:
    return json.loads(call.request.content)


@pytest.mark.anyio
async def test_201_creates_the_chat_and_reports_it(harness: Harness) -> None:
    """A 201 makes the row created with the chat's id, journaled after its attempt."""
    harness.api.post("/chats").respond(201, json=chat(542335, 100))
    result = await harness.send([row(0)])
    assert result == SendResult(
        outcomes={0: Outcome(index=0, status=Status.CREATED, chat_id=542335, attempts=1)}
    )
    assert [kind for kind, _, _ in harness.journal.events] == ["chat-attempt", "chat-record"]
    assert harness.journal.events[0] == ("chat-attempt", 0, WALL0)
    assert harness.progress.total == 1
    assert harness.progress.outcomes == [result.outcomes[0]]
    assert harness.progress.closed


@pytest.mark.anyio
async def test_payload_holds_integers_and_leaves_blank_fields_out(harness: Harness) -> None:
    """The chat body has JSON integers, exact past 2^53, and no blank optional fields."""
    route = harness.api.post("/chats").mock(return_value=created(1))
    await harness.send([row(0, customer=90071992547409931, department=7)])
    sent = route.calls.last.request.content
    assert json.loads(sent) == {"customer": 90071992547409931, "application": 9, "department": 7}
    assert b'"customer":90071992547409931' in sent.replace(b" ", b"")


@pytest.mark.anyio
async def test_400_fails_the_row_with_the_apis_specific_code(harness: Harness) -> None:
    """A 400 is failed with the API's field code and message, and not retried."""
    route = harness.api.post("/chats").mock(
        return_value=errors(
            400,
            ("invalid_request", "Invalid request"),
            ("customer", "This value should be of type numeric."),
        )
    )
    result = await harness.send([row(0)])
    assert result.outcomes[0] == Outcome(
        index=0,
        status=Status.FAILED,
        error_code="customer",
        error_message="This value should be of type numeric.",
        http_status=400,
        attempts=1,
    )
    assert route.call_count == 1


@pytest.mark.anyio
async def test_a_400_with_only_invalid_request_keeps_that_code(harness: Harness) -> None:
    """invalid_request is the error code when the API gives no other."""
    harness.api.post("/chats").mock(
        return_value=errors(400, ("invalid_request", "Invalid request"))
    )
    outcome = (await harness.send([row(0)])).outcomes[0]
    assert (outcome.status, outcome.error_code) == (Status.FAILED, "invalid_request")


@pytest.mark.anyio
async def test_409_fails_the_row_after_exactly_one_request(harness: Harness) -> None:
    """A 409 conflict is a refusal: failed, sent exactly once."""
    route = harness.api.post("/chats").mock(
        return_value=errors(409, ("invalid_request", "Invalid request"), ("conflict", "Nope"))
    )
    outcome = (await harness.send([row(0)])).outcomes[0]
    assert (outcome.status, outcome.error_code, outcome.http_status) == (
        Status.FAILED,
        "conflict",
        409,
    )
    assert route.call_count == 1


@pytest.mark.anyio
async def test_401_stops_the_run_and_the_rest_is_not_sent(harness: Harness) -> None:
    """A 401 sets auth_failed; that row and every row not started are not_sent."""
    route = harness.api.post("/chats").mock(
        side_effect=[created(1), errors(401, ("unauthorized", "Unauthorized"))]
    )
    result = await harness.send([row(i) for i in range(4)], concurrency=1)
    assert result.auth_failed
    assert not result.interrupted
    assert [o.status for o in result.outcomes.values()] == [
        Status.CREATED,
        Status.NOT_SENT,
        Status.NOT_SENT,
        Status.NOT_SENT,
    ]
    assert (result.outcomes[1].http_status, result.outcomes[1].error_code) == (401, "unauthorized")
    assert "401" in result.outcomes[3].error_message
    assert route.call_count == 2
    assert len(harness.progress.outcomes) == 4
    assert harness.journal.records(3) == []


@pytest.mark.anyio
async def test_429_then_201_waits_for_retry_after_then_creates(harness: Harness) -> None:
    """After a 429 with Retry-After: 30 the row is retried no sooner than 30 s later;
    the journal hears that the first attempt created nothing."""
    sent_at: list[float] = []
    answers = iter([httpx.Response(429, headers={"Retry-After": "30"}), created(5)])

    def answer(request: httpx.Request) -> httpx.Response:
        sent_at.append(harness.time.now)
        return next(answers)

    harness.api.post("/chats").mock(side_effect=answer)
    outcome = (await harness.send([row(0)])).outcomes[0]
    assert (outcome.status, outcome.chat_id, outcome.attempts) == (Status.CREATED, 5, 2)
    assert sent_at[0] == 0.0
    assert sent_at[1] >= 30.0
    assert [kind for kind, _, _ in harness.journal.events] == [
        "chat-attempt",
        "chat-withdraw",
        "chat-attempt",
        "chat-record",
    ]
    assert harness.journal.events[0][2] == harness.journal.events[1][2]


@pytest.mark.anyio
async def test_503_then_201_creates_after_a_back_off(harness: Harness) -> None:
    """A 503 surely created nothing: retried after a back-off, created on attempt 2."""
    route = harness.api.post("/chats").mock(side_effect=[errors(503), created(6)])
    outcome = (await harness.send([row(0)])).outcomes[0]
    assert (outcome.status, outcome.chat_id, outcome.attempts) == (Status.CREATED, 6, 2)
    assert route.call_count == 2
    assert any(BACKOFF_BASE / 2 <= s <= BACKOFF_BASE for s in harness.time.sleeps)


@pytest.mark.anyio
async def test_connection_refused_is_retried_blindly(harness: Harness) -> None:
    """A refused connection reached nobody: sent again without a search."""
    harness.api.post("/chats").mock(side_effect=[httpx.ConnectError("refused"), created(6)])
    search = harness.api.post("/chats/search")
    outcome = (await harness.send([row(0)])).outcomes[0]
    assert (outcome.status, outcome.attempts) == (Status.CREATED, 2)
    assert search.call_count == 0


@pytest.mark.anyio
async def test_retries_are_bounded(harness: Harness) -> None:
    """A row that keeps drawing 503s fails after max_attempts, with the last error."""
    route = harness.api.post("/chats").mock(return_value=errors(503, ("unavailable", "Later")))
    outcome = (await harness.send([row(0)], max_attempts=3)).outcomes[0]
    assert (outcome.status, outcome.attempts, outcome.http_status) == (Status.FAILED, 3, 503)
    assert outcome.error_message == "gave up after 3 attempts: Later"
    assert route.call_count == 3


@pytest.mark.anyio
async def test_retries_stop_at_max_wait(harness: Harness) -> None:
    """Back-offs that would pass max_wait end the row instead of waiting."""
    route = harness.api.post("/chats").mock(return_value=errors(503))
    # The first back-off (at most 1 s) fits in 1.2 s; the second (at least 1 s) does not.
    outcome = (await harness.send([row(0)], max_wait=1.2)).outcomes[0]
    assert outcome.status is Status.FAILED
    assert route.call_count == 2


@pytest.mark.anyio
async def test_a_timeout_is_confirmed_by_search_and_the_found_chat_adopted(
    harness: Harness,
) -> None:
    """After a timeout the chat is searched for; a match is adopted and POST goes once."""
    post = harness.api.post("/chats").mock(side_effect=httpx.ReadTimeout)
    search = harness.api.post("/chats/search").mock(return_value=found(chat(777, 100)))
    outcome = (await harness.send([row(0)])).outcomes[0]
    assert (outcome.status, outcome.chat_id, outcome.attempts) == (Status.CREATED, 777, 1)
    assert post.call_count == 1
    assert body(search.calls.last)["filter"] == [
        {"field": "chats.customer", "operator": "=", "value": 100},
        {"field": "chats.createdAt", "operator": ">=", "value": int(WALL0 - SEARCH_SKEW)},
    ]
    assert harness.journal.records(0) == [outcome]


@pytest.mark.anyio
async def test_a_timeout_with_nothing_found_is_sent_again(harness: Harness) -> None:
    """When the search finds no chat, the row is sent again as another attempt."""
    post = harness.api.post("/chats").mock(side_effect=[httpx.ReadTimeout, created(8)])
    harness.api.post("/chats/search").mock(return_value=found())
    outcome = (await harness.send([row(0)])).outcomes[0]
    assert (outcome.status, outcome.chat_id, outcome.attempts) == (Status.CREATED, 8, 2)
    assert post.call_count == 2


@pytest.mark.anyio
async def test_a_timeout_whose_search_is_refused_is_unknown(harness: Harness) -> None:
    """If the search for a lost answer fails, the row is unknown and not sent again."""
    post = harness.api.post("/chats").mock(side_effect=httpx.ReadTimeout)
    harness.api.post("/chats/search").mock(
        return_value=errors(400, ("filter[0].field", "This value should not be blank."))
    )
    outcome = (await harness.send([row(0)])).outcomes[0]
    assert outcome.status is Status.UNKNOWN
    assert outcome.chat_id is None
    assert "no answer in time" in outcome.error_message
    assert "This value should not be blank." in outcome.error_message
    assert post.call_count == 1


@pytest.mark.anyio
async def test_a_search_that_keeps_failing_is_tried_a_few_times_then_unknown(
    harness: Harness,
) -> None:
    """Transient search failures are retried SEARCH_ATTEMPTS times before giving up."""
    post = harness.api.post("/chats").mock(return_value=errors(500))
    search = harness.api.post("/chats/search").mock(return_value=errors(502))
    outcome = (await harness.send([row(0)])).outcomes[0]
    assert outcome.status is Status.UNKNOWN
    assert outcome.http_status == 500
    assert search.call_count == SEARCH_ATTEMPTS
    assert post.call_count == 1


@pytest.mark.anyio
async def test_a_dropped_connection_is_confirmed_before_resending(harness: Harness) -> None:
    """A connection dropped after sending leads to a search, not a blind resend."""
    post = harness.api.post("/chats").mock(side_effect=httpx.RemoteProtocolError)
    search = harness.api.post("/chats/search").mock(return_value=found(chat(31, 100)))
    outcome = (await harness.send([row(0)])).outcomes[0]
    assert (outcome.status, outcome.chat_id) == (Status.CREATED, 31)
    assert (post.call_count, search.call_count) == (1, 1)


@pytest.mark.anyio
async def test_confirmation_adopts_only_an_unclaimed_chat_that_matches(harness: Harness) -> None:
    """Chats of other rows, or with another assignee or application, are never adopted."""
    harness.api.post("/chats").mock(side_effect=httpx.ReadTimeout)
    harness.api.post("/chats/search").mock(
        return_value=found(
            chat(5, 100, assignee={"id": 4188}),
            chat(6, 100, assignee={"id": 1}),
            chat(7, 100, applicationId=10, assignee={"id": 4188}),
            chat(8, 100, assignee={"id": 4188}, createdAt=int(WALL0) + 3),
        )
    )
    result = await harness.send([row(0, assignee=4188)], claimed_chat_ids=[5])
    assert result.outcomes[0].chat_id == 8


@pytest.mark.anyio
async def test_confirmation_never_adopts_a_chat_the_customer_opened(harness: Harness) -> None:
    """Only a public_api chat is adopted: a widget chat of a second earlier is passed over."""
    harness.api.post("/chats").mock(side_effect=httpx.ReadTimeout)
    harness.api.post("/chats/search").mock(
        return_value=found(
            chat(20, 100, createdWith="customer_message"),
            chat(21, 100, createdWith="public_api", createdAt=int(WALL0) + 1),
        )
    )
    result = await harness.send([row(0)])
    assert (result.outcomes[0].status, result.outcomes[0].chat_id) == (Status.CREATED, 21)


@pytest.mark.anyio
async def test_a_created_chat_id_another_row_has_is_reported_not_doubled(
    harness: Harness,
) -> None:
    """A POST answer naming a claimed chat leaves that row unknown, without the id or a message."""
    harness.api.post("/chats").respond(201, json=chat(12, 100))
    messages = harness.api.post("/messages")
    result = await harness.send([row(0, message=FirstMessage("Hello"))], claimed_chat_ids=[12])
    outcome = result.outcomes[0]
    assert (outcome.status, outcome.chat_id) == (Status.UNKNOWN, None)
    assert "chat 12, which another row already has" in outcome.error_message
    assert messages.call_count == 0


@pytest.mark.anyio
async def test_confirmation_never_adopts_a_chat_another_row_of_the_run_created(
    harness: Harness,
) -> None:
    """Two rows for one customer: the one that timed out adopts its own chat, not the other's."""
    harness.api.post("/chats").mock(side_effect=[created(10), httpx.ReadTimeout])
    harness.api.post("/chats/search").mock(return_value=found(chat(10, 100), chat(11, 100)))
    result = await harness.send([row(0, customer=100), row(1, customer=100)])
    assert [o.chat_id for o in result.outcomes.values()] == [10, 11]


@pytest.mark.anyio
async def test_a_row_an_earlier_run_may_have_sent_is_searched_for_first(harness: Harness) -> None:
    """With search_since set, a found chat makes the row already_created without a POST."""
    post = harness.api.post("/chats")
    search = harness.api.post("/chats/search").mock(return_value=found(chat(12, 100)))
    since = WALL0 - 3600
    outcome = (await harness.send([row(0, search_since=since)])).outcomes[0]
    assert (outcome.status, outcome.chat_id, outcome.attempts) == (
        Status.ALREADY_CREATED,
        12,
        0,
    )
    assert post.call_count == 0
    assert body(search.calls.last)["filter"][1]["value"] == int(since - SEARCH_SKEW)


@pytest.mark.anyio
async def test_a_row_an_earlier_run_did_not_create_is_sent(harness: Harness) -> None:
    """With search_since set and nothing found, the row is sent as usual."""
    harness.api.post("/chats").mock(return_value=created(13))
    harness.api.post("/chats/search").mock(return_value=found())
    outcome = (await harness.send([row(0, search_since=WALL0 - 60)])).outcomes[0]
    assert (outcome.status, outcome.chat_id, outcome.attempts) == (Status.CREATED, 13, 1)


@pytest.mark.anyio
async def test_a_stop_before_sending_leaves_every_row_not_sent(harness: Harness) -> None:
    """With stop set, no row starts: all not_sent, interrupted, nothing journaled."""
    route = harness.api.post("/chats")
    stop = anyio.Event()
    stop.set()
    result = await harness.send([row(i) for i in range(3)], stop=stop)
    assert result.interrupted
    assert {o.status for o in result.outcomes.values()} == {Status.NOT_SENT}
    assert route.call_count == 0
    assert len(harness.progress.outcomes) == 3
    assert harness.journal.events == []


@pytest.mark.anyio
async def test_a_stop_during_the_run_lets_the_row_in_flight_finish(harness: Harness) -> None:
    """Ctrl-C mid-run: the row in flight is created, the rows after it not_sent."""
    stop = anyio.Event()

    def answer(request: httpx.Request) -> httpx.Response:
        stop.set()
        return created(40)

    harness.api.post("/chats").mock(side_effect=answer)
    result = await harness.send([row(i) for i in range(3)], stop=stop, concurrency=1)
    assert result.interrupted
    assert [o.status for o in result.outcomes.values()] == [
        Status.CREATED,
        Status.NOT_SENT,
        Status.NOT_SENT,
    ]


@pytest.mark.anyio
async def test_a_stop_ends_retries_of_a_row_that_surely_created_nothing(harness: Harness) -> None:
    """A row waiting to retry after a 503 is not sent again once stop is set, and the
    journal hears that its one attempt created nothing."""
    stop = anyio.Event()

    def answer(request: httpx.Request) -> httpx.Response:
        stop.set()
        return errors(503)

    route = harness.api.post("/chats").mock(side_effect=answer)
    outcome = (await harness.send([row(0)], stop=stop)).outcomes[0]
    assert (outcome.status, outcome.attempts, outcome.http_status) == (Status.NOT_SENT, 1, 503)
    assert route.call_count == 1
    kinds = [kind for kind, _, _ in harness.journal.events]
    assert kinds == ["chat-attempt", "chat-withdraw", "chat-record"]


async def send_in_real_time(
    api: respx.MockRouter, requests: Sequence[ChatRequest], stop: anyio.Event, **options: Any
) -> tuple[SendResult, float]:
    """Send on the real clock; the result and the seconds it took."""
    started = time.monotonic()
    async with HelpCrunchClient(
        BASE,
        ApiKey("sk-test"),
        limiter=RateLimiter(6000),
        transport=httpx.MockTransport(api.async_handler),
    ) as client:
        with anyio.fail_after(10):
            result = await send_chats(
                requests,
                client,
                progress=RecordingProgress(),
                journal=RecordingJournal(),
                stop=stop,
                **options,
            )
    return result, time.monotonic() - started


@pytest.mark.anyio
async def test_a_stop_ends_waits_for_a_long_retry_after_at_once(api: respx.MockRouter) -> None:
    """Ctrl-C while every request sits out a 300 s Retry-After: the run ends after the
    grace, and the rows that were waiting, having sent nothing, are not_sent."""
    stop = anyio.Event()

    route = api.post("/chats").respond(
        429, headers={"Retry-After": "300"}, json={"errors": [{"code": "too_many_requests"}]}
    )

    async def interrupt() -> None:
        await anyio.sleep(0.2)
        stop.set()

    async with anyio.create_task_group() as group:
        group.start_soon(interrupt)
        result, seconds = await send_in_real_time(
            api, [row(i) for i in range(3)], stop, concurrency=2, stop_grace=0.2
        )
    assert seconds < 3
    assert result.interrupted
    assert [o.status for o in result.outcomes.values()] == [Status.NOT_SENT] * 3
    assert route.call_count == 1


@pytest.mark.anyio
async def test_a_stop_lets_a_row_in_flight_post_its_message_within_the_grace(
    api: respx.MockRouter,
) -> None:
    """Ctrl-C as a chat is created: its first message still goes, the next rows do not."""
    stop = anyio.Event()

    def answer(request: httpx.Request) -> httpx.Response:
        stop.set()
        return created(41)

    api.post("/chats").mock(side_effect=answer)
    api.post("/messages").respond(200, json={"id": 910})
    requests = [row(i, message=FirstMessage("Hi")) for i in range(3)]
    result, _ = await send_in_real_time(api, requests, stop, concurrency=1)
    assert [(o.status, o.message_id) for o in result.outcomes.values()] == [
        (Status.CREATED, 910),
        (Status.NOT_SENT, None),
        (Status.NOT_SENT, None),
    ]


@pytest.mark.anyio
async def test_a_customer_message_follows_the_chat(harness: Harness) -> None:
    """A first message without an agent is the customer's, posted into the new chat."""
    harness.api.post("/chats").mock(return_value=created(50))
    messages = harness.api.post("/messages").respond(200, json={"id": 900, "from": "customer"})
    outcome = (await harness.send([row(0, message=FirstMessage("Hello"))])).outcomes[0]
    assert (outcome.status, outcome.chat_id, outcome.message_id) == (Status.CREATED, 50, 900)
    assert body(messages.calls.last) == {"chat": 50, "text": "Hello", "type": "message"}
    assert [o.status for o in harness.journal.records(0)] == [Status.CREATED, Status.CREATED]
    assert harness.journal.records(0)[0].message_id is None


@pytest.mark.anyio
async def test_an_agents_private_note_names_the_agent(harness: Harness) -> None:
    """A private note from an agent carries the type and the agent's id."""
    harness.api.post("/chats").mock(return_value=created(51))
    messages = harness.api.post("/messages").respond(200, json={"id": 901, "from": "agent"})
    note = FirstMessage("Internal", type="private", agent=4188)
    await harness.send([row(0, message=note)])
    assert body(messages.calls.last) == {
        "chat": 51,
        "text": "Internal",
        "type": "private",
        "agent": 4188,
    }


@pytest.mark.anyio
async def test_a_refused_message_leaves_the_row_message_failed_with_its_chat(
    harness: Harness,
) -> None:
    """A message refusal makes the row message_failed, keeping chat_id and the API's code."""
    harness.api.post("/chats").mock(return_value=created(52))
    harness.api.post("/messages").mock(
        return_value=errors(404, ("invalid_request", "x"), ("chat_not_found", "Chat not found"))
    )
    outcome = (await harness.send([row(0, message=FirstMessage("Hi"))])).outcomes[0]
    assert outcome == Outcome(
        index=0,
        status=Status.MESSAGE_FAILED,
        chat_id=52,
        error_code="chat_not_found",
        error_message="Chat not found",
        http_status=404,
        attempts=1,
    )
    first, last = harness.journal.records(0)
    assert (first.status, first.chat_id) == (Status.CREATED, 52)
    assert last == outcome


@pytest.mark.anyio
async def test_a_message_is_retried_after_a_503(harness: Harness) -> None:
    """A message that surely was not posted (503) is posted again."""
    harness.api.post("/chats").mock(return_value=created(53))
    messages = harness.api.post("/messages").mock(
        side_effect=[errors(503), httpx.Response(200, json={"id": 902})]
    )
    outcome = (await harness.send([row(0, message=FirstMessage("Hi"))])).outcomes[0]
    assert (outcome.status, outcome.message_id) == (Status.CREATED, 902)
    assert messages.call_count == 2


def listed(*messages: tuple[int, str]) -> Any:
    """A side effect for GET /chats/{id}/messages: `messages` (id, text), newest first, on
    the first page, and an empty page after it."""

    def answer(request: httpx.Request) -> httpx.Response:
        data = (
            [] if int(request.url.params["offset"]) else [{"id": i, "text": t} for i, t in messages]
        )
        return httpx.Response(200, json={"data": data, "total": len(messages)})

    return answer


@pytest.mark.anyio
async def test_a_message_timeout_finds_the_message_in_the_chat_and_adopts_it(
    harness: Harness,
) -> None:
    """A message that timed out but reached the chat is adopted, not posted again."""
    harness.api.post("/chats").mock(return_value=created(54))
    messages = harness.api.post("/messages").mock(side_effect=httpx.ReadTimeout)
    listing = harness.api.get("/chats/54/messages").mock(
        side_effect=listed((906, "Thanks"), (905, "Hi"))
    )
    search = harness.api.post("/chats/search")
    outcome = (await harness.send([row(0, message=FirstMessage("Hi"))])).outcomes[0]
    assert (outcome.status, outcome.chat_id, outcome.message_id) == (Status.CREATED, 54, 905)
    assert (messages.call_count, search.call_count) == (1, 0)
    assert listing.called


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(listed(), id="no-message"),
        pytest.param(listed((907, "Other text")), id="another-message"),
    ],
)
@pytest.mark.anyio
async def test_a_message_timeout_not_in_the_chat_posts_again(harness: Harness, answer: Any) -> None:
    """A message that timed out and is not among the chat's messages is posted again."""
    harness.api.post("/chats").mock(return_value=created(54))
    messages = harness.api.post("/messages").mock(
        side_effect=[httpx.ReadTimeout, httpx.Response(200, json={"id": 906})]
    )
    harness.api.get("/chats/54/messages").mock(side_effect=answer)
    outcome = (await harness.send([row(0, message=FirstMessage("Hi"))])).outcomes[0]
    assert (outcome.status, outcome.message_id) == (Status.CREATED, 906)
    assert messages.call_count == 2


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(errors(404, ("chat_not_found", "Chat is missing")), id="refused"),
        pytest.param(httpx.ReadTimeout("slow"), id="no-answer"),
    ],
)
@pytest.mark.anyio
async def test_a_message_that_may_have_been_posted_is_not_resent_blindly(
    harness: Harness, answer: httpx.Response | Exception
) -> None:
    """When the chat's messages cannot be read, a message timeout is message_failed."""
    harness.api.post("/chats").mock(return_value=created(54))
    messages = harness.api.post("/messages").mock(side_effect=httpx.ReadTimeout)
    harness.api.get("/chats/54/messages").mock(side_effect=[answer] * SEARCH_ATTEMPTS)
    outcome = (await harness.send([row(0, message=FirstMessage("Hi"))])).outcomes[0]
    assert (outcome.status, outcome.chat_id) == (Status.MESSAGE_FAILED, 54)
    assert "may have been posted" in outcome.error_message
    assert messages.call_count == 1


@pytest.mark.anyio
async def test_an_earlier_runs_message_found_in_its_chat_is_not_posted_again(
    harness: Harness,
) -> None:
    """A chat from an earlier run that may have posted the message: found there, adopted."""
    messages = harness.api.post("/messages")
    harness.api.get("/chats/60/messages").mock(side_effect=listed((908, "Hi")))
    request = row(0, chat_id=60, message=FirstMessage("Hi"), search_since=WALL0 - 600)
    outcome = (await harness.send([request])).outcomes[0]
    assert (outcome.status, outcome.chat_id, outcome.message_id) == (
        Status.ALREADY_CREATED,
        60,
        908,
    )
    assert messages.call_count == 0


@pytest.mark.anyio
async def test_an_earlier_runs_message_not_in_its_chat_is_posted(harness: Harness) -> None:
    """A chat from an earlier run whose messages were read without the message gets it."""
    messages = harness.api.post("/messages").respond(200, json={"id": 909})
    harness.api.get("/chats/60/messages").mock(side_effect=listed())
    request = row(0, chat_id=60, message=FirstMessage("Hi"), search_since=WALL0 - 600)
    outcome = (await harness.send([request])).outcomes[0]
    assert (outcome.status, outcome.message_id) == (Status.ALREADY_CREATED, 909)
    assert messages.call_count == 1


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(errors(503), id="unavailable"),
        pytest.param(httpx.Response(200, json={"total": 1}), id="no-list"),
        pytest.param(httpx.ReadTimeout("slow"), id="no-answer"),
    ],
)
@pytest.mark.anyio
async def test_an_earlier_runs_message_is_not_posted_where_the_chat_cannot_be_seen(
    harness: Harness, answer: httpx.Response | Exception
) -> None:
    """A chat from an earlier run whose messages cannot be read: the message is not posted
    (it may be there), the row stays message_failed with its chat, saying why."""
    messages = harness.api.post("/messages").respond(200, json={"id": 909})
    harness.api.get("/chats/60/messages").mock(side_effect=[answer] * SEARCH_ATTEMPTS)
    request = row(0, chat_id=60, message=FirstMessage("Hi"), search_since=WALL0 - 600)
    outcome = (await harness.send([request])).outcomes[0]
    assert (outcome.status, outcome.chat_id, outcome.message_id) == (
        Status.MESSAGE_FAILED,
        60,
        None,
    )
    assert "could not be read" in outcome.error_message
    assert messages.call_count == 0


@pytest.mark.anyio
async def test_a_row_with_a_chat_id_only_gets_its_message(harness: Harness) -> None:
    """A row whose chat exists from an earlier run posts only the message."""
    chats = harness.api.post("/chats")
    search = harness.api.post("/chats/search")
    messages = harness.api.post("/messages").respond(200, json={"id": 903})
    request = row(0, chat_id=60, message=FirstMessage("Hi"))
    outcome = (await harness.send([request])).outcomes[0]
    assert (outcome.status, outcome.chat_id, outcome.message_id, outcome.attempts) == (
        Status.ALREADY_CREATED,
        60,
        903,
        0,
    )
    assert (chats.call_count, search.call_count) == (0, 0)
    assert body(messages.calls.last)["chat"] == 60
    assert [o.status for o in harness.journal.records(0)] == [Status.ALREADY_CREATED]


@pytest.mark.anyio
async def test_an_unexpected_error_ends_only_its_row(harness: Harness) -> None:
    """An exception no rule expects makes its row unknown (a POST was out); others go on."""

    def answer(request: httpx.Request) -> httpx.Response:
        customer = body_of(request)["customer"]
        if customer == 101:
            raise ValueError("something odd")
        return created(customer)

    def body_of(request: httpx.Request) -> dict[str, Any]:
        return dict(json.loads(request.content))

    harness.api.post("/chats").mock(side_effect=answer)
    result = await harness.send([row(i) for i in range(3)])
    statuses = [result.outcomes[i].status for i in range(3)]
    assert statuses == [Status.CREATED, Status.UNKNOWN, Status.CREATED]
    assert "ValueError: something odd" in result.outcomes[1].error_message


@pytest.mark.anyio
async def test_an_unexpected_error_while_confirming_an_earlier_run_is_unknown(
    harness: Harness,
) -> None:
    """A row an earlier run may have created never ends failed on an unexpected error."""
    harness.api.post("/chats/search").mock(side_effect=ValueError("odd answer"))
    outcome = (await harness.send([row(0, search_since=WALL0 - 60)])).outcomes[0]
    assert outcome.status is Status.UNKNOWN


@pytest.mark.anyio
async def test_a_journal_failure_stops_the_run_and_is_raised(harness: Harness) -> None:
    """If the journal cannot be written nothing more is sent, and the error surfaces."""
    route = harness.api.post("/chats")
    harness.journal.chats.fail_on_attempt = True
    with pytest.raises(OSError, match="disk full"):
        await harness.send([row(i) for i in range(3)], concurrency=1)
    assert route.call_count == 0
    assert harness.progress.closed
