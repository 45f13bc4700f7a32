"""The sandbox: HelpCrunch's endpoints and errors, over ASGI and real loopback HTTP (the
key, the rate limit, latency and faults are `test_sandbox_gate`'s)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from bulk_chats import sandbox
from bulk_chats.cli.main import cli
from bulk_chats.errors import InputError
from bulk_chats.sandbox import (
    AGENTS,
    APPLICATIONS,
    CUSTOMERS,
    DEPARTMENTS,
    Faults,
    SandboxApp,
    SandboxConfig,
    SandboxState,
    Seed,
    create_app,
    run_in_thread,
)
from bulk_chats.sandbox.state import FIRST_CHAT_ID, FIRST_MESSAGE_ID

KEY = "sandbox-test-key"
CUSTOMER = CUSTOMERS[0].id  # 8738438
APP = APPLICATIONS[0]  # 3838
AGENT = AGENTS[0].id  # 4188
DEPARTMENT = DEPARTMENTS[0].id  # 233048
CHAT = {"customer": CUSTOMER, "application": APP, "assignee": AGENT, "department": DEPARTMENT}
INVALID_REQUEST = {"code": "invalid_request", "message": "Invalid request"}


def errors(*entries: tuple[str, str]) -> dict[str, Any]:
    """The API's 4xx body: the generic entry, then `entries`."""
    return {"errors": [INVALID_REQUEST, *({"code": c, "message": m} for c, m in entries)]}


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeSleep:
    """A sleep that returns at once and remembers what it was asked to wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_app(
    clock: FakeClock | None = None,
    *,
    state: SandboxState | None = None,
    sleep: FakeSleep | None = None,
    **config: Any,
) -> SandboxApp:
    """An app whose clock, wall clock and sleep are fakes, so nothing waits."""
    clock = clock or FakeClock()
    return create_app(
        SandboxConfig(**config),
        state=state or SandboxState(wall_clock=clock),
        clock=clock,
        sleep=sleep or FakeSleep(),
    )


def client(app: SandboxApp, key: str | None = KEY) -> httpx.AsyncClient:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(
        transport=transport, base_url="http://sandbox.test/v1", headers=headers
    )


# --- creating chats ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_create_chat_answers_201_with_the_chat_object(clock: FakeClock) -> None:
    """POST /v1/chats stores the chat and answers 201 with id, status, createdAt, people."""
    app = make_app(clock)
    async with client(app) as c:
        response = await c.post("/chats", json=CHAT)
    assert response.status_code == 201
    body = response.json()
    assert body["id"] == FIRST_CHAT_ID
    assert body["status"] == "empty"
    assert body["createdWith"] == "public_api"
    assert body["lastMessageId"] is None
    assert body["createdAt"] == int(clock.now)
    assert body["applicationId"] == APP
    assert body["customer"] == {
        "id": CUSTOMER,
        "name": "Olivia Brown",
        "email": "customer1@example.com",
        "userId": "crm-1001",
    }
    assert body["assignee"] == {
        "id": AGENT,
        "name": "Anna Kowalska",
        "email": "anna@example.com",
        "role": "admin",
    }
    assert body["department"] == {"id": DEPARTMENT, "name": "Support"}
    assert body["agents"] == []
    assert [(c.id, c.payload) for c in app.state.chats] == [(FIRST_CHAT_ID, CHAT)]


@pytest.mark.anyio
async def test_chat_ids_increase_and_optional_fields_default_to_null() -> None:
    """Each chat gets the next id; no assignee or department means null in the answer."""
    app = make_app()
    async with client(app) as c:
        first = await c.post("/chats", json={"customer": CUSTOMER, "application": APP})
        second = await c.post("/chats", json={"customer": CUSTOMER, "application": 3839})
    assert (first.json()["id"], second.json()["id"]) == (FIRST_CHAT_ID, FIRST_CHAT_ID + 1)
    assert first.json()["assignee"] is None
    assert first.json()["department"] is None


NUMERIC = "This value should be of type numeric."
BLANK = "This value should not be blank."


@pytest.mark.parametrize(
    ("body", "entries"),
    [
        ({"customer": "8738438", "application": APP}, [("customer", NUMERIC)]),
        ({"customer": 8738438.0, "application": APP}, [("customer", NUMERIC)]),
        ({"customer": True, "application": APP}, [("customer", NUMERIC)]),
        ({"customer": CUSTOMER, "application": [3838]}, [("application", NUMERIC)]),
        ({"application": APP}, [("customer", BLANK)]),
        ({"customer": None, "application": APP}, [("customer", BLANK)]),
        ({"customer": CUSTOMER}, [("application", BLANK)]),
        ({"customer": CUSTOMER, "application": APP, "assignee": "4188"}, [("assignee", NUMERIC)]),
        ({"customer": CUSTOMER, "application": APP, "department": ""}, [("department", NUMERIC)]),
        (
            {"customer": "abc", "department": 1.5},
            [("customer", NUMERIC), ("application", BLANK), ("department", NUMERIC)],
        ),
    ],
)
@pytest.mark.anyio
async def test_wrongly_typed_chat_fields_get_400_listing_each(
    body: dict[str, Any], entries: list[tuple[str, str]]
) -> None:
    """Anything but a JSON integer id is a 400 with one entry per field, nothing stored."""
    app = make_app()
    async with client(app) as c:
        response = await c.post("/chats", json=body)
    assert response.status_code == 400
    assert response.json() == errors(*entries)
    assert app.state.chats == []


@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b"", b'{"customer": NaN}', b"\xff"])
@pytest.mark.anyio
async def test_a_body_that_is_not_a_json_object_gets_a_bare_400(raw: bytes) -> None:
    """Malformed JSON or a non-object body answers 400 with only `invalid_request`."""
    async with client(make_app()) as c:
        response = await c.post("/chats", content=raw)
    assert response.status_code == 400
    assert response.json() == errors()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"customer": 1}, "Customer not found"),
        ({"application": 9999}, "Application not found"),
        ({"assignee": 1}, "Agent not found"),
        ({"department": 1}, "Department not found"),
    ],
)
@pytest.mark.anyio
async def test_unknown_ids_get_404_entity_not_found(change: dict[str, int], message: str) -> None:
    """An id the account does not have answers 404 entity_not_found naming the entity."""
    app = make_app()
    async with client(app) as c:
        response = await c.post("/chats", json={**CHAT, **change})
    assert response.status_code == 404
    assert response.json() == errors(("entity_not_found", message))
    assert app.state.chats == []


# --- reference data ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_agents_are_paged_by_100_with_the_total() -> None:
    """GET /v1/agents pages by offset/limit (default 100) and tells the total."""
    app = make_app(state=SandboxState(Seed.generated(agents=145)))
    async with client(app) as c:
        first = (await c.get("/agents")).json()
        second = (await c.get("/agents", params={"offset": 100})).json()
        small = (await c.get("/agents", params={"offset": 2, "limit": 3})).json()
    assert first["meta"] == second["meta"] == {"total": 150}
    ids = [a["id"] for a in first["data"] + second["data"]]
    assert ids == list(range(4188, 4188 + 150))
    assert len(first["data"]) == 100
    assert [a["id"] for a in small["data"]] == [4190, 4191, 4192]
    assert first["data"][0] == {
        "id": 4188,
        "name": "Anna Kowalska",
        "email": "anna@example.com",
        "role": "admin",
    }


@pytest.mark.parametrize(
    ("params", "entry"),
    [
        ({"limit": 101}, ("limit", "This value should be between 1 and 100.")),
        ({"limit": 0}, ("limit", "This value should be between 1 and 100.")),
        ({"limit": "ten"}, ("limit", NUMERIC)),
        ({"offset": "-1"}, ("offset", NUMERIC)),
    ],
)
@pytest.mark.anyio
async def test_bad_paging_gets_400(params: dict[str, Any], entry: tuple[str, str]) -> None:
    """A limit outside 1-100 or a paging value that is not a whole number answers 400."""
    async with client(make_app()) as c:
        response = await c.get("/agents", params=params)
    assert response.status_code == 400
    assert response.json() == errors(entry)


@pytest.mark.anyio
async def test_departments_list_their_agents() -> None:
    """GET /v1/departments gives each department with its agents' objects."""
    async with client(make_app(state=SandboxState(Seed.generated(departments=120)))) as c:
        body = (await c.get("/departments")).json()
        rest = (await c.get("/departments", params={"offset": 100})).json()
    assert body["meta"] == {"total": 123}
    assert len(body["data"]) + len(rest["data"]) == 123
    support = body["data"][0]
    assert (support["id"], support["name"]) == (233048, "Support")
    assert [a["id"] for a in support["agents"]] == [4188, 4189, 4190]
    assert [d["name"] for d in body["data"][:3]] == ["Support", "Sales", "Billing"]


