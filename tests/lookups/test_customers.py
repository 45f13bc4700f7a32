"""Customers by name: batched look-ups over pages, ambiguity, a refused batch, and the
names an earlier run created or announced (respx, fake time)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.journal.journal import Journal
from bulk_chats.lookups.customers import (
    BATCH_SIZE,
    Failure,
    look_up_customers,
    name_key,
    search_requests,
)
from bulk_chats.records import ChatRequest, Status


def named(index: int, field: str, value: str, **profile: str) -> ChatRequest:
    """A row naming its customer by `field` = `value`, with `profile` for a new customer."""
    return ChatRequest(
        index=index,
        source_row=index + 2,
        customer=None,
        application=3838,
        names=((field, value),),
        profile=tuple(profile.items()),
    )


def emails(count: int) -> list[ChatRequest]:
    return [named(n, "customer_email", f"c{n}@example.com") for n in range(count)]


def filters(call: Any) -> list[dict[str, Any]]:
    return list(json.loads(call.request.content)["filter"])


def paged_search(customers: list[dict[str, Any]], *, max_filters: int | None = None) -> Any:
    """A customer search over `customers`: a customer matches a filter when it carries the
    value (emails by `~`, ignoring case), pages by offset/limit; more than `max_filters`
    filters are refused with 400."""

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        wanted = body["filter"]
        if max_filters is not None and len(wanted) > max_filters:
            return httpx.Response(400, json={"errors": [{"code": "filter", "message": "long"}]})

        def holds(customer: dict[str, Any], f: dict[str, Any]) -> bool:
            have = customer.get(f["field"].removeprefix("customers."))
            if have is None:
                return False
            if f["operator"] == "~":
                return str(f["value"]).casefold() in str(have).casefold()
            return bool(have == f["value"])

        found = [c for c in customers if any(holds(c, f) for f in wanted)]
        page = found[body["offset"] : body["offset"] + body["limit"]]
        return httpx.Response(200, json={"data": page, "meta": {"total": len(found)}})

    return answer


@pytest.mark.anyio
async def test_a_batch_whose_answer_spans_pages_is_read_whole(
    client: HelpCrunchClient, api: respx.MockRouter
) -> None:
    """One batch answered over two pages: every name finds its customer from either page."""
    rows = emails(BATCH_SIZE)
    # Each address also sits inside a longer one (`xc0@example.com`), so the answer is two
    # customers per name: 100 on the first page, the rest on the second.
    customers = [{"id": 1000 + n, "email": f"c{n}@example.com"} for n in range(BATCH_SIZE)]
    customers += [{"id": 2000 + n, "email": f"xc{n}@example.com"} for n in range(BATCH_SIZE)]
    customers.sort(key=lambda c: c["email"][-13:])
    route = api.post("/customers/search").mock(side_effect=paged_search(customers))
    lookups = await look_up_customers(client, rows, concurrency=4)
    assert route.call_count == 2
    assert [json.loads(c.request.content)["offset"] for c in route.calls] == [0, 100]
    assert lookups.found == {
        name_key(("customer_email", f"c{n}@example.com")): [1000 + n] for n in range(BATCH_SIZE)
    }


@pytest.mark.anyio
async def test_ambiguous_shared_and_null_answers_are_told_apart(
    client: HelpCrunchClient, api: respx.MockRouter
) -> None:
    """A customer carrying two asked values counts for both; a value two customers carry is
    ambiguous; customers without the value (null email, visitor) and unasked ones are not
    taken."""
    customers = [
        {"id": 1, "email": "both@example.com", "userId": "crm-1"},
        {"id": 2, "email": "twice@example.com"},
        {"id": 3, "email": "TWICE@example.com "},
        {"id": 4, "email": None, "userId": None},
        {"id": 5, "email": "other@example.com"},
    ]
    api.post("/customers/search").respond(200, json={"data": customers})
    rows = [
        named(0, "customer_email", "Both@Example.com"),
        named(1, "customer_user_id", "crm-1"),
        named(2, "customer_email", "twice@example.com"),
        named(3, "customer_email", "nobody@example.com"),
    ]
    lookups = await look_up_customers(client, rows, concurrency=1)
    assert lookups.found == {
        "customer_email:both@example.com": [1],
        "customer_user_id:crm-1": [1],
        "customer_email:twice@example.com": [2, 3],
        "customer_email:nobody@example.com": [],
    }
    assert lookups.missing == ["customer_email:nobody@example.com"]


@pytest.mark.anyio
async def test_a_batch_refused_as_a_whole_is_asked_again_in_smaller_batches(
    client: HelpCrunchClient, api: respx.MockRouter
) -> None:
    """A server taking at most 20 filters: the batch is halved until it passes, the smaller
    size is kept for the rest, and every name is resolved."""
    count = 2 * BATCH_SIZE
    customers = [{"id": 100 + n, "email": f"c{n}@example.com"} for n in range(count)]
    route = api.post("/customers/search").mock(side_effect=paged_search(customers, max_filters=20))
    lookups = await look_up_customers(client, emails(count), concurrency=1)
    sizes = [len(filters(call)) for call in route.calls]
    assert sizes[:3] == [BATCH_SIZE, BATCH_SIZE // 2, BATCH_SIZE // 4]
    assert all(size <= BATCH_SIZE // 4 for size in sizes[3:])
    assert sum(sizes[2:]) == count  # nothing asked twice once it passed
    assert all(match == [100 + n] for n, match in enumerate(lookups.found.values()))


@pytest.mark.anyio
async def test_a_single_name_refused_fails_only_its_rows(
    client: HelpCrunchClient, api: respx.MockRouter
) -> None:
    """A 400 on a batch of one name is that name's failure, with the API's code."""
    api.post("/customers/search").respond(
        400, json={"errors": [{"code": "filter[0].value", "message": "This value is not valid."}]}
    )
    lookups = await look_up_customers(client, emails(1), concurrency=1)
    failure = lookups.found["customer_email:c0@example.com"]
    assert isinstance(failure, Failure)
    assert (failure.status, failure.error and failure.error.http_status) == (Status.FAILED, 400)


def test_the_plan_counts_searches_by_batches() -> None:
    """600 distinct names cost 600 / BATCH_SIZE searches, rounded up; none cost none."""
    assert search_requests(0) == 0
    assert search_requests(1) == 1
    assert search_requests(600) == -(-600 // BATCH_SIZE)


# --- creation ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_earlier_runs_customers_come_from_the_journal(
    client: HelpCrunchClient, api: respx.MockRouter, journal: Journal
) -> None:
    """A customer the journal says the tool created is not searched for; one it announced
    without an answer and that a search finds is adopted as created."""
    journal.customers.record("customer_email:made@example.com", state="created", customer_id=41)
    journal.customers.attempt("customer_email:lost@example.com", started_at=1.0)
    search = api.post("/customers/search").respond(
        200, json={"data": [{"id": 42, "email": "lost@example.com"}]}
    )
    rows = [
        named(0, "customer_email", "MADE@example.com"),
        named(1, "customer_email", "lost@example.com"),
    ]
    lookups = await look_up_customers(client, rows, journal=journal, concurrency=1)
    assert [f["value"] for f in filters(search.calls.last)] == ["lost@example.com"]
    assert lookups.created == {
        "customer_email:made@example.com": 41,
        "customer_email:lost@example.com": 42,
    }
    entry = journal.customers.entries(["customer_email:lost@example.com"])
    assert entry["customer_email:lost@example.com"].customer_id == 42
