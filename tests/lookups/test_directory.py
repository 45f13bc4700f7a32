"""Pre-flight and names → ids: paged reads, id checks, name matches, customer look-ups."""

from __future__ import annotations

import json
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
import respx

from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.api.entities import Agent, Department
from bulk_chats.api.limiter import RateLimiter
from bulk_chats.api.retry import READ_ATTEMPTS
from bulk_chats.errors import AuthenticationError
from bulk_chats.lookups.customers import (
    BATCH_SIZE,
    Resolution,
    assign_customers,
    look_up_customers,
)
from bulk_chats.lookups.directory import (
    Directory,
    Preflight,
    check_rows,
    read_directory,
)
from bulk_chats.records import ChatRequest, FirstMessage, Status
from bulk_chats.settings import ApiKey
from tests.fakes import API_ROOT, FakeTime

BASE = API_ROOT


async def resolve(client: HelpCrunchClient, preflight: Preflight, **options: Any) -> Resolution:
    """The customer look-ups, then each row given its customer, as `import` runs them."""
    return assign_customers(preflight, await look_up_customers(client, preflight.passed, **options))


AGENTS = [
    {"id": 4188, "name": "Anna", "email": "anna@example.com", "role": "admin"},
    {"id": 4189, "name": "Ben", "email": "Ben@Example.com", "role": "agent"},
    {"id": 4191, "name": "Dmitri", "email": "dmitri@example.com", "role": "agent"},
]
DEPARTMENTS = [
    {"id": 233048, "name": "Support", "agents": [AGENTS[0], AGENTS[1]]},
    {"id": 233049, "name": " Sales ", "agents": [AGENTS[2]]},
]


def directory_of(agents: list[dict[str, Any]], departments: list[dict[str, Any]]) -> Directory:
    """A Directory from listings as the API writes them."""
    return Directory.from_listings(
        [a for a in map(Agent.parse, agents) if a],
        [d for d in map(Department.parse, departments) if d],
    )


DIRECTORY = directory_of(AGENTS, DEPARTMENTS)


def draft(index: int = 0, **fields: Any) -> ChatRequest:
    fields.setdefault("customer", 8738438)
    fields.setdefault("application", 3838)
    return ChatRequest(index=index, source_row=index + 2, **fields)


