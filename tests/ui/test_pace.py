"""The pace the page shows: rows a minute lately, and a time left that never beats what
the limit allows."""

from __future__ import annotations

import pytest

from bulk_chats.ui.pace import WINDOW, Budget, Pace, time_left


def test_the_rate_is_the_one_of_the_last_minute() -> None:
    """600 rows in the first minute, then 120 in the next: the rate is 120 a minute, not
    the average since the start."""
    pace = Pace()
    pace.restart(0.0)
    for second in range(1, 121):
        pace.add(float(second), second * 10 if second <= 60 else 600 + (second - 60) * 2)
    assert pace.per_minute(120.0) == pytest.approx(120.0)


def test_no_rate_before_the_first_row() -> None:
    """Before a row is done the rate is not known."""
    pace = Pace()
    pace.restart(0.0)
    assert pace.per_minute(5.0) is None
    pace.add(WINDOW / 2, 3)
    assert pace.per_minute(WINDOW / 2) == pytest.approx(6.0)


def test_the_time_left_keeps_to_the_learned_limit() -> None:
    """The issue's case: rows went at 600 a minute until a 429 taught the run the account
    allows 120 requests; 100 rows of one request each left take 50 s, not 10 s."""
    budget = Budget(requests_per_row=1.0, rate=600.0)
    assert time_left(100, 600.0, budget=budget, learned_limit=120.0) == pytest.approx(50.0)
    assert time_left(100, 600.0, budget=budget, learned_limit=None) == pytest.approx(10.0)


def test_the_time_left_counts_the_requests_a_row_costs() -> None:
    """A row of a chat, a message and a status is three requests: at 120 a minute, 40
    rows left take a minute; the rate achieved wins when it is slower."""
    budget = Budget(requests_per_row=3.0, rate=120.0)
    assert time_left(40, None, budget=budget, learned_limit=None) == pytest.approx(60.0)
    assert time_left(40, 20.0, budget=budget, learned_limit=None) == pytest.approx(120.0)
    assert time_left(40, None, budget=None, learned_limit=None) is None