# --- searching --------------------------------------------------------------------------


async def create_chats_at(app: SandboxApp, clock: FakeClock, *rows: tuple[int, int]) -> None:
    """Create a chat for each (customer, createdAt) pair."""
    async with client(app) as c:
        for customer, created_at in rows:
            clock.now = created_at
            response = await c.post("/chats", json={"customer": customer, "application": APP})
            assert response.status_code == 201


@pytest.mark.anyio
async def test_chat_search_finds_a_customers_chats_since_a_time(clock: FakeClock) -> None:
    """Chat search by customer and createdAt >= finds what an unanswered create made."""
    app = make_app(clock)
    other = CUSTOMERS[1].id
    await create_chats_at(app, clock, (CUSTOMER, 1000), (other, 2000), (CUSTOMER, 3000))
    query = {
        "filter": [
            {"field": "chats.customer", "operator": "=", "value": CUSTOMER},
            {"field": "chats.createdAt", "operator": ">=", "value": 2000},
        ]
    }
    async with client(app) as c:
        response = await c.post("/chats/search", json=query)
    assert response.status_code == 200
    body = response.json()
    assert [(chat["id"], chat["createdAt"]) for chat in body["data"]] == [(FIRST_CHAT_ID + 2, 3000)]
    assert body["meta"] == {"total": 1}


