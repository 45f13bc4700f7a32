"""New customers for the names no one carries (`import --create-customers`), exactly one
per name across lost answers and killed runs (PRODUCT.md › Migrations).

Each `POST /v1/customers` is announced in the journal before it goes out. An answer that
never came is looked for by search (one batched search for all such names) before the
customer is sent again; a name the journal announced in an earlier run is looked up like
every other before anything is created (`bulk_chats.lookups.customers`), and adopted when found.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from functools import partial

import anyio
import anyio.to_thread

from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.api.retry import backoff, retry_wait
from bulk_chats.errors import ApiError, AuthenticationError, MaybeSentError
from bulk_chats.fields import CUSTOMER_SEARCH_FIELDS
from bulk_chats.journal.journal import Journal
from bulk_chats.lookups.customers import (
    Failure,
    Lookups,
    Match,
    Name,
    Stops,
    name_key,
    search_names,
)
from bulk_chats.records import ChatRequest, Status
from bulk_chats.send.stopping import STOP_GRACE, pause, waits_end_once_stopped
from bulk_chats.timing import Sleep

CREATE_ROUNDS = 4
"""Times a customer whose creation lost its answer is looked for by search and, found
missing, sent again, before its rows are given up as `unknown`."""

CREATE_ATTEMPTS = 4
"""Tries of one `POST /v1/customers` that surely created nothing (429, 503, refused
connection) before its rows are `failed`."""


async def create_customers(
    client: HelpCrunchClient,
    journal: Journal,
    lookups: Lookups,
    rows: Iterable[ChatRequest],
    *,
    concurrency: int,
    stop: anyio.Event | None = None,
    stop_grace: float = STOP_GRACE,
    sleep: Sleep = anyio.sleep,
    wall_clock: Callable[[], float] = time.time,
) -> Lookups:
    """Create a customer for every name of `lookups.missing`, with its email or userId and
    the `profile` of the rows naming it (the first row giving a field wins); the lookups
    with those names found.

    A creation whose answer was lost is confirmed by one batched search for all such names
    before any is sent again (`CREATE_ROUNDS` rounds). A 401 or `stop` ends the creations:
    the names left are `not_sent`; a stop ends waits as `look_up_customers` says.
    """
    async with waits_end_once_stopped(client, stop, grace=stop_grace, sleep=sleep):
        return await _create(
            client,
            journal,
            lookups,
            rows,
            concurrency=concurrency,
            stop=stop,
            sleep=partial(pause, stop=stop, sleep=sleep),
            wall_clock=wall_clock,
        )


async def _create(
    client: HelpCrunchClient,
    journal: Journal,
    lookups: Lookups,
    rows: Iterable[ChatRequest],
    *,
    concurrency: int,
    stop: anyio.Event | None = None,
    sleep: Sleep = anyio.sleep,
    wall_clock: Callable[[], float] = time.time,
) -> Lookups:
    """`create_customers` without the stop handling around it."""
    payloads = _payloads(lookups, rows)
    found = dict(lookups.found)
    created = dict(lookups.created)
    stops = Stops(stop)
    pending = list(payloads)
    for _ in range(CREATE_ROUNDS):
        outcomes = await _create_all(
            client,
            journal,
            {k: payloads[k] for k in pending},
            stops,
            concurrency,
            sleep,
            wall_clock,
        )
        lost = [key for key, outcome in outcomes.items() if outcome is None]
        for key, outcome in outcomes.items():
            if isinstance(outcome, int):
                found[key] = [outcome]
                created[key] = outcome
            elif isinstance(outcome, ApiError):
                field_name, value = lookups.names[key]
                found[key] = Failure(
                    Status.FAILED,
                    outcome,
                    f"{field_name}: a new customer for '{value}' could not be created: "
                    f"{outcome.error_message}",
                )
            elif outcome is not None:
                found[key] = outcome
        if not lost or stops:
            pending = lost
            break
        # Let the API finish what the lost requests began before looking for it.
        await sleep(backoff(1))
        confirmed = await search_names(
            client, {k: lookups.names[k] for k in lost}, stops, concurrency, sleep
        )
        pending = []
        for key in lost:
            match = confirmed.get(key, stops.failure())
            if match == []:
                pending.append(key)  # surely not created: send it again
            elif isinstance(match, list) and len(match) == 1:
                found[key] = match
                created[key] = match[0]
                await anyio.to_thread.run_sync(
                    partial(journal.customers.record, key, state="created", customer_id=match[0])
                )
            else:
                found[key] = _unconfirmed(lookups.names[key], match)
    for key in pending:  # lost, and not confirmed either way
        failure = _unconfirmed(lookups.names[key], [])
        found[key] = failure
        await anyio.to_thread.run_sync(
            partial(journal.customers.record, key, state="unknown", error_message=failure.message)
        )
    return replace(
        lookups, found=found, created=created, auth_failed=lookups.auth_failed or bool(stops.auth)
    )


def created_earlier(journal: Journal, rows: Iterable[ChatRequest]) -> frozenset[int]:
    """The indexes of `rows` whose customer, by its name, an earlier run created: for rows
    that are not looked up again (their chat is done), read from the journal alone."""
    named = {row.index: name_key(row.customer_lookup) for row in rows if row.customer_lookup}
    made = journal.customers.entries(named.values())
    return frozenset(
        index for index, key in named.items() if key in made and made[key].state == "created"
    )


def _payloads(lookups: Lookups, rows: Iterable[ChatRequest]) -> dict[str, dict[str, str]]:
    """The body of `POST /v1/customers` for each missing name."""
    missing = set(lookups.missing)
    payloads: dict[str, dict[str, str]] = {}
    for row in rows:
        name = row.customer_lookup
        key = name_key(name) if name is not None else None
        if key is None or key not in missing:
            continue
        field_name, value = lookups.names[key]
        payload = payloads.setdefault(key, {CUSTOMER_SEARCH_FIELDS[field_name]: value.strip()})
        for api_field, text in row.profile:
            payload.setdefault(api_field, text)
    return payloads


async def _create_all(
    client: HelpCrunchClient,
    journal: Journal,
    payloads: Mapping[str, Mapping[str, str]],
    stops: Stops,
    concurrency: int,
    sleep: Sleep,
    wall_clock: Callable[[], float],
) -> dict[str, int | ApiError | Failure | None]:
    """`_create_one` for each of `payloads`, `concurrency` at a time, in order."""
    queue = deque(payloads)
    outcomes: dict[str, int | ApiError | Failure | None] = {}

    async def worker() -> None:
        while queue:
            key = queue.popleft()
            outcomes[key] = await _create_one(
                client, journal, key, payloads[key], stops, sleep, wall_clock
            )

    async with anyio.create_task_group() as group:
        for _ in range(max(1, min(concurrency, len(payloads)))):
            group.start_soon(worker)
    return outcomes


async def _create_one(
    client: HelpCrunchClient,
    journal: Journal,
    key: str,
    payload: Mapping[str, str],
    stops: Stops,
    sleep: Sleep,
    wall_clock: Callable[[], float],
) -> int | ApiError | Failure | None:
    """One customer created: its id; the API's refusal (or the last error once the tries
    run out); the failure of a run that stopped; or None when the answer was lost (the
    customer may exist). Each try is announced in the journal before it goes out; one
    that surely created nothing (429, 503, refused connection) is sent again."""
    attempt = 0
    while True:
        attempt += 1
        if stops:
            return stops.failure()
        announce = partial(journal.customers.attempt, key, started_at=wall_clock())
        await anyio.to_thread.run_sync(announce)
        try:
            customer = await client.create_customer(payload)
        except AuthenticationError as exc:
            stops.auth = exc
            return stops.failure()
        except MaybeSentError:
            return None
        except ApiError as exc:
            wait = retry_wait(exc, attempt)
            if wait is None or attempt >= CREATE_ATTEMPTS:
                await anyio.to_thread.run_sync(
                    partial(
                        journal.customers.record,
                        key,
                        state="failed",
                        error_code=exc.error_code,
                        error_message=exc.error_message,
                        http_status=exc.http_status,
                    )
                )
                return exc
            if wait > 0:
                await sleep(wait)
            continue
        record = partial(journal.customers.record, key, state="created", customer_id=customer.id)
        await anyio.to_thread.run_sync(record)
        return customer.id


def _unconfirmed(name: Name, match: Match) -> Failure:
    """A name whose creation lost its answer and that no search settled."""
    if isinstance(match, Failure):
        return Failure(
            Status.UNKNOWN,
            match.error,
            f"the customer may have been created, but the search to confirm it failed "
            f"({match.message}); a re-run looks for it first",
        )
    field_name, value = name
    if match:
        return Failure(
            Status.UNKNOWN,
            None,
            f"{field_name}: after a lost answer, {len(match)} customers carry '{value}'; "
            "give the customer id",
        )
    return Failure(
        Status.UNKNOWN,
        None,
        f"{field_name}: the creation of '{value}' lost its answer and is not confirmed; a "
        "re-run looks for the customer first",
    )
