"""The API client: requests on the wire, answers and failures mapped to our errors."""

from __future__ import annotations

import contextlib
import email.utils
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import pytest
import respx

from bulk_chats.api.client import USER_AGENT, HelpCrunchClient, parse_retry_after
from bulk_chats.api.entities import Agent, Chat, Customer, Message
from bulk_chats.api.limiter import DECREASE_FACTOR, RateLimiter
from bulk_chats.errors import (
    ApiError,
    AuthenticationError,
    InputError,
    MaybeSentError,
    NotSentError,
    RateLimitedError,
    RefusedError,
)
from bulk_chats.records import ChatRequest
from bulk_chats.settings import ApiKey
from tests.fakes import WALL0, FakeTime

BASE = "https://api.test/v1"
KEY = "sk-live-0123456789abcdef"


@pytest.fixture
def strict_api() -> Iterator[respx.MockRouter]:
    """The mocked API root, stricter than the shared `api`: every route a test adds must
    be used."""
    with respx.mock(base_url=BASE) as router:
        yield router


@pytest.fixture
async def keyed_client(
    fake: FakeTime, strict_api: respx.MockRouter
) -> AsyncIterator[HelpCrunchClient]:
    """Unlike the shared `client`: a client of `strict_api` at 60 requests a minute on the
    fake clock, with a known key that tests look for in every output.

    Its transport is the mocked API itself, which spares each test building a TLS context.
    """
    limiter = RateLimiter(60, clock=fake.clock, sleep=fake.sleep)
    async with HelpCrunchClient(
        BASE,
        ApiKey(KEY),
        limiter=limiter,
        transport=httpx.MockTransport(strict_api.async_handler),
        wall_clock=lambda: WALL0,
    ) as c:
        yield c


def errors_body(*entries: tuple[str, str]) -> dict[str, Any]:
    return {"errors": [{"code": c, "message": m} for c, m in entries]}


def chain(exc: BaseException) -> list[BaseException]:
    """The exception and every cause and context behind it."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


@pytest.mark.anyio
async def test_create_chat_sends_key_user_agent_and_integer_ids(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter
) -> None:
    """POST /chats carries the bearer key, our User-Agent and exact JSON integers."""
    route = strict_api.post("/chats").respond(201, json={"id": 542335, "status": "empty"})
    request = ChatRequest(index=0, source_row=2, customer=90071992547409931, application=3838)
    chat = await keyed_client.create_chat(request.payload())
    assert chat == Chat(id=542335, status="empty")
    sent = route.calls.last.request
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("bulk-chats/")
    assert json.loads(sent.content) == {"customer": 90071992547409931, "application": 3838}
    assert b"90071992547409931," in sent.content


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (201, {"id": 7}, 7),
        (200, {"id": "8"}, 8),
        (201, {"data": {"id": 9, "status": "empty"}}, 9),
    ],
)
async def test_any_2xx_with_an_id_is_a_created_chat(
    keyed_client: HelpCrunchClient,
    strict_api: respx.MockRouter,
    status: int,
    body: dict[str, Any],
    expected: int,
) -> None:
    """Any 2xx counts as created, and the chat's id comes back as an int."""
    strict_api.post("/chats").respond(status, json=body)
    chat = await keyed_client.create_chat({"customer": 1, "application": 2})
    assert chat.id == expected


@pytest.mark.anyio
@pytest.mark.parametrize("content", [b"<html>ok</html>", b'{"status": "empty"}', b"[]"])
async def test_a_2xx_without_a_readable_id_may_have_created_the_chat(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter, content: bytes
) -> None:
    """A 2xx whose chat id cannot be read raises MaybeSentError, so the run confirms."""
    strict_api.post("/chats").respond(201, content=content)
    with pytest.raises(MaybeSentError):
        await keyed_client.create_chat({"customer": 1, "application": 2})


@pytest.mark.anyio
async def test_400_is_refused_with_the_apis_specific_code_and_message(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter
) -> None:
    """A 400 lists the API's entries; the specific code wins over invalid_request."""
    strict_api.post("/chats").respond(
        400,
        json=errors_body(
            ("invalid_request", "Invalid request"),
            ("customer", "This value should be of type numeric."),
        ),
    )
    with pytest.raises(RefusedError) as caught:
        await keyed_client.create_chat({"customer": 1, "application": 2})
    error = caught.value
    assert error.http_status == 400
    assert error.codes == ("invalid_request", "customer")
    assert error.error_code == "customer"
    assert error.error_message == "This value should be of type numeric."
    assert "POST /chats: HTTP 400" in str(error)


