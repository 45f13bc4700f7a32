"""Validation: every accepted and rejected spelling of an id, multi-error rows,
duplicates, first-message checks, and the never-raises property of `parse_ids`."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bulk_chats.checks.ids import parse_ids
from bulk_chats.checks.new_chats import Validation, validate_sheet
from bulk_chats.sheet.loading import Sheet, field_for_header, load_sheet

BIG_ID = 90071992547409931


def sheet_of(headers: Sequence[str], *rows: Sequence[object]) -> Sheet:
    """A sheet as the loader would make it, with cells of exactly the given types."""
    fields: dict[str, int] = {}
    for position, header in enumerate(headers):
        found = field_for_header(header)
        if found is not None:
            fields[found] = position
    return Sheet(
        path=Path("rows.csv"),
        headers=list(headers),
        cells=pd.DataFrame([list(row) for row in rows], dtype=object),
        source_rows=list(range(2, len(rows) + 2)),
        fields=fields,
        echoed=list(range(len(headers))),
    )


def validate(headers: Sequence[str], *rows: Sequence[object]) -> Validation:
    return validate_sheet(sheet_of(headers, *rows))


def only_row(validation: Validation) -> tuple[str, str, str]:
    """(status, error_code, error_message) of a one-row sheet."""
    return (
        validation.status.iat[0],
        validation.error_code.iat[0],
        validation.error_message.iat[0],
    )


# --- one value at a time ---------------------------------------------------------------

REJECTED: list[tuple[object, str, str]] = [
    # value, error code, what the message says after "customer: "
    ("", "missing_customer", "is blank; every row needs a customer id"),
    ("   ", "missing_customer", "is blank"),
    ("abc", "invalid_customer", "'abc' is a name or text, not an id"),
    ("12.5", "invalid_customer", "'12.5' is not a whole number; an id has no fraction"),
    (12.5, "invalid_customer", "'12.5' is not a whole number; an id has no fraction"),
    ("-3", "invalid_customer", "'-3' is not positive"),
    (-3.0, "invalid_customer", "'-3' is not positive"),
    (-3, "invalid_customer", "'-3' is not positive"),
    ("0", "invalid_customer", "'0' is not positive"),
    ("000", "invalid_customer", "'000' is not positive"),
    (0.0, "invalid_customer", "'0' is not positive"),
    ("4,188", "invalid_customer", "'4,188' is not a whole number; remove the separator"),
    ("4.188.000", "invalid_customer", "remove the separator"),
    ("4 188", "invalid_customer", "remove the separator"),
    ("TRUE", "invalid_customer", "'TRUE' is a true/false value, not an id"),
    (True, "invalid_customer", "'TRUE' is a true/false value, not an id"),
    (False, "invalid_customer", "'FALSE' is a true/false value, not an id"),
    ("2024-01-05", "invalid_customer", "'2024-01-05' is a date, not an id"),
    ("05/01/2024", "invalid_customer", "'05/01/2024' is a date, not an id"),
    (dt.date(2024, 1, 5), "invalid_customer", "'2024-01-05' is a date, not an id"),
    (dt.datetime(2024, 1, 5, 9, 30), "invalid_customer", "'2024-01-05T09:30:00' is a date"),
    (dt.time(9, 30), "invalid_customer", "'09:30:00' is a time, not an id"),
    ("١٢٣", "invalid_customer", "'١٢٣' uses non-ASCII digits; type the id with the digits 0-9"),
    ("１２３", "invalid_customer", "uses non-ASCII digits"),
    (float(2**53 + 2), "invalid_customer", "'9007199254740994' is a number cell above 2^53"),
    (2**53 + 1, "invalid_customer", "'9007199254740993' is a number cell above 2^53"),
    (9.2e18, "invalid_customer", "is a number cell above 2^53"),
    ("4188.0", "invalid_customer", "'4188.0' is not a whole number; write the id without the"),
    ("1234567890123456789", "invalid_customer", "is too large for an id (19 digits)"),
    ("1e5", "invalid_customer", "'1e5' is in scientific notation"),
    ("9.0072E+16", "invalid_customer", "is in scientific notation"),
    ("+5", "invalid_customer", "'+5' has a sign; write the digits only"),
    (math.nan, "invalid_customer", "'nan' is not a number"),
    (math.inf, "invalid_customer", "'inf' is not a number"),
]


@pytest.mark.parametrize(("value", "code", "says"), REJECTED)
def test_rejected_customer(value: object, code: str, says: str) -> None:
    """Each rejected spelling gets its code and a message naming the field, quoting the
    value and stating the rule."""
    status, error_code, message = only_row(validate(["customer", "application"], [value, "7"]))
    assert (status, error_code) == ("invalid", code)
    assert message.startswith("customer: ")
    assert says in message


def test_blank_application() -> None:
    """A blank application is `missing_application`: it is always required."""
    status, code, message = only_row(validate(["customer", "application"], ["1", ""]))
    assert (status, code) == ("invalid", "missing_application")
    assert message == "application: is blank; every row needs an application id"


@pytest.mark.parametrize("field", ["assignee", "department"])
def test_optional_fields_may_be_blank(field: str) -> None:
    """A blank assignee or department is no error; it is left out of the chat."""
    validation = validate(["customer", "application", field], ["1", "2", " "])
    assert only_row(validation) == ("valid", "", "")
    assert validation.ids[field].iat[0] is pd.NA


@pytest.mark.parametrize("field", ["application", "assignee", "department"])
def test_every_id_field_is_checked(field: str) -> None:
    """Each id field is checked by the same rules, with its own code and name."""
    row = {"customer": "1", "application": "2", field: "4,188"}
    status, code, message = only_row(validate(list(row), list(row.values())))
    assert (status, code) == ("invalid", f"invalid_{field}")
    assert message == f"{field}: '4,188' is not a whole number; remove the separator"


ACCEPTED: list[tuple[object, int]] = [
    (4188.0, 4188),
    (4188, 4188),
    (np.int64(4188), 4188),
    (np.float64(4188.0), 4188),
    ("4188", 4188),
    (" 4188 ", 4188),
    ("\t4188\n", 4188),
    ("00042", 42),
    (str(BIG_ID), BIG_ID),
    (f" {BIG_ID} ", BIG_ID),
    ("999999999999999999", 999_999_999_999_999_999),
    (float(2**53), 2**53),
    (2**53, 2**53),
]


@pytest.mark.parametrize(("value", "expected"), ACCEPTED)
def test_accepted_customer(value: object, expected: int) -> None:
    """Int cells, whole float cells up to 2**53 and ASCII digit text give the exact id."""
    validation = validate(["customer", "application"], [value, "7"])
    assert only_row(validation) == ("valid", "", "")
    parsed = validation.ids["customer"].iat[0]
    assert parsed == expected
    assert str(validation.ids["customer"].dtype) == "Int64"


def test_cell_types_from_a_workbook(tmp_path: Path) -> None:
    """Bool, date and big number cells of a real workbook are rejected; a whole number
    cell is accepted."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["customer", "application"])
    for value in (True, dt.datetime(2024, 1, 5), 2**53 + 2, 4188, "4188.0"):
        sheet.append([value, 7])
    book.save(tmp_path / "cells.xlsx")
    validation = validate_sheet(load_sheet(tmp_path / "cells.xlsx"))
    assert validation.status.tolist() == ["invalid"] * 3 + ["valid", "invalid"]
    assert validation.ids["customer"].iat[3] == 4188
    messages = validation.error_message.tolist()
    assert "true/false" in messages[0]
    assert "is a date" in messages[1]
    assert "above 2^53" in messages[2]
    assert "decimal point" in messages[4]


