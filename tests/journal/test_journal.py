"""The journal: durable per-row progress, scopes, fresh runs, locking."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bulk_chats.errors import InputError, JournalError
from bulk_chats.jobs.resume import sort_by_earlier_runs
from bulk_chats.journal import schema as journal_schema
from bulk_chats.journal.chats import JournalEntry
from bulk_chats.journal.journal import Journal, scope_for
from bulk_chats.journal.schema import APPLICATION_ID, SENDING
from bulk_chats.records import ChatRequest, FirstMessage, Outcome, Status
from tests.journal.earlier import journal_before

SCOPE = "https://api.helpcrunch.com/v1"
OTHER_SCOPE = "http://127.0.0.1:8765/v1"
REPO = Path(__file__).resolve().parents[2]
SCHEMA_VERSION = len(journal_schema._MIGRATIONS)


def make_request(customer: int = 101, *, message: str | None = None, index: int = 0) -> ChatRequest:
    return ChatRequest(
        index=index,
        source_row=index + 2,
        customer=customer,
        application=7,
        assignee=4188,
        message=FirstMessage(message) if message is not None else None,
    )


def created(request: ChatRequest, chat_id: int, message_id: int | None = None) -> Outcome:
    return Outcome(
        index=request.index,
        status=Status.CREATED,
        chat_id=chat_id,
        message_id=message_id,
        attempts=1,
    )


def outcome(request: ChatRequest, status: Status, **fields: object) -> Outcome:
    return Outcome(index=request.index, status=status, **fields)  # type: ignore[arg-type]


def read_back(path: Path, request: ChatRequest, scope: str = SCOPE) -> JournalEntry | None:
    with Journal.open(path, scope=scope) as reopened:
        return reopened.chats.entries([request.key]).get(request.key)


# --- writing and reading ---------------------------------------------------------------


def test_attempt_then_record_round_trips(journal: Journal) -> None:
    """An attempt followed by its outcome reads back as one entry with both."""
    request = make_request()
    journal.chats.attempt(request, started_at=1000.0)
    journal.chats.record(request, created(request, 555))

    entry = journal.chats.entries([request.key])[request.key]
    assert entry.state == "created"
    assert entry.chat_id == 555
    assert entry.attempts == 1
    assert entry.first_started_at == entry.last_started_at == 1000.0
    assert entry.unresolved_since is None
    assert entry.created_at is not None
    assert entry.source_row == 2
    assert entry.input_name == "march.xlsx"


def test_attempt_alone_reads_back_as_sending(journal: Journal) -> None:
    """An announced request with no answer yet is `sending`, unresolved since its start."""
    request = make_request()
    journal.chats.attempt(request, started_at=1000.0)

    entry = journal.chats.entries([request.key])[request.key]
    assert entry.state == SENDING
    assert entry.unresolved_since == 1000.0


def test_chat_then_message_keeps_both_ids(journal: Journal) -> None:
    """`created` with the chat id, then with the message id, keeps both and the first time."""
    request = make_request(message="hello")
    journal.chats.attempt(request, started_at=1000.0)
    journal.chats.record(request, created(request, 555))
    first = journal.chats.entries([request.key])[request.key]
    journal.chats.record(request, created(request, 555, message_id=9))

    entry = journal.chats.entries([request.key])[request.key]
    assert (entry.chat_id, entry.message_id) == (555, 9)
    assert entry.created_at == first.created_at


def test_later_outcome_without_ids_keeps_the_chat(journal: Journal) -> None:
    """A known chat id survives a later outcome that carries none (a message-only retry)."""
    request = make_request(message="hello")
    journal.chats.record(request, created(request, 555))
    journal.chats.record(request, outcome(request, Status.NOT_SENT))

    entry = journal.chats.entries([request.key])[request.key]
    assert entry.state == "not_sent"
    assert entry.chat_id == 555


def test_errors_are_kept_and_cleared_by_the_next_attempt(journal: Journal) -> None:
    """A failure's code, message and status are kept until the row is attempted again."""
    request = make_request()
    journal.chats.attempt(request, started_at=1000.0)
    journal.chats.record(
        request,
        outcome(
            request,
            Status.FAILED,
            error_code="customer",
            error_message="This value should be of type numeric.",
            http_status=400,
        ),
    )
    entry = journal.chats.entries([request.key])[request.key]
    assert (entry.state, entry.error_code, entry.http_status) == ("failed", "customer", 400)
    assert entry.error_message == "This value should be of type numeric."
    assert entry.unresolved_since is None

    journal.chats.attempt(request, started_at=2000.0)
    entry = journal.chats.entries([request.key])[request.key]
    assert (entry.error_code, entry.error_message, entry.http_status) == ("", "", None)
    assert entry.attempts == 2
    assert entry.first_started_at == 1000.0
    assert entry.last_started_at == 2000.0


