"""The results workbook's cells: every kind of input value comes back from the workbook
as the same value with the number format a spreadsheet gives it, and what a cell cannot
hold is written honestly and said, never dropped or cut silently."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from openpyxl.worksheet.worksheet import Worksheet

from bulk_chats.checks.new_chats import validate_sheet
from bulk_chats.records import Status
from bulk_chats.results.csv_file import CHUNK_ROWS
from bulk_chats.results.table import build_results
from bulk_chats.results.workbook import MAX_TEXT, STATUS_COLOURS, Summary, write_results
from bulk_chats.sheet.loading import load_sheet

SUMMARY = Summary(input_path=Path("in.xlsx"), mode="validate")


def results_frame(**columns: list[object]) -> pd.DataFrame:
    """A results frame whose echoed input columns are `columns`, every row valid."""
    rows = len(next(iter(columns.values())))
    parts: dict[str, pd.Series] = {"source_row": pd.Series(range(2, rows + 2))}
    parts |= {label: pd.Series(values, dtype=object) for label, values in columns.items()}
    blank_ids = pd.Series([pd.NA] * rows, dtype="Int64")
    parts |= {
        "status": pd.Series(["valid"] * rows, dtype=object),
        "chat_id": blank_ids,
        "error_code": pd.Series([""] * rows, dtype=object),
        "error_message": pd.Series([""] * rows, dtype=object),
        "http_status": blank_ids,
        "attempts": blank_ids,
    }
    return pd.DataFrame(parts)


def written(tmp_path: Path, frame: pd.DataFrame, sheet: str = "results") -> Worksheet:
    """`frame` written as a results workbook and read back with openpyxl."""
    out = write_results(frame, tmp_path / "out.xlsx", SUMMARY)
    return openpyxl.load_workbook(out)[sheet]


def column(sheet: Worksheet, label: str) -> list[openpyxl.cell.Cell]:
    """The data cells under the header `label`."""
    header = [cell.value for cell in sheet[1]]
    return [row[header.index(label)] for row in sheet.iter_rows(min_row=2)]


# --- every kind of cell ------------------------------------------------------------------

WORKBOOK_CELLS = {
    "date": (dt.date(2026, 11, 25), dt.datetime(2026, 11, 25), "yyyy-mm-dd"),
    "time": (dt.time(9, 30), dt.time(9, 30), "hh:mm:ss"),
    "datetime": (
        dt.datetime(2026, 11, 25, 14, 12, 5),
        dt.datetime(2026, 11, 25, 14, 12, 5),
        "yyyy-mm-dd hh:mm:ss",
    ),
    "duration": (dt.timedelta(hours=30, minutes=5), dt.timedelta(hours=30, minutes=5), "[h]:mm:ss"),
    "flag": (True, True, "General"),
    "amount": (1.5, 1.5, "General"),
    "formula": ("=1+1", "=1+1", "General"),
    "note": ("plain", "plain", "General"),
}
"""Header → (the value put in the input workbook, the value openpyxl reads back from the
results — it reads a date cell as a datetime at midnight —, the number format)."""


def test_every_kind_of_workbook_cell_comes_back(tmp_path: Path) -> None:
    """A date, a time, a datetime, a duration, a boolean, a float and text (formula-like
    too) of an input workbook come back from the results as the same values, formatted as
    a spreadsheet formats them, and read in again as the input read."""
    book = openpyxl.Workbook()
    ws = book.active
    assert ws is not None
    ws.append(["customer", "application", *WORKBOOK_CELLS])
    ws.append([4188, 2, *(given for given, _, _ in WORKBOOK_CELLS.values())])
    ws["I2"].data_type = "s"  # "=1+1" as text, not a formula.
    ws["F2"].number_format = "[h]:mm:ss"
    book.save(tmp_path / "in.xlsx")
    sheet = load_sheet(tmp_path / "in.xlsx")
    results = build_results(sheet, validate_sheet(sheet), {})

    out = written(tmp_path, results)
    for label, (_, read_back, number_format) in WORKBOOK_CELLS.items():
        (cell,) = column(out, label)
        assert (label, cell.value, cell.number_format) == (label, read_back, number_format)
        assert cell.data_type != "f"
    back = load_sheet(tmp_path / "out.xlsx")
    assert back.cells[back.echoed].values.tolist() == sheet.cells.values.tolist()


@pytest.mark.parametrize("number", [1.5, 0.1, -2.5e-7, 123456.789, 4188.0, 2.0**53, -0.0])
def test_floats_come_back_exact(tmp_path: Path, number: float) -> None:
    """A float a person types (up to 15 significant digits), and every whole float up to
    2**53 (ids), comes back as the same float, a number cell."""
    (cell,) = column(written(tmp_path, results_frame(amount=[number])), "amount")
    assert (cell.value, cell.data_type) == (number, "n")


def test_integers_beyond_15_digits_are_text(tmp_path: Path) -> None:
    """Integers of up to 15 digits are numbers; longer ones (Python or numpy) are text,
    which Excel would otherwise round."""
    values: list[object] = [10**15 - 1, 10**15, -(10**15), np.int64(12345678901234567), 7]
    cells = column(written(tmp_path, results_frame(id=values)), "id")
    assert [(c.value, c.data_type) for c in cells] == [
        (10**15 - 1, "n"),
        ("1000000000000000", "s"),
        ("-1000000000000000", "s"),
        ("12345678901234567", "s"),
        (7, "n"),
    ]


def test_infinity_is_text_and_nan_is_blank(tmp_path: Path) -> None:
    """A workbook has no cell for infinity: it is written as the text it reads as, not as
    a made-up error; NaN is pandas' blank and stays blank; numpy floats are numbers."""
    values: list[object] = [math.inf, -math.inf, math.nan, 2.5, np.float64(0.25), np.inf]
    cells = column(written(tmp_path, results_frame(x=values)), "x")
    assert [(c.value, c.data_type) for c in cells] == [
        ("inf", "s"),
        ("-inf", "s"),
        (None, "n"),
        (2.5, "n"),
        (0.25, "n"),
        ("inf", "s"),
    ]


