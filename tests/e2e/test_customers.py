"""`import --create-customers` end to end against the sandbox over loopback: one customer per
new email or userId, however many rows name it, however often the connection drops after
the customer was stored, and across a run killed mid-creation."""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from bulk_chats.jobs.hooks import Hooks
from bulk_chats.jobs.import_chats import import_file
from bulk_chats.jobs.plan import Plan
from bulk_chats.jobs.result import RunResult
from bulk_chats.sandbox import Faults, RunningSandbox, SandboxConfig, run_in_thread
from bulk_chats.settings import ApiKey, Settings
from tests.e2e import test_durability
from tests.e2e.test_durability import Importer, Sandbox, journal_integrity, wait_until
from tests.sheets import read_results, write_csv

# The kill test's fixtures: a gated sandbox in this process, importers as subprocesses.
sandbox_factory = test_durability.sandbox_factory
sandbox = test_durability.sandbox
importers = test_durability.importers

HEADER = ["Email", "User ID", "Name", "Company", "Application", "Message"]

EXISTING = ["customer1@example.com", "customer2@example.com"]
"""Seeded customers (see `bulk_chats.sandbox.seed`)."""


def migration_rows(new: int = 6) -> list[list[object]]:
    """Rows naming seeded customers, `new` new emails on two rows each, one new email on
    three rows in three spellings, and a new userId on two rows."""
    rows: list[list[object]] = [
        [email, "", "", "", 3838, f"existing {n}"] for n, email in enumerate(EXISTING)
    ]
    for spelling, text in (
        ("nina@corp.example", "first"),
        ("NINA@corp.example", "second"),
        (" Nina@Corp.Example ", "third"),
    ):
        rows.append([spelling, "", "Nina Novak", "Corp", 3838, f"nina {text}"])
    for n in range(new):
        for app in (3838, 3839):
            rows.append([f"new{n}@shop.example", "", f"New {n}", "", app, f"new {n} in {app}"])
    rows += [
        ["", "legacy-7", "Old Timer", "Legacy Ltd", app, f"legacy {app}"] for app in (3838, 3839)
    ]
    return rows


def run(
    running: RunningSandbox | Sandbox,
    tmp_path: Path,
    source: Path,
    *,
    notes: list[str] | None = None,
    confirm: Callable[[Plan], bool] | None = None,
    **fields: Any,
) -> RunResult:
    """Import `source` into the sandbox through the library, with `--create-customers`."""
    fields.setdefault("create_customers", True)
    settings = Settings(
        input_path=source,
        out=tmp_path / "out.xlsx",
        base_url=running.base_url,
        api_key=ApiKey("sandbox-key"),
        rate=60_000,
        reports_dir=tmp_path / "reports",
        **fields,
    )

    async def main() -> RunResult:
        return await import_file(
            settings, Hooks(notify=(notes if notes is not None else []).append, confirm=confirm)
        )

    return anyio.run(main)


def created_by_name(running: RunningSandbox | Sandbox) -> collections.Counter[str]:
    """How many customers the run created per email (case aside) or userId."""
    return collections.Counter(
        (c.email or "").strip().casefold() or f"userId:{c.user_id}"
        for c in running.state.created_customers
    )


def assert_one_customer_each(
    running: RunningSandbox | Sandbox, results: list[dict[str, Any]]
) -> None:
    """Each new name exists exactly once; every row's chat is its name's customer's (and so
    is `resolved_customer`, where this run resolved it), and `customer_created` says yes on
    exactly the rows of new customers."""
    wanted = {"nina@corp.example", "userId:legacy-7"} | {f"new{n}@shop.example" for n in range(6)}
    assert created_by_name(running) == dict.fromkeys(wanted, 1)
    by_key = {
        (c.email or "").casefold() or f"userId:{c.user_id}": c
        for c in running.state.customers.values()
    }
    chats = {chat.id: chat for chat in running.state.chats}
    for row in results:
        assert row["status"] in ("created", "already_created"), row
        key = (row["Email"] or "").strip().casefold() or f"userId:{row['User ID']}"
        customer = by_key[key]
        assert chats[int(row["chat_id"])].customer.id == customer.id
        assert row["resolved_customer"] in (None, customer.id, str(customer.id))
        assert row["customer_created"] == ("yes" if key in wanted else None)
    nina = by_key["nina@corp.example"]
    assert (nina.email, nina.name, nina.company) == ("nina@corp.example", "Nina Novak", "Corp")
    assert len(running.state.chats) == len(results)


@pytest.mark.parametrize("quirks", [False, True], ids=["documented", "quirks"])
def test_every_new_customer_exists_once_through_dropped_answers(
    tmp_path: Path, quirks: bool
) -> None:
    """Half the creations (and chats) stored then their connection dropped: each new email
    or userId still becomes exactly one customer, and every row gets it."""
    faults = Faults(seed=11, drop_after=0.5, customers=True)
    source = write_csv(tmp_path / "migration.csv", HEADER, migration_rows())
    with run_in_thread(SandboxConfig(rate=None, quirks=quirks, faults=faults)) as running:
        result = run(running, tmp_path, source, concurrency=4)
        assert running.state.faults["drop_after"] > 2
        results = read_results(result.out)
        assert result.all_done, result.counts
        assert_one_customer_each(running, results)