@pytest.mark.parametrize("status", [Status.VALID, Status.INVALID, Status.DUPLICATE])
def test_statuses_that_never_reach_the_sender_are_not_recorded(
    journal: Journal, status: Status
) -> None:
    """Rows that were never sent leave no entry."""
    request = make_request()
    journal.chats.record(request, outcome(request, status))
    assert journal.chats.entries([request.key]) == {}


def test_a_row_a_resumed_run_settles_is_kept_as_created(journal: Journal) -> None:
    """An earlier run's row settled now (adopted by search, its message found or posted) is
    `already_created` in the workbook and `created` in the journal, with its ids and the
    customer it was sent for, so the next run looks nothing up for it."""
    request = make_request()
    journal.chats.attempt(request, started_at=1000.0)
    journal.chats.record(request, outcome(request, Status.UNKNOWN))
    settled = replace(outcome(request, Status.ALREADY_CREATED), chat_id=77, message_id=88)
    journal.chats.record(request, settled)
    entry = journal.chats.entries([request.key])[request.key]
    assert (entry.state, entry.chat_id, entry.message_id) == ("created", 77, 88)
    assert entry.unresolved_since is None
    assert entry.customer_id == request.customer


def test_the_ids_a_chat_was_sent_with_are_kept_from_its_announcement(journal: Journal) -> None:
    """The customer, assignee, department and message agent of the request announced are
    the entry's `ids_used`, and a later record of the row keeps them."""
    request = replace(make_request(), department=233048, message=FirstMessage("hi", agent=4189))
    journal.chats.attempt(request, started_at=1000.0)
    journal.chats.record(request, created(request, 555, message_id=9))
    entry = journal.chats.entries([request.key])[request.key]
    assert entry.ids_used == {
        "customer": 101,
        "assignee": 4188,
        "department": 233048,
        "message_agent": 4189,
    }


def test_an_entry_written_before_the_ids_were_kept_reads_with_none(path: Path) -> None:
    """A journal of the schema before the ids were kept is upgraded; its entries read back
    with the customer only, as it was written."""
    connection = journal_before(path, "ADD COLUMN assignee_id")
    request = make_request()
    connection.execute(
        "INSERT INTO entries (scope, row_key, state, chat_id, updated_at, customer_id) "
        "VALUES (?, ?, 'created', 555, 1.0, 101)",
        (SCOPE, request.key),
    )
    connection.commit()
    connection.close()

    entry = read_back(path, request)
    assert entry is not None
    assert entry.ids_used == {"customer": 101}
    assert pragma(path, "user_version") == SCHEMA_VERSION


def test_an_attempt_that_surely_created_nothing_leaves_nothing_to_look_for(
    journal: Journal,
) -> None:
    """Withdrawn (it never had its turn, or got a 429), an attempt no longer makes the
    next run search first; one withdrawn after an earlier unanswered attempt does."""
    request = make_request()
    journal.chats.attempt(request, started_at=1000.0)
    journal.chats.withdraw(request, started_at=1000.0)
    journal.chats.record(request, outcome(request, Status.NOT_SENT))
    entry = journal.chats.entries([request.key])[request.key]
    assert (entry.state, entry.unresolved_since) == ("not_sent", None)
    assert sort_by_earlier_runs([request], {request.key: entry}).to_send == (request,)

    other = make_request(customer=202)
    journal.chats.attempt(other, started_at=1000.0)
    journal.chats.record(other, outcome(other, Status.UNKNOWN))
    journal.chats.attempt(other, started_at=2000.0)
    journal.chats.withdraw(other, started_at=2000.0)
    assert journal.chats.entries([other.key])[other.key].unresolved_since == 1000.0