def test_dates_a_workbook_cannot_hold(tmp_path: Path) -> None:
    """A date before 1900 (no workbook date) is written as its ISO text; a datetime with a
    time zone keeps its wall-clock time."""
    values: list[object] = [
        dt.date(1899, 12, 31),
        dt.datetime(2026, 11, 25, 14, 12, 5, tzinfo=dt.UTC),
        pd.Timestamp("2026-11-25 09:30"),
    ]
    cells = column(written(tmp_path, results_frame(when=values)), "when")
    assert [(c.value, c.number_format) for c in cells] == [
        ("1899-12-31", "General"),
        (dt.datetime(2026, 11, 25, 14, 12, 5), "yyyy-mm-dd hh:mm:ss"),
        (dt.datetime(2026, 11, 25, 9, 30), "yyyy-mm-dd hh:mm:ss"),
    ]


FORMULA_LIKE = ["=1+1", "+1", "-1", "@SUM(A1)", '=HYPERLINK("http://x")', "{=A1}"]


def test_formula_like_text_stays_text(tmp_path: Path) -> None:
    """Text that looks like a formula, a link or a number is written as that text."""
    texts = [*FORMULA_LIKE, "http://example.com", "00123", "1e5"]
    cells = column(written(tmp_path, results_frame(text=texts)), "text")
    assert [(c.value, c.data_type) for c in cells] == [(t, "s") for t in texts]


TEXTS = ["a\x01b", "_x0041_", "cr\r\nlf", "tab\tnew\nline", "  spaced  ", "<&>\"'", "😀", "é"]


def test_text_comes_back_as_itself(tmp_path: Path) -> None:
    """Control characters, text that reads like an escape, markup characters, surrounding
    spaces and characters beyond the BMP come back unchanged through the loader."""
    frame = results_frame(
        customer=["1"] * len(TEXTS), application=["2"] * len(TEXTS), text=list(TEXTS)
    )
    write_results(frame, tmp_path / "out.xlsx", SUMMARY)
    back = load_sheet(tmp_path / "out.xlsx")
    assert back.cells[back.headers.index("text")].tolist() == TEXTS


RUN_LIKE = [
    "<r>x</r>",
    "<r><t>bold</t></r>",
    '<r><t>a</t></r></is></c><c r="Z2"><f>1+1</f></c><c r="Z3" t="inlineStr"><is><r><t>b</t></r>',
    "<r></r>",
]


def test_text_that_reads_as_a_run_of_markup_comes_back_as_itself(tmp_path: Path) -> None:
    """xlsxwriter takes a text that starts with `<r>` and ends with `</r>` for the markup of
    a rich string and would put it in the sheet unescaped: the text would be lost, or
    would write cells (a formula) of its own. Such a text, in a cell or a header, is
    written as the text it is."""
    frame = results_frame(
        customer=["1"] * len(RUN_LIKE), application=["2"] * len(RUN_LIKE), text=RUN_LIKE
    )
    frame = frame.rename(columns={"text": "<r>header</r>"})
    write_results(frame, tmp_path / "out.xlsx", SUMMARY)
    back = load_sheet(tmp_path / "out.xlsx")
    assert back.headers[3] == "<r>header</r>"
    assert back.cells[3].tolist() == RUN_LIKE
    sheet = openpyxl.load_workbook(tmp_path / "out.xlsx")["results"]
    assert [c.value for c in column(sheet, "<r>header</r>")] == RUN_LIKE
    assert sheet.max_column == frame.shape[1]
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)


