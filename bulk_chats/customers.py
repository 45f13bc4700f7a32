"""Customers named by email or userId: batched look-ups, and their creation.

`look_up_customers` turns every distinct `customer_email` / `customer_user_id` of the
rows into the ids of the customers that carry it, `BATCH_SIZE` names a search
(`POST /v1/customers/search` takes a list of filters joined with `OR`), every page read.
`create_customers` (`import --create-customers`) then makes one customer for each name
that matched no one (PRODUCT.md › Migrations).

Names are keyed by `name_key`: an email trimmed and compared ignoring case, a userId
trimmed. A customer counts for every asked name it carries; a name two customers carry
is ambiguous, and a customer carrying none of them (a server that matched loosely, or a
visitor without an email) is ignored.

Exactly one customer per name, across lost answers and killed runs: each
`POST /v1/customers` is announced in the journal before it goes out. An answer that never
came is confirmed by search (one batched search for all such names) before the customer is
sent again; a name the journal announced in an earlier run is looked up like every other
before anything is created, and adopted when found.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import anyio
import anyio.to_thread

from bulk_chats.answers import Customer
from bulk_chats.client import HelpCrunchClient
from bulk_chats.errors import (
    ApiError,
    AuthenticationError,
    MaybeSentError,
    RefusedError,
)
from bulk_chats.fields import CUSTOMER_SEARCH_FIELDS
from bulk_chats.journal import Journal
from bulk_chats.records import ChatRequest, Status
from bulk_chats.retry import backoff, read_with_retries, retry_wait
from bulk_chats.stopping import STOP_GRACE, pause, waits_end_once_stopped

LOOKUP_ATTEMPTS = 4
"""Tries of one read (a listing or a customer search) before its rows are given up."""

BATCH_SIZE = 80
"""Names asked in one customer search.

Measured against the sandbox (600 distinct emails of 1,000 rows, every one a customer,
default and `--quirks` answers): one name a search costs 600 searches; 10 a batch, 60;
25, 24; 50, 12; 80, 8; 90, 7; 100, 12 again, since 100 matches fill a page and the search
then reads a second one to see the end (at 99 with `--quirks` too, whose answers add a
visitor); 600 in one batch, 7. The floor is the answer's size over the page of 100, so
past 80 there is at most one request in 2,000 left to save, while every customer a
server answers beyond the exact match (`~` finds `ann@x.com` inside `joann@x.com`, a
shared address, a visitor) pushes a full batch onto a second page, and a batch a server
refuses as too long costs a request per halving. 80 leaves a fifth of the page for that.
"""

CREATE_ROUNDS = 4
"""Times a customer whose creation lost its answer is confirmed by search and, found
missing, sent again, before its rows are given up as `unknown`."""

CREATE_ATTEMPTS = 4
"""Tries of one `POST /v1/customers` that surely created nothing (429, 503, refused
connection) before its rows are `failed`."""

Name = tuple[str, str]
"""(name field, value): `("customer_email", "ann@example.com")`."""

Sleep = Callable[[float], Awaitable[None]]


def name_key(name: Name) -> str:
    """The key of a name: one per customer to find or create. Emails are trimmed and
    compared ignoring case; userIds trimmed."""
    field_name, value = name
    value = value.strip()
    return f"{field_name}:{value.casefold() if field_name == 'customer_email' else value}"


def search_requests(names: int) -> int:
    """The searches `names` distinct names take, one page each."""
    return -(-names // BATCH_SIZE)


def _keys_of(customer: Customer) -> list[str]:
    """The name keys `customer` answers to; none for a customer without email or userId."""
    keys = []
    if customer.email is not None:
        keys.append(name_key(("customer_email", customer.email)))
    if customer.user_id is not None:
        keys.append(name_key(("customer_user_id", customer.user_id)))
    return keys


def _condition(name: Name) -> tuple[str, str, str]:
    """The search condition that finds the customers carrying `name`."""
    field_name, value = name
    if field_name == "customer_email":
        # The documentation does not say whether `=` ignores case: `~` (contains, ignoring
        # case) finds `anna@x.com` for `ANNA@X.COM` either way, and `_matches` keeps only
        # the exact address.
        return (CUSTOMER_SEARCH_FIELDS[field_name], "~", value.strip())
    return (CUSTOMER_SEARCH_FIELDS[field_name], "=", value.strip())


def _matches(answer: Iterable[Customer], keys: Iterable[str]) -> dict[str, list[int]]:
    """The ids of the customers of `answer` that carry each of `keys`."""
    found: dict[str, list[int]] = {key: [] for key in keys}
    for customer in answer:
        for key in _keys_of(customer):
            ids = found.get(key)
            if ids is not None and customer.id not in ids:
                ids.append(customer.id)
    return found


@dataclass(frozen=True, slots=True)
class Failure:
    """A name that got no usable answer: its rows' status and what to say."""

    status: Status
    error: ApiError | None
    message: str


