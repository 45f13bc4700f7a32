"""A small streaming XLSX writer for the results workbook.

Rows go into the zip a chunk at a time, so a sheet of any length costs the memory of one
chunk. Cells are built a column at a time with array operations rather than a call per
cell, which makes writing 100,000 rows several times faster than a general-purpose writer.

It writes what the results workbook needs and nothing else: text (always inline text,
never a formula, whatever it starts with), numbers, booleans, dates, a few cell styles,
column widths, a frozen header and an autofilter.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
import re
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import IO, Any, TypeAlias
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import pandas as pd

Cells: TypeAlias = np.ndarray[Any, np.dtype[np.object_]]

MAX_ROWS = 1_048_576
"""Rows a worksheet holds."""

MAX_COLUMNS = 16_384
"""Columns a worksheet holds."""

MAX_TEXT = 32_767
"""Characters a cell holds; Excel refuses a file with a longer one."""

MAX_EXACT_DIGITS = 15
"""Excel keeps 15 significant digits: longer integers are written as text."""

DATE_FORMAT = "yyyy-mm-dd hh:mm:ss"

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PACKAGE_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_EPOCH = dt.datetime(1899, 12, 30)

# Characters XML 1.0 cannot carry (and CR, which XML parsers turn into LF) are written as
# Excel's _xHHHH_ escapes; a literal "_xHHHH_" in the text is escaped too, so that it
# reads back as itself.
_UNSAFE = re.compile(r"[&<>\x00-\x08\x0b-\x1f\ufffe\uffff\ud800-\udfff]|_x[0-9A-Fa-f]{4}_")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\ufffe\uffff\ud800-\udfff]|_(?=x[0-9A-Fa-f]{4}_)")


@dataclass(frozen=True, slots=True)
class Style:
    """A cell style: bold text, a solid fill ("#RRGGBB"), a thin bottom border, or a
    number format."""

    bold: bool = False
    fill: str | None = None
    bottom_border: bool = False
    number_format: str | None = None


def column_letter(position: int) -> str:
    """The spreadsheet's column letter for a 0-based position (0 → A, 26 → AA)."""
    letters = ""
    position += 1
    while position:
        position, rest = divmod(position - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def escape_text(text: str) -> str:
    """`text` fit for an XML text node of a cell: at most `MAX_TEXT` characters, markup
    escaped, control characters as _xHHHH_."""
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT]
    if _UNSAFE.search(text) is None:
        return text
    text = _CONTROL.sub(_control_escape, text)
    return escape(text)


def _control_escape(match: re.Match[str]) -> str:
    return f"_x{ord(match.group()):04X}_"