def test_reopened_journal_sees_everything(path: Path) -> None:
    """A new connection to the file reads every entry an earlier one wrote."""
    requests = [make_request(customer, index=i) for i, customer in enumerate(range(1, 601))]
    with Journal.open(path, scope=SCOPE) as first:
        for request in requests:
            first.chats.attempt(request, started_at=1000.0 + request.index)
            if request.index % 2:
                first.chats.record(request, created(request, 10_000 + request.index))

    with Journal.open(path, scope=SCOPE) as second:
        found = second.chats.entries(r.key for r in requests)
    assert len(found) == len(requests)
    assert found[requests[1].key].chat_id == 10_001
    assert found[requests[0].key].state == SENDING
    assert found[requests[0].key].unresolved_since == 1000.0


def test_large_ids_round_trip_exactly(journal: Journal) -> None:
    """Ids beyond 2^53 come back exactly, never through a float."""
    request = make_request(90071992547409931)
    journal.chats.record(request, created(request, 90071992547409933, message_id=2**62))
    entry = journal.chats.entries([request.key])[request.key]
    assert entry.chat_id == 90071992547409933
    assert entry.message_id == 2**62


def test_input_name_keeps_only_the_file_name(path: Path) -> None:
    """The input's directory never reaches the journal, only its file name."""
    request = make_request()
    with Journal.open(path, scope=SCOPE, input_name=str(Path("exports") / "march.csv")) as j:
        j.chats.attempt(request, started_at=1.0)
        assert j.chats.entries([request.key])[request.key].input_name == "march.csv"


def test_file_is_wal_with_full_sync(journal: Journal, path: Path) -> None:
    """The journal is in WAL mode and syncs every commit (durability over speed)."""
    journal.chats.attempt(make_request(), started_at=1.0)
    connection = journal.file._connection
    assert connection is not None
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert not connection.in_transaction


def test_events_keep_the_history(journal: Journal, path: Path) -> None:
    """Every attempt and outcome is also appended to the events table."""
    request = make_request()
    journal.chats.attempt(request, started_at=1000.0)
    journal.chats.record(request, created(request, 555))
    with sqlite3.connect(path) as connection:
        kinds = connection.execute("SELECT kind, state, chat_id FROM events ORDER BY id").fetchall()
    connection.close()
    assert kinds == [("attempt", SENDING, None), ("record", "created", 555)]


def test_writing_after_close_raises_journal_error(path: Path) -> None:
    """A closed journal refuses writes, so the sender stops instead of sending unrecorded."""
    journal = Journal.open(path, scope=SCOPE)
    journal.close()
    journal.close()
    with pytest.raises(JournalError, match="closed"):
        journal.chats.attempt(make_request(), started_at=1.0)


# --- a killed run ------------------------------------------------------------------------

KILLED_RUN = """
import sys
from pathlib import Path
from bulk_chats.journal.journal import Journal
from bulk_chats.records import ChatRequest, FirstMessage, Outcome, Status
from tests.journal.earlier import journal_before

journal = Journal.open(Path(sys.argv[1]), scope=sys.argv[2])
unanswered = ChatRequest(index=0, source_row=2, customer=1, application=7)
journal.chats.attempt(unanswered, started_at=1000.0)
half_done = ChatRequest(
    index=1, source_row=3, customer=2, application=7, message=FirstMessage("hello")
)
journal.chats.attempt(half_done, started_at=1001.0)
journal.chats.record(half_done, Outcome(index=1, status=Status.CREATED, chat_id=555))
print("ready", flush=True)
sys.stdin.readline()
"""


