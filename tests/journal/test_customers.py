"""The journal's customers: what became of each customer a run set out to create."""

from __future__ import annotations

from pathlib import Path

from bulk_chats.journal.customers import CustomerEntry
from bulk_chats.journal.journal import Journal

SCOPE = "https://api.helpcrunch.com/v1"
KEY = "customer_email:new@example.com"


def test_an_announced_customer_reads_back_as_sending_with_its_attempts(journal: Journal) -> None:
    """Each announcement counts an attempt; unanswered, the customer stays `sending`."""
    journal.customers.attempt(KEY, started_at=1.0)
    journal.customers.attempt(KEY, started_at=2.0)
    assert journal.customers.entries([KEY, "customer_email:other@example.com"]) == {
        KEY: CustomerEntry(state="sending", customer_id=None, attempts=2)
    }


def test_a_created_customer_is_never_forgotten_by_a_later_record(journal: Journal) -> None:
    """Once the customer's id is known, a later failure keeps it and its state."""
    journal.customers.attempt(KEY, started_at=1.0)
    journal.customers.record(KEY, state="created", customer_id=41)
    journal.customers.record(KEY, state="failed", error_code="invalid", http_status=422)
    assert journal.customers.entries([KEY])[KEY] == CustomerEntry("created", 41, 1)


def test_a_fresh_run_still_sees_the_customers_made(journal: Journal, path: Path) -> None:
    """--fresh does not hide a customer made: it stays in the account."""
    journal.customers.record(KEY, state="created", customer_id=41)
    journal.close()
    with Journal.open(path, scope=SCOPE, fresh=True) as fresh:
        assert fresh.customers.entries([KEY])[KEY].customer_id == 41
