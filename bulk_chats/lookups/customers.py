"""Customers named by email or userId: batched look-ups, and each row given its customer.

`look_up_customers` turns every distinct `customer_email` / `customer_user_id` of the
rows into the ids of the customers that carry it, `BATCH_SIZE` names a search
(`POST /v1/customers/search` takes a list of filters joined with `OR`), every page read.
`lookups.new_customers` then makes one customer for each name that matched no one
(`import --create-customers`), and `assign_customers` gives each row its customer.

Names are keyed by `name_key`: an email trimmed and compared ignoring case, a userId
trimmed. A customer counts for every asked name it carries; a name two customers carry
is ambiguous, and a customer carrying none of them (a server that matched loosely, or a
visitor without an email) is ignored.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TypeVar

import anyio

from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.api.entities import Customer
from bulk_chats.api.retry import READ_ATTEMPTS, read_with_retries
from bulk_chats.errors import (
    ApiError,
    AuthenticationError,
    RefusedError,
)
from bulk_chats.fields import CUSTOMER_SEARCH_FIELDS
from bulk_chats.journal.journal import Journal
from bulk_chats.lookups.directory import Preflight, rejected_outcome, unmatched
from bulk_chats.records import ChatRequest, Outcome, Problem, Status
from bulk_chats.send.pool import JournalFailure, in_thread, run_workers
from bulk_chats.send.stopping import STOP_GRACE, pause, waits_end_once_stopped
from bulk_chats.timing import Sleep

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

T = TypeVar("T")

Name = tuple[str, str]
"""(name field, value): `("customer_email", "ann@example.com")`."""


def name_key(name: Name) -> str:
    """The key of a name: one per customer to find or create. Emails are trimmed and
    compared ignoring case; userIds trimmed."""
    field_name, value = name
    value = value.strip()
    return f"{field_name}:{value.casefold() if field_name == 'customer_email' else value}"


def search_requests(names: int) -> int:
    """The searches `names` distinct names take, one page each."""
    return -(-names // BATCH_SIZE)


def customer_searches(rows: Iterable[ChatRequest]) -> int:
    """The customer searches the look-ups of `rows` will make: their distinct names,
    batched."""
    return search_requests(len({name_key(r.customer_lookup) for r in rows if r.customer_lookup}))


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


class Stops:
    """Whether the look-ups or creations should stop: Ctrl-C (`stop`), a 401 (`auth`), or
    a journal that cannot be written (`journal`, which `raise_journal` raises once the
    work in flight is over)."""

    def __init__(self, stop: anyio.Event | None) -> None:
        self._stop = stop
        self.auth: AuthenticationError | None = None
        self.journal: BaseException | None = None

    def __bool__(self) -> bool:
        stopped = self._stop is not None and self._stop.is_set()
        return stopped or self.auth is not None or self.journal is not None

    def journal_failed(self, failure: JournalFailure) -> None:
        """Stop: the journal could not be written (the first failure is kept)."""
        self.journal = self.journal or failure.__cause__ or failure

    def raise_journal(self) -> None:
        """Raise the journal's failure, if there was one: the run stops there, since no
        request may go out unrecorded."""
        if self.journal is not None:
            raise self.journal

    def failure(self) -> Failure:
        """The failure of a name not dealt with because the run stopped."""
        if self.auth is not None:
            return Failure(Status.NOT_SENT, None, "not sent: the API refused the key (401)")
        if self.journal is not None:
            return Failure(
                Status.NOT_SENT,
                None,
                "not sent: the journal could not be written, so the run stopped",
            )
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
    entries = await _journal_call(partial(journal.customers.entries, names)) if journal else {}
    created = {
        key: entry.customer_id
        for key, entry in entries.items()
        if entry.state == "created" and entry.customer_id is not None
    }
    stops = Stops(stop)
    found: dict[str, Match] = {key: [customer] for key, customer in created.items()}
    found |= await search_names(
        client, {k: n for k, n in names.items() if k not in created}, stops, concurrency, sleep
    )
    for key, entry in entries.items():
        match = found.get(key)
        unanswered = entry.state in ("sending", "unknown")
        if unanswered and isinstance(match, list) and len(match) == 1:
            created[key] = match[0]
            if journal is not None:
                await _journal_call(
                    partial(journal.customers.record, key, state="created", customer_id=match[0])
                )
    return Lookups(names, found, created, auth_failed=stops.auth is not None)


async def _journal_call(call: Callable[[], T]) -> T:
    """A journal call outside the workers: its failure is the journal's own error."""
    try:
        return await in_thread(call)
    except JournalFailure as failure:
        raise failure.__cause__ or failure from None