def test_killed_run_leaves_rows_to_confirm_and_its_lock_goes(path: Path) -> None:
    """After kill -9, unanswered attempts need confirmation and half-done rows only a message;
    while it lived the run held the scope, and its death released it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(path), SCOPE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        with pytest.raises(InputError, match="another bulk-chats run is sending to"):
            Journal.open(path, scope=SCOPE)
    finally:
        process.kill()
        process.wait()
        assert process.stdout is not None
        process.stdout.close()
        assert process.stdin is not None
        process.stdin.close()

    unanswered = ChatRequest(index=0, source_row=2, customer=1, application=7)
    half_done = ChatRequest(
        index=1, source_row=3, customer=2, application=7, message=FirstMessage("hello")
    )
    with Journal.open(path, scope=SCOPE) as journal:
        plan = sort_by_earlier_runs(
            [unanswered, half_done], journal.chats.entries([unanswered.key, half_done.key])
        )
    assert plan.finished == ()
    assert plan.to_send == (
        replace(unanswered, search_since=1000.0),
        replace(half_done, chat_id=555, search_since=1001.0),
    )


WRITING_RUN = """
import sys
from pathlib import Path
from bulk_chats.journal.journal import Journal
from bulk_chats.records import ChatRequest, Outcome, Status

journal = Journal.open(Path(sys.argv[1]), scope=sys.argv[2])
for n in range(1_000_000):
    request = ChatRequest(index=n, source_row=n + 2, customer=n + 1, application=7)
    journal.chats.attempt(request, started_at=1000.0 + n)
    journal.chats.record(request, Outcome(index=n, status=Status.CREATED, chat_id=10_000 + n))
    print(n, flush=True)
"""


def test_run_killed_while_writing_keeps_every_write_that_returned(path: Path) -> None:
    """kill -9 in the middle of a stream of writes: the journal opens, passes SQLite's
    integrity check, and holds every write that returned before the kill."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-c", WRITING_RUN, str(path), SCOPE],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert process.stdout is not None
        last = -1
        while last < 150:
            line = process.stdout.readline()
            assert line, "the writing run ended early"
            last = int(line)
    finally:
        process.kill()
        process.wait()
        assert process.stdout is not None
        process.stdout.close()

    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        connection.close()
    requests = [
        ChatRequest(index=n, source_row=n + 2, customer=n + 1, application=7)
        for n in range(last + 1)
    ]
    with Journal.open(path, scope=SCOPE) as journal:
        plan = sort_by_earlier_runs(requests, journal.chats.entries(r.key for r in requests))
    assert plan.to_send == ()
    assert [o.chat_id for o in plan.finished] == [10_000 + n for n in range(last + 1)]


# --- scopes and fresh runs ---------------------------------------------------------------


def test_other_scope_sees_nothing(path: Path) -> None:
    """Entries of one API root are invisible to another, in the same file."""
    request = make_request()
    with Journal.open(path, scope=SCOPE) as journal:
        journal.chats.record(request, created(request, 555))

    assert read_back(path, request, OTHER_SCOPE) is None
    assert read_back(path, request, SCOPE) is not None


@pytest.mark.parametrize(
    ("url", "scope"),
    [
        ("https://api.helpcrunch.com/v1", "https://api.helpcrunch.com/v1"),
        ("HTTPS://API.HelpCrunch.com:443/v1/", "https://api.helpcrunch.com/v1"),
        ("https://user:s3cret@api.helpcrunch.com/v1?token=x#y", "https://api.helpcrunch.com/v1"),
        ("http://127.0.0.1:8765/v1/", "http://127.0.0.1:8765/v1"),
        ("http://localhost:80/v1", "http://localhost/v1"),
        ("http://[::1]:9000/v1", "http://[::1]:9000/v1"),
    ],
)
def test_scope_for_normalises_the_api_root(url: str, scope: str) -> None:
    """Spellings of one API root share a scope; credentials, query and fragment are dropped."""
    assert scope_for(url) == scope