def paged(items: list[dict[str, Any]]) -> Any:
    """A side effect answering `GET` listings page by page from `items`."""

    def answer(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        limit = int(request.url.params["limit"])
        page = items[offset : offset + limit]
        return httpx.Response(200, json={"data": page, "meta": {"total": len(items)}})

    return answer


def customers_by(table: dict[str, list[dict[str, Any]]]) -> Any:
    """A side effect answering customer search from `table` (filter value → customers),
    every filter's customers together, as filters joined with OR are."""

    def answer(request: httpx.Request) -> httpx.Response:
        found = [
            c for f in json.loads(request.content)["filter"] for c in table.get(f["value"], [])
        ]
        return httpx.Response(200, json={"data": found, "meta": {"total": len(found)}})

    return answer


def body(call: Any) -> Any:
    return json.loads(call.request.content)


@pytest.mark.anyio
async def test_agents_and_departments_are_read_whole_past_100(
    client: HelpCrunchClient, api: respx.MockRouter
) -> None:
    """250 agents and 150 departments are read page by page, and every one is known."""
    agents = [{"id": n, "email": f"agent{n}@example.com"} for n in range(1, 251)]
    departments = [{"id": n, "name": f"Team {n}", "agents": []} for n in range(1, 151)]
    agent_route = api.get("/agents").mock(side_effect=paged(agents))
    department_route = api.get("/departments").mock(side_effect=paged(departments))
    drafts = [draft(0, assignee=250, department=150)]
    directory = await read_directory(client, drafts)
    assert [c.request.url.params["offset"] for c in agent_route.calls] == ["0", "100", "200", "250"]
    assert [c.request.url.params["offset"] for c in department_route.calls] == ["0", "100", "150"]
    assert len(directory.agents or {}) == 250
    assert len(directory.departments or {}) == 150
    checked = check_rows(drafts, directory)
    assert (checked.rejected, [d.assignee for d in checked.passed]) == ({}, [250])
    assert directory.agents_by_email("AGENT201@example.com") == [201]


@pytest.mark.anyio
async def test_without_agents_or_departments_only_the_key_is_checked(
    client: HelpCrunchClient, api: respx.MockRouter
) -> None:
    """Rows with customers and applications only cost one cheap read: the key check."""
    route = api.get("/agents").respond(200, json={"data": [], "meta": {"total": 0}})
    directory = await read_directory(client, [draft(0), draft(1)])
    assert route.call_count == 1
    assert route.calls.last.request.url.params["limit"] == "1"
    assert directory == Directory()


@pytest.mark.anyio
async def test_a_refused_key_on_the_agents_read_stops_the_pre_flight(
    client: HelpCrunchClient, api: respx.MockRouter
) -> None:
    """The listings are the key check: a 401 on either raises AuthenticationError."""
    unauthorized = {"errors": [{"code": "unauthorized", "message": "No"}]}
    api.get("/agents").respond(401, json=unauthorized)
    api.get("/departments").respond(401, json=unauthorized)
    with pytest.raises(AuthenticationError):
        await read_directory(client, [draft(0, assignee=4188, department=233048)])


@pytest.mark.anyio
async def test_a_read_is_retried_after_a_transient_failure(
    client: HelpCrunchClient, api: respx.MockRouter, fake: FakeTime
) -> None:
    """A 503 on a listing is tried again after a back-off; the listing then comes whole."""
    api.get("/departments").mock(
        side_effect=[
            httpx.Response(503, json={"errors": [{"code": "service_unavailable"}]}),
            httpx.Response(200, json={"data": DEPARTMENTS, "meta": {"total": 2}}),
            httpx.Response(200, json={"data": [], "meta": {"total": 2}}),
        ]
    )
    directory = await read_directory(client, [draft(0, department=233049)], sleep=fake.sleep)
    assert set(directory.departments or {}) == {233048, 233049}
    assert 0.5 <= fake.sleeps[0] <= 1.0  # the back-off; later sleeps are the limiter's


@pytest.mark.anyio
async def test_a_read_that_keeps_failing_gives_up(
    client: HelpCrunchClient, api: respx.MockRouter, fake: FakeTime
) -> None:
    """A listing that answers 500 every time is tried a bounded number of times."""
    route = api.get("/agents").respond(500, json={"errors": [{"code": "internal_error"}]})
    with pytest.raises(Exception, match="500"):
        await read_directory(client, [draft(0, assignee=4188)], sleep=fake.sleep)
    assert route.call_count == READ_ATTEMPTS


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        (
            {"assignee": 4199},
            "unknown_assignee",
            "assignee: 4199 is not an agent of this account",
        ),
        (
            {"department": 9},
            "unknown_department",
            "department: 9 is not a department of this account",
        ),
        (
            {"message": FirstMessage("Hi", "private", 77)},
            "unknown_message_agent",
            "message_agent: 77 is not an agent of this account",
        ),
    ],
)
def test_unknown_ids_make_the_row_invalid(fields: dict[str, Any], code: str, message: str) -> None:
    """An assignee, department or message agent id the account lacks: invalid, with the value."""
    checked = check_rows([draft(0, **fields)], DIRECTORY)
    assert checked.passed == []
    outcome = checked.rejected[0]
    assert (outcome.status, outcome.error_code, outcome.error_message) == (
        Status.INVALID,
        code,
        message,
    )


def test_every_problem_of_a_row_is_reported() -> None:
    """A row with an unknown assignee and an unknown department names both."""
    outcome = check_rows([draft(0, assignee=1, department=2)], DIRECTORY).rejected[0]
    assert outcome.error_code == "unknown_assignee; unknown_department"
    assert outcome.error_message.count(" | ") == 1


def test_agent_emails_and_department_names_match_ignoring_case_and_spaces() -> None:
    """`BEN@example.com` finds Ben@Example.com; `  sales` finds ' Sales '."""
    names = (
        ("assignee_email", "BEN@example.com"),
        ("department_name", "  sales"),
        ("message_agent_email", "Anna@Example.COM"),
    )
    checked = check_rows(
        [draft(0, names=names, message=FirstMessage("Note", "private"))], DIRECTORY
    )
    assert checked.rejected == {}
    [passed] = checked.passed
    assert (passed.assignee, passed.department, passed.message) == (
        4189,
        233049,
        FirstMessage("Note", "private", 4188),
    )