class Workbook:
    """An .xlsx being written: add styles, then write sheets one after another, then
    `close()` (or use as a context manager).

    Style 0 is the default; `add_style` returns the number a cell refers to.
    """

    def __init__(self, path: Path) -> None:
        # Level 1: a third of the time of the default level, for a file a little larger.
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1)
        self._sheets: list[str] = []
        self._filters: dict[int, str] = {}
        self._styles: list[Style] = [Style()]
        self.date_style = self.add_style(Style(number_format=DATE_FORMAT))

    def __enter__(self) -> Workbook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_style(self, style: Style) -> int:
        """The number of `style`, added if new."""
        if style in self._styles:
            return self._styles.index(style)
        self._styles.append(style)
        return len(self._styles) - 1

    @contextmanager
    def sheet(
        self,
        name: str,
        *,
        rows: int,
        columns: int,
        widths: Sequence[float] = (),
        freeze_header: bool = False,
        autofilter: bool = False,
    ) -> Iterator[SheetWriter]:
        """Write the sheet `name` of `rows` rows by `columns` columns (its dimension, known
        up front); rows are written through the yielded `SheetWriter`, in order."""
        if rows > MAX_ROWS or columns > MAX_COLUMNS:
            raise ValueError(
                f"{rows} rows by {columns} columns is more than a worksheet holds "
                f"({MAX_ROWS} by {MAX_COLUMNS})"
            )
        number = len(self._sheets)
        self._sheets.append(name)
        last = f"{column_letter(max(columns, 1) - 1)}{max(rows, 1)}"
        parts = [
            _HEAD,
            f'<worksheet xmlns="{_MAIN}" xmlns:r="{_RELS}">',
            f'<dimension ref="A1:{last}"/>' if rows and columns else '<dimension ref="A1"/>',
            "<sheetViews><sheetView ",
            'tabSelected="1" ' if number == 0 else "",
            'workbookViewId="0">',
        ]
        if freeze_header:
            parts.append(
                '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
                '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>'
            )
        parts.append('</sheetView></sheetViews><sheetFormatPr defaultRowHeight="15"/>')
        if widths:
            parts.append("<cols>")
            parts += [
                f'<col min="{i}" max="{i}" width="{w:g}" customWidth="1"/>'
                for i, w in enumerate(widths, start=1)
            ]
            parts.append("</cols>")
        parts.append("<sheetData>")
        filter_ref = ""
        if autofilter and columns:
            filter_ref = f"A1:{column_letter(columns - 1)}{max(rows, 2)}"
            self._filters[number] = filter_ref
        large = rows * max(columns, 1) > 2_000_000
        with self._zip.open(f"xl/worksheets/sheet{number + 1}.xml", "w", force_zip64=large) as raw:
            raw.write("".join(parts).encode())
            yield SheetWriter(raw)
            tail = "</sheetData>"
            if filter_ref:
                tail += f'<autoFilter ref="{filter_ref}"/>'
            tail += (
                '<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" '
                'header="0.3" footer="0.3"/></worksheet>'
            )
            raw.write(tail.encode())

    def close(self) -> None:
        """Write the parts that list the sheets and styles, and close the file."""
        if self._zip.fp is None:
            return
        try:
            self._write_package()
        finally:
            self._zip.close()

    def _write_package(self) -> None:
        count = len(self._sheets)
        sheets = "".join(
            f'<sheet name={quoteattr(name)} sheetId="{i}" r:id="rId{i}"/>'
            for i, name in enumerate(self._sheets, start=1)
        )
        names = "".join(
            f'<definedName name="_xlnm._FilterDatabase" localSheetId="{number}" hidden="1">'
            f"{escape(_sheet_reference(self._sheets[number]))}!{_absolute(ref)}</definedName>"
            for number, ref in self._filters.items()
        )
        self._put(
            "xl/workbook.xml",
            f'<workbook xmlns="{_MAIN}" xmlns:r="{_RELS}"><workbookPr/>'
            '<bookViews><workbookView xWindow="0" yWindow="0" windowWidth="16384" '
            f'windowHeight="8192"/></bookViews><sheets>{sheets}</sheets>'
            + (f"<definedNames>{names}</definedNames>" if names else "")
            + "</workbook>",
        )
        relations = "".join(
            f'<Relationship Id="rId{i}" Type="{_RELS}/worksheet" Target="worksheets/sheet{i}.xml"/>'
            for i in range(1, count + 1)
        )
        relations += (
            f'<Relationship Id="rId{count + 1}" Type="{_RELS}/styles" Target="styles.xml"/>'
        )
        self._put(
            "xl/_rels/workbook.xml.rels",
            f'<Relationships xmlns="{_PACKAGE_RELS}">{relations}</Relationships>',
        )
        self._put("xl/styles.xml", self._styles_xml())
        self._put(
            "_rels/.rels",
            f'<Relationships xmlns="{_PACKAGE_RELS}">'
            f'<Relationship Id="rId1" Type="{_RELS}/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>",
        )
        main = "application/vnd.openxmlformats-officedocument.spreadsheetml"
        overrides = "".join(
            f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{main}.worksheet+xml"/>'
            for i in range(1, count + 1)
        )
        self._put(
            "[Content_Types].xml",
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{main}.sheet.main+xml"/>'
            f'<Override PartName="/xl/styles.xml" ContentType="{main}.styles+xml"/>'
            f"{overrides}</Types>",
        )

    def _put(self, name: str, xml: str) -> None:
        self._zip.writestr(name, _HEAD + xml)

    def _styles_xml(self) -> str:
        formats = sorted({s.number_format for s in self._styles if s.number_format})
        format_ids = {code: 164 + i for i, code in enumerate(formats)}
        fills = sorted({s.fill for s in self._styles if s.fill})
        fill_ids = {colour: 2 + i for i, colour in enumerate(fills)}
        font = '<sz val="11"/><name val="Calibri"/><family val="2"/>'
        xfs = []
        for style in self._styles:
            attributes = [
                f'numFmtId="{format_ids.get(style.number_format or "", 0)}"',
                f'fontId="{int(style.bold)}"',
                f'fillId="{fill_ids.get(style.fill or "", 0)}"',
                f'borderId="{int(style.bottom_border)}"',
                'xfId="0"',
            ]
            if style.number_format:
                attributes.append('applyNumberFormat="1"')
            if style.bold:
                attributes.append('applyFont="1"')
            if style.fill:
                attributes.append('applyFill="1"')
            if style.bottom_border:
                attributes.append('applyBorder="1"')
            xfs.append(f"<xf {' '.join(attributes)}/>")
        parts = [f'<styleSheet xmlns="{_MAIN}">']
        if formats:
            parts.append(f'<numFmts count="{len(formats)}">')
            parts += [
                f'<numFmt numFmtId="{format_ids[code]}" formatCode={quoteattr(code)}/>'
                for code in formats
            ]
            parts.append("</numFmts>")
        parts.append(f'<fonts count="2"><font>{font}</font><font><b/>{font}</font></fonts>')
        parts.append(
            f'<fills count="{2 + len(fills)}"><fill><patternFill patternType="none"/></fill>'
            '<fill><patternFill patternType="gray125"/></fill>'
        )
        parts += [
            '<fill><patternFill patternType="solid">'
            f'<fgColor rgb="FF{colour.lstrip("#").upper()}"/><bgColor indexed="64"/>'
            "</patternFill></fill>"
            for colour in fills
        ]
        parts.append(
            '</fills><borders count="2"><border><left/><right/><top/><bottom/><diagonal/>'
            '</border><border><left/><right/><top/><bottom style="thin"><color auto="1"/>'
            "</bottom><diagonal/></border></borders>"
            '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>'
            f'</cellStyleXfs><cellXfs count="{len(xfs)}">{"".join(xfs)}</cellXfs>'
            '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/>'
            "</cellStyles></styleSheet>"
        )
        return "".join(parts)


