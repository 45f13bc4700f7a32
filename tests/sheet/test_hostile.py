"""Broken and hostile input: every unusable file ends in exit 2 with one line that names
the file and the problem, no traceback and no request; XML bombs, huge cells and wide
rows are harmless; and a fuzz test finds no file that makes the tool crash."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bulk_chats.cli.main import cli
from bulk_chats.sandbox import RunningSandbox, SandboxConfig

KEY = "hc-test-key-hostile-0001"
VALID = "customer,application\n8738438,3838\n"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory, so `reports/` lands in it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    """A loopback sandbox that counts every request it receives."""
    return SandboxConfig(api_key=KEY, rate=6000)


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run the CLI in-process, catching whatever it raises."""
    return CliRunner().invoke(cli, list(args), env=env)


def assert_unusable(result: Result, name: str, problem: str) -> None:
    """Exit 2, and stderr is one line naming the file and the problem, no traceback."""
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bulk-chats: error: "), lines
    assert name in lines[0], lines
    assert problem in lines[0], lines
    assert "Traceback" not in result.output
    assert result.stdout == ""


# --- crafted files ---------------------------------------------------------------------


def workbook_bytes(rows: list[list[object]]) -> bytes:
    """A real .xlsx holding `rows`, written by openpyxl."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "chats"
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def replace_part(workbook: bytes, name: str, content: bytes) -> bytes:
    """`workbook` with the zip member `name` replaced by `content`."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(workbook)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            data = content if item.filename == name else source.read(item.filename)
            target.writestr(item.filename, data)
    return out.getvalue()


def encrypted_workbook() -> bytes:
    """The shape of a password-protected workbook: an OLE compound file (not a zip)
    whose directory holds the `EncryptionInfo` and `EncryptedPackage` streams."""
    header = bytearray(512)
    header[:8] = bytes.fromhex("d0cf11e0a1b11ae1")
    header[24:26] = (0x003E).to_bytes(2, "little")  # minor version
    header[26:28] = (0x0003).to_bytes(2, "little")  # major version 3: 512-byte sectors
    header[28:30] = (0xFFFE).to_bytes(2, "little")  # little-endian
    header[30:32] = (9).to_bytes(2, "little")  # sector size 2**9
    header[32:34] = (6).to_bytes(2, "little")  # mini sector size 2**6
    directory = bytearray()
    for name in ("Root Entry", "EncryptionInfo", "EncryptedPackage"):
        entry = bytearray(128)
        encoded = (name + "\0").encode("utf-16-le")
        entry[: len(encoded)] = encoded
        entry[64:66] = len(encoded).to_bytes(2, "little")
        entry[66] = 5 if name == "Root Entry" else 2  # storage type: root, stream
        directory += entry
    directory += bytes(512 - len(directory))
    return bytes(header) + bytes(directory) + os.urandom(2048)


