"""Workbook input: a workbook's sheet as cells of the types the file gave them.

The file is checked for what would make the reader misbehave (not a zip, an encrypted
package, a broken compound file) and then read by `workbook_child` in a child process held
to a memory limit and to a time limit that fits the file's size, so that a crafted file
costs a one-line error in seconds, not the run.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bulk_chats.errors import InputError
from bulk_chats.sheet import workbook_child

# The workbook is read by `workbook_child` in a child process held to `READER_MEMORY`:
# a file built to exhaust memory costs a failed child and a one-line error (see there).
READER_MEMORY = 4 << 30
"""Bytes of address space the workbook reader may use."""

READER_SECONDS = 15.0
"""Seconds the workbook reader may take on any file, however small."""

READER_SECONDS_PER_MB = 1.5
"""Seconds more it may take for each megabyte (2**20 bytes) of the file. A real workbook
of a million rows (40 MB, 280 MB of XML) is read in about 6 s; one built to inflate 3.5 MB
into 1.4 GB is given 20 s rather than minutes (`benchmarks/workbook_timeout.py`)."""

READER_TIMEOUT = 600.0
"""Seconds the workbook reader may take at most, whatever the file's size."""

_CELLS_PER_BYTE = 50
"""A sheet's rows times columns may be this many times its file's size (or 10 million,
whichever is more): a real sheet that large has a large file; a few cells placed far
apart, in a small file, would make a million-row grid of blanks."""


def read_workbook(path: Path, sheet: str | None) -> pd.DataFrame:
    """The cells of `sheet` (None: the first) of the workbook at `path`, as the types the
    file gave them, blanks as ""; `InputError` with one line for anything unusable."""
    suffix = path.suffix.lower()
    if suffix in {".xlsx", ".xlsm", ".xlsb", ".ods"} and not zipfile.is_zipfile(path):
        raise InputError(_not_a_workbook(path))
    if _is_encrypted_package(path):
        raise InputError(_not_a_workbook(path))
    problem = _compound_file_problem(path)
    if problem:
        raise InputError(f"{path}: not a readable {suffix} workbook ({problem})")
    budget = max(10_000_000, _CELLS_PER_BYTE * path.stat().st_size)
    answer = _ask_child(path, "read", sheet or "", str(READER_MEMORY), str(budget))
    if answer is None:
        raise InputError(
            f"{path}: not a readable {suffix} workbook (reading it failed: damaged, or built "
            "to exhaust memory)"
        )
    kind, *details = answer
    if kind == "no sheets":
        raise InputError(f"{path}: the workbook has no sheets")
    if kind == "no such sheet":
        listed = ", ".join(repr(name) for name in details[0])
        raise InputError(f"{path}: no sheet named {sheet!r}; the workbook has {listed}")
    if kind == "too sparse":
        height, width = details
        raise InputError(
            f"{path}: the sheet spans {height:,} rows by {width:,} columns but the file is "
            "too small to fill them (a stray cell far from the data?); delete the empty "
            "rows and columns around the data, or save it as CSV"
        )
    if kind == "error":
        raise InputError(_not_a_workbook(path, details[0]))
    data: list[list[Any]] = details[0]
    if not data:
        raise InputError(f"{path}: the sheet is empty")
    return pd.DataFrame(data, dtype=object).fillna("")


def sheet_names(path: Path) -> list[str]:
    """The sheets of the workbook at `path`, in order, read by the same capped child as
    its cells; [] when they cannot be read (reading the sheet then says why). Raises
    `InputError` when the child runs out of time: reading the sheet would too."""
    answer = _ask_child(path, "sheets", str(READER_MEMORY))
    if answer is None or answer[0] != "sheets":
        return []
    return [str(name) for name in answer[1]]


def reader_timeout(size: int) -> float:
    """Seconds a child may take to read a workbook of `size` bytes: `READER_SECONDS` and
    `READER_SECONDS_PER_MB` for each megabyte, at most `READER_TIMEOUT`."""
    return min(READER_TIMEOUT, READER_SECONDS + READER_SECONDS_PER_MB * size / (1 << 20))


def _ask_child(path: Path, verb: str, *arguments: str) -> tuple[Any, ...] | None:
    """The answer of `workbook_child` run with `verb` on `path`; None when it failed.
    Raises `InputError` once it takes longer than `reader_timeout` allows for the file
    (the child is killed then)."""
    command = [sys.executable, "-P", workbook_child.__file__, verb, str(path), *arguments]
    # A Rust panic that prints its backtrace while out of memory can deadlock the child.
    environment = {**os.environ, "RUST_BACKTRACE": "0"}
    try:
        timeout = reader_timeout(path.stat().st_size)
    except OSError:
        return None
    try:
        # Our own interpreter and code, arguments as a list (no shell): nothing to inject.
        child = subprocess.run(  # noqa: S603
            command, capture_output=True, timeout=timeout, check=False, env=environment
        )
        if child.returncode != 0:
            return None
        # Trusted: our own child, pickling only the plain values calamine returns.
        answer = pickle.loads(child.stdout)  # noqa: S301
    except subprocess.TimeoutExpired:
        raise InputError(
            f"{path}: reading the workbook took more than {timeout:.0f} s, too long for a "
            "file of its size (built to inflate when unzipped?); save it again from Excel, "
            "or as CSV"
        ) from None
    except (OSError, pickle.UnpicklingError, EOFError):
        return None
    return answer if isinstance(answer, tuple) and answer else None