class SheetWriter:
    """Writes rows of one sheet; see `cells` for building a column's cells."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw

    def write_rows(self, rows: Cells, columns: Sequence[Cells]) -> None:
        """Write the rows numbered `rows` (from `row_numbers`); `columns` holds each
        column's cell XML, one entry per row, "" for an empty cell (see `cells`)."""
        opening = '<row r="' + rows + '">'
        lines = map("".join, zip(opening, *columns, ["</row>"] * len(rows), strict=True))
        self._raw.write("".join(lines).encode("utf-8"))


def row_numbers(first: int, count: int) -> Cells:
    """The numbers of `count` rows from `first` (1-based) as text, for `cells`."""
    numbers: Cells = np.fromiter(map(str, range(first, first + count)), dtype=object, count=count)
    return numbers


def cells(
    values: Any,
    column: int,
    rows: Cells,
    *,
    style: int | Cells = 0,
    date_style: int = 0,
) -> Cells:
    """The XML of a column's cells, one per entry of `rows` (from `row_numbers`): "" for a
    blank (None, NaN, <NA> or ""), inline text for text, a number for a number.

    `values` is any one-dimensional array-like. `style` is a style number for every cell,
    or an array of ` s="N"` attributes, one per row ("" for none). The text, float and int
    cells of a column are each built with array operations; only cells of other types
    (booleans, dates, infinities, integers too long for Excel) are converted one by one.
    """
    array = _objects(values)
    out = np.empty(len(array), dtype=object)
    out.fill("")
    blank = np.asarray(pd.isna(array), dtype=bool)
    filled = np.flatnonzero(~blank)
    # Compared only where not missing: `<NA> == ""` has no truth value.
    blank[filled] = array[filled] == ""
    present = np.flatnonzero(~blank)
    if not len(present):
        return out
    chosen = array[present]
    refs = f'<c r="{column_letter(column)}' + rows[present]
    attributes: Any = style[present] if isinstance(style, np.ndarray) else _attribute(style)
    kinds = np.fromiter(map(type, chosen), dtype=object, count=len(chosen))
    done = np.zeros(len(chosen), dtype=bool)

    text = _of_type(kinds, str)
    if len(text):
        out[present[text]] = (
            refs[text]
            + '" t="inlineStr"'
            + _pick(attributes, text)
            + '><is><t xml:space="preserve">'
            + escape_texts(chosen[text])
            + "</t></is></c>"
        )
        done[text] = True
    real = _of_type(kinds, float)
    if len(real):
        real = real[np.isfinite(chosen[real].astype(np.float64))]
        out[present[real]] = _number_cells(refs[real], chosen[real], _pick(attributes, real))
        done[real] = True
    whole = _of_type(kinds, int)
    if len(whole):
        numbers = chosen[whole]
        whole = whole[(numbers > -(10**MAX_EXACT_DIGITS)) & (numbers < 10**MAX_EXACT_DIGITS)]
        out[present[whole]] = _number_cells(refs[whole], chosen[whole], _pick(attributes, whole))
        done[whole] = True

    for i in np.flatnonzero(~done):
        attribute = attributes if isinstance(attributes, str) else attributes[i]
        out[present[i]] = _cell(refs[i], chosen[i], attribute, date_style)
    return out


