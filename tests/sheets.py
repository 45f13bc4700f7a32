"""Sheets the tests write as input, and results workbooks they read back."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import openpyxl


def write_csv(path: Path, header: Sequence[object], rows: Iterable[Sequence[object]]) -> Path:
    """A CSV file at `path`: the header, then the rows; returns `path`."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_results(path: Path) -> list[dict[str, Any]]:
    """The results sheet of the workbook at `path` as one dict per row, by header."""
    return read_sheet(path, "results")


def read_sheet(path: Path, name: str) -> list[dict[str, Any]]:
    """Sheet `name` of the workbook at `path` as one dict per row, by header."""
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        rows = list(book[name].iter_rows(values_only=True))
    finally:
        book.close()
    header = [str(h) for h in rows[0]]
    return [dict(zip(header, row, strict=True)) for row in rows[1:]]