@pytest.mark.parametrize(
    ("names", "code", "text"),
    [
        (
            (("assignee_email", "zoe@example.com"),),
            "unresolved_assignee_email",
            "assignee_email: 'zoe@example.com' matches no agent of this account",
        ),
        (
            (("department_name", "Marketing"),),
            "unresolved_department_name",
            "department_name: 'Marketing' matches no department of this account; the "
            "account's departments are ' Sales ', 'Support'",
        ),
        (
            (("message_agent_email", "nobody@example.com"),),
            "unresolved_message_agent_email",
            "message_agent_email: 'nobody@example.com' matches no agent",
        ),
    ],
)
def test_a_name_that_matches_nothing_makes_the_row_invalid(
    names: tuple[tuple[str, str], ...], code: str, text: str
) -> None:
    """An agent email or department name the account lacks: invalid, saying nothing matched."""
    row = draft(0, names=names, message=FirstMessage("Hi", "message"))
    outcome = check_rows([row], DIRECTORY).rejected[0]
    assert (outcome.status, outcome.error_code) == (Status.INVALID, code)
    assert outcome.error_message.startswith(text)


def test_a_name_that_matches_several_makes_the_row_invalid() -> None:
    """Two departments called Support: the row is invalid and the message says how many."""
    directory = directory_of(AGENTS, [*DEPARTMENTS, {"id": 7, "name": "support"}])
    outcome = check_rows([draft(0, names=(("department_name", "Support"),))], directory).rejected[0]
    assert outcome.error_code == "unresolved_department_name"
    assert "matches 2 departments (7, 233048)" in outcome.error_message


def test_an_assignee_outside_the_department_is_warned_not_rejected() -> None:
    """Dmitri in Support passes the pre-flight with a warning that names both."""
    checked = check_rows([draft(0, assignee=4191, department=233048)], DIRECTORY)
    assert [d.index for d in checked.passed] == [0]
    assert checked.warnings == {
        0: "warning: assignee 4191 (dmitri@example.com) is not in department 233048 "
        "(Support); sent as it is"
    }


def test_a_row_whose_chat_exists_is_checked_for_its_message_agent_only() -> None:
    """A message-only row ignores its assignee; an unknown message agent keeps the chat."""
    fine = draft(0, assignee=4199, chat_id=55, message=FirstMessage("Hi", "message"))
    broken = draft(1, chat_id=56, message=FirstMessage("Hi", "private", 77))
    checked = check_rows([fine, broken], DIRECTORY)
    assert [d.index for d in checked.passed] == [0]
    outcome = checked.rejected[1]
    assert (outcome.status, outcome.chat_id, outcome.error_code) == (
        Status.MESSAGE_FAILED,
        56,
        "unknown_message_agent",
    )


@pytest.mark.anyio
async def test_customers_are_looked_up_once_per_distinct_value(
    client: HelpCrunchClient, api: respx.MockRouter
) -> None:
    """Zero, one and two matches: invalid, resolved, invalid; the distinct values go in
    one search, a repeated email asked once."""
    route = api.post("/customers/search").mock(
        side_effect=customers_by(
            {
                "one@example.com": [{"id": 11, "email": "one@example.com"}],
                "crm-2": [{"id": 21, "userId": "crm-2"}, {"id": 22, "userId": "crm-2"}],
            }
        )
    )
    preflight = Preflight(
        passed=[
            draft(0, customer=None, names=(("customer_email", "one@example.com"),)),
            draft(1, customer=None, names=(("customer_email", "none@example.com"),)),
            draft(2, customer=None, names=(("customer_user_id", "crm-2"),)),
            draft(
                3, customer=None, application=3839, names=(("customer_email", "one@example.com"),)
            ),
            draft(4, customer=8738440),
        ],
        rejected={},
        warnings={},
    )
    resolution = await resolve(client, preflight, concurrency=3)
    assert route.call_count == 1
    assert [f["value"] for f in body(route.calls.last)["filter"]] == [
        "one@example.com",
        "none@example.com",
        "crm-2",
    ]
    assert [(r.index, r.customer) for r in resolution.requests] == [
        (0, 11),
        (3, 11),
        (4, 8738440),
    ]
    missing, several = resolution.outcomes[1], resolution.outcomes[2]
    assert (missing.status, missing.error_code) == (Status.INVALID, "unresolved_customer_email")
    assert "'none@example.com' matches no customer" in missing.error_message
    assert (several.status, several.error_code) == (Status.INVALID, "unresolved_customer_user_id")
    assert "'crm-2' matches 2 customers (21, 22)" in several.error_message
    assert resolution.resolved["customer"] == {0: 11, 3: 11, 4: 8738440}


