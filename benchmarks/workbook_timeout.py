"""How long the workbook reader's child takes, against the time it is given.

    python benchmarks/workbook_timeout.py [--rows N ...] [--bomb-mb N] [--repeat N] [--keep DIR]

Every child that reads a workbook gets `reader_timeout(size)` seconds: a base and a little
more for each megabyte of the file (bulk_chats/sheet/workbook.py). This script generates,
into a temporary folder, real workbooks of `--rows` rows (six columns of ids and text, as
`benchmarks/loader.py` writes) and one built to inflate: an .xlsx of a few megabytes whose
sheet unzips to `--bomb-mb` megabytes of rows. It runs the same child `read_workbook`
runs, on each, as the page and the commands run it (memory cap, RUST_BACKTRACE=0), and
prints the file's size, the child's wall time (the best of `--repeat` runs), the time it is
given and the headroom (given / taken). A real workbook should have a headroom of 10 or
more; the inflating one should be given tens of seconds, not minutes (it fails at the
memory cap, or is ended at its time).
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import xlsxwriter

from bulk_chats.sheet import workbook, workbook_child

HEADERS = ("customer", "application", "assignee", "department", "subject", "notes")
SEED = 20261207

_XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
_PARTS = {
    "[Content_Types].xml": _XML_HEAD
    + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>',
    "_rels/.rels": _XML_HEAD
    + '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>',
    "xl/workbook.xml": _XML_HEAD
    + '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>',
    "xl/_rels/workbook.xml.rels": _XML_HEAD
    + '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>',
}


def write_real(rows: int, path: Path) -> None:
    """A workbook of `rows` rows of ids and text, as an export would have."""
    chosen = random.Random(SEED)
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, HEADERS)
    for row in range(1, rows + 1):
        sheet.write_row(
            row,
            0,
            [
                chosen.randrange(10**7),
                3838,
                4188 + row % 50,
                chosen.randrange(100),
                f"subject {chosen.random()}",
                "some notes here " * chosen.randrange(3),
            ],
        )
    book.close()


def write_bomb(megabytes: int, path: Path) -> None:
    """A valid .xlsx whose one sheet unzips to about `megabytes` MB of repeated rows."""
    row = b'<row><c t="inlineStr"><is><t>' + b"A" * 1000 + b"</t></is></c><c><v>1</v></c></row>"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as book:
        for name, text in _PARTS.items():
            book.writestr(name, text)
        with book.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(
                b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                b"<sheetData>"
            )
            block = row * 1000
            for _ in range(megabytes * (1 << 20) // len(block)):
                sheet.write(block)
            sheet.write(b"</sheetData></worksheet>")


def child_command(path: Path) -> list[str]:
    """The child `read_workbook` runs for the first sheet of `path`."""
    budget = max(10_000_000, 50 * path.stat().st_size)
    return [
        sys.executable,
        "-P",
        workbook_child.__file__,
        "read",
        str(path),
        "",
        str(workbook.READER_MEMORY),
        str(budget),
    ]


def time_child(path: Path, repeat: int) -> tuple[float, str]:
    """The best wall time of the child on `path` and how its last run ended."""
    given = workbook.reader_timeout(path.stat().st_size)
    best, ended = float("inf"), ""
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            child = subprocess.run(
                child_command(path),
                capture_output=True,
                timeout=given,
                check=False,
                env={**os.environ, "RUST_BACKTRACE": "0"},
            )
            ended = "read" if child.returncode == 0 else f"failed (exit {child.returncode})"
        except subprocess.TimeoutExpired:
            ended = "ended at its time"
        best = min(best, time.perf_counter() - started)
    return best, ended


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--bomb-mb", type=int, default=1400)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="generate into this folder and keep it")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = options.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for rows in options.rows:
            path = folder / f"real-{rows}.xlsx"
            write_real(rows, path)
            files.append((f"{rows:,} rows", path))
        bomb = folder / f"bomb-{options.bomb_mb}.xlsx"
        write_bomb(options.bomb_mb, bomb)
        files.append((f"inflates to {options.bomb_mb:,} MB", bomb))
        print(f"{'workbook':<24} {'size':>9} {'taken':>8} {'given':>8} {'headroom':>9}  ended")
        for label, path in files:
            taken, ended = time_child(path, options.repeat)
            given = workbook.reader_timeout(path.stat().st_size)
            size = path.stat().st_size / (1 << 20)
            print(
                f"{label:<24} {size:>7.1f}MB {taken:>7.1f}s {given:>7.1f}s "
                f"{given / taken:>8.1f}x  {ended}"
            )
    command = ["python", "benchmarks/workbook_timeout.py", *sys.argv[1:]]
    print(f"reproduce: {shlex.join(command)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
