"""Progress sinks: what the user sees while rows are sent."""

from __future__ import annotations

import io

import pytest

from bulk_chats.progress import BarProgress, LogProgress, NullProgress, duration_text
from bulk_chats.records import Outcome, Status


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_log_progress_writes_a_line_per_interval_and_at_the_end() -> None:
    """LogProgress prints done/total, created and failed counts, rate and ETA."""
    stream, clock = io.StringIO(), FakeClock()
    sink = LogProgress(stream, interval=30, clock=clock)
    sink.start(4)
    clock.now = 10
    sink.advance(Outcome(index=0, status=Status.CREATED, chat_id=1))
    assert stream.getvalue() == ""
    clock.now = 30
    sink.advance(Outcome(index=1, status=Status.FAILED))
    sink.advance(Outcome(index=2, status=Status.CREATED, chat_id=2))
    clock.now = 60
    sink.advance(Outcome(index=3, status=Status.UNKNOWN))
    sink.close()
    assert stream.getvalue().splitlines() == [
        "progress: 2/4 rows, created=1 failed=1, 4/min, eta 30s",
        "progress: 4/4 rows, created=2 failed=2, 4/min, eta 0s",
    ]


def test_bar_progress_counts_rows_and_shows_created_and_failed() -> None:
    """BarProgress advances one step per row and shows the counts beside the bar."""
    stream = io.StringIO()
    sink = BarProgress(stream)
    sink.start(2)
    sink.advance(Outcome(index=0, status=Status.CREATED, chat_id=1))
    sink.advance(Outcome(index=1, status=Status.MESSAGE_FAILED, chat_id=2))
    sink.close()
    text = stream.getvalue()
    assert "2/2" in text
    assert "created=1 failed=1" in text


def test_a_transcripts_progress_counts_its_conversations_too() -> None:
    """Sending a transcript, the line and the bar say how many conversations are over."""
    stream, clock = io.StringIO(), FakeClock()
    sink = LogProgress(stream, interval=30, clock=clock)
    sink.start(3)
    sink.conversations(0, 2)
    sink.advance(Outcome(index=0, status=Status.CREATED, chat_id=1))
    sink.conversations(1, 2)
    clock.now = 60
    sink.close()
    assert stream.getvalue() == (
        "progress: 1/3 rows, created=1 failed=0 conversations=1/2, 1/min, eta 120s\n"
    )
    bar_stream = io.StringIO()
    bar = BarProgress(bar_stream)
    bar.start(1)
    bar.conversations(0, 1)
    bar.advance(Outcome(index=0, status=Status.CREATED, chat_id=1))
    bar.conversations(1, 1)
    bar.close()
    assert "conversations=1/1" in bar_stream.getvalue()


def test_null_progress_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    """NullProgress (--no-progress) accepts every call and shows nothing."""
    sink = NullProgress()
    sink.start(1)
    sink.advance(Outcome(index=0, status=Status.CREATED))
    sink.limit_learned(60, confirmed=True)
    sink.close()
    assert capsys.readouterr() == ("", "")


def test_log_progress_says_the_learned_limit_at_once_and_on_later_lines() -> None:
    """LogProgress prints the account's limit when learned, saying whether the API confirmed
    it, and every later line shows it."""
    stream, clock = io.StringIO(), FakeClock()
    sink = LogProgress(stream, interval=30, clock=clock)
    sink.start(3)
    sink.limit_learned(60, confirmed=False)
    clock.now = 30
    sink.advance(Outcome(index=0, status=Status.CREATED, chat_id=1))
    sink.limit_learned(90, confirmed=True)
    clock.now = 60
    sink.advance(Outcome(index=1, status=Status.CREATED, chat_id=2))
    assert stream.getvalue().splitlines() == [
        "progress: the account seems to allow 60 requests a minute (not confirmed yet: "
        "probing how long the API counts); running at that meanwhile",
        "progress: 1/3 rows, created=1 failed=0, account limit 60/min (unconfirmed), 2/min, "
        "eta 60s",
        "progress: the account allows 90 requests a minute (the API confirmed it); running at that",
        "progress: 2/3 rows, created=2 failed=0, account limit 90/min, 2/min, eta 30s",
    ]


def test_a_limit_given_up_says_so_and_leaves_the_counts() -> None:
    """A provisional limit the API never confirmed is given up on the progress line, and
    later lines no longer show a limit."""
    stream, clock = io.StringIO(), FakeClock()
    sink = LogProgress(stream, interval=30, clock=clock)
    sink.start(2)
    sink.limit_learned(60, confirmed=False)
    sink.limit_learned(None, confirmed=False)
    clock.now = 30
    sink.advance(Outcome(index=0, status=Status.CREATED, chat_id=1))
    lines = stream.getvalue().splitlines()
    assert lines[1] == (
        "progress: the account's limit could not be confirmed; back to the rate asked for"
    )
    assert lines[2] == "progress: 1/2 rows, created=1 failed=0, 2/min, eta 30s"


def test_bar_progress_shows_the_learned_limit() -> None:
    """BarProgress writes the account's limit above the bar and keeps it beside the counts."""
    stream = io.StringIO()
    sink = BarProgress(stream)
    sink.start(2)
    sink.limit_learned(60, confirmed=True)
    sink.advance(Outcome(index=0, status=Status.CREATED, chat_id=1))
    sink.close()
    text = stream.getvalue()
    assert (
        "the account allows 60 requests a minute (the API confirmed it); running at that\n" in text
    )
    assert "created=1 failed=0, account limit 60/min" in text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.2, "1s"),
        (59.5, "1m 00s"),
        (125, "2m 05s"),
        (3600, "1h 00m"),
        (50_400, "14h 00m"),
    ],
)
def test_a_duration_reads_as_a_person_says_it_rounded_up(seconds: float, text: str) -> None:
    """Durations are whole seconds, minutes and hours, rounded up: the plan and the page
    never promise less time than a run takes."""
    assert duration_text(seconds) == text


def test_an_export_counts_its_chats_and_each_phase_afresh() -> None:
    """Chats of an export count as `exported`, an unknown total (0) shows the count alone,
    and a second `start` (its messages) counts from zero again."""
    stream, clock = io.StringIO(), FakeClock()
    sink = LogProgress(stream, interval=30, clock=clock)
    sink.start(0)
    for index in range(3):
        sink.advance(Outcome(index=index, status=Status.EXPORTED, chat_id=index))
    clock.now = 60
    sink.close()
    sink.start(3)
    clock.now = 120
    sink.advance(Outcome(index=0, status=Status.EXPORTED))
    sink.close()
    assert stream.getvalue().splitlines() == [
        "progress: 3 rows, exported=3 failed=0, 3/min, eta ?",
        "progress: 1/3 rows, exported=1 failed=0, 1/min, eta 120s",
    ]