@pytest.mark.anyio
async def test_customer_search_asks_for_the_field_with_a_string_value(
    client: HelpCrunchClient, api: respx.MockRouter
) -> None:
    """An email is searched as text containing it (case aside), a userId as equal to it."""
    route = api.post("/customers/search").mock(side_effect=customers_by({}))
    passed = [
        draft(0, customer=None, names=(("customer_email", "a@example.com"),)),
        draft(1, customer=None, names=(("customer_user_id", "1001"),)),
    ]
    await resolve(client, Preflight(passed, {}, {}), concurrency=1)
    assert [body(c)["filter"] for c in route.calls] == [
        [
            {"field": "customers.email", "operator": "~", "value": "a@example.com"},
            {"field": "customers.userId", "operator": "=", "value": "1001"},
        ]
    ]
    assert body(route.calls.last)["comparison"] == "OR"


@pytest.mark.anyio
async def test_a_loose_match_from_the_server_is_not_taken(
    client: HelpCrunchClient, api: respx.MockRouter
) -> None:
    """Customers whose email differs from the one asked for are dropped (case aside)."""
    api.post("/customers/search").respond(
        200,
        json={
            "data": [
                {"id": 1, "email": "joann@example.com"},
                {"id": 2, "email": "ANN@example.com"},
            ]
        },
    )
    passed = [draft(0, customer=None, names=(("customer_email", "ann@example.com"),))]
    resolution = await resolve(client, Preflight(passed, {}, {}), concurrency=1)
    assert [r.customer for r in resolution.requests] == [2]


@pytest.mark.anyio
async def test_a_customer_without_the_value_asked_for_is_not_taken(
    client: HelpCrunchClient, api: respx.MockRouter
) -> None:
    """A search hit with a null email or userId is no match: the row is invalid, not theirs."""
    api.post("/customers/search").respond(
        200, json={"data": [{"id": 1, "email": None}, {"id": 2, "userId": None}, {"id": 3}]}
    )
    passed = [
        draft(0, customer=None, names=(("customer_email", "ann@example.com"),)),
        draft(1, customer=None, names=(("customer_user_id", "crm-7"),)),
    ]
    resolution = await resolve(client, Preflight(passed, {}, {}), concurrency=1)
    assert resolution.requests == []
    assert [o.error_code for o in resolution.outcomes.values()] == [
        "unresolved_customer_email",
        "unresolved_customer_user_id",
    ]


@pytest.mark.anyio
async def test_an_email_typed_in_another_case_finds_its_customer(
    client: HelpCrunchClient, api: respx.MockRouter
) -> None:
    """ANNA@X.COM is searched as contained text and matches anna@x.com, not hanna@x.com."""
    route = api.post("/customers/search").respond(
        200,
        json={"data": [{"id": 8, "email": "hanna@x.com"}, {"id": 9, "email": " anna@x.com"}]},
    )
    passed = [draft(0, customer=None, names=(("customer_email", " ANNA@X.COM "),))]
    resolution = await resolve(client, Preflight(passed, {}, {}), concurrency=1)
    assert [r.customer for r in resolution.requests] == [9]
    assert body(route.calls.last)["filter"] == [
        {"field": "customers.email", "operator": "~", "value": "ANNA@X.COM"}
    ]
    assert (body(route.calls.last)["sort"], body(route.calls.last)["order"]) == (
        "customers.id",
        "asc",
    )


