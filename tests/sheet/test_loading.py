"""Reading CSV and Excel files into a `Sheet`: delimiters, encodings, sheets, headers."""

from __future__ import annotations

import codecs
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from bulk_chats.checks.new_chats import validate_sheet
from bulk_chats.errors import InputError
from bulk_chats.sheet.loading import Sheet, load_sheet

DATA = Path(__file__).parents[1] / "data"
BIG_ID = 90071992547409931
"""17 digits, above 2**53: a float would turn it into 90071992547409932."""


def write_xlsx(
    path: Path,
    rows: Sequence[Sequence[object]],
    *,
    title: str = "Sheet1",
    more: dict[str, Sequence[Sequence[object]]] | None = None,
) -> Path:
    """A workbook whose first sheet holds `rows` (None leaves a cell empty)."""
    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    first.title = title
    sheets = {first: rows}
    for name, more_rows in (more or {}).items():
        sheets[book.create_sheet(name)] = more_rows
    for sheet, sheet_rows in sheets.items():
        for r, row in enumerate(sheet_rows, start=1):
            for c, value in enumerate(row, start=1):
                if value is not None:
                    sheet.cell(row=r, column=c, value=value)
    book.save(path)
    return path


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def ids(sheet: Sheet, field: str) -> list[object]:
    """The parsed ids of one field, <NA> as None."""
    column = validate_sheet(sheet).ids[field]
    return [None if v is pd.NA else v for v in column.tolist()]


def echoed(sheet: Sheet) -> list[dict[str, object]]:
    """The echoed cells, row by row, keyed by header."""
    return [
        {sheet.headers[i]: sheet.cells.iat[row, i] for i in sheet.echoed}
        for row in range(len(sheet))
    ]


# --- delimiters and encodings ----------------------------------------------------------


@pytest.mark.parametrize("name", ["comma.csv", "semicolon.csv", "tab.csv"])
def test_delimiter_is_detected(name: str) -> None:
    """`,` `;` and tab are all detected, even with the other two inside cells."""
    sheet = load_sheet(DATA / name)
    assert list(sheet.fields) == ["customer", "application", "assignee", "department"]
    assert len(sheet.headers) == 5
    assert ids(sheet, "customer") == [11, 12]
    assert ids(sheet, "application") == [21, 22]
    assert ids(sheet, "assignee") == [31, None]
    assert ids(sheet, "department") == [41, None]


def test_semicolon_cells_keep_their_commas() -> None:
    """A `;` file's cells with commas in them stay whole."""
    sheet = load_sheet(DATA / "semicolon.csv")
    assert [row["Note"] for row in echoed(sheet)] == ["Größe 1,5", "zwei, drei"]


def test_utf8_with_bom() -> None:
    """A UTF-8 BOM is not part of the first header, which still matches its field."""
    sheet = load_sheet(DATA / "bom.csv")
    assert sheet.headers == ["Customer ID", "Application ID", "Note"]
    assert sheet.fields == {"customer": 0, "application": 1}
    assert [row["Note"] for row in echoed(sheet)] == ["Zoë", "€ 5"]


def test_utf8_without_bom() -> None:
    """UTF-8 without a BOM reads its non-ASCII text exactly."""
    sheet = load_sheet(DATA / "utf8.csv")
    assert [row["note"] for row in echoed(sheet)] == ["Zoë", "€ 5"]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_with_bom_as_excel_exports_unicode_text(tmp_path: Path, encoding: str) -> None:
    """UTF-16 with a byte order mark (Excel's "Unicode text"), tab-separated, reads exactly."""
    text = "Customer ID\tApp\tNote\n90071992547409931\t3838\tZoë\n"
    bom = codecs.BOM_UTF16_LE if encoding.endswith("le") else codecs.BOM_UTF16_BE
    path = tmp_path / "unicode.csv"
    path.write_bytes(bom + text.encode(encoding))
    sheet = load_sheet(path)
    assert sheet.fields == {"customer": 0, "application": 1}
    assert [row["Note"] for row in echoed(sheet)] == ["Zoë"]
    assert validate_sheet(sheet).ids["customer"].tolist() == [90071992547409931]


def test_cp1252() -> None:
    """A file in the Windows code page Excel writes (é, ü, ß, €) reads exactly."""
    sheet = load_sheet(DATA / "cp1252.csv")
    assert [(row["name"], row["price"]) for row in echoed(sheet)] == [
        ("Café Müller", "€ 5"),
        ("Jürgen Groß", "10 €"),
    ]
    assert ids(sheet, "customer") == [11, 12]


def test_leading_blank_lines() -> None:
    """Blank lines above the header are skipped; rows keep the numbers the file shows."""
    sheet = load_sheet(DATA / "leading-blank-lines.csv")
    assert sheet.headers == ["customer", "application"]
    assert sheet.source_rows == [4, 6]
    assert ids(sheet, "customer") == [1, 3]