@pytest.mark.anyio
async def test_chat_search_combines_with_or_sorts_and_pages(clock: FakeClock) -> None:
    """comparison OR, sort/order and offset/limit work together; total counts all matches."""
    app = make_app(clock)
    customers = [c.id for c in CUSTOMERS[:4]]
    await create_chats_at(app, clock, *((c, 1000 + i) for i, c in enumerate(customers)))
    query = {
        "filter": [
            {"field": "chats.customer", "operator": "=", "value": customers[0]},
            {"field": "chats.createdAt", "operator": ">", "value": 1001},
        ],
        "comparison": "OR",
        "sort": "chats.createdAt",
        "order": "desc",
        "limit": 2,
    }
    async with client(app) as c:
        body = (await c.post("/chats/search", json=query)).json()
        unassigned = await c.post(
            "/chats/search",
            json={"filter": [{"field": "chats.assignee", "operator": "=", "value": None}]},
        )
    assert [chat["customer"]["id"] for chat in body["data"]] == [customers[3], customers[2]]
    assert body["meta"] == {"total": 3}
    assert unassigned.json()["meta"] == {"total": 4}


@pytest.mark.parametrize(
    ("query", "entry"),
    [
        (
            {"filter": [{"field": "chats.customer", "operator": "=", "value": "8738438"}]},
            ("filter[0].value", NUMERIC),
        ),
        ({"filter": [{"operator": "=", "value": 1}]}, ("filter[0].field", BLANK)),
        (
            {"filter": [{"field": "chats.colour", "operator": "=", "value": 1}]},
            ("filter[0].field", "This value is not valid."),
        ),
        (
            {"filter": [{"field": "chats.customer", "operator": "~", "value": 1}]},
            ("filter[0].operator", "This value is not valid."),
        ),
        (
            {"filter": {"field": "chats.customer"}},
            ("filter", "This value should be of type array."),
        ),
        ({"comparison": "XOR"}, ("comparison", "This value is not valid.")),
        ({"sort": "chats.colour"}, ("sort", "This value is not valid.")),
        ({"limit": 500}, ("limit", "This value should be between 1 and 100.")),
    ],
)
@pytest.mark.anyio
async def test_a_bad_search_gets_400_naming_the_entry(
    query: dict[str, Any], entry: tuple[str, str]
) -> None:
    """A search with a wrong field, operator, value type or paging answers 400."""
    async with client(make_app()) as c:
        response = await c.post("/chats/search", json=query)
    assert response.status_code == 400
    assert response.json() == errors(entry)


@pytest.mark.parametrize(
    ("field", "operator", "value", "expected"),
    [
        ("customers.email", "=", "customer3@example.com", [CUSTOMERS[2].id]),
        ("customers.email", "=", "CUSTOMER3@example.com", [CUSTOMERS[2].id]),
        ("customers.email", "~", "TOMER3@EXAMPLE", [CUSTOMERS[2].id]),
        ("customers.userId", "=", "crm-1020", [CUSTOMERS[19].id]),
        ("customers.name", "~", "GARCÍA", [CUSTOMERS[5].id]),
        ("customers.id", "=", CUSTOMER, [CUSTOMER]),
    ],
)
@pytest.mark.anyio
async def test_customer_search_finds_by_email_user_id_name_and_id(
    field: str, operator: str, value: object, expected: list[int]
) -> None:
    """Customer search matches = as equal and ~ as contains, both ignoring case."""
    query = {"filter": [{"field": field, "operator": operator, "value": value}]}
    async with client(make_app()) as c:
        response = await c.post("/customers/search", json=query)
    assert response.status_code == 200
    assert [customer["id"] for customer in response.json()["data"]] == expected
    assert response.json()["meta"] == {"total": len(expected)}


# --- messages ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_message_is_stored_and_the_chat_is_no_longer_empty(clock: FakeClock) -> None:
    """POST /v1/messages answers 200 with the message; from is agent or customer."""
    app = make_app(clock)
    async with client(app) as c:
        chat_id = (await c.post("/chats", json=CHAT)).json()["id"]
        by_agent = await c.post(
            "/messages", json={"chat": chat_id, "text": "Hello", "type": "private", "agent": AGENT}
        )
        by_customer = await c.post(
            "/messages", json={"chat": chat_id, "text": "Hi", "type": "message"}
        )
        found = await c.post(
            "/chats/search",
            json={"filter": [{"field": "chats.id", "operator": "=", "value": chat_id}]},
        )
    assert by_agent.status_code == 200
    body = by_agent.json()
    assert (body["id"], body["chat"], body["from"], body["type"], body["text"]) == (
        FIRST_MESSAGE_ID,
        chat_id,
        "agent",
        "private",
        "Hello",
    )
    assert body["createdAt"] == int(clock.now)
    assert body["agent"]["id"] == AGENT
    assert by_customer.json()["from"] == "customer"
    assert by_customer.json()["id"] == FIRST_MESSAGE_ID + 1
    chat = found.json()["data"][0]
    assert (chat["status"], chat["lastMessageText"]) == ("new", "Hi")
    assert [m.text for m in app.state.messages] == ["Hello", "Hi"]


