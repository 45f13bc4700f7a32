"""The pre-flight: the account's agents and departments, read once, and every row checked
against them before anything is sent.

It owns the rules of docs/reference.md › Names and the pre-flight that need the account:
`read_directory` reads the agents and departments (the first request doubles as the key
check); `check_rows` checks the rows of `import` offline against them (assignee,
department, message agent; ids or names), `check_changes` those of `update` (assignee and
department). Rows come out as they went in, with their ids filled in, or as an `Outcome`
saying why they are not sent.

A row of `import` whose chat already exists (only its first message is left) is checked
for its message agent only, and one that fails keeps its chat: it is `message_failed`,
not `invalid`. Reads change nothing, so they are retried on any transient failure
(`api.retry`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

import anyio

from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.api.entities import Agent, Department
from bulk_chats.api.retry import READ_ATTEMPTS, read_with_retries
from bulk_chats.errors import ApiError, AuthenticationError
from bulk_chats.records import ChangeRequest, ChatRequest, Outcome, Problem, Status
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


Row = ChatRequest | ChangeRequest
"""A row the pre-flight checks: a chat to create (`import`) or one to change (`update`)."""

R = TypeVar("R", ChatRequest, ChangeRequest)


def _refers_to_agents(draft: Row) -> bool:
    if isinstance(draft, ChangeRequest):
        return draft.assignee is not None or draft.name("assignee_email") is not None
    needs_chat = draft.chat_id is None
    agent = draft.message is not None and (
        draft.message.agent is not None or draft.name("message_agent_email") is not None
    )
    assignee = needs_chat and (
        draft.assignee is not None or draft.name("assignee_email") is not None
    )
    return agent or assignee


def _refers_to_departments(draft: Row) -> bool:
    if isinstance(draft, ChangeRequest):
        return draft.department is not None or draft.name("department_name") is not None
    return draft.chat_id is None and (
        draft.department is not None or draft.name("department_name") is not None
    )


async def read_directory(
    client: HelpCrunchClient,
    rows: Sequence[Row],
    *,
    sleep: Sleep = anyio.sleep,
    everything: bool = False,
) -> Directory:
    """Read the agents and the departments (every page) when some draft refers to them,
    or both with `everything` (an export names every chat's agent and department).

    The two reads double as the key check; when neither listing is needed, that check is
    `client.check_key()`, one cheap read. Raises `AuthenticationError` on a 401 and the
    last `ApiError` when a read keeps failing (`READ_ATTEMPTS` tries).
    """
    need_agents = everything or any(_refers_to_agents(d) for d in rows)
    need_departments = everything or any(_refers_to_departments(d) for d in rows)
    if not (need_agents or need_departments):
        await read_with_retries(client.check_key, attempts=READ_ATTEMPTS, sleep=sleep)
        return Directory()
    # Both reads go out together, each at its turn at the rate limiter: one after the other
    # they would hold the first chat back by a whole round trip (2% of a 20-second run at
    # 400 ms latency). Reads create nothing, so a refused key costs at most one more 401.
    agents: list[Agent] | None = None
    departments: list[Department] | None = None
    failures: list[ApiError] = []

    async def read(call: Callable[[], Awaitable[T]]) -> T | None:
        try:
            return await read_with_retries(call, attempts=READ_ATTEMPTS, sleep=sleep)
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
class Preflight(Generic[R]):
    """The rows after `check_rows` or `check_changes`.

    `passed` are the rows whose assignee, department and message agent are known, filled
    in with their ids; `rejected` the outcomes of the others (`invalid`, keeping the chat
    a row of `update` names, or `message_failed` when the chat of an import's row exists);
    `warnings` a note per row that is sent anyway (an assignee outside the row's
    department).
    """

    passed: list[R]
    rejected: dict[int, Outcome]
    warnings: dict[int, str]


def check_rows(rows: Iterable[ChatRequest], directory: Directory) -> Preflight[ChatRequest]:
    """Check every row of `import` (its agent and department ids and names, and its
    message agent's) against `directory`; offline.

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
        assignee, department, warning = row.assignee, row.department, None
        if row.chat_id is None:
            assignee, department, warning = _placed(row, directory, problems)
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
            rejected[row.index] = rejected_outcome(row, problems)
            continue
        if warning is not None:
            warnings[row.index] = warning
        passed.append(replace(row, assignee=assignee, department=department, message=message))
    return Preflight(passed, rejected, warnings)


def check_changes(rows: Iterable[ChangeRequest], directory: Directory) -> Preflight[ChangeRequest]:
    """Check the assignee and department every row of `update` changes to, as `check_rows`
    does; a row refused is `invalid` and keeps its chat."""
    passed: list[ChangeRequest] = []
    rejected: dict[int, Outcome] = {}
    warnings: dict[int, str] = {}
    for row in rows:
        problems: list[Problem] = []
        assignee, department, warning = _placed(row, directory, problems)
        if problems:
            rejected[row.index] = replace(
                rejected_outcome(row, problems), status=Status.INVALID, chat_id=row.chat_id
            )
            continue
        if warning is not None:
            warnings[row.index] = warning
        passed.append(replace(row, assignee=assignee, department=department))
    return Preflight(passed, rejected, warnings)


def _placed(
    row: Row, directory: Directory, problems: list[Problem]
) -> tuple[int | None, int | None, str | None]:
    """The assignee and department of `row`, from their ids or names, and a warning when
    the assignee is not in the department."""
    assignee = _agent(row.assignee, row.name("assignee_email"), "assignee", directory, problems)
    department = _department(row, directory, problems)
    warning = None
    if not problems and assignee is not None and department is not None:
        members = directory.members.get(department)
        if members is not None and assignee not in members:
            warning = _outside_department(assignee, department, directory)
    return assignee, department, warning


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


def _department(row: Row, directory: Directory, problems: list[Problem]) -> int | None:
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
    problems.append(Problem(f"unresolved_{field}", unmatched(field, value, kind, found, hint)))
    return None


def unmatched(field: str, value: str, kind: str, found: Sequence[int], hint: str) -> str:
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


def rejected_outcome(row: Row, problems: Sequence[Problem]) -> Outcome:
    """A row of `import` pre-flight or resolution stops: `invalid`, or `message_failed`
    when its chat exists (it keeps the chat; a re-run posts only the message)."""
    status = Status.INVALID if row.chat_id is None else Status.MESSAGE_FAILED
    return Outcome(
        index=row.index,
        status=status,
        chat_id=row.chat_id,
        error_code="; ".join(p.code for p in problems),
        error_message=" | ".join(p.message for p in problems),
    )