def test_row_longer_than_header_keeps_its_cells() -> None:
    """A row with more cells than the header is read, the extra cell kept under a blank
    header; a short row is padded with blanks."""
    sheet = load_sheet(DATA / "ragged.csv")
    assert sheet.headers == ["customer", "application", ""]
    assert sheet.cells.values.tolist() == [["1", "2", "extra"], ["3", "", ""]]
    assert sheet.echoed == [0, 1, 2]


def test_unclosed_quote_is_an_input_error() -> None:
    """A quote left open is refused rather than swallowing the rows after it."""
    with pytest.raises(InputError, match=r"cannot parse as CSV \(line \d+"):
        load_sheet(DATA / "unclosed-quote.csv")


# --- workbooks and sheets --------------------------------------------------------------


@pytest.fixture
def two_sheets(tmp_path: Path) -> Path:
    return write_xlsx(
        tmp_path / "two-sheets.xlsx",
        [["customer", "application"], [1, 2]],
        title="First",
        more={"Second": [["agent", "customer", "app"], [5, 6, 7]]},
    )


def test_xlsx_reads_the_first_sheet(two_sheets: Path) -> None:
    """Without `sheet=`, a workbook's first sheet is read."""
    sheet = load_sheet(two_sheets)
    assert sheet.headers == ["customer", "application"]
    assert ids(sheet, "customer") == [1]


def test_xlsx_sheet_by_name(two_sheets: Path) -> None:
    """`sheet=NAME` (`--sheet NAME`) reads that sheet."""
    sheet = load_sheet(two_sheets, sheet="Second")
    assert sheet.fields == {"assignee": 0, "customer": 1, "application": 2}
    assert (ids(sheet, "assignee"), ids(sheet, "customer")) == ([5], [6])


def test_unknown_sheet_names_the_sheets(two_sheets: Path) -> None:
    """An unknown sheet name is an InputError that lists the sheets there are."""
    with pytest.raises(InputError, match=r"no sheet named 'Third'; the workbook has 'First', "):
        load_sheet(two_sheets, sheet="Third")


def test_sheet_option_on_csv_is_refused() -> None:
    """`sheet=` on a CSV file is an InputError, not silently ignored."""
    with pytest.raises(InputError, match="--sheet applies to workbooks"):
        load_sheet(DATA / "comma.csv", sheet="Sheet1")


def test_float_ids_xlsx(tmp_path: Path) -> None:
    """Number cells (`4188` is stored as 4188.0) give exact ints; the cell is echoed as is."""
    path = write_xlsx(
        tmp_path / "float-ids.xlsx",
        [["customer", "application", "assignee"], [4188.0, 2, 3.0], [2**53, 1.0, 7]],
    )
    sheet = load_sheet(path)
    assert ids(sheet, "customer") == [4188, 2**53]
    assert ids(sheet, "application") == [2, 1]
    assert ids(sheet, "assignee") == [3, 7]
    assert sheet.cells.iat[0, 0] == 4188.0


def test_text_ids_xlsx(tmp_path: Path) -> None:
    """Text cells of digits, with surrounding spaces or 17 digits long, give exact ints;
    the text is echoed untouched."""
    path = write_xlsx(
        tmp_path / "text-ids.xlsx",
        [["customer", "application"], [" 4188 ", "2"], [str(BIG_ID), "\t3 "]],
    )
    sheet = load_sheet(path)
    column = validate_sheet(sheet).ids["customer"]
    assert str(column.dtype) == "Int64"
    assert column.tolist() == [4188, BIG_ID]
    assert ids(sheet, "application") == [2, 3]
    assert sheet.cells[0].tolist() == [" 4188 ", str(BIG_ID)]


def test_int_column_with_blanks_xlsx(tmp_path: Path) -> None:
    """An int column with blank cells stays exact ints with <NA>, never floats."""
    path = write_xlsx(
        tmp_path / "int-column-with-blanks.xlsx",
        [["customer", "application", "assignee"], [1, 2, 5], [3, 4, None], [6, 7, 8]],
    )
    sheet = load_sheet(path)
    validation = validate_sheet(sheet)
    assert str(validation.ids["assignee"].dtype) == "Int64"
    assert ids(sheet, "assignee") == [5, None, 8]
    assert validation.status.tolist() == ["valid", "valid", "valid"]


def test_17_digit_id_csv() -> None:
    """A 17-digit id in a CSV, in a column that also has a blank, reaches validation exactly."""
    sheet = load_sheet(DATA / "big-ids.csv")
    validation = validate_sheet(sheet)
    assert str(validation.ids["customer"].dtype) == "Int64"
    assert validation.ids["customer"].tolist() == [BIG_ID, BIG_ID + 2]
    assert ids(sheet, "assignee") == [None, 123456789012345678]
    assert validation.status.tolist() == ["valid", "valid"]