@pytest.mark.parametrize(
    ("body", "status", "entry"),
    [
        ({"chat": 1, "text": "Hi"}, 404, ("chat_not_found", "Chat not found")),
        ({"text": "Hi", "agent": 1}, 404, ("entity_not_found", "Agent not found")),
        (
            {"text": "Hi", "type": "note"},
            400,
            ("invalid_chat_value", 'type must be "message" or "private"'),
        ),
        ({"text": "  "}, 400, ("text", BLANK)),
        ({"text": 5}, 400, ("text", "This value should be of type string.")),
        ({"chat": "542336", "text": "Hi"}, 400, ("chat", NUMERIC)),
        ({"text": "Hi", "agent": "4188"}, 400, ("agent", NUMERIC)),
        ({"text": "Hi", "type": None}, 400, ("type", BLANK)),
        ({"text": "Hi", "type": "", "agent": AGENT}, 400, ("type", BLANK)),
    ],
)
@pytest.mark.anyio
async def test_a_bad_message_is_refused(
    body: dict[str, Any], status: int, entry: tuple[str, str]
) -> None:
    """A missing or bad type, text or id is 400, an unknown chat or agent 404; none stored."""
    app = make_app()
    async with client(app) as c:
        chat_id = (await c.post("/chats", json=CHAT)).json()["id"]
        response = await c.post("/messages", json={"chat": chat_id, "type": "message", **body})
    assert response.status_code == status
    assert response.json() == errors(entry)
    assert app.state.messages == []


# --- inspection and odds and ends --------------------------------------------------------


@pytest.mark.anyio
async def test_state_endpoint_shows_chats_with_payloads_and_counts() -> None:
    """GET /_sandbox/state needs no key and shows chats, payloads and request counts."""
    app = make_app(api_key=KEY)
    async with client(app) as c:
        await c.post("/chats", json=CHAT)
        await c.get("/agents")
    async with client(app, key=None) as c:
        snapshot = (await c.get("http://sandbox.test/_sandbox/state")).json()
    assert [(chat["id"], chat["payload"]) for chat in snapshot["chats"]] == [(FIRST_CHAT_ID, CHAT)]
    assert snapshot["requests"] == {"POST /v1/chats": 1, "GET /v1/agents": 1}
    assert (snapshot["rateLimited"], snapshot["messages"], snapshot["faults"]) == (0, [], {})


@pytest.mark.anyio
async def test_unknown_paths_answer_in_the_error_shape() -> None:
    """A path or method the API does not have answers 404/405 with an errors body."""
    async with client(make_app()) as c:
        missing = await c.get("/chats/123")
        wrong_method = await c.get("/chats/search")
    assert missing.status_code == 404
    assert missing.json() == errors(("not_found", "Not Found"))
    assert wrong_method.status_code == 405
    assert wrong_method.json() == errors(("method_not_allowed", "Method Not Allowed"))


def test_default_seed_matches_the_sample_data() -> None:
    """The seeded ids are the ones the sample data and docs use."""
    assert [a.id for a in AGENTS] == [4188, 4189, 4190, 4191, 4192]
    assert [(d.id, d.name) for d in DEPARTMENTS] == [
        (233048, "Support"),
        (233049, "Sales"),
        (233050, "Billing"),
    ]
    assert [c.id for c in CUSTOMERS] == list(range(8738438, 8738458))
    assert (CUSTOMERS[-1].email, CUSTOMERS[-1].user_id) == ("customer20@example.com", "crm-1020")
    assert APPLICATIONS == (3838, 3839)
    assert Seed.generated(agents=3) == Seed.generated(agents=3)


def test_exports_are_importable() -> None:
    """Every name in the package's __all__ exists."""
    assert all(hasattr(sandbox, name) for name in sandbox.__all__)


# --- over real loopback HTTP -------------------------------------------------------------


@pytest.fixture
def running() -> Iterator[sandbox.RunningSandbox]:
    """A sandbox served on loopback, stopped when the test ends."""
    with run_in_thread(SandboxConfig(api_key=KEY)) as served:
        yield served


def http(base_url: str, timeout: float = 5.0) -> httpx.Client:
    return httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=timeout
    )


def test_serves_over_loopback_http_and_shows_its_state(running: sandbox.RunningSandbox) -> None:
    """run_in_thread serves the API at base_url on 127.0.0.1; state is visible both ways."""
    assert running.base_url.startswith("http://127.0.0.1:")
    assert running.base_url.endswith("/v1")
    with http(running.base_url) as c:
        created = c.post("/chats", json=CHAT)
        snapshot = c.get(running.base_url.removesuffix("/v1") + "/_sandbox/state").json()
    assert created.status_code == 201
    assert [chat.id for chat in running.state.chats] == [created.json()["id"]]
    assert [chat["id"] for chat in snapshot["chats"]] == [created.json()["id"]]


def test_drop_after_closes_the_connection_unanswered_but_keeps_the_chat() -> None:
    """Over HTTP, drop_after stores the chat and the client sees the server disconnect."""
    with (
        run_in_thread(SandboxConfig(faults=Faults(drop_after=1.0))) as served,
        http(served.base_url) as c,
    ):
        with pytest.raises(
            httpx.RemoteProtocolError, match="Server disconnected without sending a response"
        ):
            c.post("/chats", json=CHAT)
        assert len(served.state.chats) == 1
        assert c.get("/agents").status_code == 200  # the server itself is fine


def test_over_http_widget_chat_stores_two_chats_then_disconnects() -> None:
    """Over HTTP, widget_chat stores the customer's chat and ours, then drops; not on updates."""
    faults = Faults(widget_chat=1.0, updates=True)
    with run_in_thread(SandboxConfig(faults=faults)) as served, http(served.base_url) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            c.post("/chats", json=CHAT)
        widget, ours = served.state.chats
        closed = c.put("/chats/status", json={"id": ours.id, "status": "closed"})
    assert (widget.created_with, ours.created_with) == ("customer_message", "public_api")
    assert closed.status_code == 200
    assert (ours.status, served.state.faults) == ("closed", {"widget_chat": 1})