def test_fresh_run_ignores_earlier_entries_and_replaces_them_on_write(path: Path) -> None:
    """`--fresh` sees no earlier entries, keeps them until it writes, then starts each anew."""
    request, untouched = make_request(1), make_request(2, index=1)
    with Journal.open(path, scope=SCOPE) as journal:
        journal.chats.attempt(request, started_at=100.0)
        journal.chats.record(request, created(request, 555))
        journal.chats.record(untouched, created(untouched, 556))

    with Journal.open(path, scope=SCOPE, fresh=True) as journal:
        assert journal.chats.entries([request.key, untouched.key]) == {}
    assert read_back(path, request) is not None  # stopped at the prompt: nothing lost

    with Journal.open(path, scope=SCOPE, fresh=True) as journal:
        journal.chats.attempt(request, started_at=500.0)
        journal.chats.attempt(request, started_at=600.0)
        journal.chats.record(request, created(request, 777))

    entry = read_back(path, request)
    assert entry is not None
    assert (entry.chat_id, entry.attempts, entry.first_started_at) == (777, 2, 500.0)
    untouched_entry = read_back(path, untouched)
    assert untouched_entry is not None
    assert untouched_entry.chat_id == 556


# --- the schema --------------------------------------------------------------------------


def pragma(path: Path, name: str) -> object:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        connection.close()


def test_new_journal_is_created_with_its_version(path: Path) -> None:
    """First use creates the file, its directory and the current schema version."""
    assert not path.parent.exists()
    Journal.open(path, scope=SCOPE).close()
    assert pragma(path, "user_version") == SCHEMA_VERSION
    assert pragma(path, "application_id") == APPLICATION_ID


def test_existing_journal_is_opened_as_is(path: Path) -> None:
    """A journal of the current version keeps its entries and version when reopened."""
    request = make_request()
    with Journal.open(path, scope=SCOPE) as journal:
        journal.chats.record(request, created(request, 555))
    entry = read_back(path, request)
    assert entry is not None
    assert entry.chat_id == 555
    assert pragma(path, "user_version") == SCHEMA_VERSION