def escape_texts(texts: Cells) -> Cells:
    """`escape_text` of every text, looking at each one only when the column as a whole
    has something to escape."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    # "\n" needs no escape and cannot be part of one, so a match never spans two texts.
    hits = [match.start() for match in _UNSAFE.finditer("\n".join(texts))]
    need = lengths > MAX_TEXT
    if hits:
        starts = np.cumsum(lengths + 1) - (lengths + 1)
        need[np.searchsorted(starts, hits, side="right") - 1] = True
    if not need.any():
        return texts
    escaped = texts.copy()
    escaped[need] = np.fromiter(map(escape_text, texts[need]), dtype=object, count=need.sum())
    return escaped


def _number_cells(refs: Cells, numbers: Cells, attributes: Any) -> Cells:
    # repr: the shortest text that reads back as the same float; str for ints.
    text = np.fromiter(map(repr, numbers), dtype=object, count=len(numbers))
    joined: Cells = refs + '"' + attributes + "><v>" + text + "</v></c>"
    return joined


def _of_type(kinds: Cells, kind: type) -> Any:
    """Positions whose type is exactly `kind` (bool is not int here; it has its own cell)."""
    return np.flatnonzero(
        np.fromiter(map(operator.is_, kinds, repeat(kind)), dtype=bool, count=len(kinds))
    )


def _attribute(style: int) -> str:
    return f' s="{style}"' if style else ""


def _pick(attributes: Any, positions: Any) -> Any:
    return attributes if isinstance(attributes, str) else attributes[positions]


def _cell(ref: str, value: object, attribute: str, date_style: int) -> str:
    """One cell of any type (the slow path, for columns that mix types)."""
    if isinstance(value, bool | np.bool_):
        return f'{ref}" t="b"{attribute}><v>{int(value)}</v></c>'
    if isinstance(value, int | np.integer):
        number = int(value)
        if len(str(abs(number))) > MAX_EXACT_DIGITS:
            return _text_cell(ref, str(number), attribute)
        return f'{ref}"{attribute}><v>{number}</v></c>'
    if isinstance(value, float | np.floating):
        real = float(value)
        if math.isnan(real):
            return ""
        if math.isinf(real):
            return f'{ref}" t="e"{attribute}><v>#DIV/0!</v></c>'
        return f'{ref}"{attribute}><v>{real!r}</v></c>'
    serial = _serial(value)
    if serial is not None:
        dated = attribute or f' s="{date_style}"'
        return f'{ref}"{dated}><v>{serial!r}</v></c>'
    return _text_cell(ref, str(value), attribute)


def _text_cell(ref: str, text: str, attribute: str) -> str:
    return (
        f'{ref}" t="inlineStr"{attribute}><is><t xml:space="preserve">'
        f"{escape_text(text)}</t></is></c>"
    )


def _serial(value: object) -> float | None:
    """A date or time as Excel's serial number (days since 1899-12-30), else None."""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        return (value.replace(tzinfo=None) - _EPOCH) / dt.timedelta(days=1)
    if isinstance(value, dt.date):
        return float((value - _EPOCH.date()).days)
    if isinstance(value, dt.time):
        seconds = value.hour * 3600 + value.minute * 60 + value.second
        return (seconds + value.microsecond / 1e6) / 86400
    if isinstance(value, dt.timedelta):
        return value / dt.timedelta(days=1)
    return None


def _objects(values: Any) -> Cells:
    if isinstance(values, pd.Series):
        values = values.array
    if isinstance(values, pd.api.extensions.ExtensionArray):
        array: Cells = values.to_numpy(dtype=object)
        return array
    return np.asarray(values, dtype=object)


def _sheet_reference(name: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name):
        return name
    return "'" + name.replace("'", "''") + "'"


def _absolute(ref: str) -> str:
    return ":".join(re.sub(r"([A-Z]+)(\d+)", r"$\1$\2", part) for part in ref.split(":"))