def test_slow_after_makes_the_client_time_out_with_the_chat_stored() -> None:
    """Over HTTP, slow_after holds the answer past the client's timeout; the chat exists."""
    faults = Faults(slow_after=1.0, slow_seconds=30)
    with run_in_thread(SandboxConfig(faults=faults)) as served, http(served.base_url, 0.2) as c:
        with pytest.raises(httpx.ReadTimeout):
            c.post("/chats", json=CHAT)
        assert len(served.state.chats) == 1
    # Leaving the block stopped the server although an answer was still being held.


def test_the_sandbox_listens_on_loopback_only() -> None:
    """A host that is not loopback is refused before anything listens."""
    with pytest.raises(InputError, match="not a loopback address"), run_in_thread(host="0.0.0.0"):
        pass  # pragma: no cover


def test_a_busy_port_is_a_clear_error() -> None:
    """A port already taken gives an InputError naming it."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with (
            pytest.raises(InputError, match=f"cannot listen on 127.0.0.1:{port}"),
            run_in_thread(port=port),
        ):
            pass  # pragma: no cover


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGINT")
def test_serve_announces_the_real_port_and_stops_on_ctrl_c() -> None:
    """serve() on port 0 prints the URL with the port it got and stops on SIGINT."""
    code = "from bulk_chats.sandbox import serve; serve(port=0)"
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            url = line.split()[4]
            assert url.startswith("http://127.0.0.1:")
            assert not url.startswith("http://127.0.0.1:0/")
            with http(url) as c:
                assert c.post("/chats", json=CHAT).status_code == 201
        finally:
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=10)
    assert "KeyboardInterrupt" in stderr  # the caller maps it to exit status 130


# --- the messages of a chat -------------------------------------------------------------


async def post_messages(c: httpx.AsyncClient, chat_id: int, *texts: str) -> list[int]:
    """Post `texts` into `chat_id` as agent messages; their ids."""
    ids = []
    for text in texts:
        body = {"chat": chat_id, "text": text, "type": "message", "agent": AGENT}
        response = await c.post("/messages", json=body)
        assert response.status_code == 200
        ids.append(response.json()["id"])
    return ids


@pytest.mark.anyio
async def test_a_chats_messages_are_listed_newest_first_with_a_total() -> None:
    """GET /v1/chats/{id}/messages lists newest first, pages by offset/limit, top-level total."""
    app = make_app()
    async with client(app) as c:
        chat_id = (await c.post("/chats", json=CHAT)).json()["id"]
        empty = (await c.get(f"/chats/{chat_id}/messages")).json()
        ids = await post_messages(c, chat_id, "one", "two", "three")
        listed = (await c.get(f"/chats/{chat_id}/messages")).json()
        second = await c.get(f"/chats/{chat_id}/messages", params={"offset": 1, "limit": 1})
        missing = await c.get("/chats/1/messages")
    assert empty == {"data": [], "total": 0}
    assert [m["id"] for m in listed["data"]] == ids[::-1]
    assert [m["text"] for m in listed["data"]] == ["three", "two", "one"]
    assert listed["total"] == 3
    assert (second.json()["data"][0]["text"], second.json()["total"]) == ("two", 3)
    assert missing.status_code == 404
    assert missing.json() == errors(("chat_not_found", "Chat not found"))
    assert app.state.requests["GET /v1/chats/{id}/messages"] == 4


@pytest.mark.anyio
async def test_with_quirks_a_chats_messages_come_under_the_older_envelope() -> None:
    """`--quirks` lists a chat's messages under `messages`, as an older revision does."""
    app = make_app(rate=None, quirks=True)
    async with client(app) as c:
        chat_id = (await c.post("/chats", json=CHAT)).json()["id"]
        await post_messages(c, chat_id, "one", "two")
        listed = (await c.get(f"/chats/{chat_id}/messages")).json()
    assert "data" not in listed
    assert [m["text"] for m in listed["messages"]] == ["two", "one"]
    assert listed["total"] == 2


@pytest.mark.anyio
async def test_a_chat_carries_its_last_message_and_no_answer_has_markdown_text(
    clock: FakeClock,
) -> None:
    """A chat shows lastMessageId/Text/At; a message answer has no markdownText."""
    app = make_app(clock)
    async with client(app) as c:
        chat_id = (await c.post("/chats", json=CHAT)).json()["id"]
        clock.now += 5
        posted = await c.post(
            "/messages",
            json={"chat": chat_id, "text": "Hi", "type": "message", "markdownText": "**Hi**"},
        )
        found = await c.post(
            "/chats/search",
            json={"filter": [{"field": "chats.id", "operator": "=", "value": chat_id}]},
        )
    assert "markdownText" not in posted.json()
    chat = found.json()["data"][0]
    assert (chat["lastMessageId"], chat["lastMessageText"], chat["lastMessageAt"]) == (
        posted.json()["id"],
        "Hi",
        int(clock.now),
    )
    assert chat["lastCustomerMessageAt"] == int(clock.now)


