"""The workbook reader's time limit: every child that reads a workbook (its cells, or its
sheets' names) is given a time that fits the file's size, not a flat ten minutes, and one
that outlives it is ended with a one-line error."""

from __future__ import annotations

import shutil
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from bulk_chats.errors import InputError
from bulk_chats.sheet import workbook
from bulk_chats.sheet.workbook import read_workbook, sheet_names
from tests.fakes import StuckReader

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data" / "chats.xlsx"


@pytest.fixture
def timeouts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float]]:
    """The (verb, timeout) of each workbook child the test runs, which still runs."""
    seen: list[tuple[str, float]] = []
    real = subprocess.run

    def recording(command: list[str], **options: Any) -> Any:
        seen.append((command[3], options["timeout"]))
        return real(command, **options)

    monkeypatch.setattr(workbook.subprocess, "run", recording)
    return seen


def padded(source: Path, target: Path, megabytes: int) -> Path:
    """A copy of the workbook at `source` carrying `megabytes` of incompressible bytes in
    a part no reader looks at: as large as a real workbook of that size, as quick to read."""
    shutil.copyfile(source, target)
    with zipfile.ZipFile(target, "a", zipfile.ZIP_STORED) as book:
        book.writestr("customXml/padding.bin", bytes(range(256)) * (megabytes * 4096))
    return target


def test_the_time_fits_the_file_s_size(tmp_path: Path, timeouts: list[tuple[str, float]]) -> None:
    """Listing the sheets and reading the cells of a small workbook may take seconds, not
    ten minutes; a workbook 20 MB larger may take longer, in proportion."""
    big = padded(SAMPLE, tmp_path / "big.xlsx", 20)
    for path in (SAMPLE, big):
        assert sheet_names(path) == ["chats"]
        assert len(read_workbook(path, None)) == 19
    (_, small_list), (_, small_read), (_, big_list), (_, big_read) = timeouts
    assert [verb for verb, _ in timeouts] == ["sheets", "read"] * 2
    assert small_list == small_read <= 20
    grown = small_read + 20 * workbook.READER_SECONDS_PER_MB
    assert big_list == big_read == pytest.approx(grown, abs=0.01)


def test_the_time_has_a_ceiling() -> None:
    """However big the file, a child may take at most `READER_TIMEOUT` seconds."""
    assert workbook.reader_timeout(0) == workbook.READER_SECONDS
    assert workbook.reader_timeout(10 << 30) == workbook.READER_TIMEOUT


@pytest.mark.timeout(60)
def test_a_reader_past_its_time_is_ended_with_one_line(stuck_reader: StuckReader) -> None:
    """A child that does not answer within its time is ended, and reading the sheet fails
    with one line that says why and what to do; listing the sheets fails the same way."""
    started = time.monotonic()
    with pytest.raises(InputError) as raised:
        read_workbook(SAMPLE, None)
    with pytest.raises(InputError) as listed:
        sheet_names(SAMPLE)
    assert time.monotonic() - started < 30
    message = str(raised.value)
    assert message == str(listed.value)
    assert message.startswith(f"{SAMPLE}: reading the workbook took more than 1 s")
    assert message.endswith("save it again from Excel, or as CSV")
    assert "\n" not in message
    stuck_reader.assert_ended()