# --- several problems, several rows ----------------------------------------------------


def test_all_problems_of_a_row_are_reported() -> None:
    """A row with several problems gets every code, joined with "; ", and every message."""
    validation = validate(
        ["customer", "application", "assignee", "department"], ["abc", "", "-3", "1.5"]
    )
    status, code, message = only_row(validation)
    assert status == "invalid"
    assert sorted(code.split("; ")) == [
        "invalid_assignee",
        "invalid_customer",
        "invalid_department",
        "missing_application",
    ]
    parts = message.split(" | ")
    assert len(parts) == 4
    assert {part.split(":")[0] for part in parts} == {
        "customer",
        "application",
        "assignee",
        "department",
    }


def test_second_identical_row_is_duplicate() -> None:
    """A row repeating an earlier row's chat fields is `duplicate`; the first stays valid."""
    validation = validate(
        ["customer", "application", "note"], ["1", "2", "a"], ["1", "2", "b"], ["1", "3", "c"]
    )
    assert validation.status.tolist() == ["valid", "duplicate", "valid"]
    assert validation.error_code.tolist() == ["", "duplicate", ""]
    assert "repeats an earlier row" in validation.error_message.iat[1]


def test_duplicate_compares_ids_not_spellings() -> None:
    """`1`, ` 1 ` and a 1.0 number cell are one id, so their rows are duplicates."""
    validation = validate(["customer", "application"], ["1", "2"], [" 1 ", 2.0], [1.0, "2"])
    assert validation.status.tolist() == ["valid", "duplicate", "duplicate"]