# --- quirks: the documentation's other revisions -----------------------------------------


@pytest.mark.anyio
async def test_quirks_give_timestamps_as_strings_some_with_a_fraction() -> None:
    """With quirks createdAt and lastMessageAt are digit strings; odd ids carry milliseconds."""
    clock = FakeClock(1_601_557_390.769)
    app = make_app(clock, quirks=True)
    async with client(app) as c:
        even = (await c.post("/chats", json=CHAT)).json()
        odd = (await c.post("/chats", json=CHAT)).json()
        message = (
            await c.post("/messages", json={"chat": even["id"], "text": "Hi", "type": "message"})
        ).json()
        listed = (await c.get(f"/chats/{even['id']}/messages")).json()
        found = await c.post("/chats/search", json={"sort": "chats.id"})
    assert even["id"] % 2 == 0
    assert (even["createdAt"], odd["createdAt"]) == ("1601557390", "1601557390.769")
    assert message["createdAt"] == "1601557390.769"  # the first message id is odd
    assert listed["messages"][0]["createdAt"] == "1601557390.769"
    assert found.json()["data"][0]["lastMessageAt"] == "1601557390"


@pytest.mark.anyio
async def test_quirks_call_a_new_chat_new_and_answer_creations_200() -> None:
    """With quirks a new chat's status is new (not empty) and POST /v1/chats answers 200."""
    app = make_app(quirks=True)
    async with client(app) as c:
        created = await c.post("/chats", json=CHAT)
    assert created.status_code == 200
    assert (created.json()["status"], created.json()["lastMessageId"]) == ("new", None)


@pytest.mark.anyio
async def test_quirks_page_agents_and_departments_by_50_with_a_wrong_total() -> None:
    """With quirks pages hold at most 50 whatever limit asks; totals are wrong (agents) or 0."""
    state = SandboxState(Seed.generated(agents=115, departments=57))
    app = make_app(state=state, quirks=True)
    async with client(app) as c:
        agents = [
            (await c.get("/agents", params={"offset": o, "limit": 100})).json()
            for o in (0, 50, 100)
        ]
        departments = (await c.get("/departments")).json()
        small = (await c.get("/agents", params={"limit": 3})).json()
    assert [len(page["data"]) for page in agents] == [50, 50, 20]
    assert {page["meta"]["total"] for page in agents} == {121}
    assert [a["id"] for page in agents for a in page["data"]] == [a.id for a in state.seed.agents]
    assert (len(departments["data"]), departments["meta"]) == (50, {"total": 0})
    assert len(small["data"]) == 3


@pytest.mark.parametrize(
    ("quirks", "value", "expected"),
    [
        (False, "CUSTOMER3@example.com", [CUSTOMERS[2].id]),
        (True, "CUSTOMER3@example.com", [sandbox.VISITOR.id]),
        (True, "customer3@example.com", [sandbox.VISITOR.id, CUSTOMERS[2].id]),
    ],
)
@pytest.mark.anyio
async def test_quirks_compare_text_exactly_and_add_a_customer_without_email(
    quirks: bool, value: str, expected: list[int]
) -> None:
    """With quirks text = is case-sensitive and every search also finds a null-email customer."""
    query = {"filter": [{"field": "customers.email", "operator": "=", "value": value}]}
    async with client(make_app(quirks=quirks)) as c:
        body = (await c.post("/customers/search", json=query)).json()
    assert [customer["id"] for customer in body["data"]] == expected
    assert body["meta"] == {"total": len(expected)}
    if quirks:
        assert body["data"][0]["email"] is None


@pytest.mark.parametrize("quirks", [False, True])
@pytest.mark.anyio
async def test_contains_ignores_case_in_both_modes(quirks: bool) -> None:
    """~ finds a customer by part of the email in any case, with or without quirks."""
    query = {"filter": [{"field": "customers.email", "operator": "~", "value": "CUSTOMER20@"}]}
    async with client(make_app(quirks=quirks)) as c:
        body = (await c.post("/customers/search", json=query)).json()
    ids = [customer["id"] for customer in body["data"]]
    assert CUSTOMERS[19].id in ids
    assert set(ids) - {CUSTOMERS[19].id} == ({sandbox.VISITOR.id} if quirks else set())


# --- creating customers -----------------------------------------------------------------


@pytest.mark.anyio
async def test_a_customer_is_created_with_a_new_id_and_can_be_found() -> None:
    """POST /v1/customers answers 201 with the customer and its new id; search finds it."""
    app = make_app()
    body = {
        "name": "Ola Nordmann",
        "email": "ola@example.no",
        "userId": "crm-9",
        "company": "Fjord AS",
        "phone": "+47 1234",
        "tags": ["vip"],
    }
    async with client(app) as c:
        created = await c.post("/customers", json=body)
        twin = await c.post("/customers", json={"email": "ola@example.no"})
        found = await c.post(
            "/customers/search",
            json={
                "filter": [{"field": "customers.email", "operator": "=", "value": "OLA@example.no"}]
            },
        )
    assert created.status_code == 201
    new_id = CUSTOMERS[-1].id + 1
    assert created.json() == {
        "id": new_id,
        "name": "Ola Nordmann",
        "email": "ola@example.no",
        "userId": "crm-9",
        "company": "Fjord AS",
        "phone": "+47 1234",
    }
    assert twin.status_code == 201  # emails are not unique
    assert [c["id"] for c in found.json()["data"]] == [new_id, new_id + 1]
    assert [c.id for c in app.state.created_customers] == [new_id, new_id + 1]