def far_cell_workbook(reference: str) -> bytes:
    """A small valid workbook plus one cell at `reference`, far from the data."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["customer", "application"])
    sheet.append([1, 2])
    sheet[reference] = "far"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def looping_compound_file() -> bytes:
    """An OLE compound file (the .xls container) whose directory's sector chain points
    back at itself: a reader that follows chains without a bound never stops."""
    header = bytearray(512)
    header[:8] = bytes.fromhex("d0cf11e0a1b11ae1")
    struct.pack_into("<HHHHH", header, 24, 0x3E, 3, 0xFFFE, 9, 6)
    struct.pack_into("<IIIIII", header, 44, 1, 1, 0, 4096, 0xFFFFFFFE, 0)
    struct.pack_into("<II", header, 68, 0xFFFFFFFE, 0)
    struct.pack_into("<109I", header, 76, 0, *[0xFFFFFFFF] * 108)
    fat = bytearray(512)
    # Sector 0 holds the FAT; sector 1, the directory, is followed by sector 1 again.
    struct.pack_into("<128I", fat, 0, 0xFFFFFFFD, 1, *[0xFFFFFFFF] * 126)
    directory = bytearray()
    for name, kind in (("Root Entry", 5), ("Workbook", 2)):
        entry = bytearray(128)
        encoded = (name + "\0").encode("utf-16-le")
        entry[: len(encoded)] = encoded
        struct.pack_into("<HB", entry, 64, len(encoded), kind)
        struct.pack_into("<III", entry, 68, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
        struct.pack_into("<I", entry, 116, 0xFFFFFFFE)
        directory += entry
    return bytes(header) + bytes(fat) + bytes(directory) + bytes(512 - len(directory))


def billion_laughs(levels: int) -> bytes:
    """A sheet whose one text cell is an entity that expands to 3 * 10**levels bytes."""
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, levels + 1)
    ]
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f"<!DOCTYPE worksheet [{''.join(entities)}]>"
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        "<sheetData>"
        '<row r="1"><c r="A1" t="inlineStr"><is><t>customer</t></is></c>'
        '<c r="B1" t="inlineStr"><is><t>application</t></is></c>'
        '<c r="C1" t="inlineStr"><is><t>note</t></is></c></row>'
        '<row r="2"><c r="A2"><v>1</v></c><c r="B2"><v>2</v></c>'
        f'<c r="C2" t="inlineStr"><is><t>&lol{levels};</t></is></c></row>'
        "</sheetData></worksheet>"
    ).encode()


def bomb_workbook(levels: int) -> bytes:
    """A real workbook whose sheet is `billion_laughs(levels)`."""
    return replace_part(
        workbook_bytes([["customer", "application", "note"], [1, 2, "x"]]),
        "xl/worksheets/sheet1.xml",
        billion_laughs(levels),
    )


# --- unusable input: exit 2, one line ----------------------------------------------------

VALID_XLSX = workbook_bytes([["customer", "application"], [8738438, 3838]])

UNUSABLE: list[tuple[str, str, Callable[[Path], None], str]] = [
    ("missing file", "absent.csv", lambda p: None, "no such file"),
    ("directory", "folder.csv", lambda p: p.mkdir(), "is a directory"),
    ("empty csv", "empty.csv", lambda p: p.write_bytes(b""), "the file is empty"),
    ("blank csv", "blank.csv", lambda p: p.write_bytes(b" \r\n\n\t\n"), "the file is empty"),
    (
        "header only",
        "header.csv",
        lambda p: p.write_text("customer,application\n"),
        "no data rows below the header",
    ),
    (
        "missing required column",
        "no-app.csv",
        lambda p: p.write_text("customer,agent\n1,2\n"),
        "no application column",
    ),
    (
        "repeated header",
        "twice.csv",
        lambda p: p.write_text("customer,application,customer\n1,2,3\n"),
        "two columns give customer",
    ),
    (
        "workbook that is not a zip",
        "text.xlsx",
        lambda p: p.write_text(VALID),
        "not a readable .xlsx workbook",
    ),
    ("empty workbook file", "zero.xlsx", lambda p: p.write_bytes(b""), "not a readable .xlsx"),
    (
        "truncated workbook",
        "cut.xlsx",
        lambda p: p.write_bytes(VALID_XLSX[: len(VALID_XLSX) // 2]),
        "not a readable .xlsx workbook",
    ),
    (
        "workbook with a damaged sheet",
        "damaged.xlsx",
        lambda p: p.write_bytes(
            replace_part(VALID_XLSX, "xl/worksheets/sheet1.xml", os.urandom(4096))
        ),
        "not a readable .xlsx workbook",
    ),
    (
        "workbook with no sheet part",
        "hollow.xlsx",
        lambda p: p.write_bytes(replace_part(VALID_XLSX, "xl/workbook.xml", b"<nothing/>")),
        "workbook",
    ),
    (
        "one cell at the far corner (a 512 GiB grid to calamine)",
        "corner.xlsx",
        lambda p: p.write_bytes(far_cell_workbook("XFD1048576")),
        "not a readable .xlsx workbook",
    ),
    (
        "a stray cell a million rows down",
        "stray.xlsx",
        lambda p: p.write_bytes(far_cell_workbook("Z1048576")),
        "the sheet spans 1,048,576 rows by 26 columns",
    ),
    (
        "xls whose sector chain loops",
        "loop.xls",
        lambda p: p.write_bytes(looping_compound_file()),
        "not a readable .xls workbook",
    ),
    (
        "password-protected xlsx",
        "locked.xlsx",
        lambda p: p.write_bytes(encrypted_workbook()),
        "password-protected",
    ),
    (
        "password-protected xls",
        "locked.xls",
        lambda p: p.write_bytes(encrypted_workbook()),
        "password-protected",
    ),
    (
        "random bytes named .csv",
        "noise.csv",
        lambda p: p.write_bytes(bytes(range(256)) + os.urandom(4096)),
        "not a text file",
    ),
    (
        "unsupported extension",
        "chats.pdf",
        lambda p: p.write_text(VALID),
        "unsupported file type '.pdf'",
    ),
    ("no extension", "chats", lambda p: p.write_text(VALID), "unsupported file type"),
    (
        "undecodable csv",
        "bad-bytes.csv",
        # Invalid UTF-8, and 0x81 is one of the five bytes cp1252 leaves undefined.
        lambda p: p.write_bytes(b"customer,application\n1,2\nna\xefve\x81,3\n"),
        "cannot decode byte 0x81 at offset 30",
    ),
    (
        "unclosed quote",
        "quote.csv",
        lambda p: p.write_text('customer,application\n"1,2\n3,4\n'),
        "cannot parse as CSV",
    ),
]


@pytest.mark.parametrize(
    ("name", "make", "problem"),
    [pytest.param(name, make, problem, id=case) for case, name, make, problem in UNUSABLE],
)
def test_unusable_file_exits_2_with_one_line(
    workdir: Path, name: str, make: Callable[[Path], None], problem: str
) -> None:
    """validate on an unusable file: exit 2, one line naming the file and the problem."""
    make(workdir / name)
    assert_unusable(invoke("validate", name), name, problem)
    assert not (workdir / "reports").exists() or not any((workdir / "reports").iterdir())


@pytest.mark.parametrize(
    ("name", "make", "problem"),
    [pytest.param(name, make, problem, id=case) for case, name, make, problem in UNUSABLE],
)
def test_unusable_file_sends_nothing(
    workdir: Path,
    sandbox: RunningSandbox,
    name: str,
    make: Callable[[Path], None],
    problem: str,
) -> None:
    """import of an unusable file: exit 2 and not one request reaches the API."""
    make(workdir / name)
    before = sandbox.state.snapshot()["requests"]
    result = invoke(
        "import",
        name,
        "--base-url",
        sandbox.base_url,
        "--yes",
        "--no-progress",
        env={"HELPCRUNCH_API_KEY": KEY},
    )
    assert_unusable(result, name, problem)
    assert sandbox.state.snapshot()["requests"] == before


def test_a_real_xls_passes_the_structure_check(workdir: Path) -> None:
    """A genuine .xls (written by xlwt) passes the sector-chain check and reads."""
    data = Path(__file__).parents[1] / "data" / "hostile" / "three-rows.xls"
    (workdir / "three-rows.xls").write_bytes(data.read_bytes())
    result = invoke("validate", "three-rows.xls", "--out", "out.csv")
    assert result.exit_code == 0, result.output
    rows = read_report(workdir / "out.csv")
    assert [(r["customer"], r["status"]) for r in rows] == [
        ("1001", "valid"),
        ("1002", "valid"),
        ("1003", "valid"),
    ]


def test_unknown_sheet_names_the_sheets(workdir: Path) -> None:
    """--sheet with a name the workbook lacks: exit 2, naming the file and its sheets."""
    (workdir / "book.xlsx").write_bytes(VALID_XLSX)
    result = invoke("validate", "book.xlsx", "--sheet", "March")
    assert_unusable(result, "book.xlsx", "no sheet named 'March'; the workbook has 'chats'")


def test_bad_column_option_is_one_line(workdir: Path) -> None:
    """--column naming a header the file lacks: exit 2, one line that lists the headers."""
    (workdir / "x.csv").write_text(VALID)
    result = invoke("validate", "x.csv", "--column", "assignee=Agent Name")
    assert_unusable(result, "x.csv", "no column headed 'Agent Name'")


# --- XML attacks ---------------------------------------------------------------------------


def test_openpyxl_parses_through_defusedxml() -> None:
    """Any use of openpyxl parses XML through defusedxml, which refuses entity bombs."""
    from defusedxml import DTDForbidden, EntitiesForbidden

    assert openpyxl.DEFUSEDXML is True
    with pytest.raises(ValueError, match="invalid XML") as raised:
        openpyxl.load_workbook(io.BytesIO(bomb_workbook(3)))
    assert isinstance(raised.value.__cause__, EntitiesForbidden | DTDForbidden)


@pytest.mark.timeout(30)
def test_entity_expansion_is_not_performed(workdir: Path) -> None:
    """A workbook whose cell is an entity bomb reads cleanly or is refused with exit 2:
    either way the entity is never expanded (the cell is not 30,000 "lol"s)."""
    (workdir / "bomb.xlsx").write_bytes(bomb_workbook(4))
    result = invoke("validate", "bomb.xlsx", "--out", "out.csv")
    assert isinstance(result.exception, SystemExit), result.exception
    if result.exit_code == 2:
        assert_unusable(result, "bomb.xlsx", "bomb.xlsx")
        return
    assert result.exit_code == 0, result.output
    text = (workdir / "out.csv").read_text(encoding="utf-8-sig")
    assert "lollol" not in text
    assert len(text) < 1000


@pytest.mark.timeout(60)
def test_billion_laughs_cannot_exhaust_memory(workdir: Path) -> None:
    """The full billion-laughs workbook (3 GB if expanded), read by a separate process held
    to 1 GiB of memory, ends within seconds with exit 0 or 2 and no traceback."""
    (workdir / "bomb.xlsx").write_bytes(bomb_workbook(9))

    # The limit is set by the child itself, then it becomes the CLI: no preexec_fn, which
    # is unsafe while this process runs threads (the sandbox).
    limited = (
        "import os, resource, sys; "
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
        "os.execv(sys.executable, [sys.executable, '-m', 'bulk_chats', *sys.argv[1:]])"
    )
    completed = subprocess.run(
        [sys.executable, "-c", limited, "validate", "bomb.xlsx", "--out", "out.csv"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert completed.returncode in (0, 2), completed.stderr
    assert "Traceback" not in completed.stderr
    assert "MemoryError" not in completed.stderr


# --- huge cells, wide rows -------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_several_megabyte_cell_is_kept_in_csv_and_cut_in_workbook(workdir: Path) -> None:
    """A 5 MB text cell reads and validates; the CSV report keeps it whole, the workbook
    keeps Excel's 32,767 characters."""
    big = "x" * 5_000_000
    (workdir / "big.csv").write_text(f"customer,application,note\n1,2,{big}\n")
    assert invoke("validate", "big.csv", "--out", "out.csv").exit_code == 0
    assert read_report(workdir / "out.csv")[0]["note"] == big
    assert invoke("validate", "big.csv", "--out", "out.xlsx").exit_code == 0
    assert read_row(workdir / "out.xlsx", 2)[3] == big[:32767]


