"""A run's plan: what it counts, and the text shown before it starts."""

from __future__ import annotations

from typing import Any

from bulk_chats.jobs.plan import Plan, plan_changes
from bulk_chats.records import ChangeRequest, ChatChange, Outcome, Status


def change(index: int, **fields: Any) -> ChangeRequest:
    return ChangeRequest(index=index, source_row=index + 2, chat_id=700 + index, **fields)


def test_a_change_plan_counts_only_the_changes_still_pending() -> None:
    """Changes an earlier run applied cost nothing; each other one is one request."""
    to_send = [
        change(0, assignee=5, department=6, status="closed"),
        change(1, department=6, status="closed", applied=frozenset({ChatChange("department", 6)})),
    ]
    finished = [Outcome(index=2, status=Status.ALREADY_UPDATED, chat_id=702)]
    rejected = [Outcome(index=3, status=Status.INVALID)]
    counts = {"valid": 4, "invalid": 1, "duplicate": 1}
    plan = plan_changes(counts, to_send, finished, rejected, rate=60.0, warnings=1)
    assert (plan.rows, plan.to_send, plan.changes, plan.requests) == (6, 2, 4, 4)
    assert (plan.seconds, plan.already_done, plan.not_to_send) == (4.0, 1, 3)
    assert (plan.chats, plan.updating, plan.warnings) == (0, True, 1)


def test_an_update_plan_speaks_of_changes_not_chats() -> None:
    """`update` and `close` create no chat: the text counts changes and rows updated earlier."""
    plan = Plan(
        rows=10,
        to_send=3,
        chats=0,
        messages=0,
        lookups=0,
        requests=5,
        seconds=5.0,
        already_done=2,
        not_to_send=1,
        rate=60.0,
        changes=5,
        updating=True,
    )
    assert plan.describe().splitlines() == [
        "3 of 10 rows to send: 5 changes",
        "5 requests, about 5s at 60 a minute",
        "2 rows already updated earlier; not sent",
        "1 row invalid or duplicate; not sent",
    ]


def test_an_import_plan_names_its_work_and_how_long_it_takes() -> None:
    """Chats, messages and look-ups are counted; hours show with minutes."""
    plan = Plan(
        rows=4000,
        to_send=3000,
        chats=3000,
        messages=1,
        lookups=600,
        requests=3601,
        seconds=3601.0,
        already_done=1,
        not_to_send=0,
        rate=60.0,
        held=2,
        warnings=1,
    )
    assert plan.describe().splitlines() == [
        "3,000 of 4,000 rows to send: 3,000 chats, 1 first message, 600 customer look-ups",
        "3,601 requests, about 1h 00m at 60 a minute",
        "rows whose customer matches no one, or several, are left out",
        "1 row already created earlier; not sent",
        "2 rows left unknown by an earlier run; held back (see error_message)",
        "1 row with a warning, sent anyway (see error_message)",
    ]


def test_a_dry_run_plan_says_nothing_is_created() -> None:
    """A dry run says what would be sent, and that its look-ups are made now."""
    plan = Plan(
        rows=2,
        to_send=2,
        chats=2,
        messages=0,
        lookups=1,
        requests=3,
        seconds=3.0,
        already_done=0,
        not_to_send=0,
        rate=120.0,
        dry_run=True,
    )
    assert plan.describe().splitlines()[:2] == [
        "dry run: 2 of 2 rows would be sent (2 chats, 1 customer look-up); nothing is created",
        "the look-ups are made now: 1 request, about 1s at 120 a minute",
    ]


def test_customers_looked_up_first_are_counted_before_the_go_ahead() -> None:
    """Looked up before the plan without creating them: the customers matching no one or
    several, and the rows they leave out, are said; numbers read with separators."""
    plan = Plan(
        rows=1_200,
        to_send=1_000,
        chats=1_000,
        messages=0,
        lookups=0,
        requests=1_000,
        seconds=500.0,
        already_done=0,
        not_to_send=0,
        lookups_made=3,
        unmatched=150,
        ambiguous=1,
        left_out=200,
    )
    assert plan.describe().splitlines() == [
        "1,000 of 1,200 rows to send: 1,000 chats",
        "1,000 requests, about 8m 20s at 120 a minute",
        "customers looked up first (3 requests): 150 customers matching no one, 1 customer "
        "matching several; 200 rows left out for it (see error_message)",
    ]