def test_duplicate_includes_the_message() -> None:
    """Two rows for one chat with different first messages are not duplicates."""
    validation = validate(
        ["customer", "application", "message"],
        ["1", "2", "hi"],
        ["1", "2", "bye"],
        ["1", "2", "hi"],
    )
    assert validation.status.tolist() == ["valid", "valid", "duplicate"]


def test_valid_row_is_no_duplicate_of_an_invalid_one() -> None:
    """A valid row is not a repeat of an earlier invalid row that differs only in its bad
    cell (a bad id reads as blank)."""
    validation = validate(
        ["customer", "application", "assignee"], ["1", "2", "abc"], ["1", "2", ""], ["1", "2", ""]
    )
    assert validation.status.tolist() == ["invalid", "valid", "duplicate"]


def test_invalid_rows_are_not_duplicates() -> None:
    """Identical invalid rows are each `invalid`, with their own errors."""
    validation = validate(["customer", "application"], ["x", "2"], ["x", "2"])
    assert validation.status.tolist() == ["invalid", "invalid"]
    assert validation.error_code.tolist() == ["invalid_customer", "invalid_customer"]


def test_row_with_a_chat_id_from_an_earlier_run_is_already_created() -> None:
    """A results workbook's row that has a chat_id is `already_created`, not sent again."""
    sheet = sheet_of(
        ["source_row", "customer", "application", "status", "chat_id"],
        [2, "1", "2", "created", "555"],
        [3, "4", "5", "failed", ""],
    )
    sheet = Sheet(
        path=sheet.path,
        headers=sheet.headers,
        cells=sheet.cells,
        source_rows=sheet.source_rows,
        fields={"customer": 1, "application": 2},
        fed_back={"source_row": 0, "status": 3, "chat_id": 4},
        echoed=[1, 2],
    )
    validation = validate_sheet(sheet)
    assert validation.status.tolist() == ["already_created", "valid"]
    assert validation.chat_id.tolist() == [555, pd.NA]


# --- first messages --------------------------------------------------------------------

MESSAGE_HEADERS = ["customer", "application", "message", "message_type", "message_agent"]


@pytest.mark.parametrize(
    ("text", "kind", "agent", "code", "says"),
    [
        ("hi", "note", "", "invalid_message_type", "message_type: 'note' is neither message"),
        ("hi", "Note", "5", "invalid_message_type", "message_type: 'Note' is neither"),
        ("hi", "private", "", "missing_message_agent", "a private note needs the agent"),
        ("", "private", "5", "missing_message", "message: is blank, but message_type"),
        ("", "message", "", "missing_message", "message: is blank"),
        ("", "", "5", "missing_message", "message: is blank"),
        ("hi", "", "abc", "invalid_message_agent", "message_agent: 'abc' is a name"),
    ],
)
def test_message_rejected(text: str, kind: str, agent: str, code: str, says: str) -> None:
    """message_type is message or private, a private note needs its agent, and a type or
    agent without text is a mistake."""
    status, error_code, message = only_row(validate(MESSAGE_HEADERS, ["1", "2", text, kind, agent]))
    assert (status, error_code) == ("invalid", code)
    assert says in message


@pytest.mark.parametrize(
    ("text", "kind", "agent", "expected_type"),
    [
        ("hi", "", "", "message"),
        ("hi", "message", "", "message"),
        ("hi", "", "5", "message"),
        ("hi", "PRIVATE", "5", "private"),
        (" hi ", "private ", 5.0, "private"),
        ("", "", "", ""),
    ],
)
def test_message_accepted(text: str, kind: str, agent: object, expected_type: str) -> None:
    """A message with no type is a plain message; the type is read case-insensitively."""
    validation = validate(MESSAGE_HEADERS, ["1", "2", text, kind, agent])
    assert only_row(validation) == ("valid", "", "")
    assert validation.message_type.iat[0] == expected_type
    assert validation.message.iat[0] == text.strip()


# --- names where ids belong ------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "field", "mapping"),
    [
        ("Agent", "assignee", "--column assignee_email=Agent"),
        ("assignee_id", "assignee", "--column assignee_email=assignee_id"),
        ("Customer", "customer", "--column customer_email=Customer"),
    ],
)
def test_email_in_an_id_column_names_the_mapping(header: str, field: str, mapping: str) -> None:
    """An email in an id column says so and names the `--column` that maps it by name."""
    headers = ["customer", "application"]
    row = ["1", "2"]
    if field == "customer":
        headers[0] = header
        row[0] = "ann@example.com"
    else:
        headers.append(header)
        row.append("ann@example.com")
    status, code, message = only_row(validate(headers, row))
    assert (status, code) == ("invalid", f"invalid_{field}")
    assert message == (
        f"{field}: 'ann@example.com' is an email address, not an id; to use names or emails "
        f"map the column with {mapping}"
    )