def test_empty_rows_xlsx(tmp_path: Path) -> None:
    """Empty workbook rows, above and below the header, are skipped but counted."""
    path = write_xlsx(
        tmp_path / "empty-rows.xlsx",
        [[], ["customer", "application"], [1, 2], [], [None, None], [3, 4]],
    )
    sheet = load_sheet(path)
    assert sheet.source_rows == [3, 6]
    assert ids(sheet, "customer") == [1, 3]


def test_workbook_cells_keep_their_type(tmp_path: Path) -> None:
    """Workbook cells reach the sheet as text, number, bool or date, as the file holds them."""
    day = dt.datetime(2024, 1, 5, 0, 0)
    path = write_xlsx(
        tmp_path / "types.xlsx",
        [["customer", "application", "a", "b", "c"], [1, 2, "x", True, day]],
    )
    row = load_sheet(path).cells.iloc[0].tolist()
    assert row[2:4] == ["x", True]
    assert row[4] in (day, day.date())


# --- rows and columns ------------------------------------------------------------------


def test_empty_rows_ignored_and_counted() -> None:
    """Fully empty rows (nothing, only delimiters, only spaces) are ignored, and
    `source_rows` numbers rows as the spreadsheet shows them (header = 1)."""
    sheet = load_sheet(DATA / "empty-rows.csv")
    assert len(sheet) == 3
    assert sheet.source_rows == [2, 6, 8]
    assert [row["note"] for row in echoed(sheet)] == ["a", "b", "c"]


def test_other_columns_echoed_untouched(tmp_path: Path) -> None:
    """Columns that are not fields are kept, with their header and exact text."""
    path = write_text(
        tmp_path / "others.csv",
        "Customer ID,Notes,application,Zip\n 7 ,  keep  spaces ,2,00123\n8,=1+1,3,\n",
    )
    sheet = load_sheet(path)
    assert sheet.echoed == [0, 1, 2, 3]
    assert echoed(sheet) == [
        {"Customer ID": " 7 ", "Notes": "  keep  spaces ", "application": "2", "Zip": "00123"},
        {"Customer ID": "8", "Notes": "=1+1", "application": "3", "Zip": ""},
    ]


@pytest.mark.parametrize(
    "header",
    ["Customer ID", "customer-id", " CUSTOMER_ID ", "customer", "CUSTOMER", "Customer__Id"],
)
def test_header_normalisation(tmp_path: Path, header: str) -> None:
    """Headers match ignoring case and surrounding spaces, with spaces, hyphens and
    underscores alike."""
    sheet = load_sheet(write_text(tmp_path / "h.csv", f"{header},application\n5,6\n"))
    assert sheet.fields == {"customer": 0, "application": 1}
    assert sheet.headers[0] == header.strip()


@pytest.mark.parametrize(
    ("alias", "field"),
    [
        ("customer_id", "customer"),
        ("customerid", "customer"),
        ("application_id", "application"),
        ("app", "application"),
        ("app_id", "application"),
        ("assignee_id", "assignee"),
        ("agent", "assignee"),
        ("agent_id", "assignee"),
        ("department_id", "department"),
        ("dept", "department"),
    ],
)
def test_alias(tmp_path: Path, alias: str, field: str) -> None:
    """Every alias PRODUCT.md lists maps its header to its field."""
    headers = [alias, *(f for f in ("customer", "application") if f != field)]
    values = [str(9 - i) for i in range(len(headers))]
    path = write_text(tmp_path / "alias.csv", ",".join(headers) + "\n" + ",".join(values) + "\n")
    sheet = load_sheet(path)
    assert sheet.fields[field] == 0
    assert ids(sheet, field) == [9]


def test_columns_mapping(tmp_path: Path) -> None:
    """`columns=` (`--column FIELD=HEADER`) maps headers no alias covers, and wins over an
    alias the same header would match."""
    path = write_text(tmp_path / "mapped.csv", "Kunde,Produkt,Agent\n1,2,ann@example.com\n")
    sheet = load_sheet(
        path, columns={"customer": "Kunde", "application": "produkt", "assignee_email": "Agent"}
    )
    assert sheet.fields == {"customer": 0, "application": 1, "assignee_email": 2}
    assert validate_sheet(sheet).status.tolist() == ["valid"]