def test_older_journal_is_upgraded_in_place(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A journal written by an older schema gets the newer migrations and keeps its entries."""
    request = make_request()
    with Journal.open(path, scope=SCOPE) as journal:
        journal.chats.record(request, created(request, 555))

    upgraded = (*journal_schema._MIGRATIONS, ("ALTER TABLE entries ADD COLUMN note TEXT",))
    monkeypatch.setattr(journal_schema, "_MIGRATIONS", upgraded)
    entry = read_back(path, request)
    assert entry is not None
    assert entry.chat_id == 555
    assert pragma(path, "user_version") == SCHEMA_VERSION + 1


def test_newer_journal_is_refused(path: Path) -> None:
    """A journal from a newer bulk-chats is refused rather than misread."""
    Journal.open(path, scope=SCOPE).close()
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    with pytest.raises(InputError, match="written by a newer bulk-chats"):
        Journal.open(path, scope=SCOPE)


def test_other_sqlite_file_is_refused_untouched(path: Path) -> None:
    """Another program's SQLite file is refused and left in its journal mode."""
    path.parent.mkdir(parents=True)
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE things (x)")
    connection.commit()
    connection.close()
    with pytest.raises(InputError, match="not a bulk-chats journal"):
        Journal.open(path, scope=SCOPE)
    assert pragma(path, "journal_mode") == "delete"


def test_file_that_is_not_sqlite_is_refused(path: Path) -> None:
    """A file that is not a database at all gives a one-line InputError."""
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is a spreadsheet, honestly " * 100)
    with pytest.raises(InputError, match="not a bulk-chats journal"):
        Journal.open(path, scope=SCOPE)
    # The refusal released the scope.
    path.unlink()
    Journal.open(path, scope=SCOPE).close()


# --- the API key -------------------------------------------------------------------------

FAKE_KEY = "hc-fake-api-key-0123456789abcdef"


def test_api_key_never_reaches_the_journal(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing about the key is stored: no column for it, and its bytes are in no file."""
    monkeypatch.setenv("HELPCRUNCH_API_KEY", FAKE_KEY)
    request = make_request(message="hello")
    journal = Journal.open(path, scope=scope_for(f"https://me:{FAKE_KEY}@api.helpcrunch.com/v1"))
    journal.chats.attempt(request, started_at=1.0)
    journal.chats.record(request, outcome(request, Status.UNKNOWN, error_message="timed out"))

    files = sorted(path.parent.iterdir())
    assert any(f.name.endswith("-wal") for f in files)  # read while the log still holds data
    for file in files:
        content = file.read_bytes()
        assert FAKE_KEY.encode() not in content, file.name
        assert b"Bearer" not in content, file.name
    journal.close()

    connection = sqlite3.connect(path)
    columns = {
        (table, row[1])
        for table in ("entries", "events")
        for row in connection.execute(f"PRAGMA table_info({table})")
    }
    connection.close()
    keyish = ("api", "token", "secret", "auth", "bearer", "password", "credential")
    assert not [c for c in columns if any(word in c[1] for word in keyish)]
    assert {c[1] for c in columns if "key" in c[1]} == {"row_key"}


# --- two runs at once --------------------------------------------------------------------


def test_second_run_on_the_same_scope_is_refused(path: Path) -> None:
    """While one run holds a scope another open of it fails; other scopes and later runs work."""
    first = Journal.open(path, scope=SCOPE)
    with pytest.raises(InputError, match="another bulk-chats run is sending to"):
        Journal.open(path, scope=SCOPE)

    other = Journal.open(path, scope=OTHER_SCOPE)
    request = make_request()
    first.chats.attempt(request, started_at=1.0)
    other.chats.attempt(request, started_at=2.0)
    other.close()
    first.close()

    with Journal.open(path, scope=SCOPE) as again:
        assert again.chats.entries([request.key])[request.key].first_started_at == 1.0


def test_a_learned_limit_is_remembered_for_its_api_root_only(path: Path) -> None:
    """The account's limit a run learned is there for the next run of the same API root,
    whatever the rows, and not for another root; a later one replaces it."""
    with Journal.open(path, scope="https://api.helpcrunch.com/v1") as first:
        assert first.limits.learned() is None
        first.limits.remember(60.0)
        first.limits.remember(58.0)
    with Journal.open(path, scope="https://api.helpcrunch.com/v1", fresh=True) as again:
        assert again.limits.learned() == 58.0
    with Journal.open(path, scope="http://127.0.0.1:8000/v1") as other:
        assert other.limits.learned() is None


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
@pytest.mark.usefixtures("open_umask")
def test_the_journal_and_the_folders_it_creates_are_the_owners_alone(tmp_path: Path) -> None:
    """With a umask of 0 the journal, its -wal, -shm and lock files are 0600 and the folders
    it creates 0700; a folder that existed keeps its mode."""
    tmp_path.chmod(0o755)
    path = tmp_path / "reports" / "deeper" / "journal.sqlite3"
    with Journal.open(path, scope=SCOPE) as journal:
        journal.chats.attempt(make_request(), started_at=1.0)
        files = [path.with_name(path.name + suffix) for suffix in ("", "-wal", "-shm", "-lock")]
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    assert (mode(path.parent), mode(path.parent.parent), mode(tmp_path)) == (0o700, 0o700, 0o755)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_a_journal_an_earlier_version_left_readable_is_made_the_owners_alone(path: Path) -> None:
    """A journal and lock file created 0644 by an earlier version are 0600 once reopened."""
    with Journal.open(path, scope=SCOPE) as journal:
        journal.chats.attempt(make_request(), started_at=1.0)
    lock = path.with_name(path.name + "-lock")
    for name in (path, lock):
        name.chmod(0o644)
    with Journal.open(path, scope=SCOPE):
        assert (mode(path), mode(lock)) == (0o600, 0o600)
