"""The account the sandbox pretends to be: agents, departments, customers, applications.

The default seed is fixed, so the sample data shipped with bulk-chats and the tests can
name its ids: agents 4188-4192, departments 233048-233050, customers 8738438-8738457,
applications 3838 and 3839 (the ids of HelpCrunch's own documentation examples). One more
customer, `VISITOR` (8738437), is a website visitor who never gave an email or a userId,
as real accounts are full of; with `--quirks` every customer search returns it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent of the account; `role` is "admin" or "agent"."""

    id: int
    name: str
    email: str
    role: str = "agent"

    def to_json(self) -> dict[str, Any]:
        """The agent object of the API."""
        return {"id": self.id, "name": self.name, "email": self.email, "role": self.role}


@dataclass(frozen=True, slots=True)
class Department:
    """A department and the ids of its agents."""

    id: int
    name: str
    agent_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer; `user_id` is the id the account's own system gave it (`userId`).

    Every field but `id` may be None, as on a real account; emails are not unique.
    """

    id: int
    name: str | None
    email: str | None
    user_id: str | None
    company: str | None = None
    phone: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The customer object of the API (customer search, `POST /v1/customers`)."""
        return {**self.summary_json(), "company": self.company, "phone": self.phone}

    def summary_json(self) -> dict[str, Any]:
        """The customer as a chat object carries it."""
        return {"id": self.id, "name": self.name, "email": self.email, "userId": self.user_id}


AGENTS: tuple[Agent, ...] = (
    Agent(4188, "Anna Kowalska", "anna@example.com", "admin"),
    Agent(4189, "Ben Okafor", "ben@example.com"),
    Agent(4190, "Chloé Dubois", "chloe@example.com"),
    Agent(4191, "Dmitri Ivanov", "dmitri@example.com"),
    Agent(4192, "Emma Larsen", "emma@example.com"),
)

DEPARTMENTS: tuple[Department, ...] = (
    Department(233048, "Support", (4188, 4189, 4190)),
    Department(233049, "Sales", (4190, 4191)),
    Department(233050, "Billing", (4192,)),
)

_CUSTOMER_NAMES = (
    "Olivia Brown",
    "Liam Smith",
    "Zoë Müller",
    "Noah Wilson",
    "Ava Taylor",
    "José García",
    "Mia Anderson",
    "Lucas Martin",
    "Sofia Rossi",
    "Ethan Clark",
    "Isabella Lewis",
    "Mason Walker",
    "Amelia Hall",
    "Logan Young",
    "Harper King",
    "Elijah Wright",
    "Evelyn Scott",
    "James Green",
    "Aria Baker",
    "Henry Adams",
)

FIRST_CUSTOMER_ID = 8738438


def _customer(n: int, name: str) -> Customer:
    """The n-th customer (1-based): `customerN@example.com`, userId `crm-(1000+N)`."""
    return Customer(FIRST_CUSTOMER_ID + n - 1, name, f"customer{n}@example.com", f"crm-{1000 + n}")


CUSTOMERS: tuple[Customer, ...] = tuple(
    _customer(n, name) for n, name in enumerate(_CUSTOMER_NAMES, start=1)
)

VISITOR = Customer(FIRST_CUSTOMER_ID - 1, "Website visitor", None, None)
"""A customer with neither email nor userId (see the module docstring)."""

APPLICATIONS: tuple[int, ...] = (3838, 3839)


@dataclass(frozen=True, slots=True)
class SeedMessage:
    """A message of a seeded chat: `agent` None means the customer wrote it; `created_at`
    is unix seconds."""

    text: str
    created_at: float
    agent: int | None = None
    type: str = "message"


@dataclass(frozen=True, slots=True)
class SeedChat:
    """A chat the sandbox holds from the start, as if created at `created_at` (unix
    seconds, in the past), with its history. Ids name the seed's customers, agents,
    departments and applications. `status` None is `new` for a chat with messages and
    `empty` for one without (`closed` when `closed_at` is given)."""

    customer: int
    application: int
    created_at: float
    assignee: int | None = None
    department: int | None = None
    status: str | None = None
    closed_at: float | None = None
    rating: str | None = None
    messages: tuple[SeedMessage, ...] = ()


@dataclass(frozen=True, slots=True)
class Seed:
    """What a fresh sandbox holds before any chat is created: the account, and `chats`
    created in the past with their messages."""

    agents: tuple[Agent, ...] = AGENTS
    departments: tuple[Department, ...] = DEPARTMENTS
    customers: tuple[Customer, ...] = CUSTOMERS
    applications: tuple[int, ...] = APPLICATIONS
    visitors: tuple[Customer, ...] = (VISITOR,)
    """Customers without email or userId, stored beside `customers`."""
    chats: tuple[SeedChat, ...] = ()

    @classmethod
    def generated(cls, *, agents: int = 0, departments: int = 0, customers: int = 0) -> Seed:
        """The default seed plus `agents`, `departments` and `customers` made-up extras.

        For paging and load tests: more than 100 agents take two pages of `GET /v1/agents`.
        Extra ids follow the default ones; names and emails are derived from the id, so
        the same arguments give the same seed.
        """
        extra_agents = tuple(
            Agent(i, f"Agent {i}", f"agent{i}@example.com")
            for i in range(AGENTS[-1].id + 1, AGENTS[-1].id + 1 + agents)
        )
        all_agents = AGENTS + extra_agents
        extra_departments = tuple(
            Department(i, f"Department {i}", (all_agents[k % len(all_agents)].id,))
            for k, i in enumerate(
                range(DEPARTMENTS[-1].id + 1, DEPARTMENTS[-1].id + 1 + departments)
            )
        )
        extra_customers = tuple(
            _customer(n, f"Customer {n}")
            for n in range(len(CUSTOMERS) + 1, len(CUSTOMERS) + 1 + customers)
        )
        return cls(
            agents=all_agents,
            departments=DEPARTMENTS + extra_departments,
            customers=CUSTOMERS + extra_customers,
        )
