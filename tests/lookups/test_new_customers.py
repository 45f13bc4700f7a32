"""New customers: exactly one per name across lost answers, looked for by search before
anything is sent again (respx, fake time)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.errors import JournalError
from bulk_chats.journal.journal import Journal
from bulk_chats.lookups.customers import Failure, look_up_customers
from bulk_chats.lookups.new_customers import CREATE_ROUNDS, create_customers
from bulk_chats.records import Status
from tests.fakes import FakeTime
from tests.lookups.test_customers import filters, named


def creating(api: respx.MockRouter, *answers: Any) -> respx.Route:
    """`POST /customers` answered by `answers` in turn (a response or an exception)."""
    return api.post("/customers").mock(side_effect=list(answers))


@pytest.mark.anyio
async def test_one_customer_per_new_email_whatever_its_case(
    client: HelpCrunchClient, api: respx.MockRouter, journal: Journal, fake: FakeTime
) -> None:
    """Three rows with one new email in three spellings: one POST, with the first row's
    spelling and profile; every row gets it, and the journal records it."""
    api.post("/customers/search").respond(200, json={"data": []})
    post = creating(api, httpx.Response(201, json={"id": 77, "email": "new@example.com"}))
    rows = [
        named(0, "customer_email", "new@example.com", name="Nina", company="Acme"),
        named(1, "customer_email", "NEW@example.com", phone="+49 30 1234"),
        named(2, "customer_email", " New@Example.COM "),
    ]
    lookups = await look_up_customers(client, rows, journal=journal, concurrency=2)
    made = await create_customers(client, journal, lookups, rows, concurrency=2, sleep=fake.sleep)
    assert post.call_count == 1
    assert json.loads(post.calls.last.request.content) == {
        "email": "new@example.com",
        "name": "Nina",
        "company": "Acme",
        "phone": "+49 30 1234",
    }
    assert made.found == {"customer_email:new@example.com": [77]}
    assert made.created == {"customer_email:new@example.com": 77}
    entry = journal.customers.entries(["customer_email:new@example.com"])[
        "customer_email:new@example.com"
    ]
    assert (entry.state, entry.customer_id, entry.attempts) == ("created", 77, 1)


@pytest.mark.anyio
async def test_a_lost_answer_is_confirmed_by_search_not_sent_again(
    client: HelpCrunchClient, api: respx.MockRouter, journal: Journal, fake: FakeTime
) -> None:
    """The connection drops after the customer was stored: a search finds it, and it is
    adopted, never created twice."""
    search = api.post("/customers/search").mock(
        side_effect=[
            httpx.Response(200, json={"data": []}),
            httpx.Response(200, json={"data": [{"id": 88, "userId": "crm-9"}]}),
        ]
    )
    post = creating(api, httpx.RemoteProtocolError("Server disconnected"))
    rows = [named(0, "customer_user_id", "crm-9")]
    lookups = await look_up_customers(client, rows, journal=journal, concurrency=1)
    made = await create_customers(client, journal, lookups, rows, concurrency=1, sleep=fake.sleep)
    assert (post.call_count, search.call_count) == (1, 2)
    assert made.created == {"customer_user_id:crm-9": 88}
    assert journal.customers.entries(["customer_user_id:crm-9"])[
        "customer_user_id:crm-9"
    ].state == ("created")


@pytest.mark.anyio
async def test_lost_answers_are_confirmed_in_one_search_and_the_missing_sent_again(
    client: HelpCrunchClient, api: respx.MockRouter, journal: Journal, fake: FakeTime
) -> None:
    """Two creations lose their answers; one search asks for both: the one stored is
    adopted, the one not stored is sent again, once."""
    search = api.post("/customers/search").mock(
        side_effect=[
            httpx.Response(200, json={"data": []}),
            httpx.Response(200, json={"data": [{"id": 5, "email": "a@example.com"}]}),
        ]
    )
    post = creating(
        api,
        httpx.RemoteProtocolError("Server disconnected"),
        httpx.ReadTimeout("no answer"),
        httpx.Response(201, json={"id": 6, "email": "b@example.com"}),
    )
    rows = [
        named(0, "customer_email", "a@example.com"),
        named(1, "customer_email", "b@example.com"),
    ]
    lookups = await look_up_customers(client, rows, journal=journal, concurrency=1)
    made = await create_customers(client, journal, lookups, rows, concurrency=1, sleep=fake.sleep)
    assert search.call_count == 2
    assert len(filters(search.calls.last)) == 2
    assert post.call_count == 3
    assert json.loads(post.calls.last.request.content) == {"email": "b@example.com"}
    assert made.created == {"customer_email:a@example.com": 5, "customer_email:b@example.com": 6}


@pytest.mark.anyio
async def test_a_refused_creation_fails_its_name(
    client: HelpCrunchClient, api: respx.MockRouter, journal: Journal, fake: FakeTime
) -> None:
    """A 400 (a userId in use) is not retried: the name fails with the API's code."""
    api.post("/customers/search").respond(200, json={"data": []})
    post = creating(
        api,
        httpx.Response(
            400, json={"errors": [{"code": "userId", "message": "This value is already used."}]}
        ),
    )
    rows = [named(0, "customer_user_id", "crm-1")]
    lookups = await look_up_customers(client, rows, journal=journal, concurrency=1)
    made = await create_customers(client, journal, lookups, rows, concurrency=1, sleep=fake.sleep)
    failure = made.found["customer_user_id:crm-1"]
    assert post.call_count == 1
    assert isinstance(failure, Failure)
    assert (failure.status, failure.error and failure.error.error_code) == (
        Status.FAILED,
        "userId",
    )
    assert failure.message == (
        "customer_user_id: a new customer for 'crm-1' could not be created: "
        "This value is already used."
    )
    assert journal.customers.entries(["customer_user_id:crm-1"])[
        "customer_user_id:crm-1"
    ].state == ("failed")