Match = list[int] | Failure
"""The ids of the customers carrying a name, or why they are not known."""


@dataclass(frozen=True, slots=True)
class Lookups:
    """What is known of every distinct customer name of the rows.

    `names` maps each key to the name as its first row gives it; `found` each looked-up key
    to its match (a key missing was not looked up: the run stopped first); `created` the
    keys whose customer the tool created, in this run or an earlier one, to its id.
    """

    names: Mapping[str, Name] = field(default_factory=dict)
    found: Mapping[str, Match] = field(default_factory=dict)
    created: Mapping[str, int] = field(default_factory=dict)
    auth_failed: bool = False

    @property
    def missing(self) -> list[str]:
        """The keys no customer carries: those `create_customers` makes."""
        return [key for key, match in self.found.items() if match == []]


class _Stops:
    """Whether the look-ups or creations should stop: Ctrl-C (`stop`), or a 401."""

    def __init__(self, stop: anyio.Event | None) -> None:
        self._stop = stop
        self.auth: AuthenticationError | None = None

    def __bool__(self) -> bool:
        return self.auth is not None or (self._stop is not None and self._stop.is_set())

    def failure(self) -> Failure:
        """The failure of a name not dealt with because the run stopped."""
        if self.auth is not None:
            return Failure(Status.NOT_SENT, None, "not sent: the API refused the key (401)")
        return Failure(Status.NOT_SENT, None, "not sent: the run was interrupted")


async def _look_up(
    client: HelpCrunchClient,
    rows: Iterable[ChatRequest],
    *,
    journal: Journal | None = None,
    concurrency: int,
    stop: anyio.Event | None = None,
    sleep: Sleep = anyio.sleep,
) -> Lookups:
    """`look_up_customers` without the stop handling around it."""
    names: dict[str, Name] = {}
    for row in rows:
        name = row.customer_lookup
        if name is not None:
            names.setdefault(name_key(name), name)
    entries = await anyio.to_thread.run_sync(journal.customers, names) if journal else {}
    created = {
        key: entry.customer_id
        for key, entry in entries.items()
        if entry.state == "created" and entry.customer_id is not None
    }
    stops = _Stops(stop)
    found: dict[str, Match] = {key: [customer] for key, customer in created.items()}
    found |= await _search(
        client, {k: n for k, n in names.items() if k not in created}, stops, concurrency, sleep
    )
    for key, entry in entries.items():
        match = found.get(key)
        unanswered = entry.state in ("sending", "unknown")
        if unanswered and isinstance(match, list) and len(match) == 1:
            created[key] = match[0]
            if journal is not None:
                await anyio.to_thread.run_sync(
                    partial(journal.customer_record, key, state="created", customer_id=match[0])
                )
    return Lookups(names, found, created, auth_failed=stops.auth is not None)