def test_the_plan_counts_customers_and_a_dry_run_creates_none(tmp_path: Path) -> None:
    """The plan names the customers to create; --dry-run makes none and says so per row;
    without the flag, new names stay invalid."""
    source = write_csv(tmp_path / "migration.csv", HEADER, migration_rows(new=2))
    with run_in_thread(SandboxConfig(rate=None)) as running:
        notes: list[str] = []
        dry = run(running, tmp_path, source, notes=notes, dry_run=True)
        assert "4 customers to create" in "\n".join(notes)
        assert running.state.created_customers == []
        assert dry.counts == {"valid": len(migration_rows(new=2))}
        rows = read_results(dry.out)
        assert "a new one would be created" in rows[2]["error_message"]

        plain = run(running, tmp_path, source, create_customers=False)
        assert plain.counts["invalid"] == len(migration_rows(new=2)) - len(EXISTING)
        assert running.state.created_customers == []

        plans: list[Plan] = []
        run(running, tmp_path, source, confirm=lambda plan: plans.append(plan) or True)
        # The plain run created the chats of the two seeded customers' rows.
        to_send = len(migration_rows(new=2)) - len(EXISTING)
        assert (plans[0].customers, plans[0].requests) == (4, 4 + 2 * to_send)
        assert len(running.state.created_customers) == 4

        # Its results workbook fed back in: nothing to send, and the marks are kept.
        first = read_results(tmp_path / "out.xlsx")
        again = run(running, tmp_path / "again", tmp_path / "out.xlsx")
        assert again.counts == {"already_created": len(first)}
        kept = [row["customer_created"] for row in read_results(again.out)]
        assert kept == [row["customer_created"] for row in first]
        assert kept.count("yes") == len(first) - len(EXISTING)


@pytest.mark.parametrize(
    ("endpoint", "nth", "customers", "chats"),
    [
        pytest.param("POST /v1/customers", 3, 3, 0, id="customers"),
        pytest.param("POST /v1/chats", 5, 8, 5, id="chats"),
    ],
)
def test_kill_then_resume_creates_no_customer_twice(
    tmp_path: Path,
    sandbox: Sandbox,
    importers: Callable[..., Importer],
    endpoint: str,
    nth: int,
    customers: int,
    chats: int,
) -> None:
    """kill -9 with the third new customer (or the fifth chat) stored and its answer held:
    the re-run finds it, creates the rest once, and marks every new customer's rows created
    by us, those whose chat the killed run finished too."""
    source = write_csv(tmp_path / "migration.csv", HEADER, migration_rows())
    gate = sandbox.hold(endpoint, nth)
    first = importers(tmp_path, source, sandbox, "--create-customers", "--concurrency", "1")
    wait_until(gate.held.is_set, f"request {nth} to {endpoint}")
    first.kill()
    gate.released.set()
    assert journal_integrity(tmp_path) == "ok"
    assert (len(sandbox.state.created_customers), len(sandbox.state.chats)) == (customers, chats)

    second = importers(tmp_path, source, sandbox, "--create-customers")
    assert second.wait() == 0, second.stderr
    assert_one_customer_each(sandbox, read_results(second.out))


def test_looked_up_before_the_plan_it_counts_the_customers_matching_no_one(
    tmp_path: Path, quirks: bool
) -> None:
    """Without Create customers but with the look-ups first (as the page asks), the plan
    counts the customers that match no one and the rows they leave out, before the
    go-ahead; those rows end invalid and no customer is created."""
    source = write_csv(tmp_path / "migration.csv", HEADER, migration_rows(new=2))
    with run_in_thread(SandboxConfig(rate=None, quirks=quirks)) as running:
        plans: list[Plan] = []
        result = run(
            running,
            tmp_path,
            source,
            create_customers=False,
            lookups_first=True,
            confirm=lambda plan: plans.append(plan) or True,
        )
        assert running.state.created_customers == []
    [plan] = plans
    new_rows = len(migration_rows(new=2)) - len(EXISTING)
    # nina (three spellings), new0, new1 and legacy-7: four names, none found.
    assert (plan.unmatched, plan.ambiguous, plan.left_out) == (4, 0, new_rows)
    assert (plan.to_send, plan.chats, plan.customers) == (len(EXISTING), len(EXISTING), 0)
    assert (
        f"customers looked up first (1 request): 4 customers matching no one; {new_rows} rows "
        "left out for it (see error_message)"
    ) in plan.describe()
    assert result.counts == {"created": len(EXISTING), "invalid": new_rows}


def test_with_create_customers_the_plan_still_counts_the_ones_to_create(tmp_path: Path) -> None:
    """Create customers and the look-ups first: the plan counts the customers to create
    and leaves no row out for them."""
    source = write_csv(tmp_path / "migration.csv", HEADER, migration_rows(new=2))
    with run_in_thread(SandboxConfig(rate=None)) as running:
        plans: list[Plan] = []
        run(
            running, tmp_path, source, lookups_first=True, confirm=lambda p: plans.append(p) or True
        )
    [plan] = plans
    assert (plan.customers, plan.unmatched, plan.left_out) == (4, 0, 0)
    assert "4 customers to create" in plan.describe()


def test_the_plan_lists_the_rows_sent_anyway_with_their_warning(tmp_path: Path) -> None:
    """A row whose assignee is not in its department is sent with a warning: the plan
    asked about lists its row and the warning, and counts it."""
    source = write_csv(
        tmp_path / "warned.csv",
        ["customer", "application", "assignee", "department"],
        [[8738438, 3838, 4188, 233048], [8738439, 3838, 4192, 233048]],
    )
    with run_in_thread(SandboxConfig(rate=None)) as running:
        plans: list[Plan] = []
        run(
            running,
            tmp_path,
            source,
            create_customers=False,
            confirm=lambda p: plans.append(p) or True,
        )
    [plan] = plans
    assert plan.warnings == 1
    [(row, warning)] = plan.warned
    assert row == 3
    assert warning == (
        "warning: assignee 4192 (emma@example.com) is not in department 233048 (Support); "
        "sent as it is"
    )
