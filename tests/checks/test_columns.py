"""The column checks both validations share, on their own: problems joined per row,
status spellings, repeated rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bulk_chats.checks.columns import ProblemColumns, chat_status_spelling, duplicates


def test_the_option_spelling_is_checked_like_a_cell() -> None:
    """`chat_status_spelling` accepts what a cell accepts and nothing else."""
    assert chat_status_spelling("On-Hold") == "on hold"
    assert chat_status_spelling("archived") is None


def test_problems_join_each_rows_codes_and_messages_in_order() -> None:
    """Codes join with "; " and messages with " | ", in the order added; a row without a
    problem stays ""; a per-row text array goes to the rows of its mask in order."""
    problems = ProblemColumns(3)
    problems.add(np.array([True, False, True]), "a", np.array(["m0", "m2"], dtype=object))
    problems.add(np.array([True, False, False]), "b", "n")
    codes, messages = problems.joined()
    assert codes.tolist() == ["a; b", "", "a"]
    assert messages.tolist() == ["m0 | n", "", "m2"]


def test_duplicates_fold_case_only_where_asked_and_skip_rows_left_out() -> None:
    """A row repeats an earlier one when every id and text matches (names ignoring case,
    other texts exactly); rows outside `among` neither repeat nor are repeated."""
    index = pd.RangeIndex(5)
    ids = pd.DataFrame({"customer": pd.array([1, 1, 1, 1, 1], dtype="Int64")}, index=index)
    name = pd.Series(["Ann", "ANN", "ann", "Bob", "ann"], index=index, dtype=object)
    text = pd.Series(["hi", "hi", "Hi", "hi", "hi"], index=index, dtype=object)
    among = np.array([True, True, True, True, False])
    repeated = duplicates(ids, [(name, True), (text, False)], among=among)
    assert repeated.tolist() == [False, True, False, False, False]
