"""The pre-flight and names → ids: what `import` checks and looks up before the first chat.

It owns the rules of PRODUCT.md › Beyond bare ids that need the account: `read_directory`
reads its agents and departments (the first request doubles as the key check),
`check_rows` checks every row's agent and department against them offline, and once each
distinct customer email or userId is looked up (batched, `bulk_chats.lookups.customers`),
`assign_customers` gives each row its customer. Rows go in and
come out as `ChatRequest` records: the same row with its ids filled in, or an `Outcome`
saying why it is not sent.

A row whose chat already exists (only its first message is left) is checked for its
message agent only, and one that fails keeps its chat: it is `message_failed`, not
`invalid`. Reads change nothing, so they are retried on any transient failure
(`bulk_chats.api.retry`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import anyio

from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.api.entities import Agent, Department
from bulk_chats.api.retry import read_with_retries
from bulk_chats.errors import ApiError, AuthenticationError
from bulk_chats.lookups.customers import (
    LOOKUP_ATTEMPTS,
    Failure,
    Lookups,
    name_key,
    search_requests,
)
from bulk_chats.records import ChatRequest, Outcome, Status
from bulk_chats.timing import Sleep

_LISTED_NAMES = 10
"""Up to this many departments are listed in a message about an unmatched name."""

T = TypeVar("T")


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


def _refers_to_agents(draft: ChatRequest) -> bool:
    needs_chat = draft.chat_id is None
    agent = draft.message is not None and (
        draft.message.agent is not None or draft.name("message_agent_email") is not None
    )
    assignee = needs_chat and (
        draft.assignee is not None or draft.name("assignee_email") is not None
    )
    return agent or assignee


def _refers_to_departments(draft: ChatRequest) -> bool:
    return draft.chat_id is None and (
        draft.department is not None or draft.name("department_name") is not None
    )


async def read_directory(
    client: HelpCrunchClient, rows: Sequence[ChatRequest], *, sleep: Sleep = anyio.sleep
) -> Directory:
    """Read the agents and the departments (every page) when some draft refers to them.

    The two reads double as the key check; when neither listing is needed, that check is
    `client.check_key()`, one cheap read. Raises `AuthenticationError` on a 401 and the
    last `ApiError` when a read keeps failing (`LOOKUP_ATTEMPTS` tries).
    """
    need_agents = any(_refers_to_agents(d) for d in rows)
    need_departments = any(_refers_to_departments(d) for d in rows)
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
    """The rows after `check_rows`.

    `passed` are the rows whose assignee, department and message agent are known, filled
    in with their ids; `rejected` the outcomes of the others (`invalid`, or
    `message_failed` when the chat exists); `warnings` a note per row that is sent anyway
    (an assignee outside the row's department).
    """

    passed: list[ChatRequest]
    rejected: dict[int, Outcome]
    warnings: dict[int, str]

    @property
    def lookups(self) -> int:
        """Customer searches the look-ups will make: the distinct names, batched."""
        names = {name_key(d.customer_lookup) for d in self.passed if d.customer_lookup}
        return search_requests(len(names))


def check_rows(rows: Iterable[ChatRequest], directory: Directory) -> Preflight:
    """Check every row's agent and department ids and names against `directory`; offline.

    An id must be one of the account's (else `unknown_<field>`); an agent email or a
    department name must match exactly one, ignoring case and surrounding spaces (else
    `unresolved_<name field>`). A row giving both an id and a name uses the id. An assignee
    outside the row's department is only warned about: routing rules may allow it, and
    the API accepts it.
    """
    passed: list[ChatRequest] = []
    rejected: dict[int, Outcome] = {}
    warnings: dict[int, str] = {}
    for row in rows:
        problems: list[Problem] = []
        assignee, department = row.assignee, row.department
        if row.chat_id is None:
            assignee = _agent(
                row.assignee, row.name("assignee_email"), "assignee", directory, problems
            )
            department = _department(row, directory, problems)
        message = row.message
        if message is not None:
            agent = _agent(
                message.agent,
                row.name("message_agent_email"),
                "message_agent",
                directory,
                problems,
            )
            message = replace(message, agent=agent)
        if problems:
            rejected[row.index] = _rejected(row, problems)
            continue
        if row.chat_id is None and assignee is not None and department is not None:
            members = directory.members.get(department)
            if members is not None and assignee not in members:
                warnings[row.index] = _outside_department(assignee, department, directory)
        passed.append(replace(row, assignee=assignee, department=department, message=message))
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


def _department(row: ChatRequest, directory: Directory, problems: list[Problem]) -> int | None:
    departments = directory.departments or {}
    if row.department is not None:
        if row.department not in departments:
            problems.append(
                Problem(
                    "unknown_department",
                    f"department: {row.department} is not a department of this account",
                )
            )
        return row.department
    name = row.name("department_name")
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


def _rejected(row: ChatRequest, problems: Sequence[Problem]) -> Outcome:
    """A row pre-flight or resolution stops: `invalid`, or `message_failed` when its chat
    exists (it keeps the chat; a re-run posts only the message)."""
    status = Status.INVALID if row.chat_id is None else Status.MESSAGE_FAILED
    return Outcome(
        index=row.index,
        status=status,
        chat_id=row.chat_id,
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
    workbook's `resolved_*` columns. `auth_failed` is set when a look-up got a 401.
    `customer_created` holds the rows whose customer the tool created (now or earlier).
    """

    requests: list[ChatRequest]
    outcomes: dict[int, Outcome]
    resolved: dict[str, dict[int, int]]
    auth_failed: bool = False
    customer_created: frozenset[int] = frozenset()


def assign_customers(
    preflight: Preflight, lookups: Lookups, *, would_create: bool = False
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
                    _unmatched(
                        field, value, "customer", match, "check it, or give the customer id"
                    ),
                )
                outcomes[row.index] = _rejected(row, [problem])
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