@pytest.mark.anyio
async def test_a_creation_that_keeps_losing_its_answer_ends_unknown(
    client: HelpCrunchClient, api: respx.MockRouter, journal: Journal, fake: FakeTime
) -> None:
    """Every answer lost and every search empty: sent CREATE_ROUNDS times, each after a
    search that found nothing, then `unknown`, and the journal says so for the next run."""
    search = api.post("/customers/search").respond(200, json={"data": []})
    post = api.post("/customers").mock(side_effect=httpx.ReadTimeout("no answer"))
    rows = [named(0, "customer_email", "ghost@example.com")]
    lookups = await look_up_customers(client, rows, journal=journal, concurrency=1)
    made = await create_customers(client, journal, lookups, rows, concurrency=1, sleep=fake.sleep)
    failure = made.found["customer_email:ghost@example.com"]
    assert (post.call_count, search.call_count) == (CREATE_ROUNDS, 1 + CREATE_ROUNDS)
    assert isinstance(failure, Failure)
    assert failure.status is Status.UNKNOWN
    entry = journal.customers.entries(["customer_email:ghost@example.com"])
    assert entry["customer_email:ghost@example.com"].state == "unknown"


@pytest.mark.anyio
async def test_a_journal_that_cannot_be_written_stops_the_creations_with_its_own_error(
    client: HelpCrunchClient,
    api: respx.MockRouter,
    journal: Journal,
    fake: FakeTime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The journal fails on the second announcement, with four creations in flight at once:
    `create_customers` raises the journal's own `JournalError` (no exception group, so the
    command line shows one line), and no customer is sent unannounced after it."""
    api.post("/customers/search").respond(200, json={"data": []})
    post = api.post("/customers").mock(
        side_effect=[httpx.Response(201, json={"id": 70 + n}) for n in range(10)]
    )
    rows = [named(n, "customer_email", f"new{n}@example.com") for n in range(10)]
    lookups = await look_up_customers(client, rows, journal=journal, concurrency=4)
    announced = journal.customers.attempt
    calls = []

    def failing(key: str, *, started_at: float) -> None:
        calls.append(key)
        if len(calls) == 2:
            raise JournalError("reports/journal.sqlite3: cannot write the journal (disk full)")
        announced(key, started_at=started_at)

    monkeypatch.setattr(journal.customers, "attempt", failing)
    with pytest.raises(JournalError, match="disk full"):
        await create_customers(client, journal, lookups, rows, concurrency=4, sleep=fake.sleep)
    assert post.call_count == len(calls) - 1 < 10