def test_email_name_columns_stand_in_for_ids() -> None:
    """A customer_email column stands in for the customer id; an email must look like one."""
    validation = validate(
        ["customer_email", "application", "assignee_email"],
        ["ann@example.com", "2", ""],
        ["", "2", "bob@example.com"],
        ["ann", "2", ""],
    )
    assert validation.status.tolist() == ["valid", "invalid", "invalid"]
    assert validation.error_code.tolist() == ["", "missing_customer", "invalid_customer_email"]
    assert validation.error_message.iat[2] == "customer_email: 'ann' is not an email address"


@pytest.mark.parametrize("value", ["ann@example", "ann@@example.com", "ann smith@example.com"])
def test_a_customer_email_must_be_a_plausible_address(value: str) -> None:
    """A customer email may become a new customer's: `local@domain.tld`, no spaces."""
    status, code, message = only_row(validate(["customer_email", "application"], [value, "2"]))
    assert (status, code) == ("invalid", "invalid_customer_email")
    assert message == f"customer_email: '{value}' is not an email address"


def test_customer_text_columns_are_read_as_text() -> None:
    """Name, company and phone (by their aliases too) are text; a phone number cell reads
    as its digits; a date or TRUE is no name."""
    validation = validate(
        ["customer_email", "application", "Full name", "Company", "Phone"],
        ["ann@example.com", "2", " Ann Lee ", "Acme", 4930123456.0],
        ["bob@example.com", "2", dt.date(2024, 1, 2), True, ""],
    )
    assert validation.profile.iloc[0].tolist() == ["Ann Lee", "Acme", "4930123456"]
    assert validation.status.tolist() == ["valid", "invalid"]
    assert validation.error_code.iat[1] == "invalid_customer_name; invalid_company"
    assert validation.error_message.iat[1] == (
        "customer_name: '2024-01-02' is not text | company: 'True' is not text"
    )


def test_counts() -> None:
    """`counts` gives rows by status."""
    validation = validate(["customer", "application"], ["1", "2"], ["1", "2"], ["x", "2"])
    assert validation.counts() == {"valid": 1, "duplicate": 1, "invalid": 1}


# --- the property ----------------------------------------------------------------------

_DIGITS = re.compile(r"[0-9]+")


def expected_id(value: object) -> int | str | None:
    """What a cell should give, worked out apart from the code under test:
    an int, "blank", or None for a rejection."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return "blank"
        if _DIGITS.fullmatch(text) and len(text) <= 18 and int(text) > 0:
            return int(text)
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value <= 2**53 else None
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and 0 < value <= 2**53:
            return int(value)
        return None
    return None


cells = st.one_of(
    st.text(),
    st.from_regex(r"\s*[0-9]{1,20}\s*", fullmatch=True),
    st.from_regex(r"[0-9,.\-+eE ]{1,12}", fullmatch=True),
    st.integers(),
    st.integers(min_value=2**53 - 3, max_value=2**53 + 3),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),
    st.floats(min_value=2**53 - 4, max_value=2**53 + 4),
    st.integers(min_value=-5, max_value=2**54).map(float),
    st.booleans(),
    st.dates(),
    st.datetimes(),
    st.none(),
)


@given(st.lists(cells, min_size=1, max_size=6))
@example([2**53 + 1, 1.5])
@example([2**53 + 1, 3.0, "4"])
@example([10**400])
@example(["0" * 5000, "1" * 5000])
@example([" ١٢٣ ", "\u00a042\u2003"])
def test_parse_ids_is_exact_or_explains(values: list[object]) -> None:
    """Any cell either gives exactly the positive id it spells, or is rejected with a
    message; blank text is <NA> with no error; nothing raises."""
    parsed = parse_ids(pd.Series(values, dtype=object), "customer", header="Customer")
    for i, value in enumerate(values):
        expected = expected_id(value)
        got = parsed.ids.iat[i]
        if expected == "blank":
            assert got is pd.NA
            assert (parsed.code.iat[i], parsed.message.iat[i]) == ("", "")
        elif expected is None:
            assert got is pd.NA
            assert parsed.code.iat[i] == "invalid_customer"
            assert parsed.message.iat[i].startswith("customer: ")
        else:
            assert got == expected
            assert int(got) == expected
            assert parsed.code.iat[i] == ""
    assert str(parsed.ids.dtype) == "Int64"