def test_a_field_mapped_to_no_header_is_read_from_no_column(tmp_path: Path) -> None:
    """`columns={"assignee": ""}` (`--column assignee=`): the column its header names is
    read as no field, and echoed as any other column."""
    path = write_text(tmp_path / "x.csv", "customer,application,Agent ID\n1,2,ann@example.com\n")
    sheet = load_sheet(path, columns={"assignee": ""})
    assert sheet.fields == {"customer": 0, "application": 1}
    assert sheet.echoed == [0, 1, 2]
    assert validate_sheet(sheet).status.tolist() == ["valid"]


def test_columns_unknown_field(tmp_path: Path) -> None:
    """`--column` with a field that does not exist is an InputError listing the fields."""
    path = write_text(tmp_path / "x.csv", "customer,application\n1,2\n")
    with pytest.raises(InputError, match=r"unknown field 'agent_mail'; fields are customer, "):
        load_sheet(path, columns={"agent_mail": "customer"})


def test_columns_unknown_header(tmp_path: Path) -> None:
    """`--column` naming a header the file lacks is an InputError listing the headers."""
    path = write_text(tmp_path / "x.csv", "customer,application\n1,2\n")
    with pytest.raises(
        InputError, match=r"no column headed 'Agent'; the headers are 'customer', 'application'"
    ):
        load_sheet(path, columns={"assignee": "Agent"})


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        ("customer,note\n1,x\n", "no application column"),
        ("application,note\n1,x\n", "no customer column"),
    ],
)
def test_missing_required_column(tmp_path: Path, text: str, missing: str) -> None:
    """A file without a customer or an application column is an InputError."""
    with pytest.raises(InputError, match=missing):
        load_sheet(write_text(tmp_path / "x.csv", text))


def test_two_columns_for_one_field(tmp_path: Path) -> None:
    """Two headers that both mean one field are an InputError naming both columns."""
    path = write_text(tmp_path / "x.csv", "customer_id,application,Customer\n1,2,3\n")
    with pytest.raises(
        InputError, match=r"two columns give customer: 'customer_id' \(column A\) and 'Customer'"
    ):
        load_sheet(path)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty.csv", "the file is empty"),
        ("blank-lines-only.csv", "the file is empty"),
        ("header-only.csv", "no data rows below the header"),
    ],
)
def test_no_data_rows_csv(name: str, message: str) -> None:
    """A CSV without data rows is an InputError."""
    with pytest.raises(InputError, match=message):
        load_sheet(DATA / name)


@pytest.mark.parametrize(
    ("rows", "message"),
    [([], "the sheet is empty"), ([["customer", "application"]], "no data rows below the header")],
)
def test_no_data_rows_xlsx(tmp_path: Path, rows: list[list[object]], message: str) -> None:
    """A workbook sheet without data rows is an InputError."""
    with pytest.raises(InputError, match=message):
        load_sheet(write_xlsx(tmp_path / "empty.xlsx", rows))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("x.pdf", b"%PDF", "unsupported file type '.pdf'"),
        ("x.xlsx", b"customer,application\n1,2\n", r"not a readable \.xlsx workbook"),
        ("x.csv", b"customer\x00application", "not a text file"),
    ],
)
def test_unreadable_file(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    """A file of the wrong kind is an InputError, not a traceback."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_sheet(path)


def test_missing_file(tmp_path: Path) -> None:
    """A path that does not exist is an InputError."""
    with pytest.raises(InputError, match="no such file"):
        load_sheet(tmp_path / "nope.csv")


# --- a results workbook read back ------------------------------------------------------


def test_results_columns_recognised(tmp_path: Path) -> None:
    """A results workbook's own columns become `previous`, not echoed input."""
    path = write_text(
        tmp_path / "march-results.csv",
        "source_row,customer,application,status,chat_id,error_code,attempts\n"
        "2,1,2,created,777,,1\n3,4,5,invalid,,invalid_customer,\n",
    )
    sheet = load_sheet(path)
    assert sheet.fed_back == {
        "source_row": 0,
        "status": 3,
        "chat_id": 4,
        "error_code": 5,
        "attempts": 6,
    }
    assert sheet.echoed == [1, 2]
    assert validate_sheet(sheet).chat_id.tolist() == [777, pd.NA]


@pytest.mark.parametrize("dropped", ["source_row", "status", "chat_id"])
def test_results_columns_need_all_three(tmp_path: Path, dropped: str) -> None:
    """Without all of source_row, status and chat_id the columns are plain input, echoed."""
    headers = [
        h for h in ("source_row", "customer", "application", "status", "chat_id") if h != dropped
    ]
    path = write_text(
        tmp_path / "x.csv", ",".join(headers) + "\n" + ",".join(["7"] * len(headers)) + "\n"
    )
    sheet = load_sheet(path)
    assert sheet.fed_back == {}
    assert sheet.echoed == list(range(len(headers)))
    assert validate_sheet(sheet).status.tolist() == ["valid"]