def _not_a_workbook(path: Path, error: str = "") -> str:
    text = error.lower()
    if "password" in text or "encrypt" in text or _is_encrypted_package(path):
        return f"{path}: the workbook is password-protected; save an unprotected copy"
    return f"{path}: not a readable {path.suffix.lower()} workbook (damaged or another format)"


_OLE_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")
_LAST_SECTOR = 0xFFFFFFFA
"""Sector numbers from here up mark chain ends, free and FAT sectors, never a next sector."""


def _compound_file_problem(path: Path) -> str | None:
    """What is structurally wrong with an OLE compound file (the .xls container), or None
    (also for a file that is not one).

    calamine follows sector chains without a bound: a chain that loops back makes it
    allocate until the process dies. So before it reads, every FAT and mini-FAT chain is
    checked to end, every pointer to lie inside its table, and every stream to be no
    larger than the file.
    """
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if len(data) < 512 or not data.startswith(_OLE_MAGIC):
        return None
    try:
        return _compound_structure_problem(data)
    except (struct.error, ValueError):
        return "its structure is damaged"


def _compound_structure_problem(data: bytes) -> str | None:
    shift, mini_shift = struct.unpack_from("<HH", data, 30)
    if shift not in (9, 12) or mini_shift != 6:
        return "its sector sizes are not those of a compound file"
    size = 1 << shift
    sectors = (len(data) - size) // size
    fat_count, directory_start = struct.unpack_from("<II", data, 44)
    cutoff, mini_fat_start, _, difat_start, difat_count = struct.unpack_from("<IIIII", data, 56)
    if fat_count > sectors or difat_count > sectors:
        return "its header counts more sectors than the file holds"

    def sector(number: int) -> bytes:
        if number >= sectors:
            return b""
        return data[size + number * size : size + (number + 1) * size]

    fat_sectors = list(struct.unpack_from("<109I", data, 76))
    for _ in range(difat_count):
        if difat_start >= sectors:
            break
        *entries, difat_start = struct.unpack(f"<{size // 4}I", sector(difat_start))
        fat_sectors += entries
    fat_sectors = fat_sectors[:fat_count]
    if any(number >= sectors for number in fat_sectors):
        return "its sector table points outside the file"
    fat = np.frombuffer(b"".join(sector(n) for n in fat_sectors), dtype="<u4")
    if problem := _chain_problem(fat):
        return problem
    mini_fat = np.frombuffer(b"".join(sector(n) for n in _chain(fat, mini_fat_start)), dtype="<u4")
    if problem := _chain_problem(mini_fat):
        return problem
    directory = b"".join(sector(n) for n in _chain(fat, directory_start))
    for offset in range(0, len(directory) - 127, 128):
        kind = directory[offset + 66]
        start, length = struct.unpack_from("<II", directory, offset + 116)
        if kind not in (1, 2, 5):
            continue
        # A small stream lives in the mini stream, numbered by the mini FAT.
        table = mini_fat if kind == 2 and length < cutoff else fat
        if length > len(data) or (start < _LAST_SECTOR and start >= len(table) and length):
            return "a stream claims more than the file holds"
    return None


def _chain(fat: np.ndarray[Any, Any], start: int) -> list[int]:
    """The sectors of the chain from `start`, in a FAT already checked to have no loops."""
    found = []
    while start < min(_LAST_SECTOR, len(fat)):
        found.append(start)
        start = int(fat[start])
    return found


def _chain_problem(fat: np.ndarray[Any, Any]) -> str | None:
    """Why the chains of `fat` cannot all be followed to their end, or None.

    Every next-sector pointer must lie inside the table, and following pointers from any
    sector must end: checked by doubling (each step squares the walk), so a table of
    n sectors costs log2(n) array operations rather than a walk per chain.
    """
    count = len(fat)
    pointers = fat.astype(np.int64)
    linked = pointers < _LAST_SECTOR
    if (linked & (pointers >= count)).any():
        return "its sector table points outside the file"
    # Sector `count` is a sink that every chain end leads to.
    walk = np.append(np.where(linked, pointers, count), count)
    for _ in range(max(count, 1).bit_length() + 1):
        walk = walk[walk]
    if (walk[:count] != count).any():
        return "a chain of its sectors loops back on itself"
    return None


def _is_encrypted_package(path: Path) -> bool:
    """Excel saves a protected workbook as an OLE container holding an EncryptedPackage."""
    try:
        with path.open("rb") as handle:
            head = handle.read(1 << 20)
    except OSError:
        return False
    return head.startswith(b"\xd0\xcf\x11\xe0") and "EncryptedPackage".encode("utf-16-le") in head
