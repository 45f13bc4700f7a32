"""Read a workbook with python-calamine in a child process held to a memory limit, and write
what it found to stdout as a pickle.

    python -P workbook_child.py read PATH SHEET MEMORY BUDGET
    python -P workbook_child.py sheets PATH MEMORY

calamine (Rust) trusts sizes written in the file: a 6 KB .xlsx with one cell at XFD1048576
makes it allocate 512 GiB, an .xls whose sector chain loops makes it allocate until the
process dies, and either way Rust aborts the whole process, which no `except` can catch.
Held to MEMORY bytes of address space, such a file costs a failed child instead.

It is run as a file, not with `python -m bulk_chats.sheet.workbook_child`: that would
import the package first, and pandas with it (0.9 s and 70 MiB before the first cell is
read). So it imports nothing of this package, and `-P` keeps its own folder off
`sys.path`.

The answer is one tuple. `read`: ("rows", rows) with the sheet's cells as Python values,
("no sheets",), ("no such sheet", names), ("too sparse", height, width) when the sheet's
grid holds more than BUDGET cells, or ("error", text) when calamine raised. `sheets`:
("sheets", names) or ("error", text).
"""

from __future__ import annotations

import contextlib
import pickle
import sys
from typing import Any


def limit_memory(memory: int) -> None:
    """Hold this process to `memory` bytes of address space (where the system allows)."""
    try:
        import resource
    except ImportError:  # Windows: no limit to set.
        return
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    limit = memory if hard == resource.RLIM_INFINITY else min(memory, hard)
    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def read(path: str, sheet: str | None, budget: int) -> tuple[Any, ...]:
    """The answer for `sheet` (None: the first) of the workbook at `path`."""
    from python_calamine import CalamineWorkbook

    try:
        book = CalamineWorkbook.from_path(path)
        names = list(book.sheet_names)
        if not names:
            return ("no sheets",)
        if sheet is not None and sheet not in names:
            return ("no such sheet", names)
        chosen = book.get_sheet_by_index(0) if sheet is None else book.get_sheet_by_name(sheet)
        if chosen.height * chosen.width > budget:
            return ("too sparse", chosen.height, chosen.width)
        return ("rows", chosen.to_python(skip_empty_area=False))
    except Exception as exc:
        return ("error", f"{type(exc).__name__}: {exc}")


def sheets(path: str) -> tuple[Any, ...]:
    """The names of the sheets of the workbook at `path`, in order."""
    from python_calamine import CalamineWorkbook

    try:
        return ("sheets", list(CalamineWorkbook.from_path(path).sheet_names))
    except Exception as exc:
        return ("error", f"{type(exc).__name__}: {exc}")


def main(argv: list[str]) -> None:
    verb, *rest = argv
    if verb == "sheets":
        path, memory = rest
        limit_memory(int(memory))
        answer = sheets(path)
    else:
        path, sheet, memory, budget = rest
        limit_memory(int(memory))
        answer = read(path, sheet or None, int(budget))
    sys.stdout.buffer.write(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    main(sys.argv[1:])
