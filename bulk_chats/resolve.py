"""Pre-flight and names → ids: what `import` checks and looks up before the first chat.

PRODUCT.md › Beyond bare ids. Three steps, in the order `import` runs them:

1. `draft_rows`: the rows to send as the sheet gives them (`Draft`), ids where the sheet has
   ids and the names standing in for the rest. Offline; the drafts' keys find the rows an
   earlier run finished, which are then neither looked up nor sent.
2. `read_directory`: the account's agents and departments, each in one paged read, only
   when some row to send refers to them; else one cheap read that proves the key. Either
   way the first request is the key check: a 401 raises `AuthenticationError` before
   anything is created. Then `check_rows`, offline: every assignee, department and message
   agent id must be one of the account's, every agent email and department name must match
   exactly one (emails and names compared case-insensitively, names trimmed). A row that
   fails is `invalid` (`unknown_<field>` for an id, `unresolved_<name field>` for a name).
   An assignee outside the row's department is only warned about: routing rules may
   allow it, and the API accepts it.
3. `resolve_customers`: `POST /v1/customers/search` once per distinct customer email or
   userId among the rows still to send, through the client, so every look-up waits its turn
   at the run's rate limiter. No match or several make the row `invalid`
   (`unresolved_customer_email` / `unresolved_customer_user_id`); a look-up the API
   refuses, or that keeps failing, makes it `failed`. The result is a `Resolution`: a
   `ChatRequest` for every row whose ids are all known, an `Outcome` for every other.

A row whose chat already exists (only its first message is left) is checked for its
message agent only, and one that fails keeps its chat: it is `message_failed`, not
`invalid`. When a row gives both an id and a name for the same field, the id is used and
the name is not looked up.

Reads change nothing, so they are retried on any transient failure (429, 5xx, timeouts,
dropped connections), `LOOKUP_ATTEMPTS` tries at most (`bulk_chats.retry`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TypeVar

import anyio
import pandas as pd

from bulk_chats.answers import Agent, Customer, Department
from bulk_chats.client import HelpCrunchClient
from bulk_chats.errors import ApiError, AuthenticationError
from bulk_chats.loading import Sheet
from bulk_chats.records import ChatRequest, FirstMessage, Outcome, Status, row_key
from bulk_chats.retry import read_with_retries
from bulk_chats.validation import Validation, parse_ids

LOOKUP_ATTEMPTS = 4
"""Tries of one read (a listing or a customer search) before its rows are given up."""

CUSTOMER_SEARCH_FIELDS = {"customer_email": "email", "customer_user_id": "userId"}
"""Customer name field → the field of `POST /v1/customers/search` it is matched against."""

RESOLVED_COLUMNS = {
    "resolved_customer": ("customer", ("customer_email", "customer_user_id")),
    "resolved_assignee": ("assignee", ("assignee_email",)),
    "resolved_department": ("department", ("department_name",)),
    "resolved_message_agent": ("message_agent", ("message_agent_email",)),
}
"""Results workbook column → (the id field it shows, the name columns that bring it)."""

_LISTED_NAMES = 10
"""Up to this many departments are listed in a message about an unmatched name."""

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Draft:
    """A row to send, as the sheet gives it: ids where it has them, names for the rest.

    `names` holds (name field, value) for each id the row gives by name only; the id
    fields it stands in for are None here (for a named message agent, `message.agent`),
    until `check_rows` and `resolve_customers` fill them in. `chat_id` is set when an
    earlier results workbook says the chat exists, so only the first message is left.
    """

    index: int
    source_row: int
    application: int
    customer: int | None
    assignee: int | None = None
    department: int | None = None
    message: FirstMessage | None = None
    names: tuple[tuple[str, str], ...] = ()
    chat_id: int | None = None

    @property
    def key(self) -> str:
        """The key its `ChatRequest` will have: the journal knows the row by it."""
        return row_key(
            customer=self.customer,
            application=self.application,
            assignee=self.assignee,
            department=self.department,
            message=self.message,
            names=self.names,
        )

    def name(self, field: str) -> str | None:
        """The value of name field `field`, when the row gives that id by name."""
        return next((value for name, value in self.names if name == field), None)

    @property
    def customer_name(self) -> tuple[str, str] | None:
        """(field, value) of the name the customer is to be looked up by, if any."""
        if self.customer is not None:
            return None
        return next(((n, v) for n, v in self.names if n in CUSTOMER_SEARCH_FIELDS), None)


def draft_rows(sheet: Sheet, validation: Validation) -> list[Draft]:
    """A `Draft` for every valid row, and for every row an earlier results workbook gave a
    chat whose first message is still missing (that one carries its `chat_id`)."""
    status = validation.status
    message_missing = (
        status.eq(Status.ALREADY_CREATED.value)
        & validation.message.ne("")
        & validation.previous_message_id.isna()
    )
    chosen = (status.eq(Status.VALID.value) | message_missing).to_numpy()
    positions = [int(p) for p in status.index[chosen]]

    def ids(name: str) -> list[int | None]:
        column = validation.ids.get(name)
        if column is None:
            return [None] * len(positions)
        return optional_ints(column[chosen])

    def names(name: str) -> list[str]:
        column = validation.names.get(name)
        if column is None:
            return [""] * len(positions)
        return [str(v) for v in column[chosen].tolist()]

    given = {name: ids(name) for name in ("customer", "application", "assignee", "department")}
    agents = ids("message_agent")
    named = {
        name: names(name)
        for name in (
            "customer_email",
            "customer_user_id",
            "assignee_email",
            "department_name",
            "message_agent_email",
        )
    }
    chat_ids = optional_ints(validation.previous_chat_id[chosen])
    texts = validation.message[chosen].tolist()
    kinds = validation.message_type[chosen].tolist()
    drafts = []
    for n, position in enumerate(positions):
        application = given["application"][n]
        if application is None:  # validation lets no such row through
            continue
        row_names: list[tuple[str, str]] = []
        customer = given["customer"][n]
        if customer is None:
            # The first name column given stands in for the customer; email before userId.
            for name in ("customer_email", "customer_user_id"):
                if named[name][n]:
                    row_names.append((name, named[name][n]))
                    break
        assignee, department, agent = given["assignee"][n], given["department"][n], agents[n]
        if assignee is None and named["assignee_email"][n]:
            row_names.append(("assignee_email", named["assignee_email"][n]))
        if department is None and named["department_name"][n]:
            row_names.append(("department_name", named["department_name"][n]))
        message = None
        if texts[n]:
            if agent is None and named["message_agent_email"][n]:
                row_names.append(("message_agent_email", named["message_agent_email"][n]))
            message = FirstMessage(texts[n], kinds[n], agent)
        drafts.append(
            Draft(
                index=position,
                source_row=sheet.source_rows[position],
                application=application,
                customer=customer,
                assignee=assignee,
                department=department,
                message=message,
                names=tuple(row_names),
                chat_id=chat_ids[n],
            )
        )
    return drafts


def optional_ints(column: pd.Series) -> list[int | None]:
    """A nullable Int64 column as Python ints (JSON-ready) and None."""
    return [None if value is pd.NA else int(value) for value in column.tolist()]


@dataclass(frozen=True, slots=True)
class Directory:
    """The account's agents and departments, as pre-flight read them, by id.

    `agents` and `departments` are None when they were not read (no row to send refers to
    them). `members` maps a department to its agents' ids; a department whose listing
    carries no agents list is left out (its membership is unknown, so nothing is warned).
    """

    agents: Mapping[int, Agent] | None = None
    departments: Mapping[int, Department] | None = None
    members: Mapping[int, frozenset[int]] = field(default_factory=dict)

    @classmethod
    def from_listings(
        cls, agents: Iterable[Agent] | None, departments: Iterable[Department] | None
    ) -> Directory:
        """Index the answers of `GET /v1/agents` and `GET /v1/departments` by id; the
        first of two entries with one id wins."""
        by_id = None if agents is None else _by_id(agents)
        teams = None if departments is None else _by_id(departments)
        members = {
            department_id: department.agent_ids
            for department_id, department in (teams or {}).items()
            if department.agent_ids is not None
        }
        return cls(by_id, teams, members)

    def agents_by_email(self, email: str) -> list[int]:
        """Ids of the agents whose email is `email`, ignoring case."""
        wanted = email.strip().casefold()
        return [
            agent_id
            for agent_id, agent in (self.agents or {}).items()
            if (agent.email or "").strip().casefold() == wanted
        ]

    def departments_by_name(self, name: str) -> list[int]:
        """Ids of the departments called `name`, ignoring case and surrounding spaces."""
        wanted = name.strip().casefold()
        return [
            department_id
            for department_id, department in (self.departments or {}).items()
            if (department.name or "").strip().casefold() == wanted
        ]


_Entity = TypeVar("_Entity", Agent, Department)


def _by_id(entities: Iterable[_Entity]) -> dict[int, _Entity]:
    found: dict[int, _Entity] = {}
    for entity in entities:
        found.setdefault(entity.id, entity)
    return found


def _refers_to_agents(draft: Draft) -> bool:
    needs_chat = draft.chat_id is None
    agent = draft.message is not None and (
        draft.message.agent is not None or draft.name("message_agent_email") is not None
    )
    assignee = needs_chat and (
        draft.assignee is not None or draft.name("assignee_email") is not None
    )
    return agent or assignee


def _refers_to_departments(draft: Draft) -> bool:
    return draft.chat_id is None and (
        draft.department is not None or draft.name("department_name") is not None
    )


async def read_directory(
    client: HelpCrunchClient, drafts: Sequence[Draft], *, sleep: Sleep = anyio.sleep
) -> Directory:
    """Read the agents and the departments (every page) when some draft refers to them.

    The two reads double as the key check; when neither listing is needed, that check is
    `client.check_key()`, one cheap read. Raises `AuthenticationError` on a 401 and the
    last `ApiError` when a read keeps failing (`LOOKUP_ATTEMPTS` tries).
    """
    need_agents = any(_refers_to_agents(d) for d in drafts)
    need_departments = any(_refers_to_departments(d) for d in drafts)
    if not (need_agents or need_departments):
        await read_with_retries(client.check_key, attempts=LOOKUP_ATTEMPTS, sleep=sleep)
        return Directory()
    # Both reads go out together, each at its turn at the rate limiter: one after the other
    # they would hold the first chat back by a whole round trip (2% of a 20-second run at
    # 400 ms latency). Reads create nothing, so a refused key costs at most one more 401.
    agents: list[Agent] | None = None
    departments: list[Department] | None = None
    failures: list[ApiError] = []

    async def read(call: Callable[[], Awaitable[T]]) -> T | None:
        try:
            return await read_with_retries(call, attempts=LOOKUP_ATTEMPTS, sleep=sleep)
        except ApiError as exc:
            failures.append(exc)
            group.cancel_scope.cancel()
            return None

    async def read_agents() -> None:
        nonlocal agents
        agents = await read(client.list_agents)

    async def read_departments() -> None:
        nonlocal departments
        departments = await read(client.list_departments)

    async with anyio.create_task_group() as group:
        if need_agents:
            group.start_soon(read_agents)
        if need_departments:
            group.start_soon(read_departments)
    if failures:
        raise next((f for f in failures if isinstance(f, AuthenticationError)), failures[0])
    return Directory.from_listings(agents, departments)


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a row cannot be sent: a stable `code` naming the field, and the words."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Preflight:
    """The drafts after `check_rows`.

    `passed` are the drafts whose assignee, department and message agent are known, filled
    in with their ids; `rejected` the outcomes of the others (`invalid`, or
    `message_failed` when the chat exists); `warnings` a note per row that is sent anyway
    (an assignee outside the row's department).
    """

    passed: list[Draft]
    rejected: dict[int, Outcome]
    warnings: dict[int, str]

    @property
    def lookups(self) -> int:
        """Customer searches `resolve_customers` will make: one per distinct name."""
        return len({d.customer_name for d in self.passed if d.customer_name is not None})


def check_rows(drafts: Iterable[Draft], directory: Directory) -> Preflight:
    """Check every draft's agent and department ids and names against `directory`; offline."""
    passed: list[Draft] = []
    rejected: dict[int, Outcome] = {}
    warnings: dict[int, str] = {}
    for draft in drafts:
        problems: list[Problem] = []
        assignee, department = draft.assignee, draft.department
        if draft.chat_id is None:
            assignee = _agent(
                draft.assignee, draft.name("assignee_email"), "assignee", directory, problems
            )
            department = _department(draft, directory, problems)
        message = draft.message
        if message is not None:
            agent = _agent(
                message.agent,
                draft.name("message_agent_email"),
                "message_agent",
                directory,
                problems,
            )
            message = replace(message, agent=agent)
        if problems:
            rejected[draft.index] = _rejected(draft, problems)
            continue
        if draft.chat_id is None and assignee is not None and department is not None:
            members = directory.members.get(department)
            if members is not None and assignee not in members:
                warnings[draft.index] = _outside_department(assignee, department, directory)
        passed.append(replace(draft, assignee=assignee, department=department, message=message))
    return Preflight(passed, rejected, warnings)


def _agent(
    given: int | None,
    email: str | None,
    field: str,
    directory: Directory,
    problems: list[Problem],
) -> int | None:
    """The agent id for `field` (assignee or message_agent), from its id or its email."""
    agents = directory.agents or {}
    if given is not None:
        if given not in agents:
            problems.append(
                Problem(f"unknown_{field}", f"{field}: {given} is not an agent of this account")
            )
        return given
    if email is None:
        return None
    name_field = f"{field}_email"
    return _one(
        directory.agents_by_email(email),
        name_field,
        email,
        "agent",
        problems,
        hint=f"check the address, or give the {field} id",
    )


def _department(draft: Draft, directory: Directory, problems: list[Problem]) -> int | None:
    departments = directory.departments or {}
    if draft.department is not None:
        if draft.department not in departments:
            problems.append(
                Problem(
                    "unknown_department",
                    f"department: {draft.department} is not a department of this account",
                )
            )
        return draft.department
    name = draft.name("department_name")
    if name is None:
        return None
    names = sorted(d.name or "" for d in departments.values())
    hint = "check the name, or give the department id"
    if 0 < len(names) <= _LISTED_NAMES:
        hint = f"the account's departments are {', '.join(repr(n) for n in names)}"
    return _one(
        directory.departments_by_name(name), "department_name", name, "department", problems, hint
    )


def _one(
    found: list[int], field: str, value: str, kind: str, problems: list[Problem], hint: str
) -> int | None:
    """The one id in `found`; else a problem saying that nothing, or how many, matched."""
    if len(found) == 1:
        return found[0]
    problems.append(Problem(f"unresolved_{field}", _unmatched(field, value, kind, found, hint)))
    return None


def _unmatched(field: str, value: str, kind: str, found: Sequence[int], hint: str) -> str:
    if not found:
        return f"{field}: '{value}' matches no {kind} of this account; {hint}"
    shown = ", ".join(str(i) for i in sorted(found)[:5]) + (", …" if len(found) > 5 else "")
    return (
        f"{field}: '{value}' matches {len(found)} {kind}s ({shown}), not one; "
        f"give the {kind} id instead"
    )


def _outside_department(assignee: int, department: int, directory: Directory) -> str:
    agent = (directory.agents or {}).get(assignee)
    team = (directory.departments or {}).get(department)
    who = f"{assignee} ({agent.email})" if agent and agent.email else str(assignee)
    where = f"{department} ({team.name})" if team and team.name else str(department)
    return f"warning: assignee {who} is not in department {where}; sent as it is"


def _rejected(draft: Draft, problems: Sequence[Problem]) -> Outcome:
    """A row pre-flight or resolution stops: `invalid`, or `message_failed` when its chat
    exists (it keeps the chat; a re-run posts only the message)."""
    status = Status.INVALID if draft.chat_id is None else Status.MESSAGE_FAILED
    return Outcome(
        index=draft.index,
        status=status,
        chat_id=draft.chat_id,
        error_code="; ".join(p.code for p in problems),
        error_message=" | ".join(p.message for p in problems),
    )


@dataclass(frozen=True, slots=True)
class Resolution:
    """Every checked row, resolved or not.

    `requests` are ready to send, in input order, every id known; `outcomes` end the other
    rows (`invalid`: a name matched nothing or several; `failed`: its look-up was refused
    or kept failing; `not_sent`: the run stopped first; `message_failed` when the chat
    exists). `resolved` maps each id field to the id used per row index, for the
    workbook's `resolved_*` columns. `lookups` counts the searches made; `auth_failed` is
    set when one got a 401.
    """

    requests: list[ChatRequest]
    outcomes: dict[int, Outcome]
    resolved: dict[str, dict[int, int]]
    lookups: int = 0
    auth_failed: bool = False


@dataclass(frozen=True, slots=True)
class _Failure:
    """A look-up that got no usable answer: the row's status and what to say."""

    status: Status
    error: ApiError | None
    message: str


async def resolve_customers(
    client: HelpCrunchClient,
    preflight: Preflight,
    *,
    concurrency: int,
    stop: anyio.Event | None = None,
    sleep: Sleep = anyio.sleep,
) -> Resolution:
    """Look up each distinct customer email and userId of `preflight.passed`, then turn
    every passed draft into a `ChatRequest` or an outcome.

    `concurrency` searches are in flight at once, each waiting its turn at the client's
    rate limiter. `stop` (Ctrl-C) and a 401 end the look-ups: the rows not looked up are
    `not_sent`. Nothing is sent but searches.
    """
    wanted = list(dict.fromkeys(d.customer_name for d in preflight.passed if d.customer_name))
    found: dict[tuple[str, str], list[int] | _Failure] = {}
    queue: Iterator[tuple[str, str]] = iter(wanted)
    auth: list[AuthenticationError] = []

    def stopping() -> bool:
        return bool(auth) or (stop is not None and stop.is_set())

    async def worker() -> None:
        # Taking the next name involves no await, so workers never take the same one.
        while not stopping():
            name = next(queue, None)
            if name is None:
                return
            found[name] = await _search_customer(client, name, sleep=sleep, on_auth=auth.append)

    async with anyio.create_task_group() as group:
        for _ in range(max(1, min(concurrency, len(wanted)))):
            group.start_soon(worker)

    stopped = _Failure(
        Status.NOT_SENT,
        None,
        "not sent: the API refused the key (401), so the run stopped"
        if auth
        else "not sent: the run was interrupted",
    )
    requests: list[ChatRequest] = []
    outcomes: dict[int, Outcome] = {}
    resolved: dict[str, dict[int, int]] = defaultdict(dict)
    for draft in preflight.passed:
        customer = draft.customer
        name = draft.customer_name
        if name is not None:
            match = found.get(name, stopped)
            if isinstance(match, _Failure):
                outcomes[draft.index] = _failed(draft, match)
                continue
            if len(match) != 1:
                field, value = name
                problem = Problem(
                    f"unresolved_{field}",
                    _unmatched(
                        field, value, "customer", match, "check it, or give the customer id"
                    ),
                )
                outcomes[draft.index] = _rejected(draft, [problem])
                continue
            customer = match[0]
        if customer is None:  # validation lets no such row through
            continue
        request = ChatRequest(
            index=draft.index,
            source_row=draft.source_row,
            customer=customer,
            application=draft.application,
            assignee=draft.assignee,
            department=draft.department,
            message=draft.message,
            chat_id=draft.chat_id,
            names=draft.names,
        )
        requests.append(request)
        used = {
            "customer": customer,
            "assignee": draft.assignee,
            "department": draft.department,
            "message_agent": draft.message.agent if draft.message else None,
        }
        for id_field, used_id in used.items():
            if used_id is not None:
                resolved[id_field][draft.index] = used_id
    return Resolution(
        requests=requests,
        outcomes=outcomes,
        resolved=dict(resolved),
        lookups=len(found),
        auth_failed=bool(auth),
    )


async def _search_customer(
    client: HelpCrunchClient,
    name: tuple[str, str],
    *,
    sleep: Sleep,
    on_auth: Callable[[AuthenticationError], None],
) -> list[int] | _Failure:
    """The ids of the customers `name` (field, value) matches, or why there are none."""
    field, value = name
    search_field = CUSTOMER_SEARCH_FIELDS[field]
    if field == "customer_email":
        # The documentation does not say whether `=` ignores case: `~` (contains, ignoring
        # case) finds `anna@x.com` for `ANNA@X.COM` either way, and `_carries` keeps only
        # the exact address.
        search = partial(client.search_customers, search_field, value.strip(), operator="~")
    else:
        search = partial(client.search_customers, search_field, value)
    try:
        answer = await read_with_retries(search, attempts=LOOKUP_ATTEMPTS, sleep=sleep)
    except AuthenticationError as exc:
        on_auth(exc)
        return _Failure(Status.NOT_SENT, exc, "not sent: the API refused the key (401)")
    except ApiError as exc:
        return _Failure(
            Status.FAILED, exc, f"{field}: the look-up of '{value}' failed: {exc.error_message}"
        )
    # Only customers that carry the value asked for: a server that matched loosely, or
    # ignored the filter, or answered a customer without an email, must not hand a row
    # someone else's chat.
    return list(dict.fromkeys(c.id for c in answer if _carries(c, field, value)))


def _carries(customer: Customer, field: str, wanted: str) -> bool:
    """Whether `customer` has name field `field` = `wanted`: emails ignoring case, both
    ignoring surrounding spaces; a customer without the field does not."""
    if field == "customer_email":
        have = customer.email
        return have is not None and have.strip().casefold() == wanted.strip().casefold()
    have = customer.user_id
    return have is not None and have.strip() == wanted.strip()


def _failed(draft: Draft, failure: _Failure) -> Outcome:
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


def resolved_columns(
    sheet: Sheet, validation: Validation, resolved: Mapping[str, Mapping[int, int]]
) -> pd.DataFrame | None:
    """The workbook's `resolved_*` columns: one per id field given by a name column.

    A row shows the id this run used; a row this run did not resolve keeps what an earlier
    results workbook showed (re-run on its own results, a finished row keeps its ids).
    None when the sheet has no name columns.
    """
    index = sheet.cells.index
    columns: dict[str, pd.Series] = {}
    for label, (id_field, name_fields) in RESOLVED_COLUMNS.items():
        if not any(name in validation.names.columns for name in name_fields):
            continue
        earlier = sheet.column(label) if label in sheet.previous else None
        values = (
            pd.Series(optional_ints(parse_ids(earlier, label).ids), index=index, dtype=object)
            if earlier is not None
            else pd.Series([None] * len(index), index=index, dtype=object)
        )
        for position, value in resolved.get(id_field, {}).items():
            values.iat[position] = value
        columns[label] = values
    if not columns:
        return None
    return pd.DataFrame(columns, index=index)