@pytest.mark.anyio
async def test_only_invalid_request_is_kept_when_it_is_the_sole_code(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter
) -> None:
    """invalid_request is the row's code when the API gives no other."""
    strict_api.post("/chats").respond(400, json=errors_body(("invalid_request", "Invalid request")))
    with pytest.raises(RefusedError) as caught:
        await keyed_client.create_chat({"customer": 1, "application": 2})
    assert caught.value.error_code == "invalid_request"
    assert caught.value.error_message == "Invalid request"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content",
    [b"<html><body>Bad Gateway</body></html>", b'{"errors": "nope"}', b'{"errors": [1, {}]}', b""],
)
async def test_an_error_body_of_another_shape_still_maps_to_the_status(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter, content: bytes
) -> None:
    """A 4xx whose body is not the API's error shape is refused with no codes."""
    strict_api.post("/chats").respond(404, content=content)
    with pytest.raises(RefusedError) as caught:
        await keyed_client.create_chat({"customer": 1, "application": 2})
    assert caught.value.http_status == 404
    assert caught.value.codes == ()
    assert caught.value.error_message == "POST /chats: HTTP 404 Not Found"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (401, AuthenticationError),
        (403, RefusedError),
        (409, RefusedError),
        (503, NotSentError),
        (500, MaybeSentError),
        (502, MaybeSentError),
        (504, MaybeSentError),
    ],
)
async def test_statuses_map_to_what_the_caller_must_do(
    keyed_client: HelpCrunchClient,
    strict_api: respx.MockRouter,
    status: int,
    error_type: type[ApiError],
) -> None:
    """401 stops, 503 surely created nothing, other 5xx may have, other 4xx are refusals."""
    strict_api.post("/chats").respond(status, json=errors_body(("code", "text")))
    with pytest.raises(error_type) as caught:
        await keyed_client.create_chat({"customer": 1, "application": 2})
    assert type(caught.value) is error_type
    assert caught.value.http_status == status


@pytest.mark.anyio
async def test_429_carries_retry_after_and_slows_the_shared_limiter(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter, fake: FakeTime
) -> None:
    """A 429 raises RateLimitedError with Retry-After and holds the limiter that long."""
    strict_api.post("/chats").respond(
        429,
        headers={"Retry-After": "7"},
        json=errors_body(("invalid_request", "x"), ("too_many_requests", "Too many requests")),
    )
    with pytest.raises(RateLimitedError) as caught:
        await keyed_client.create_chat({"customer": 1, "application": 2})
    assert caught.value.retry_after == 7.0
    assert caught.value.error_code == "too_many_requests"
    assert keyed_client.limiter.rate == 60 * DECREASE_FACTOR
    assert await keyed_client.limiter.acquire() == 7.0


@pytest.mark.anyio
async def test_429_retry_after_as_an_http_date(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter
) -> None:
    """Retry-After as an HTTP-date becomes seconds from now (the injected wall clock)."""
    date = email.utils.formatdate(WALL0 + 30, usegmt=True)
    strict_api.post("/chats").respond(429, headers={"Retry-After": date})
    with pytest.raises(RateLimitedError) as caught:
        await keyed_client.create_chat({"customer": 1, "application": 2})
    assert caught.value.retry_after == 30.0


