"""CSV input: every cell as text, the delimiter and encoding detected (docs/reference.md › Input).

Read as text only, so a digit column with a blank never becomes float64 and an id never
passes through a float.
"""

from __future__ import annotations

import codecs
import csv
from pathlib import Path

import pandas as pd

from bulk_chats.errors import InputError

_DELIMITERS = ",;\t"
_SAMPLE_BYTES = 65536
_DECODE_CHUNK = 1 << 20


def read_csv(path: Path) -> pd.DataFrame:
    """Every cell as text; the header is row 0. Blank lines stay, to keep row numbers.

    pandas' C parser reads the file straight from disk (no copy of the text in memory,
    so a million rows stay within a few hundred MiB). It takes the width of the table
    from the first line, so it refuses a file that starts with a blank line or has a row
    longer than the first, both of which a spreadsheet opens without complaint: for
    those the csv module finds the widest row first (also reporting a quote left open),
    and pandas reads again at that width, short rows padded with "".
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(_SAMPLE_BYTES)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if not head.strip() and size <= len(head):
        raise InputError(f"{path}: the file is empty")
    if head.startswith(_UTF16_BOMS):
        # Excel's "Unicode text" export: UTF-16 with a byte order mark, tab-separated.
        encoding = "utf-16"
        if _decodes(path, encoding) is not None:
            raise InputError(f"{path}: not valid UTF-16 text, though it starts like it")
    elif b"\x00" in head:
        raise InputError(f"{path}: not a text file (it holds binary data); expected CSV")
    else:
        encoding = _encoding(path)
    delimiter = _sniff_delimiter(head.decode(encoding, errors="ignore"))
    try:
        return _read_csv_frame(path, encoding, delimiter, width=None)
    except (pd.errors.ParserError, pd.errors.EmptyDataError):
        pass
    width = _csv_width(path, encoding, delimiter)
    if not width:
        raise InputError(f"{path}: the file is empty")
    try:
        return _read_csv_frame(path, encoding, delimiter, width=width)
    except (pd.errors.ParserError, pd.errors.EmptyDataError):
        return _read_csv_records(path, encoding, delimiter)


def _read_csv_frame(
    path: Path, encoding: str, delimiter: str, *, width: int | None
) -> pd.DataFrame:
    """pandas' reading: as wide as the first line, or `width` columns."""
    try:
        frame = pd.read_csv(
            path,
            sep=delimiter,
            header=None,
            names=None if width is None else range(width),
            dtype=object,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            encoding=encoding,
            engine="c",
        )
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    frame.columns = pd.RangeIndex(frame.shape[1])
    return frame


def _csv_width(path: Path, encoding: str, delimiter: str) -> int:
    """The most cells in any row, read with the csv module (nothing kept in memory)."""
    with path.open(encoding=encoding, newline="") as handle:
        # strict: a quote left open would otherwise swallow every later row into one cell.
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        try:
            return max(map(len, reader), default=0)
        except csv.Error as exc:
            raise InputError(
                f"{path}: cannot parse as CSV (line {reader.line_num}: {exc})"
            ) from None


def _read_csv_records(path: Path, encoding: str, delimiter: str) -> pd.DataFrame:
    """The csv module's reading of what pandas refused: ragged rows, leading blank lines,
    or a quote left open (which it reports)."""
    with path.open(encoding=encoding, newline="") as handle:
        # strict: a quote left open would otherwise swallow every later row into one cell.
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        try:
            records = list(reader)
        except csv.Error as exc:
            raise InputError(
                f"{path}: cannot parse as CSV (line {reader.line_num}: {exc})"
            ) from None
    width = max(map(len, records), default=0)
    if not width:
        raise InputError(f"{path}: the file is empty")
    for record in records:
        if len(record) < width:
            record.extend([""] * (width - len(record)))
    return pd.DataFrame(records, dtype=object)


_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def _encoding(path: Path) -> str:
    """UTF-8 (with or without BOM), else the Windows code page Excel writes.

    Checked by decoding the file a chunk at a time, so its text is never held whole.
    """
    if _decodes(path, "utf-8-sig") is None:
        return "utf-8-sig"
    failure = _decodes(path, "cp1252")
    if failure is None:
        return "cp1252"
    byte, offset = failure
    raise InputError(
        f"{path}: cannot decode byte 0x{byte:02x} at offset {offset}; save the file as UTF-8"
    )


def _decodes(path: Path, encoding: str) -> tuple[int, int] | None:
    """None when all of `path` decodes as `encoding`; else the first bad byte and its offset."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_DECODE_CHUNK):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    # Positions count in what the decoder held: the chunk after any bytes
                    # of a character the previous chunk left unfinished.
                    held = len(exc.object) - len(chunk)
                    return exc.object[exc.start], offset - held + exc.start
                offset += len(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        return exc.object[exc.start], offset - len(exc.object) + exc.start
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    return None


def _sniff_delimiter(text: str) -> str:
    """`,` `;` or tab, whichever the first lines use consistently (else the header's most
    frequent)."""
    sample = text[:_SAMPLE_BYTES]
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        header = next((line for line in sample.splitlines() if line.strip()), "")
        return max(_DELIMITERS, key=header.count)