async def search_names(
    client: HelpCrunchClient,
    names: Mapping[str, Name],
    stops: Stops,
    concurrency: int,
    sleep: Sleep,
) -> dict[str, Match]:
    """Search `names` in batches; a batch the API refuses (400) as a whole is asked again
    in halves, and the smaller size kept for the rest of the run."""
    queue = deque(names)
    size = BATCH_SIZE
    found: dict[str, Match] = {}

    def take() -> list[str] | None:
        return [queue.popleft() for _ in range(min(size, len(queue)))] if queue else None

    async def work(batch: list[str]) -> None:
        nonlocal size
        answer = await _search_batch(client, batch, names, stops, sleep)
        if answer is None:
            size = max(1, min(size, len(batch) // 2))
            queue.extendleft(reversed(batch))
        else:
            found.update(answer)

    workers = max(1, min(concurrency, search_requests(len(names))))
    await run_workers(take, work, workers=workers, stopping=lambda: bool(stops))
    return found


async def _search_batch(
    client: HelpCrunchClient,
    keys: Sequence[str],
    names: Mapping[str, Name],
    stops: Stops,
    sleep: Sleep,
) -> dict[str, Match] | None:
    """The matches of one batch; None when the API refused a batch of several names (400),
    which may be its size: the caller asks fewer at once."""
    search = partial(client.search_customers, [_condition(names[key]) for key in keys])
    try:
        answer = await read_with_retries(search, attempts=READ_ATTEMPTS, sleep=sleep)
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
    (`bulk_chats.send.stopping`), and the names left are `not_sent`.
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


@dataclass(frozen=True, slots=True)
class Resolution:
    """Every checked row, resolved or not.

    `requests` are ready to send, in input order, every id known; `outcomes` end the other
    rows (`invalid`: a name matched nothing or several; `failed`: its look-up was refused
    or kept failing; `not_sent`: the run stopped first; `message_failed` when the chat
    exists). `resolved` maps each id field to the id used per row index, for the
    workbook's `resolved_*` columns. `auth_failed` is set when a look-up got a 401.
    `customer_created` holds the rows whose customer the tool created (now or earlier).
    """

    requests: list[ChatRequest]
    outcomes: dict[int, Outcome]
    resolved: dict[str, dict[int, int]]
    auth_failed: bool = False
    customer_created: frozenset[int] = frozenset()


def assign_customers(
    preflight: Preflight[ChatRequest], lookups: Lookups, *, would_create: bool = False
) -> Resolution:
    """Give every row of `preflight.passed` the customer its name resolved to, or an
    outcome: `invalid` when it matched no one or several, `failed` when its look-up (or
    the creation of its customer) failed, `not_sent` when the run stopped first.

    `would_create` (a dry run of `--create-customers`): a row whose name matched no one is
    `valid`, saying that a customer would be created. `customer_created` in the result
    holds the rows whose customer the tool created.
    """
    stopped = Failure(
        Status.NOT_SENT,
        None,
        "not sent: the API refused the key (401), so the run stopped"
        if lookups.auth_failed
        else "not sent: the run was interrupted",
    )
    requests: list[ChatRequest] = []
    outcomes: dict[int, Outcome] = {}
    resolved: dict[str, dict[int, int]] = defaultdict(dict)
    created: set[int] = set()
    for row in preflight.passed:
        customer = row.customer
        name = row.customer_lookup
        if name is not None:
            key = name_key(name)
            match = lookups.found.get(key, stopped)
            if isinstance(match, Failure):
                outcomes[row.index] = _failed(row, match)
                continue
            field, value = name
            if not match and would_create:
                outcomes[row.index] = Outcome(
                    index=row.index,
                    status=Status.VALID,
                    error_message=f"{field}: '{value}' matches no customer; "
                    "a new one would be created",
                )
                continue
            if len(match) != 1:
                problem = Problem(
                    f"unresolved_{field}",
                    unmatched(field, value, "customer", match, "check it, or give the customer id"),
                )
                outcomes[row.index] = rejected_outcome(row, [problem])
                continue
            customer = match[0]
            if key in lookups.created:
                created.add(row.index)
        if customer is None:  # validation lets no such row through
            continue
        requests.append(replace(row, customer=customer))
        used = {
            "customer": customer,
            "assignee": row.assignee,
            "department": row.department,
            "message_agent": row.message.agent if row.message else None,
        }
        for id_field, used_id in used.items():
            if used_id is not None:
                resolved[id_field][row.index] = used_id
    return Resolution(
        requests=requests,
        outcomes=outcomes,
        resolved=dict(resolved),
        auth_failed=lookups.auth_failed,
        customer_created=frozenset(created),
    )


def _failed(draft: ChatRequest, failure: Failure) -> Outcome:
    error = failure.error
    status = failure.status
    if draft.chat_id is not None and status is Status.FAILED:
        status = Status.MESSAGE_FAILED
    return Outcome(
        index=draft.index,
        status=status,
        chat_id=draft.chat_id,
        error_code=error.error_code if error is not None and status is not Status.NOT_SENT else "",
        error_message=failure.message,
        http_status=error.http_status if error is not None else None,
    )