@pytest.mark.anyio
async def test_429_without_retry_after(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter
) -> None:
    """A 429 without Retry-After has retry_after None."""
    strict_api.post("/chats").respond(429)
    with pytest.raises(RateLimitedError) as caught:
        await keyed_client.create_chat({"customer": 1, "application": 2})
    assert caught.value.retry_after is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("soon", None),
        ("nan", None),
        (email.utils.formatdate(WALL0 + 90, usegmt=True), 90.0),
        (email.utils.formatdate(WALL0 - 90, usegmt=True), 0.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Retry-After is delta-seconds or an HTTP-date; never negative; None when unreadable."""
    assert parse_retry_after(value, now=WALL0) == expected


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("raised", "error_type"),
    [
        (httpx.ConnectError, NotSentError),
        (httpx.ConnectTimeout, NotSentError),
        (httpx.PoolTimeout, NotSentError),
        (httpx.ReadTimeout, MaybeSentError),
        (httpx.WriteTimeout, MaybeSentError),
        (httpx.RemoteProtocolError, MaybeSentError),
        (httpx.ReadError, MaybeSentError),
        (httpx.WriteError, MaybeSentError),
    ],
)
async def test_transport_failures_map_by_whether_the_request_left(
    keyed_client: HelpCrunchClient,
    strict_api: respx.MockRouter,
    raised: type[httpx.RequestError],
    error_type: type[ApiError],
) -> None:
    """Failures before sending are NotSent; after it (timeouts, drops) MaybeSent."""
    strict_api.post("/chats").mock(side_effect=raised)
    with pytest.raises(error_type) as caught:
        await keyed_client.create_chat({"customer": 1, "application": 2})
    assert type(caught.value) is error_type
    assert caught.value.http_status is None
    assert isinstance(caught.value.__cause__, raised)


@pytest.mark.anyio
async def test_the_key_never_appears_in_errors_even_when_httpx_quotes_it(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter
) -> None:
    """Errors (and their causes) never show the key, even if httpx's text contains it."""

    def leak(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout(f"timed out; headers were {dict(request.headers)}", request=request)

    strict_api.post("/chats").mock(side_effect=leak)
    with pytest.raises(MaybeSentError) as caught:
        await keyed_client.create_chat({"customer": 1, "application": 2})
    for error in chain(caught.value):
        assert KEY not in str(error)
        assert KEY not in repr(error)
    assert "***" in str(caught.value)


@pytest.mark.anyio
async def test_the_key_stays_out_of_errors_chained_to_an_httpx_exception(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter
) -> None:
    """A mapped error keeps its httpx cause (request and all), yet no text shows the key."""
    strict_api.post("/chats").mock(side_effect=httpx.ConnectError("connection refused"))
    with pytest.raises(NotSentError) as caught:
        await keyed_client.create_chat({"customer": 1, "application": 2})
    cause = caught.value.__cause__
    assert isinstance(cause, httpx.ConnectError)
    assert cause.request.headers["Authorization"] == f"Bearer {KEY}"
    for error in chain(caught.value):
        assert KEY not in str(error)
        assert KEY not in repr(error)
    assert KEY not in repr(keyed_client)


@pytest.mark.anyio
async def test_an_error_body_echoing_the_key_is_scrubbed(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter
) -> None:
    """Text from the API that quotes the key is masked before it reaches a message."""
    strict_api.post("/chats").respond(400, json=errors_body(("token", f"bad token Bearer {KEY}")))
    with pytest.raises(RefusedError) as caught:
        await keyed_client.create_chat({"customer": 1, "application": 2})
    assert KEY not in str(caught.value)
    assert KEY not in caught.value.error_message
    assert "Bearer ***" in caught.value.error_message


@pytest.mark.parametrize("key", ["sk-\u00e9t\u00e9-secret", "sk-line\x7fbreak"])
def test_a_key_that_cannot_be_a_header_is_refused_without_quoting_it(key: str) -> None:
    """A key with characters a header cannot carry is an InputError that does not show it."""
    with pytest.raises(InputError) as caught:
        HelpCrunchClient(BASE, ApiKey(key))
    assert key not in str(caught.value)
    assert caught.value.__context__ is None


@pytest.mark.anyio
async def test_no_key_sends_no_authorization_header(strict_api: respx.MockRouter) -> None:
    """Without a key (the sandbox) no Authorization header goes out."""
    route = strict_api.get("/agents").respond(200, json={"data": [], "meta": {"total": 0}})
    async with HelpCrunchClient(
        BASE, None, transport=httpx.MockTransport(strict_api.async_handler)
    ) as keyed_client:
        await keyed_client.check_key()
    assert "Authorization" not in route.calls.last.request.headers


@pytest.mark.anyio
async def test_check_key_is_one_cheap_read(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter
) -> None:
    """check_key reads one agent; a 401 raises AuthenticationError."""
    route = strict_api.get("/agents").mock(
        side_effect=[
            httpx.Response(200, json={"data": [{"id": 1}], "meta": {"total": 5}}),
            httpx.Response(401, json=errors_body(("unauthorized", "Unauthorized"))),
        ]
    )
    await keyed_client.check_key()
    assert route.calls.last.request.url.params["limit"] == "1"
    with pytest.raises(AuthenticationError):
        await keyed_client.check_key()
    assert route.call_count == 2


@pytest.mark.anyio
async def test_post_message_returns_the_message_with_an_int_id(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter
) -> None:
    """POST /messages sends the payload as given and returns the message, id an int."""
    route = strict_api.post("/messages").respond(200, json={"id": "31", "from": "customer"})
    message = await keyed_client.post_message({"chat": 5, "text": "hi", "type": "message"})
    assert message == Message(id=31, sender="customer")
    assert json.loads(route.calls.last.request.content) == {
        "chat": 5,
        "text": "hi",
        "type": "message",
    }


@pytest.mark.anyio
async def test_list_messages_reads_a_chats_messages_newest_first(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter
) -> None:
    """GET /chats/{id}/messages comes back as messages in the API's order, in one request
    when its top-level `total` agrees that the short page is all."""
    route = strict_api.get("/chats/54/messages").mock(
        side_effect=[
            httpx.Response(200, json={"data": [{"id": "9", "text": "b"}, {"id": 8}], "total": 2}),
            httpx.Response(200, json={"data": [], "total": 2}),
        ]
    )
    assert await keyed_client.list_messages(54) == [Message(9, "b"), Message(8)]
    assert [c.request.url.params["offset"] for c in route.calls] == ["0"]


@pytest.mark.anyio
async def test_list_messages_reads_on_when_the_total_says_more(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter
) -> None:
    """A short page whose top-level `total` claims more is not the end: the next page is
    read, to an empty one."""
    route = strict_api.get("/chats/54/messages").mock(
        side_effect=[
            httpx.Response(200, json={"data": [{"id": 9}], "total": 3}),
            httpx.Response(200, json={"data": [], "total": 3}),
        ]
    )
    assert await keyed_client.list_messages(54) == [Message(9)]
    assert [c.request.url.params["offset"] for c in route.calls] == ["0", "1"]


@pytest.mark.anyio
async def test_list_messages_reads_the_older_envelope_too(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter
) -> None:
    """An older revision lists a chat's messages under `messages`: they are read the same."""
    strict_api.get("/chats/54/messages").mock(
        side_effect=[
            httpx.Response(200, json={"messages": [{"id": 9, "text": "b"}], "total": 1}),
            httpx.Response(200, json={"messages": [], "total": 1}),
        ]
    )
    assert await keyed_client.list_messages(54) == [Message(9, "b")]


@pytest.mark.anyio
async def test_a_messages_answer_without_a_list_is_an_error_not_an_empty_chat(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter
) -> None:
    """An answer with neither `data` nor `messages` cannot say the message is absent: it
    raises `MaybeSentError` rather than reading as a chat without messages."""
    strict_api.get("/chats/54/messages").respond(200, json={"items": [], "total": 0})
    with pytest.raises(MaybeSentError, match="no list of data or messages"):
        await keyed_client.list_messages(54)


@pytest.mark.anyio
async def test_list_agents_reads_every_page(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter
) -> None:
    """More than 100 agents come back whole, read 100 at a time until a page shorter than
    any a server pages by, with a total that agrees."""
    agents = [{"id": n, "email": f"a{n}@example.com"} for n in range(1, 221)]

    def page(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        limit = int(request.url.params["limit"])
        return httpx.Response(
            200, json={"data": agents[offset : offset + limit], "meta": {"total": len(agents)}}
        )

    route = strict_api.get("/agents").mock(side_effect=page)
    assert await keyed_client.list_agents() == [Agent(a["id"], email=a["email"]) for a in agents]
    assert [c.request.url.params["offset"] for c in route.calls] == ["0", "100", "200"]
    assert {c.request.url.params["limit"] for c in route.calls} == {"100"}


@pytest.mark.anyio
@pytest.mark.parametrize("total", [0, 50, None])
async def test_a_listing_paged_by_50_is_read_whole_whatever_its_total(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter, total: int | None
) -> None:
    """A server that answers 50 at a time, with total 0, too low or absent, loses nothing."""
    departments = [{"id": n, "name": f"D{n}"} for n in range(120)]

    def page(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        meta = {} if total is None else {"meta": {"total": total}}
        return httpx.Response(200, json={"data": departments[offset : offset + 50], **meta})

    route = strict_api.get("/departments").mock(side_effect=page)
    assert [d.id for d in await keyed_client.list_departments()] == list(range(120))
    assert [c.request.url.params["offset"] for c in route.calls] == ["0", "50", "100", "120"]


@pytest.mark.anyio
async def test_a_search_ends_at_a_short_page_whatever_its_total(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter
) -> None:
    """A search page shorter than asked is the last, even when total claims more."""
    route = strict_api.post("/chats/search").mock(
        side_effect=[
            httpx.Response(200, json={"data": [{"id": n} for n in range(100)], "meta": {}}),
            httpx.Response(200, json={"data": [{"id": 100}], "meta": {"total": 500}}),
        ]
    )
    assert len(await keyed_client.search_chats(1, 0)) == 101
    assert route.call_count == 2


@pytest.mark.anyio
async def test_search_chats_filters_by_customer_and_creation_time(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter
) -> None:
    """Chat search asks for chats.customer = X AND chats.createdAt >= T, sorted by id."""
    route = strict_api.post("/chats/search").respond(200, json={"data": [{"id": 4}], "meta": {}})
    assert await keyed_client.search_chats(8738438, 1_700_000_000) == [Chat(id=4)]
    body = json.loads(route.calls.last.request.content)
    assert body["filter"] == [
        {"field": "chats.customer", "operator": "=", "value": 8738438},
        {"field": "chats.createdAt", "operator": ">=", "value": 1_700_000_000},
    ]
    assert body["comparison"] == "AND"
    assert (body["sort"], body["order"]) == ("chats.id", "asc")
    assert (body["offset"], body["limit"]) == (0, 100)


@pytest.mark.anyio
async def test_search_customers_joins_its_conditions_with_or(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter
) -> None:
    """Customer search asks for customers.<field> <operator> value, the conditions ORed."""
    route = strict_api.post("/customers/search").respond(200, json={"data": [{"id": 12}]})
    conditions = [("email", "~", "ann@example.com"), ("userId", "=", "crm-7")]
    assert await keyed_client.search_customers(conditions) == [Customer(id=12)]
    body = json.loads(route.calls.last.request.content)
    assert body["filter"] == [
        {"field": "customers.email", "operator": "~", "value": "ann@example.com"},
        {"field": "customers.userId", "operator": "=", "value": "crm-7"},
    ]
    assert body["comparison"] == "OR"


@pytest.mark.anyio
async def test_create_customer_posts_the_payload_and_reads_the_new_id(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter
) -> None:
    """POST /customers sends the payload as given and returns the customer it created."""
    route = strict_api.post("/customers").respond(201, json={"id": 77, "email": "new@example.com"})
    made = await keyed_client.create_customer({"email": "new@example.com", "name": "New"})
    assert made == Customer(id=77, email="new@example.com")
    assert json.loads(route.calls.last.request.content) == {
        "email": "new@example.com",
        "name": "New",
    }


@pytest.mark.anyio
async def test_a_read_whose_answer_is_not_a_page_fails(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter
) -> None:
    """A 2xx without a data list is an error, not an empty result."""
    strict_api.post("/chats/search").respond(200, json={"items": []})
    with pytest.raises(MaybeSentError):
        await keyed_client.search_chats(1, 0)


@pytest.mark.anyio
async def test_every_request_waits_its_turn_at_the_limiter(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter, fake: FakeTime
) -> None:
    """Look-ups and writes alike are paced: at 60/min they go out one second apart."""
    sent_at: list[float] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent_at.append(fake.now)
        return httpx.Response(200, json={"id": 1, "data": [], "meta": {"total": 0}})

    strict_api.route().mock(side_effect=record)
    await keyed_client.check_key()
    await keyed_client.create_chat({"customer": 1, "application": 2})
    await keyed_client.search_chats(1, 0)
    await keyed_client.post_message({"chat": 1, "text": "x", "type": "message"})
    assert sent_at == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.anyio
async def test_the_first_401_ends_every_wait_and_no_later_request_leaves(
    fake: FakeTime, strict_api: respx.MockRouter
) -> None:
    """A key revoked mid-run at 1200 a minute, 60 requests queued at the limiter: exactly one
    401 goes out; every queued request and every later one fails with AuthenticationError
    without being sent."""
    answers = iter([*(httpx.Response(201, json={"id": n}) for n in range(1, 6))])

    def answer(request: httpx.Request) -> httpx.Response:
        return next(answers, httpx.Response(401, json=errors_body(("unauthorized", "No"))))

    route = strict_api.post("/chats").mock(side_effect=answer)
    limiter = RateLimiter(1200, clock=fake.clock, sleep=fake.sleep)
    failures: list[ApiError] = []
    async with HelpCrunchClient(
        BASE, ApiKey(KEY), limiter=limiter, transport=httpx.MockTransport(strict_api.async_handler)
    ) as keyed_client:

        async def create() -> None:
            try:
                await keyed_client.create_chat({"customer": 1, "application": 2})
            except ApiError as exc:
                failures.append(exc)

        async with anyio.create_task_group() as group:
            for _ in range(60):
                group.start_soon(create)
        with pytest.raises(AuthenticationError, match="not sent"):
            await keyed_client.check_key()

    statuses = [call.response.status_code for call in route.calls]
    assert statuses == [201] * 5 + [401]
    assert len(failures) == 55
    assert all(isinstance(f, AuthenticationError) for f in failures)
    assert [f.http_status for f in failures].count(401) == 1


@pytest.mark.anyio
async def test_a_creation_waiting_for_its_turn_does_not_go_once_told_to_stop(
    keyed_client: HelpCrunchClient, strict_api: respx.MockRouter
) -> None:
    """Ten customer creations queued at 60 a minute; the stop comes while the third is
    answered: the seven still waiting for their turn fail NotSentError, and never go."""
    stop = anyio.Event()

    def answer(request: httpx.Request) -> httpx.Response:
        if len(route.calls) == 2:  # the third, counted once answered
            stop.set()
        return httpx.Response(201, json={"id": 7})

    route = strict_api.post("/customers").mock(side_effect=answer)
    failures: list[ApiError] = []

    async def create(n: int) -> None:
        try:
            await keyed_client.create_customer({"email": f"c{n}@x.com"}, unless=stop)
        except ApiError as exc:
            failures.append(exc)

    async with anyio.create_task_group() as group:
        for n in range(10):
            group.start_soon(create, n)
    assert route.call_count == 3
    assert len(failures) == 7
    assert all(type(f) is NotSentError for f in failures)


class LostAnswers(RateLimiter):
    """A limiter that keeps the grant times of the requests it hears got no answer."""

    def __init__(self, fake: FakeTime) -> None:
        super().__init__(60, clock=fake.clock, sleep=fake.sleep)
        self.lost_at: list[float] = []

    def lost(self, *, sent_at: float) -> None:
        self.lost_at.append(sent_at)
        super().lost(sent_at=sent_at)


@pytest.mark.anyio
async def test_the_limiter_hears_of_every_request_whose_answer_never_came(
    fake: FakeTime, strict_api: respx.MockRouter
) -> None:
    """A dropped connection, a timeout and a 5xx are told to the limiter as lost, with the
    time each was granted (a probe among them is sent again); a 2xx or a 4xx is not."""
    strict_api.post("/chats").mock(
        side_effect=[
            httpx.RemoteProtocolError("dropped"),
            httpx.ReadTimeout("slow"),
            httpx.Response(500),
            httpx.Response(201, json={"id": 1}),
            httpx.Response(400, json=errors_body(("customer", "no"))),
        ]
    )
    limiter = LostAnswers(fake)
    async with HelpCrunchClient(
        BASE, ApiKey(KEY), limiter=limiter, transport=httpx.MockTransport(strict_api.async_handler)
    ) as keyed_client:
        for _ in range(5):
            with contextlib.suppress(ApiError):
                await keyed_client.create_chat({"customer": 1, "application": 2})
    assert limiter.lost_at == [0.0, 1.0, 2.0]