@pytest.mark.timeout(60)
def test_several_megabyte_id_is_rejected_with_a_short_message(workdir: Path) -> None:
    """A 5 MB value in an id column is invalid, and its message quotes only the start of
    it: a report cell stays readable."""
    (workdir / "big.csv").write_text(f"customer,application\n{'7' * 5_000_000},2\n")
    result = invoke("validate", "big.csv", "--out", "out.csv")
    assert result.exit_code == 1, result.output
    row = read_report(workdir / "out.csv")[0]
    assert row["status"] == "invalid"
    assert row["error_code"] == "invalid_customer"
    assert row["error_message"].startswith("customer: '7777")
    assert len(row["error_message"]) < 300


@pytest.mark.timeout(60)
def test_row_with_thousands_of_columns(workdir: Path) -> None:
    """A row far wider than its header is read: its extra cells are echoed under blank
    headers, in the workbook and in CSV."""
    extra = ",".join(f"v{i}" for i in range(5000))
    (workdir / "wide.csv").write_text(f"customer,application\n1,2,{extra}\n3,4\n")
    result = invoke("validate", "wide.csv", "--out", "out.xlsx")
    assert result.exit_code == 0, result.output
    first = read_row(workdir / "out.xlsx", 2)
    assert first[:4] == (2, "1", "2", "v0")
    assert "v4999" in first