@pytest.mark.parametrize(
    ("body", "entry"),
    [
        ({"userId": "crm-1001"}, ("userId", "This value is already used.")),
        ({"email": "not-an-email"}, ("email", "This value is not a valid email address.")),
        ({"email": " ola@example.no"}, ("email", "This value is not a valid email address.")),
        ({"name": 5}, ("name", "This value should be of type string.")),
    ],
)
@pytest.mark.anyio
async def test_a_customer_with_a_used_user_id_or_a_bad_email_is_refused(
    body: dict[str, Any], entry: tuple[str, str]
) -> None:
    """A userId in use, an invalid email or a field of the wrong type is a 400; none stored."""
    app = make_app()
    async with client(app) as c:
        response = await c.post("/customers", json=body)
    assert response.status_code == 400
    assert response.json() == errors(entry)
    assert app.state.created_customers == []


# --- changing chats ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("new", "new"),
        ("opened", "opened"),
        ("pending", "pending"),
        ("on hold", "on hold"),
        ("no communication", "no communication"),
        ("closed", "closed"),
        ("on-hold", "on hold"),
        ("onhold", "on hold"),
        ("open", "opened"),
    ],
)
@pytest.mark.anyio
async def test_a_chats_status_is_set_in_any_documented_spelling(sent: str, stored: str) -> None:
    """PUT /v1/chats/status accepts each status and older spelling, answers 200 with the chat."""
    app = make_app()
    async with client(app) as c:
        chat_id = (await c.post("/chats", json=CHAT)).json()["id"]
        response = await c.put("/chats/status", json={"id": chat_id, "status": sent})
    assert response.status_code == 200
    assert (response.json()["id"], response.json()["status"]) == (chat_id, stored)
    assert [(ch.chat_id, ch.field, ch.old, ch.new) for ch in app.state.changes] == [
        (chat_id, "status", "empty", stored)
    ]


@pytest.mark.parametrize(
    ("path", "body", "status", "entry"),
    [
        ("status", {"status": "Closed"}, 400, ("invalid_chat_value", "status value is invalid")),
        ("status", {"status": None}, 400, ("invalid_chat_value", "status value is invalid")),
        ("status", {"id": 1, "status": "closed"}, 404, ("chat_not_found", "Chat is missing")),
        ("status", {"id": "1", "status": "closed"}, 400, ("id", NUMERIC)),
        ("assignee", {"assignee": 1}, 400, ("invalid_chat_value", "assignee value is invalid")),
        ("assignee", {}, 400, ("invalid_chat_value", "assignee value is invalid")),
        ("assignee", {"assignee": "4188"}, 400, ("assignee", NUMERIC)),
        ("assignee", {"id": 1, "assignee": AGENT}, 404, ("chat_not_found", "Chat is missing")),
        (
            "department",
            {"department": 1},
            400,
            ("invalid_chat_value", "department value is invalid"),
        ),
        (
            "department",
            {"department": None},
            400,
            ("invalid_chat_value", "department value is invalid"),
        ),
        (
            "department",
            {"id": 1, "department": DEPARTMENT},
            404,
            ("chat_not_found", "Chat is missing"),
        ),
    ],
)
@pytest.mark.anyio
async def test_a_bad_chat_update_is_refused(
    path: str, body: dict[str, Any], status: int, entry: tuple[str, str]
) -> None:
    """A bad value is 400 invalid_chat_value, an unknown chat 404 chat_not_found; no change."""
    app = make_app()
    async with client(app) as c:
        chat_id = (await c.post("/chats", json=CHAT)).json()["id"]
        response = await c.put(f"/chats/{path}", json={"id": chat_id, **body})
    assert response.status_code == status
    assert response.json() == errors(entry)
    assert app.state.changes == []
    assert app.state.chats[0].status == "empty"


@pytest.mark.anyio
async def test_assignee_and_department_are_changed_and_null_unassigns() -> None:
    """PUT assignee and department answer the changed chat; assignee null unassigns."""
    app = make_app()
    other_agent, other_department = AGENTS[4].id, DEPARTMENTS[2].id
    async with client(app) as c:
        chat_id = (await c.post("/chats", json=CHAT)).json()["id"]
        assigned = await c.put("/chats/assignee", json={"id": chat_id, "assignee": other_agent})
        moved = await c.put(
            "/chats/department", json={"id": chat_id, "department": other_department}
        )
        unassigned = await c.put("/chats/assignee", json={"id": chat_id, "assignee": None})
    assert assigned.json()["assignee"]["id"] == other_agent
    assert moved.json()["department"] == {"id": other_department, "name": "Billing"}
    assert unassigned.status_code == 200
    assert unassigned.json()["assignee"] is None
    assert [(ch.field, ch.old, ch.new) for ch in app.state.changes] == [
        ("assignee", AGENT, other_agent),
        ("department", DEPARTMENT, other_department),
        ("assignee", other_agent, None),
    ]


