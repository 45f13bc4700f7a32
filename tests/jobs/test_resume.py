"""The resume plan: what a run does with each row, given the journal and a fed-back workbook."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from bulk_chats.jobs.resume import HELD_UNKNOWN, EarlierRuns, sort_by_earlier_runs
from bulk_chats.journal.chats import JournalEntry
from bulk_chats.journal.journal import Journal
from bulk_chats.journal.schema import SENDING
from bulk_chats.records import ChatRequest, FedBack, Outcome, Status
from tests.journal.test_journal import SCOPE, make_request, outcome

Step = Callable[[Journal, ChatRequest], None]


def attempt_at(started_at: float) -> Step:
    return lambda j, r: j.chats.attempt(r, started_at=started_at)


def record_as(status: Status, **fields: object) -> Step:
    return lambda j, r: j.chats.record(r, outcome(r, status, **fields))


@pytest.mark.parametrize(
    ("steps", "message", "expected"),
    [
        pytest.param([], None, "send", id="no-entry"),
        pytest.param([attempt_at(100)], None, ("confirm", 100), id="sending"),
        pytest.param(
            [attempt_at(100), attempt_at(200)], None, ("confirm", 100), id="two-unanswered"
        ),
        pytest.param(
            [attempt_at(100), record_as(Status.UNKNOWN)], None, ("confirm", 100), id="unknown"
        ),
        pytest.param(
            [attempt_at(100), record_as(Status.NOT_SENT)],
            None,
            ("confirm", 100),
            id="stopped-mid-request",
        ),
        pytest.param([record_as(Status.NOT_SENT)], None, "send", id="not-sent"),
        pytest.param(
            [attempt_at(100), record_as(Status.FAILED, http_status=400)],
            None,
            "send",
            id="failed",
        ),
        pytest.param(
            [attempt_at(100), record_as(Status.UNKNOWN), attempt_at(300), record_as(Status.FAILED)],
            None,
            "send",
            id="unknown-then-refused",
        ),
        pytest.param(
            [attempt_at(100), record_as(Status.CREATED, chat_id=555)],
            None,
            ("already", 555),
            id="created",
        ),
        pytest.param(
            [attempt_at(100), record_as(Status.UNKNOWN), record_as(Status.CREATED, chat_id=555)],
            None,
            ("already", 555),
            id="unknown-then-found",
        ),
        pytest.param(
            [attempt_at(100), record_as(Status.CREATED, chat_id=555)],
            "hello",
            ("message", 555, 100),
            id="created-message-pending",
        ),
        pytest.param(
            [
                attempt_at(100),
                record_as(Status.CREATED, chat_id=555),
                record_as(Status.MESSAGE_FAILED, chat_id=555, http_status=404),
            ],
            "hello",
            ("message", 555, 100),
            id="message-failed",
        ),
        pytest.param(
            [
                record_as(Status.MESSAGE_FAILED, chat_id=555),
                record_as(Status.NOT_SENT),
            ],
            "hello",
            ("message", 555, 1_000_000),
            id="message-retry-stopped",
        ),
        pytest.param(
            [
                attempt_at(100),
                record_as(Status.CREATED, chat_id=555),
                record_as(Status.CREATED, chat_id=555, message_id=9),
            ],
            "hello",
            ("already", 555),
            id="created-with-message",
        ),
        pytest.param(
            [record_as(Status.UNKNOWN)], None, ("confirm", 1_000_000), id="unknown-unannounced"
        ),
    ],
)
def test_plan_resume_classifies_each_state(
    path: Path, steps: list[Step], message: str | None, expected: object
) -> None:
    """Each earlier state leads to finished (already_created), message only (after a look at the
    chat), search first, or send."""
    request = make_request(message=message)
    with Journal.open(path, scope=SCOPE, clock=lambda: 1_000_000.0) as journal:
        for step in steps:
            step(journal, request)
    with Journal.open(path, scope=SCOPE) as journal:
        plan = sort_by_earlier_runs([request], journal.chats.entries([request.key]))

    if expected == "send":
        assert plan == EarlierRuns(to_send=(request,), known=len(steps) > 0)
    elif expected[0] == "confirm":  # type: ignore[index]
        assert plan.finished == ()
        assert plan.to_send == (replace(request, search_since=expected[1]),)  # type: ignore[index]
    elif expected[0] == "message":  # type: ignore[index]
        assert plan.finished == ()
        assert plan.to_send == (
            replace(request, chat_id=expected[1], search_since=expected[2]),  # type: ignore[index]
        )
    else:
        assert plan.to_send == ()
        [done] = plan.finished
        assert done.status is Status.ALREADY_CREATED
        assert (done.index, done.chat_id, done.attempts) == (0, expected[1], 0)  # type: ignore[index]


def test_plan_resume_keeps_input_order_and_describes_itself() -> None:
    """The plan keeps input order, counts each kind and says so in one line."""
    requests = [make_request(c, index=i, message="hi") for i, c in enumerate((1, 2, 3, 4, 5))]

    def entry(**fields: object) -> JournalEntry:
        base: dict[str, object] = {
            "state": "created",
            "chat_id": None,
            "message_id": None,
            "attempts": 1,
            "first_started_at": 100.0,
            "last_started_at": 100.0,
            "unresolved_since": None,
            "created_at": None,
            "error_code": "",
            "error_message": "",
            "http_status": None,
            "source_row": 2,
            "input_name": "march.xlsx",
            "updated_at": 100.0,
        }
        return JournalEntry(**{**base, **fields})  # type: ignore[arg-type]

    earlier = {
        requests[0].key: entry(chat_id=10, message_id=1, created_at=1_700_000_000.0),
        requests[1].key: entry(chat_id=11, message_id=2, created_at=1_700_000_600.0),
        requests[2].key: entry(chat_id=12),
        requests[3].key: entry(state=SENDING, unresolved_since=100.0),
    }
    plan = sort_by_earlier_runs(requests, earlier)

    assert [o.index for o in plan.finished] == [0, 1]
    assert [r.index for r in plan.to_send] == [2, 3, 4]
    assert (plan.message_only, plan.to_look_for) == (1, 1)
    assert plan.last_created_at == 1_700_000_600.0
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(1_700_000_600.0))
    assert plan.describe() == (
        f"2 rows were already created (the latest on {stamp}); 3 to send "
        "(1 only the first message; 1 first looked for, as an earlier attempt got no answer)"
    )
    assert sort_by_earlier_runs(requests[:1], {}).describe() == "1 to send"


def test_workbook_unknown_rows_the_journal_does_not_know_are_held_back(journal: Journal) -> None:
    """Rows a fed-back workbook marks unknown are held back when the journal has no entry
    for them, searched for when it has, and sent only when they carry no such mark."""
    unknown_here = make_request(1, index=0)
    unknown_elsewhere = make_request(2, index=1)
    message_left = make_request(3, index=2, message="hi")
    message_left = replace(message_left, chat_id=77)
    plain = make_request(4, index=3)
    journal.chats.attempt(unknown_here, started_at=500.0)
    journal.chats.record(unknown_here, outcome(unknown_here, Status.UNKNOWN))

    requests = [unknown_here, unknown_elsewhere, message_left, plain]
    fed_back = FedBack(unknown=frozenset({0, 1, 2}))
    plan = sort_by_earlier_runs(requests, journal.chats.entries(r.key for r in requests), fed_back)

    assert plan.to_send == (replace(unknown_here, search_since=500.0), message_left, plain)
    assert plan.held == (Outcome(index=1, status=Status.UNKNOWN, error_message=HELD_UNKNOWN),)
    assert "chat_id" in HELD_UNKNOWN
    assert "--fresh" in HELD_UNKNOWN
    assert plan.describe().endswith(
        "1 held back: an earlier run left it unknown and the journal does not know when it "
        "was sent (see error_message)"
    )


def test_rows_are_recognised_by_their_chat_fields_not_their_position(journal: Journal) -> None:
    """A reordered or re-exported input finds its rows again by their chat fields."""
    request = make_request(101, index=0)
    journal.chats.record(request, outcome(request, Status.CREATED, chat_id=555))

    moved = replace(make_request(101, index=40), source_row=99)
    assert moved.key == request.key
    plan = sort_by_earlier_runs([moved], journal.chats.entries([moved.key]))
    assert [o.index for o in plan.finished] == [40]


def test_fresh_run_sends_rows_the_workbook_left_unknown() -> None:
    """With --fresh a fed-back `unknown` mark holds nothing back."""
    request = make_request(1, index=0)
    fed_back = FedBack(unknown=frozenset({0}))

    assert sort_by_earlier_runs([request], {}, fed_back).held != ()
    plan = sort_by_earlier_runs([request], {}, fed_back, fresh=True)
    assert (plan.held, plan.to_send) == ((), (request,))


def test_plan_counts_workbook_rows_as_done_and_claims_every_known_chat(journal: Journal) -> None:
    """Rows the workbook finished count as already done; every chat the workbook or the
    journal gives a row is claimed, so a search for it never adopts it."""
    done = make_request(1, index=0)
    pending = make_request(2, index=1)
    journal.chats.record(done, outcome(done, Status.CREATED, chat_id=555))
    journal.chats.attempt(pending, started_at=10.0)
    requests = [done, pending]

    fed_back = FedBack(finished=3, chat_ids=frozenset({900, 901}))
    plan = sort_by_earlier_runs(requests, journal.chats.entries(r.key for r in requests), fed_back)

    assert plan.already_done == 4
    assert plan.claimed_chat_ids == {555, 900, 901}
    assert plan.worth_telling
    assert not sort_by_earlier_runs([pending], {}).worth_telling