@pytest.mark.timeout(60)
def test_more_columns_than_a_workbook_holds_is_refused(workdir: Path) -> None:
    """A header of 20,000 columns cannot go into a results workbook: exit 2, one line."""
    header = "customer,application," + ",".join(f"c{i}" for i in range(20_000))
    (workdir / "huge.csv").write_text(f"{header}\n1,2\n")
    assert_unusable(invoke("validate", "huge.csv"), "huge.csv", "columns")


def test_input_column_named_like_a_result_column(workdir: Path) -> None:
    """An input column called `status` (in a sheet that is not a results workbook) is
    echoed as "status (input)", beside the run's own `status`; a re-run reads it back."""
    (workdir / "x.csv").write_text("customer,application,status\n1,2,open\n")
    assert invoke("validate", "x.csv", "--out", "out.csv").exit_code == 0
    row = read_report(workdir / "out.csv")[0]
    assert (row["status (input)"], row["status"]) == ("open", "valid")
    result = invoke("validate", "out.csv", "--out", "again.csv")
    assert result.exit_code == 0, result.output
    assert read_report(workdir / "again.csv")[0]["status (input)"] == "open"


# --- fuzz ------------------------------------------------------------------------------------

_CSV_ALPHABET = st.sampled_from(
    [*"customerapplicationagent", *"0123456789", *",;\t\"' \r\n", "\x00", "é", "١", "😀", "="]
)


