"""The results as CSV (`--out NAME.csv`): RFC 4180, UTF-8 with a BOM so that Excel opens
it right, for inputs near or past the rows a worksheet holds.

Written by hand rather than with `DataFrame.to_csv` because the loader benchmark needs
it: for its 1,000,000 rows it takes 1.7 s of CPU where `to_csv` takes 6.0 s, which would
put `validate --out x.csv` at about 2x of its baseline instead of 1.1x. A property test
holds its output to the csv module's on any cells.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CHUNK_ROWS = 16_384
"""Rows converted and written at a time: the writer's memory does not grow with the sheet."""


def write_csv(
    results: pd.DataFrame, path: Path, *, written: Callable[[int, int], None] | None = None
) -> None:
    """RFC 4180 CSV, UTF-8 with a BOM, a chunk of rows at a time; `written` is told the
    rows written so far and the rows in all after each chunk.

    Lines are joined from whole columns of text (quoted only where a cell holds a comma,
    a quote or a line break, as the csv module would): the csv module itself spends
    a third of a microsecond on every cell.
    """
    with path.open("wb") as handle:
        labels = _csv_texts(np.array([str(label) for label in results.columns], dtype=object))
        labels = _lone_blanks_quoted(labels) if len(labels) == 1 else labels
        handle.write(codecs.BOM_UTF8 + (",".join(labels) + "\r\n").encode("utf-8"))
        for start in range(0, len(results), CHUNK_ROWS):
            chunk = results.iloc[start : start + CHUNK_ROWS]
            columns = [_csv_texts(_csv_column(chunk.iloc[:, i])) for i in range(chunk.shape[1])]
            if len(columns) == 1:
                columns = [_lone_blanks_quoted(columns[0])]
            lines = map(",".join, zip(*columns, strict=True))
            handle.write(("\r\n".join(lines) + "\r\n").encode("utf-8"))
            if written is not None:
                written(start + len(chunk), len(results))


def _lone_blanks_quoted(texts: Any) -> Any:
    """A blank cell alone on its line written as `""`, as the csv module does: an empty
    line would read back as no row at all."""
    return np.where(texts == "", '""', texts).astype(object)


def _csv_column(column: pd.Series) -> Any:
    """A column's cells as text: blanks "", whole floats without ".0" (else `attempts` 1
    would read "1.0"), ints exact, the rest as `str()` gives them."""
    values = column.to_numpy(dtype=object)
    kind = pd.api.types.infer_dtype(values, skipna=False)
    if kind in ("string", "empty"):
        return values
    if kind == "integer":
        return np.fromiter(map(str, values), dtype=object, count=len(values))
    missing = np.asarray(pd.isna(values), dtype=bool)
    present = np.flatnonzero(~missing)
    out = np.empty(len(values), dtype=object)
    out.fill("")
    chosen = values[present]
    if pd.api.types.infer_dtype(chosen) == "string":
        out[present] = chosen
    else:
        out[present] = np.array([_csv_cell(v) for v in chosen] + [None], dtype=object)[:-1]
    return out


def _csv_cell(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _csv_texts(texts: Any) -> Any:
    """Texts quoted where the csv module would quote them (a comma, a quote, CR or LF),
    looking at each one only when the column as a whole holds such a character."""
    joined = "\x00".join(texts)
    # `in` scans at memory speed; the regular expression only runs when there is a hit.
    if not any(special in joined for special in ',"\r\n'):
        return texts
    hits = [match.start() for match in _CSV_SPECIAL.finditer(joined)]
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    starts = np.cumsum(lengths + 1) - (lengths + 1)
    need = np.unique(np.searchsorted(starts, hits, side="right") - 1)
    quoted = texts.copy()
    quoted[need] = np.fromiter(map(_quote, texts[need]), dtype=object, count=len(need))
    return quoted


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


_CSV_SPECIAL = re.compile(r'[",\r\n]')
