"""The web page's runs in the journal file: begun, ended, listed newest first, read back
by a page started later, and kept beside a run that holds the scope's lock."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bulk_chats.errors import InputError
from bulk_chats.journal.journal import Journal, journal_path
from bulk_chats.journal.page_runs import PageRuns


def test_a_run_is_begun_then_ended_and_listed_newest_first(tmp_path: Path) -> None:
    """Each run gets the next number; its end records the outcome, counts and results file;
    the list is newest first, a run not ended has no end."""
    ticks = iter([100.0, 200.0, 250.0])
    runs = PageRuns(journal_path(tmp_path), clock=lambda: next(ticks))
    first = runs.begin(kind="validate", input_name="march.csv", api_root="", page=7)
    second = runs.begin(kind="import", input_name="march.csv", api_root="https://x/v1", page=7)
    runs.end(first, outcome="done", counts={"valid": 9}, total=9, results="m.xlsx")
    newest, oldest = runs.latest(10)
    assert (newest.id, newest.kind, newest.ended_at, newest.counts) == (second, "import", None, {})
    assert (oldest.id, oldest.outcome, oldest.total, oldest.results) == (first, "done", 9, "m.xlsx")
    assert (oldest.started_at, oldest.ended_at, oldest.counts) == (100.0, 250.0, {"valid": 9})
    assert runs.get(second) == newest
    assert runs.get(99) is None


def test_no_journal_no_runs_and_nothing_created(tmp_path: Path) -> None:
    """Listing the runs of a folder without a journal creates none."""
    runs = PageRuns(journal_path(tmp_path / "reports"))
    assert runs.latest(5) == []
    assert not (tmp_path / "reports").exists()


def test_runs_are_written_while_a_run_holds_the_scope(tmp_path: Path) -> None:
    """The page's list takes no scope's lock: it is written while an import holds its API
    root, and a page started later reads it. The journal stays owner-only."""
    path = journal_path(tmp_path)
    with Journal.open(path, scope="https://api.example/v1"):
        number = PageRuns(path).begin(kind="import", input_name="a.csv", api_root="", page=1)
        PageRuns(path).end(number, outcome="stopped")
    [run] = PageRuns(path).latest(5)
    assert (run.id, run.outcome) == (number, "stopped")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_file_that_is_not_a_journal_is_refused(tmp_path: Path) -> None:
    """Another SQLite file in the journal's place is refused untouched, as the journal is."""
    path = journal_path(tmp_path)
    path.write_bytes(b"not a database at all, just some text" * 10)
    with pytest.raises(InputError, match="journal"):
        PageRuns(path).latest(5)