async def _search(
    client: HelpCrunchClient,
    names: Mapping[str, Name],
    stops: _Stops,
    concurrency: int,
    sleep: Sleep,
) -> dict[str, Match]:
    """Search `names` in batches; a batch the API refuses (400) as a whole is asked again
    in halves, and the smaller size kept for the rest of the run."""
    queue = deque(names)
    size = BATCH_SIZE
    found: dict[str, Match] = {}

    async def worker() -> None:
        nonlocal size
        # Taking a batch involves no await, so workers never take the same names.
        while queue and not stops:
            batch = [queue.popleft() for _ in range(min(size, len(queue)))]
            answer = await _search_batch(client, batch, names, stops, sleep)
            if answer is None:
                size = max(1, min(size, len(batch) // 2))
                queue.extendleft(reversed(batch))
            else:
                found.update(answer)

    async with anyio.create_task_group() as group:
        for _ in range(max(1, min(concurrency, search_requests(len(names))))):
            group.start_soon(worker)
    return found


async def _search_batch(
    client: HelpCrunchClient,
    keys: Sequence[str],
    names: Mapping[str, Name],
    stops: _Stops,
    sleep: Sleep,
) -> dict[str, Match] | None:
    """The matches of one batch; None when the API refused a batch of several names (400),
    which may be its size: the caller asks fewer at once."""
    search = partial(client.search_customers, [_condition(names[key]) for key in keys])
    try:
        answer = await read_with_retries(search, attempts=LOOKUP_ATTEMPTS, sleep=sleep)
    except AuthenticationError as exc:
        stops.auth = exc
        return dict.fromkeys(keys, stops.failure())
    except ApiError as exc:
        if stops:  # cut short by the stop (a wait at the limiter ended): not a failure
            return dict.fromkeys(keys, stops.failure())
        if len(keys) > 1 and isinstance(exc, RefusedError) and exc.http_status == 400:
            return None
        return {
            key: Failure(
                Status.FAILED,
                exc,
                f"{names[key][0]}: the look-up of '{names[key][1]}' failed: {exc.error_message}",
            )
            for key in keys
        }
    return dict(_matches(answer, keys))


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
    stops = _Stops(stop)
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
        confirmed = await _search(
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
                    partial(journal.customer_record, key, state="created", customer_id=match[0])
                )
            else:
                found[key] = _unconfirmed(lookups.names[key], match)
    for key in pending:  # lost, and not confirmed either way
        failure = _unconfirmed(lookups.names[key], [])
        found[key] = failure
        await anyio.to_thread.run_sync(
            partial(journal.customer_record, key, state="unknown", error_message=failure.message)
        )
    return replace(
        lookups, found=found, created=created, auth_failed=lookups.auth_failed or bool(stops.auth)
    )


def created_earlier(journal: Journal, rows: Iterable[ChatRequest]) -> frozenset[int]:
    """The indexes of `rows` whose customer, by its name, an earlier run created: for rows
    that are not looked up again (their chat is done), read from the journal alone."""
    named = {row.index: name_key(row.customer_lookup) for row in rows if row.customer_lookup}
    made = journal.customers(named.values())
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
    stops: _Stops,
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
    stops: _Stops,
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
        announce = partial(journal.customer_attempt, key, started_at=wall_clock())
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
                        journal.customer_record,
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
        record = partial(journal.customer_record, key, state="created", customer_id=customer.id)
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


async def look_up_customers(
    client: HelpCrunchClient,
    rows: Iterable[ChatRequest],
    *,
    journal: Journal | None = None,
    concurrency: int,
    stop: anyio.Event | None = None,
    stop_grace: float = STOP_GRACE,
    sleep: Sleep = anyio.sleep,
) -> Lookups:
    """Look up every distinct customer name of `rows`, `BATCH_SIZE` a search, with
    `concurrency` searches in flight at once (each waits its turn at the rate limiter).

    A name the `journal` says the tool created is not searched. One it announced without
    hearing back (a killed run, a lost answer) and that exactly one customer now carries is
    adopted: recorded as created. `stop` (Ctrl-C) and a 401 end the look-ups; once `stop`
    is set, back-offs end at once and waits at the limiter after `stop_grace` seconds
    (`bulk_chats.stopping`), and the names left are `not_sent`.
    """
    async with waits_end_once_stopped(client, stop, grace=stop_grace, sleep=sleep):
        return await _look_up(
            client,
            rows,
            journal=journal,
            concurrency=concurrency,
            stop=stop,
            sleep=partial(pause, stop=stop, sleep=sleep),
        )


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