def test_a_control_character_in_text_read_as_markup_comes_back_escaped(tmp_path: Path) -> None:
    """The one thing such a text loses: xlsxwriter escapes the text of a rich string twice,
    so a control character in it comes back as its `_xHHHH_` escape (the rest intact)."""
    frame = results_frame(customer=["1"], application=["2"], text=["<r>a\x01b</r>"])
    write_results(frame, tmp_path / "out.xlsx", SUMMARY)
    back = load_sheet(tmp_path / "out.xlsx")
    assert back.cells[3].tolist() == ["<r>a_x0001_b</r>"]


# --- what a cell cannot hold -------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["x" * 40_000, "😀" * 20_000, "<r>" + "😀" * 20_000 + "</r>"],
    ids=["ascii", "emoji", "markup-like"],
)
def test_over_long_text_is_cut_and_said(tmp_path: Path, text: str) -> None:
    """Text longer than a cell holds (counted in UTF-16 units, as Excel counts) is cut to
    the limit, and the row's error_message and the summary say so; CSV keeps it whole."""
    frame = results_frame(note=[text, "short"])
    frame.loc[0, "error_message"] = "earlier message"
    sheet = written(tmp_path, frame)
    (cut, short) = column(sheet, "note")
    assert text.startswith(cut.value)
    assert len(cut.value.encode("utf-16-le")) // 2 in (MAX_TEXT, MAX_TEXT - 1)
    assert short.value == "short"
    messages = [c.value for c in column(sheet, "error_message")]
    assert messages[0] == (
        "earlier message | cut to the 32,767 characters a workbook cell holds: "
        "note (column B); --out NAME.csv keeps the whole text"
    )
    assert messages[1] is None
    summary = dict(openpyxl.load_workbook(tmp_path / "out.xlsx")["summary"].values)
    assert summary["cells cut"] == 1

    out = write_results(frame, tmp_path / "out.csv", SUMMARY)
    assert text in out.read_text(encoding="utf-8-sig")


def test_an_over_long_header_is_cut_and_counted(tmp_path: Path) -> None:
    """A header longer than a cell holds is cut and counted in the summary's "cells cut"."""
    header = "h" * 40_000
    sheet = written(tmp_path, results_frame(**{header: ["short"]}))
    assert sheet.cell(1, 2).value == header[:MAX_TEXT]
    summary = dict(openpyxl.load_workbook(tmp_path / "out.xlsx")["summary"].values)
    assert summary["cells cut"] == 1


def test_nothing_cut_nothing_said(tmp_path: Path) -> None:
    """A workbook with no over-long cell has no "cells cut" line in its summary."""
    written(tmp_path, results_frame(note=["x" * MAX_TEXT]))
    summary = dict(openpyxl.load_workbook(tmp_path / "out.xlsx")["summary"].values)
    assert "cells cut" not in summary


# --- styling -----------------------------------------------------------------------------


def test_header_and_status_styles(tmp_path: Path) -> None:
    """The header is bold on grey with a bottom border; each status cell has its colour;
    columns are as wide as their first values (8 to 60 characters)."""
    statuses = [status.value for status in STATUS_COLOURS]
    frame = results_frame(note=["x" * 100] + [""] * (len(statuses) - 1))
    frame["status"] = statuses
    sheet = written(tmp_path, frame)
    header = sheet["A1"]
    assert (header.font.b, header.fill.fgColor.rgb, header.border.bottom.style) == (
        True,
        "FFD9D9D9",
        "thin",
    )
    fills = [c.fill.fgColor.rgb for c in column(sheet, "status")]
    assert fills == ["FF" + STATUS_COLOURS[Status(s)].lstrip("#") for s in statuses]
    assert sheet.column_dimensions["A"].width == pytest.approx(12.7, abs=1)
    assert sheet.column_dimensions["B"].width == pytest.approx(60.7, abs=1)


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_writing_says_how_far_it_is(tmp_path: Path, suffix: str) -> None:
    """`written` hears the rows written after each chunk, rising to all of them, for a
    workbook and for CSV alike."""
    rows = CHUNK_ROWS + 10
    heard: list[tuple[int, int]] = []
    frame = results_frame(note=[f"row {n}" for n in range(rows)])
    write_results(frame, tmp_path / f"out{suffix}", SUMMARY, written=lambda *n: heard.append(n))
    assert heard == [(CHUNK_ROWS, rows), (rows, rows)]


def test_the_summary_names_the_input_as_its_user_knows_it(tmp_path: Path) -> None:
    """A summary with an input name (the page's upload) shows that name, not the path the
    file was stored under."""
    summary = Summary(Path("reports/uploads/1-ab/march.csv"), "validate", input_name="march.csv")
    out = write_results(results_frame(note=["x"]), tmp_path / "out.xlsx", summary)
    sheet = openpyxl.load_workbook(out)["summary"]
    assert [sheet["A1"].value, sheet["B1"].value] == ["input", "march.csv"]