@pytest.mark.anyio
async def test_a_message_into_a_closed_chat_reopens_it(clock: FakeClock) -> None:
    """A message posted into a closed chat makes it opened, recorded as a status change."""
    app = make_app(clock)
    async with client(app) as c:
        chat_id = (await c.post("/chats", json=CHAT)).json()["id"]
        await post_messages(c, chat_id, "first")
        closed = (await c.put("/chats/status", json={"id": chat_id, "status": "closed"})).json()
        await post_messages(c, chat_id, "again")
    assert (closed["status"], closed["closedAt"]) == ("closed", int(clock.now))
    chat = app.state.chats[0]
    assert (chat.status, chat.closed_at) == ("opened", None)
    assert [(ch.old, ch.new, ch.cause) for ch in app.state.changes] == [
        ("new", "closed", "update"),
        ("closed", "opened", "message"),
    ]
    orders = [m.order for m in app.state.messages] + [ch.order for ch in app.state.changes]
    assert sorted(orders) == [1, 2, 3, 4]
    assert app.state.messages[0].order < app.state.changes[0].order < app.state.messages[1].order


# --- widget chats -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_widget_chat_opens_the_customers_own_chat_before_a_dropped_answer() -> None:
    """widget_chat stores a customer_message chat with their message, then ours, then drops."""
    app = make_app(faults=Faults(widget_chat=1.0, messages=True))
    async with client(app) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            await c.post("/chats", json=CHAT)
        found = await c.post(
            "/chats/search",
            json={"filter": [{"field": "chats.customer", "operator": "=", "value": CUSTOMER}]},
        )
        ours = found.json()["data"][1]["id"]
        message = await c.post("/messages", json={"chat": ours, "text": "Hi", "type": "message"})
    widget, mine = found.json()["data"]
    assert (widget["createdWith"], widget["status"], widget["lastMessageId"] is not None) == (
        "customer_message",
        "new",
        True,
    )
    assert (mine["createdWith"], mine["status"]) == ("public_api", "empty")
    assert app.state.chats[1].payload == CHAT
    assert widget["id"] < mine["id"]
    assert [(m.chat_id, m.agent) for m in app.state.messages[:1]] == [(widget["id"], None)]
    assert message.status_code == 200  # widget_chat is no fault on messages
    assert app.state.faults == {"widget_chat": 1}


# --- what tests count -------------------------------------------------------------------


@pytest.mark.anyio
async def test_state_counts_customers_chats_by_status_messages_and_status_changes() -> None:
    """The snapshot counts customers created, chats by status, messages per chat and changes."""
    app = make_app()
    async with client(app) as c:
        first = (await c.post("/chats", json=CHAT)).json()["id"]
        second = (await c.post("/chats", json=CHAT)).json()["id"]
        await post_messages(c, first, "a", "b")
        await c.put("/chats/status", json={"id": first, "status": "closed"})
        await c.put("/chats/assignee", json={"id": second, "assignee": None})
        await c.post("/customers", json={"email": "someone@example.com"})
        snapshot = (await c.get("http://sandbox.test/_sandbox/state")).json()
    assert [c["email"] for c in snapshot["customersCreated"]] == ["someone@example.com"]
    assert snapshot["chatsByStatus"] == {"closed": 1, "empty": 1}
    assert snapshot["messagesPerChat"] == {str(first): 2, str(second): 0}
    assert [(s["chat"], s["from"], s["to"]) for s in snapshot["statusChanges"]] == [
        (first, "new", "closed")
    ]
    assert len(snapshot["changes"]) == 2


# --- the command line -------------------------------------------------------------------


def test_the_sandbox_command_passes_quirks_and_the_new_fault_kinds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`bulk-chats sandbox --quirks --fault widget_chat=P --fault-on ...` configures them."""
    seen: list[SandboxConfig] = []
    monkeypatch.setattr(sandbox, "serve", lambda config, **_: seen.append(config))
    args = [
        "sandbox",
        "--quirks",
        "--fault",
        "widget_chat=0.25",
        "--fault-on",
        "customers",
        "--fault-on",
        "updates",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    (config,) = seen
    assert config.quirks
    assert (config.faults.widget_chat, config.faults.customers, config.faults.updates) == (
        0.25,
        True,
        True,
    )
    assert not config.faults.messages


def test_import_quirks_needs_the_sandbox(tmp_path: Path) -> None:
    """`import --quirks` without --sandbox is one line and exit 2, nothing sent."""
    source = tmp_path / "chats.csv"
    source.write_text("customer,application\n8738438,3838\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["import", str(source), "--quirks", "--yes"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "bulk-chats: error: --quirks changes the stand-in's answers: use it with --sandbox"
    )


def test_import_into_the_quirks_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`import --sandbox --quirks` runs the import against a sandbox configured with quirks."""
    configs: list[SandboxConfig] = []

    def recording(config: SandboxConfig) -> Any:
        configs.append(config)
        return run_in_thread(config)

    monkeypatch.setattr(sandbox, "run_in_thread", recording)
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "chats.csv"
    source.write_text("customer,application\n8738438,3838\n8738439,3839\n", encoding="utf-8")
    args = ["import", str(source), "--sandbox", "--quirks", "--yes", "--rate", "6000"]
    result = CliRunner().invoke(cli, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "2 rows: created 2" in result.output
    assert [config.quirks for config in configs] == [True]