def read_report(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV report, however long its cells."""
    limit = csv.field_size_limit(sys.maxsize)
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return list(csv.DictReader(handle))
    finally:
        csv.field_size_limit(limit)


def read_row(path: Path, number: int) -> tuple[object, ...]:
    """Row `number` (1-based) of a results workbook's first sheet."""
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        sheet = book["results"]
        return next(sheet.iter_rows(min_row=number, max_row=number, values_only=True))
    finally:
        book.close()


def _check_outcome(result: Result, out: Path) -> None:
    """Read (exit 0 or 1, a report written) or refused (exit 2, one line); never a crash."""
    # click reports a clean exit 0 as no exception at all, any other exit as SystemExit.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("bulk-chats: error: ")
    else:
        assert result.exit_code in (0, 1), result.output
        assert out.exists()


def _fuzz(name: str, content: bytes, suffix: str = ".csv") -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}{suffix}"
        path.write_bytes(content)
        out = Path(folder) / "out.xlsx"
        _check_outcome(invoke("validate", str(path), "--out", str(out)), out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    header=st.sampled_from(["customer,application\n", "app;customer_id\n", "Customer\tApp\n", ""]),
    body=st.text(_CSV_ALPHABET, max_size=200),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16"]),
)
def test_fuzz_csv_never_crashes(header: str, body: str, encoding: str) -> None:
    """Any small CSV-ish text, in any of a few encodings, is read or refused cleanly."""
    _fuzz("fuzz", (header + body).encode(encoding, errors="replace"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=st.binary(max_size=600), suffix=st.sampled_from([".csv", ".xlsx", ".xls", ".ods"]))
def test_fuzz_random_bytes_never_crash(content: bytes, suffix: str) -> None:
    """Random bytes under any supported extension are read or refused cleanly."""
    _fuzz("noise", content, suffix)


_CELLS = st.one_of(
    st.none(),
    st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=20),
    st.from_regex(r"[ \t]*[0-9]{1,20}[ \t]*", fullmatch=True),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.datetimes(min_value=dt.datetime(1900, 3, 1), max_value=dt.datetime(9999, 1, 1)),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    header=st.lists(
        st.sampled_from(["customer", "application", "Agent", "dept", "note", "", "customer"]),
        max_size=5,
    ),
    rows=st.lists(st.lists(_CELLS, max_size=6), max_size=6),
)
@example(header=["customer", "application", "status"], rows=[["0"]])
def test_fuzz_xlsx_never_crashes(header: list[str], rows: list[list[object]]) -> None:
    """Any small workbook of mixed cells (numbers, text, dates, booleans, blanks, infinities)
    is read or refused cleanly."""
    _fuzz("fuzz", workbook_bytes([list(header), *rows]), ".xlsx")
