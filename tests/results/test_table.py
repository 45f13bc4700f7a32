"""The results workbook: its columns, statuses, summary, safety of its cells, CSV form,
round trip back into the loader, atomic owner-only write, leftovers of a killed write, and
a default name that never names an existing file."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import time
from collections.abc import Mapping
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from bulk_chats.checks.new_chats import validate_sheet
from bulk_chats.errors import ReportError
from bulk_chats.jobs.validate import validate_file
from bulk_chats.records import Outcome, Status
from bulk_chats.results import files as out_files
from bulk_chats.results import workbook as report_writer
from bulk_chats.results.files import STALE_AFTER, remove_leftovers
from bulk_chats.results.table import build_results, default_out_path
from bulk_chats.results.workbook import Summary, prepare_out, write_results
from bulk_chats.settings import Settings
from bulk_chats.sheet.loading import Sheet, load_sheet

OUTCOME_COLUMNS = ["status", "chat_id", "error_code", "error_message", "http_status", "attempts"]
WRITTEN_AT = dt.datetime(2026, 11, 25, 14, 12, 5)
API_ROOT = "http://127.0.0.1:8089/v1"
BIG_CHAT_ID = 12345678901234567


def results_of(
    tmp_path: Path, text: str, outcomes: Mapping[int, Outcome] | None = None
) -> tuple[Sheet, pd.DataFrame]:
    """Load `text` as a CSV input, validate it and build its results frame."""
    path = tmp_path / "march.csv"
    path.write_text(text, encoding="utf-8")
    sheet = load_sheet(path)
    return sheet, build_results(sheet, validate_sheet(sheet), outcomes or {})


def write(results: pd.DataFrame, out: Path, mode: str = "import", *, replace: bool = True) -> Path:
    summary = Summary(
        input_path=Path("exports/march.csv"), mode=mode, api_root=API_ROOT, written_at=WRITTEN_AT
    )
    return write_results(results, out, summary, replace=replace)


def rows_of(path: Path, sheet: str = "results") -> list[list[object]]:
    book = openpyxl.load_workbook(path)
    return [list(row) for row in book[sheet].iter_rows(values_only=True)]


def created(index: int, chat_id: int, **more: object) -> Outcome:
    return Outcome(index=index, status=Status.CREATED, chat_id=chat_id, attempts=1, **more)  # type: ignore[arg-type]


# --- columns and statuses --------------------------------------------------------------


def test_columns(tmp_path: Path) -> None:
    """Columns are source_row, the input headers as spelled, then the outcome columns."""
    _, results = results_of(tmp_path, "Customer ID,App,Note\n1,2,x\n")
    out = write(results, tmp_path / "out.xlsx")
    assert rows_of(out)[0] == ["source_row", "Customer ID", "App", "Note", *OUTCOME_COLUMNS]


def test_message_id_column_with_messages(tmp_path: Path) -> None:
    """An input with a message column also gets `message_id`, last."""
    _, results = results_of(
        tmp_path,
        "customer,application,message\n1,2,hello\n3,4,\n",
        {0: created(0, 100, message_id=900)},
    )
    rows = rows_of(write(results, tmp_path / "out.xlsx"))
    assert rows[0] == [
        "source_row",
        "customer",
        "application",
        "message",
        *OUTCOME_COLUMNS,
        "message_id",
    ]
    assert [row[-1] for row in rows[1:]] == [900, None]


def test_repeated_headers_are_kept(tmp_path: Path) -> None:
    """Two input columns with one header both reach the results, in place."""
    _, results = results_of(tmp_path, "customer,note,application,note\n1,a,2,b\n")
    rows = rows_of(write(results, tmp_path / "out.xlsx"))
    assert rows[0][:5] == ["source_row", "customer", "note", "application", "note"]
    assert rows[1][:5] == [2, "1", "a", "2", "b"]


def test_statuses(tmp_path: Path) -> None:
    """Validation statuses and sending outcomes land in `status` and the columns beside it."""
    text = "customer,application\n" + "".join(f"{n},1\n" for n in range(1, 8)) + "x,1\n1,1\n"
    outcomes = {
        0: created(0, 101),
        1: Outcome(index=1, status=Status.ALREADY_CREATED, chat_id=102),
        2: Outcome(
            index=2,
            status=Status.FAILED,
            error_code="customer_not_found",
            error_message="Customer not found",
            http_status=422,
            attempts=1,
        ),
        3: Outcome(index=3, status=Status.MESSAGE_FAILED, chat_id=104, attempts=2),
        4: Outcome(index=4, status=Status.UNKNOWN, error_code="timeout", attempts=5),
        5: Outcome(index=5, status=Status.NOT_SENT),
    }
    _, results = results_of(tmp_path, text, outcomes)
    rows = rows_of(write(results, tmp_path / "out.xlsx"))
    assert [row[0] for row in rows[1:]] == list(range(2, 11))
    assert [row[3:] for row in rows[1:]] == [
        ["created", 101, None, None, None, 1],
        ["already_created", 102, None, None, None, None],
        ["failed", None, "customer_not_found", "Customer not found", 422, 1],
        ["message_failed", 104, None, None, None, 2],
        ["unknown", None, "timeout", None, None, 5],
        ["not_sent", None, None, None, None, None],
        ["valid", None, None, None, None, None],
        ["invalid", None, "invalid_customer", rows[8][6], None, None],
        ["duplicate", None, "duplicate", rows[9][6], None, None],
    ]
    assert "customer: 'x'" in str(rows[8][6])


def test_summary_sheet(tmp_path: Path) -> None:
    """The summary sheet names the input, mode, API root and time, and counts rows by
    status and by error code (a row with two codes counts for each)."""
    text = "customer,application,assignee\n1,2,\n1,2,\nx,,\nx,2,y\n5,6,\n"
    _, results = results_of(tmp_path, text, {4: created(4, 500)})
    summary = dict(rows_of(write(results, tmp_path / "out.xlsx"), "summary"))
    assert summary["input"] == str(Path("exports/march.csv"))
    assert summary["mode"] == "import"
    assert summary["api"] == API_ROOT
    assert summary["written"] == "2026-11-25 14:12:05"
    assert summary["rows"] == 5
    rows = rows_of(tmp_path / "out.xlsx", "summary")
    statuses = rows[rows.index(["status", "rows"]) + 1 : rows.index(["error_code", "rows"]) - 1]
    assert statuses == [["valid", 1], ["created", 1], ["invalid", 2], ["duplicate", 1]]
    codes = dict(rows[rows.index(["error_code", "rows"]) + 1 :])
    assert codes == {
        "invalid_customer": 2,
        "missing_application": 1,
        "invalid_assignee": 1,
        "duplicate": 1,
    }


# --- cells -----------------------------------------------------------------------------

FORMULA_LIKE = ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1+1", "\r=1+1", '=HYPERLINK("http://x")']


def test_formula_looking_text_stays_text(tmp_path: Path) -> None:
    """Text that looks like a formula, in a cell or a header, is written as text."""
    lines = io.StringIO()
    writer = csv.writer(lines)
    writer.writerow(["=cmd", "customer", "application"])
    writer.writerows([value, n, 1] for n, value in enumerate(FORMULA_LIKE, start=1))
    text = lines.getvalue()
    sheet, results = results_of(tmp_path, text)
    assert sheet.cells[0].tolist() == FORMULA_LIKE
    out = write(results, tmp_path / "out.xlsx")
    book = openpyxl.load_workbook(out)
    for worksheet in book.worksheets:
        for row in worksheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (worksheet.title, cell.coordinate, cell.value)
    back = load_sheet(out)
    assert back.headers[1] == "=cmd"
    assert back.cells[1].tolist() == FORMULA_LIKE


def test_header_frozen_and_filtered(tmp_path: Path) -> None:
    """The header row is frozen and carries an autofilter over every column and row."""
    _, results = results_of(tmp_path, "customer,application\n1,2\n3,4\n5,6\n")
    sheet = openpyxl.load_workbook(write(results, tmp_path / "out.xlsx"))["results"]
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:I4"


def test_long_integers_written_as_text(tmp_path: Path) -> None:
    """Integers longer than 15 digits are text (Excel would round them); shorter are numbers."""
    _, results = results_of(
        tmp_path,
        "customer,application\n1,2\n3,4\n",
        {0: created(0, BIG_CHAT_ID), 1: created(1, 123456789012345)},
    )
    sheet = openpyxl.load_workbook(write(results, tmp_path / "out.xlsx"))["results"]
    big, short = sheet["E2"], sheet["E3"]
    assert (big.value, big.data_type) == (str(BIG_CHAT_ID), "s")
    assert (short.value, short.data_type) == (123456789012345, "n")


def test_echoed_values_keep_their_type(tmp_path: Path) -> None:
    """Input cells are echoed with their type: CSV text stays text, even when digits."""
    _, results = results_of(tmp_path, "customer,application,zip\n0001,2,00123\n")
    sheet = openpyxl.load_workbook(write(results, tmp_path / "out.xlsx"))["results"]
    assert [(c.value, c.data_type) for c in sheet[2][1:4]] == [
        ("0001", "s"),
        ("2", "s"),
        ("00123", "s"),
    ]


def test_csv_output(tmp_path: Path) -> None:
    """`--out *.csv` writes UTF-8 with a BOM; ids are exact and counts have no ".0"."""
    _, results = results_of(
        tmp_path,
        "customer,application,note\n90071992547409931,2,Zoë\n3,4,\n",
        {0: created(0, BIG_CHAT_ID, http_status=201)},
    )
    out = write(results, tmp_path / "out.csv")
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert raw.decode("utf-8-sig").splitlines() == [
        "source_row,customer,application,note," + ",".join(OUTCOME_COLUMNS),
        f"2,90071992547409931,2,Zoë,created,{BIG_CHAT_ID},,,201,1",
        "3,3,4,,valid,,,,,",
    ]


# --- round trip ------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    """The results read back with load_sheet give the same echoed rows and ids, and the
    chat ids as `previous`, so created rows become already_created."""
    text = (
        "Customer ID,App,Agent,Note\n"
        "90071992547409931,2,,=1+1\n"
        " 17 ,3,5,  spaced  \n"
        "x,4,,bad\n"
        "18,4,,\n"
    )
    sheet, results = results_of(tmp_path, text, {0: created(0, BIG_CHAT_ID), 1: created(1, 7)})
    before = validate_sheet(sheet)
    back = load_sheet(write(results, tmp_path / f"out{suffix}"))
    assert [back.headers[i] for i in back.echoed] == sheet.headers
    assert back.cells[back.echoed].values.tolist() == sheet.cells.values.tolist()
    assert back.fields == {"customer": 1, "application": 2, "assignee": 3}
    assert {"source_row", "status", "chat_id", "error_code"} <= back.fed_back.keys()
    after = validate_sheet(back)
    pd.testing.assert_frame_equal(after.ids, before.ids)
    assert after.chat_id.tolist() == [BIG_CHAT_ID, 7, pd.NA, pd.NA]
    assert after.status.tolist() == ["already_created", "already_created", "invalid", "valid"]
    assert back.source_rows == sheet.source_rows


def test_round_trip_of_a_workbook_input(tmp_path: Path) -> None:
    """A workbook input's number cells come back as the same numbers and the same ids."""
    book = openpyxl.Workbook()
    ws = book.active
    assert ws is not None
    for row in (["customer", "application", "amount"], [4188, 2, 1.5], ["77", 3, None]):
        ws.append(row)
    book.save(tmp_path / "float-ids.xlsx")
    sheet = load_sheet(tmp_path / "float-ids.xlsx")
    results = build_results(sheet, validate_sheet(sheet), {})
    back = load_sheet(write(results, tmp_path / "out.xlsx", mode="validate"))
    assert back.cells[back.echoed].values.tolist() == [[4188.0, 2.0, 1.5], ["77", 3.0, ""]]
    assert validate_sheet(back).ids["customer"].tolist() == [4188, 77]


