"""New customers for the names no one carries (`import --create-customers`), exactly one
per name across lost answers and killed runs (docs/migrations.md).

Each `POST /v1/customers` is announced in the journal before it goes out, on the same
journal path as the chat sender's (`send.pool.in_thread`), and retried on the same budget
(`api.retry.Budget`). An answer that never came is looked for by search (one batched
search for all such names) before the customer is sent again; a name the journal
announced in an earlier run is looked up like every other before anything is created
(`lookups.customers`), and adopted when found. Creations run on the one worker pool
(`send.pool.run_workers`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any

import anyio

from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.api.retry import DEFAULT_ATTEMPTS, DEFAULT_MAX_WAIT, Budget, backoff
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
from bulk_chats.send.pool import JournalFailure, in_thread, run_workers
from bulk_chats.send.stopping import STOP_GRACE, pause, waits_end_once_stopped
from bulk_chats.timing import Clock, Sleep, WallClock

CREATE_ROUNDS = 4
"""Times a customer whose creation lost its answer is looked for by search and, found
missing, sent again, before its rows are given up as `unknown`."""


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
    clock: Clock = time.monotonic,
    wall_clock: WallClock = time.time,
) -> Lookups:
    """Create a customer for every name of `lookups.missing`, with its email or userId and
    the `profile` of the rows naming it (the first row giving a field wins); the lookups
    with those names found.

    A creation whose answer was lost is looked for by one batched search for all such
    names before any is sent again (`CREATE_ROUNDS` rounds). A 401 or `stop` ends the
    creations: the names left are `not_sent`. Once `stop` is set no `POST /v1/customers`
    starts, not even one already waiting for its turn at the rate limiter; the searches
    for lost answers in flight get the waits `look_up_customers` says. A journal that
    cannot be written ends them too, and its `JournalError` is raised once the creations
    in flight are over.
    """
    async with waits_end_once_stopped(client, stop, grace=stop_grace, sleep=sleep):
        creator = _Creator(
            client,
            journal,
            Stops(stop),
            stop=stop,
            concurrency=concurrency,
            sleep=partial(pause, stop=stop, sleep=sleep),
            clock=clock,
            wall_clock=wall_clock,
        )
        made = await creator.create(lookups, rows)
    creator.stops.raise_journal()
    return made


class _Creator:
    """The creations of one run, with what they share: the client, the journal, whether
    to stop, and time."""

    def __init__(
        self,
        client: HelpCrunchClient,
        journal: Journal,
        stops: Stops,
        *,
        stop: anyio.Event | None,
        concurrency: int,
        sleep: Sleep,
        clock: Clock,
        wall_clock: WallClock,
    ) -> None:
        self._client = client
        self._journal = journal
        self.stops = stops
        self._stop = stop
        self._concurrency = concurrency
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock

    async def create(self, lookups: Lookups, rows: Iterable[ChatRequest]) -> Lookups:
        """`create_customers` inside its stop handling."""
        payloads = _payloads(lookups, rows)
        found = dict(lookups.found)
        created = dict(lookups.created)
        stops = self.stops
        pending = list(payloads)
        for _ in range(CREATE_ROUNDS):
            outcomes = await self._create_all({k: payloads[k] for k in pending})
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
            await self._sleep(backoff(1))
            searched = await search_names(
                self._client,
                {k: lookups.names[k] for k in lost},
                stops,
                self._concurrency,
                self._sleep,
            )
            pending = []
            for key in lost:
                match = searched.get(key, stops.failure())
                if match == []:
                    pending.append(key)  # surely not created: send it again
                elif isinstance(match, list) and len(match) == 1:
                    found[key] = match
                    created[key] = match[0]
                    await self._write(key, state="created", customer_id=match[0])
                else:
                    found[key] = _unconfirmed(lookups.names[key], match)
        for key in pending:  # lost, and not settled either way
            failure = _unconfirmed(lookups.names[key], [])
            found[key] = failure
            await self._write(key, state="unknown", error_message=failure.message)
        return replace(
            lookups,
            found=found,
            created=created,
            auth_failed=lookups.auth_failed or bool(stops.auth),
        )

    async def _write(self, key: str, **fields: Any) -> None:
        """Record what became of the customer `key` names; a journal that cannot be
        written stops the creations."""
        if self.stops.journal is not None:
            return
        try:
            await in_thread(partial(self._journal.customers.record, key, **fields))
        except JournalFailure as failure:
            self.stops.journal_failed(failure)

    async def _create_all(
        self, payloads: Mapping[str, Mapping[str, str]]
    ) -> dict[str, int | ApiError | Failure | None]:
        """`_create_one` for each of `payloads`, in order, on the worker pool."""
        queue = deque(payloads)
        outcomes: dict[str, int | ApiError | Failure | None] = {}

        async def work(key: str) -> None:
            outcomes[key] = await self._create_one(key, payloads[key])

        await run_workers(
            lambda: queue.popleft() if queue else None,
            work,
            workers=max(1, min(self._concurrency, len(payloads))),
            stopping=lambda: False,  # each creation sees the stop itself, and says so
        )
        return outcomes

    async def _create_one(
        self, key: str, payload: Mapping[str, str]
    ) -> int | ApiError | Failure | None:
        """One customer created: its id; the API's refusal (or the last error once the
        budget runs out); the failure of a run that stopped; or None when the answer was
        lost (the customer may exist). Each try is announced in the journal before it
        goes out; one that surely created nothing (429, 503, refused connection) is sent
        again. A try still waiting for its turn when the run is stopped does not go out
        (the journal's announcement of it costs a look-up next run, never a duplicate)."""
        stops = self.stops
        budget = Budget.start(
            attempts=DEFAULT_ATTEMPTS, seconds=DEFAULT_MAX_WAIT, clock=self._clock
        )
        attempt = 0
        while True:
            attempt += 1
            if stops:
                return stops.failure()
            try:
                await in_thread(
                    partial(self._journal.customers.attempt, key, started_at=self._wall_clock())
                )
            except JournalFailure as failure:
                stops.journal_failed(failure)
                return stops.failure()
            try:
                customer = await self._client.create_customer(payload, unless=self._stop)
            except AuthenticationError as exc:
                stops.auth = exc
                return stops.failure()
            except MaybeSentError:
                return None
            except ApiError as exc:
                wait = budget.wait_after(exc, attempt)
                if wait is None:
                    await self._write(
                        key,
                        state="failed",
                        error_code=exc.error_code,
                        error_message=exc.error_message,
                        http_status=exc.http_status,
                    )
                    return exc
                if wait > 0:
                    await self._sleep(wait)
                continue
            await self._write(key, state="created", customer_id=customer.id)
            return customer.id


def created_earlier(journal: Journal, rows: Iterable[ChatRequest]) -> dict[int, int]:
    """The indexes of `rows` whose customer, by its name, an earlier run created, each with
    that customer's id: for rows that are not looked up again (their chat is done), read
    from the journal alone."""
    named = {row.index: name_key(row.customer_lookup) for row in rows if row.customer_lookup}
    made = journal.customers.entries(named.values())
    return {
        index: customer
        for index, key in named.items()
        if key in made
        and made[key].state == "created"
        and (customer := made[key].customer_id) is not None
    }


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
