"""The results as CSV: the hand-written writer says exactly what the csv module says."""

from __future__ import annotations

import codecs
import csv
import io

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulk_chats.results.csv_file import write_csv

CELLS = st.one_of(
    st.text(),
    st.sampled_from(["", ",", '"', "\r\n", "\n", "a,b", 'say "hi"', "=1+1", " x "]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.none(),
)
"""Text of any kind (commas, quotes, line breaks, any script), whole numbers, blanks."""


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[object]]]:
    width = draw(st.integers(min_value=1, max_value=5))
    labels = draw(st.lists(st.text(), min_size=width, max_size=width))
    rows = draw(st.lists(st.lists(CELLS, min_size=width, max_size=width), max_size=20))
    return labels, rows


@settings(max_examples=300, deadline=None)
@given(tables())
def test_the_csv_writer_writes_what_the_csv_module_writes(
    tmp_path_factory: pytest.TempPathFactory, table: tuple[list[str], list[list[object]]]
) -> None:
    """On any cells, `write_csv` gives byte for byte what `csv.writer` gives (after the
    BOM): the same quoting, the same line ends, a blank alone on its line as `""`."""
    labels, rows = table
    frame = pd.DataFrame(rows, columns=range(len(labels)), dtype=object)
    frame.columns = labels
    path = tmp_path_factory.mktemp("csv") / "out.csv"
    write_csv(frame, path)
    expected = io.StringIO(newline="")
    writer = csv.writer(expected, lineterminator="\r\n")
    writer.writerow(labels)
    writer.writerows([["" if cell is None else cell for cell in row] for row in rows])
    written = path.read_bytes()
    assert written.startswith(codecs.BOM_UTF8)
    assert written[len(codecs.BOM_UTF8) :].decode("utf-8") == expected.getvalue()