@pytest.mark.anyio
async def test_a_refused_look_up_fails_its_rows(
    client: HelpCrunchClient, api: respx.MockRouter
) -> None:
    """A 400 on a search of one value is not retried: the row is failed with the API's code."""
    route = api.post("/customers/search").respond(
        400, json={"errors": [{"code": "filter[0].value", "message": "This value is not valid."}]}
    )
    passed = [draft(0, customer=None, names=(("customer_email", "x@example.com"),))]
    outcome = (await resolve(client, Preflight(passed, {}, {}), concurrency=1)).outcomes[0]
    assert route.call_count == 1
    assert (outcome.status, outcome.error_code, outcome.http_status) == (
        Status.FAILED,
        "filter[0].value",
        400,
    )
    assert outcome.error_message == (
        "customer_email: the look-up of 'x@example.com' failed: This value is not valid."
    )


@pytest.mark.anyio
async def test_a_401_during_look_ups_stops_them(
    client: HelpCrunchClient, api: respx.MockRouter
) -> None:
    """After a 401 no further search is made; every named row is not_sent."""
    route = api.post("/customers/search").respond(401, json={"errors": [{"code": "unauthorized"}]})
    passed = [
        draft(n, customer=None, names=(("customer_email", f"c{n}@example.com"),))
        for n in range(5 * BATCH_SIZE)
    ]
    resolution = await resolve(client, Preflight(passed, {}, {}), concurrency=1)
    assert route.call_count == 1
    assert resolution.auth_failed
    assert {o.status for o in resolution.outcomes.values()} == {Status.NOT_SENT}
    assert len(resolution.outcomes) == 5 * BATCH_SIZE


@pytest.mark.anyio
async def test_a_stop_before_the_look_ups_makes_none(
    client: HelpCrunchClient, api: respx.MockRouter
) -> None:
    """With stop already set, nothing is searched and named rows are not_sent."""
    route = api.post("/customers/search").mock(side_effect=customers_by({}))
    stop = anyio.Event()
    stop.set()
    passed = [draft(0, customer=None, names=(("customer_email", "a@example.com"),)), draft(1)]
    resolution = await resolve(client, Preflight(passed, {}, {}), concurrency=2, stop=stop)
    assert route.call_count == 0
    assert resolution.outcomes[0].error_message == "not sent: the run was interrupted"
    assert [r.index for r in resolution.requests] == [1]


def test_a_named_row_keeps_its_key_through_the_look_ups() -> None:
    """The journal knows a row by its names: the key is the same before and after look-ups."""
    names = (("customer_email", "Ann@Example.com"), ("assignee_email", "anna@example.com"))
    message = FirstMessage("Hi", "message")
    before = draft(0, customer=None, names=names, message=message)
    after = ChatRequest(
        index=0,
        source_row=2,
        customer=8738438,
        application=3838,
        assignee=4188,
        message=message,
        names=names,
    )
    assert before.key == after.key
    assert after.key != ChatRequest(0, 2, 8738438, 3838, 4188, message=message).key


@pytest.mark.anyio
async def test_a_stop_ends_a_look_up_sitting_out_a_long_retry_after(
    fake: FakeTime, api: respx.MockRouter
) -> None:
    """Ctrl-C while a look-up waits out a 300 s Retry-After at the limiter: after the grace
    the wait ends, nothing more is searched, and the row is not_sent, not failed."""
    route = api.post("/customers/search").respond(
        429, headers={"Retry-After": "300"}, json={"errors": [{"code": "too_many_requests"}]}
    )
    stop = anyio.Event()
    held: list[float] = []

    async def limiter_sleep(seconds: float) -> None:
        # Fake time that never passes at the limiter: only a stop can end this wait.
        held.append(seconds)
        stop.set()
        await anyio.sleep_forever()

    limiter = RateLimiter(6000, clock=fake.clock, sleep=limiter_sleep)
    passed = [draft(0, customer=None, names=(("customer_email", "a@example.com"),)), draft(1)]
    async with HelpCrunchClient(
        BASE, ApiKey("sk-test"), limiter=limiter, transport=httpx.MockTransport(api.async_handler)
    ) as client:
        with anyio.fail_after(10):
            resolution = await resolve(
                client,
                Preflight(passed, {}, {}),
                concurrency=2,
                stop=stop,
                stop_grace=2.5,
                sleep=fake.sleep,
            )
    assert route.call_count == 1
    assert held == [300.0]
    assert fake.sleeps == [2.5]
    outcome = resolution.outcomes[0]
    assert (outcome.status, outcome.error_message) == (
        Status.NOT_SENT,
        "not sent: the run was interrupted",
    )
    assert [r.index for r in resolution.requests] == [1]