# --- writing ---------------------------------------------------------------------------


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails midway raises, keeps an earlier file as it was, and leaves no
    partial or temporary file."""
    _, results = results_of(tmp_path, "customer,application\n1,2\n")
    out_dir = tmp_path / "reports"
    out_dir.mkdir()
    earlier = out_dir / "out.xlsx"
    earlier.write_bytes(b"earlier results")

    def broken(book: object, results: pd.DataFrame, summary: Summary, **_: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_writer, "_write_summary_sheet", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write(results, earlier)
    with pytest.raises(RuntimeError, match="disk full"):
        write(results, out_dir / "new.xlsx")
    assert sorted(p.name for p in out_dir.iterdir()) == ["out.xlsx"]
    assert earlier.read_bytes() == b"earlier results"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_directory(tmp_path: Path) -> None:
    """An unwritable directory raises and leaves nothing in it."""
    _, results = results_of(tmp_path, "customer,application\n1,2\n")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ReportError, match="cannot write the results"):
            write(results, locked / "out.xlsx")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_out_below_a_file(tmp_path: Path) -> None:
    """An --out whose directory is a file raises one line and creates nothing."""
    _, results = results_of(tmp_path, "customer,application\n1,2\n")
    blocker = tmp_path / "reports"
    blocker.write_text("not a directory")
    with pytest.raises(ReportError, match=r"out\.xlsx: cannot write the results"):
        write(results, blocker / "out.xlsx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["march.csv", "reports"]


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("march", "march"),
        ("march-results-20261125-141200", "march"),
        ("march-results-20261125-1412", "march"),
        ("march-results-20261125-141200-2", "march"),
        ("march-results", "march-results"),
        ("results-20261125-141200", "results-20261125-141200"),
    ],
)
def test_default_out_path(stem: str, expected: str) -> None:
    """The default is reports/<stem>-results-<YYYYmmdd-HHMMSS>.xlsx, and a results workbook
    fed back in keeps its original stem instead of growing a second suffix."""
    now = dt.datetime(2026, 11, 26, 9, 5, 7)
    path = default_out_path(Path("in") / f"{stem}.xlsx", Path("reports"), now)
    assert path == Path("reports") / f"{expected}-results-20261126-090507.xlsx"


def test_resolved_columns_show_the_ids_used_for_each_name_column(tmp_path: Path) -> None:
    """After an import each id field given by a name column gets a resolved_* column with
    the id this run used; a validate run writes none."""
    source = tmp_path / "named.csv"
    source.write_text(
        "customer,email,app,dept_name\n8738438,,3838,Support\n,b@example.com,3838,\n",
        encoding="utf-8",
    )
    sheet = load_sheet(source)
    validation = validate_sheet(sheet)

    frame = build_results(sheet, validation, {}, resolved={"customer": {0: 8738438, 1: 8738439}})
    assert list(frame.columns[-2:]) == ["resolved_customer", "resolved_department"]
    assert frame["resolved_customer"].tolist() == [8738438, 8738439]
    assert frame["resolved_department"].tolist() == [None, None]
    assert not any(str(c).startswith("resolved_") for c in build_results(sheet, validation, {}))


def test_no_resolved_columns_without_name_columns(tmp_path: Path) -> None:
    """A sheet of ids only gets no resolved_* columns."""
    source = tmp_path / "ids.csv"
    source.write_text("customer,application\n8738438,3838\n", encoding="utf-8")
    sheet = load_sheet(source)
    frame = build_results(sheet, validate_sheet(sheet), {}, resolved={"customer": {0: 8738438}})
    assert not any(str(c).startswith("resolved_") for c in frame.columns)


def test_default_out_path_never_names_an_existing_file(tmp_path: Path) -> None:
    """When the default name is taken (a run on an input of the same stem in the same
    second), the next free numbered name is chosen."""
    now = dt.datetime(2026, 11, 26, 9, 5, 7)
    first = default_out_path(Path("a/march.csv"), tmp_path, now)
    first.write_bytes(b"the first run's results")
    second = default_out_path(Path("b/march.xlsx"), tmp_path, now)
    assert second == tmp_path / "march-results-20261126-090507-2.xlsx"
    second.symlink_to(tmp_path / "nowhere")
    assert default_out_path(Path("march.csv"), tmp_path, now).name.endswith("-3.xlsx")


def test_write_without_replace_keeps_a_file_made_meanwhile(tmp_path: Path) -> None:
    """A default path taken by another run while this one ran is kept as it was; the
    results go to the next free name, which write_results returns."""
    _, results = results_of(tmp_path, "customer,application\n1,2\n")
    out = tmp_path / "reports" / "march-results-20261126-090507.xlsx"
    out.parent.mkdir()
    out.write_bytes(b"another run's results")
    written = write(results, out, replace=False)
    assert written == out.with_name("march-results-20261126-090507-2.xlsx")
    assert out.read_bytes() == b"another run's results"
    assert rows_of(written)[1][:2] == [2, "1"]
    assert sorted(p.name for p in out.parent.iterdir()) == sorted([out.name, written.name])


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_results_are_owner_only(tmp_path: Path, suffix: str) -> None:
    """The results hold customer data: the file is readable and writable by its owner
    only, whatever the umask, also when it replaces a more open file."""
    _, results = results_of(tmp_path, "customer,application\n1,2\n")
    out = tmp_path / f"out{suffix}"
    out.write_bytes(b"")
    out.chmod(0o666)
    previous = os.umask(0)
    try:
        write(results, out)
    finally:
        os.umask(previous)
    assert out.stat().st_mode & 0o777 == 0o600


def staging_folder(folder: Path, name: str, *, age: float) -> Path:
    """A hidden folder as a write leaves it, last touched `age` seconds ago."""
    path = folder / name
    path.mkdir()
    (path / "out.xlsx").write_bytes(b"half a workbook")
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def test_leftovers_of_a_killed_write_are_removed(tmp_path: Path) -> None:
    """The next run removes the hidden folder a killed write left (and the hidden file an
    earlier version left); not a fresh one, not one a running write holds, and nothing
    that is not its own."""
    old = STALE_AFTER + 60
    stale = staging_folder(tmp_path, ".march-results.xlsx.ab3d_f7h.tmp", age=old)
    fresh = staging_folder(tmp_path, ".march-results.xlsx.zz99zz99.tmp", age=0)
    held = staging_folder(tmp_path, ".other.csv.k2k2k2k2.tmp", age=old)
    foreign = [
        staging_folder(tmp_path, ".notes.tmp", age=old),
        staging_folder(tmp_path, "march.xlsx.abcdefgh.tmp", age=old),
        staging_folder(tmp_path, ".march.xlsx.ABCDEFGH.tmp", age=old),
    ]
    earlier = tmp_path / ".march.csv.abcdefgh.tmp"
    earlier.write_bytes(b"half a CSV")
    os.utime(earlier, (time.time() - old, time.time() - old))
    with out_files._holding(held):
        assert sorted(remove_leftovers(tmp_path)) == sorted([stale, earlier])
    assert not stale.exists()
    assert not earlier.exists()
    assert all(path.is_dir() for path in (fresh, held, *foreign))


def test_a_run_removes_leftovers_before_it_starts(tmp_path: Path) -> None:
    """prepare_out, which every run calls before sending, removes stale leftovers from the
    folder the results go to."""
    stale = staging_folder(tmp_path, ".march.xlsx.abcdefgh.tmp", age=STALE_AFTER + 60)
    prepare_out(tmp_path / "march-results.xlsx", rows=1, columns=8)
    assert not stale.exists()


def test_two_runs_in_one_second_keep_both_workbooks(tmp_path: Path) -> None:
    """Two validate runs on inputs of one stem, stamped the same second, write two files,
    and each run names the file it wrote."""
    now = dt.datetime(2026, 11, 26, 9, 5, 7)
    reports = tmp_path / "reports"
    runs = []
    for folder, customer in (("a", "1"), ("b", "2")):
        (tmp_path / folder).mkdir()
        source = tmp_path / folder / "march.csv"
        source.write_text(f"customer,application\n{customer},2\n", encoding="utf-8")
        runs.append(validate_file(Settings(input_path=source, reports_dir=reports), now=now))
    assert [run.out.name for run in runs] == [
        "march-results-20261126-090507.xlsx",
        "march-results-20261126-090507-2.xlsx",
    ]
    assert [rows_of(run.out)[1][1] for run in runs] == ["1", "2"]
