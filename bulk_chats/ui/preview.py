"""How the page shows an upload: its columns with a few of their values, the column each
field is read from, the first rows as they will be read, and whether the runs can read it.

One sheet serves several runs: Validate, Dry run and Import read a customer and an
application; Update and Close chats read a `chat_id` (a results workbook's own one too).
The preview reads the upload once, as `update` and `close` do but without requiring a
column, and then says for each kind of run what it lacks, in the page's words.
"""

from __future__ import annotations

import datetime as dt
import shlex
from dataclasses import dataclass, field

from bulk_chats.errors import InputError
from bulk_chats.fields import FIELD_NAMES, ID_FIELDS, WORKSHEET_ROWS, names_for
from bulk_chats.sheet.loading import Sheet, TwoColumns, check_columns, load_sheet
from bulk_chats.ui.uploads import Upload
from bulk_chats.ui.words import in_page_words

SAMPLES = 3
"""Values shown beside each column: its first distinct ones that are not blank."""

SAMPLE_ROWS = 200
"""Rows looked through for a column's samples."""

PREVIEW_ROWS = 5
"""Rows the preview shows as they will be read."""

_SHOWN = 40
"""Characters of a cell the preview shows; the rest is cut with an ellipsis."""


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the upload: its header, a few of its values, and the fields read
    from it (none: it is copied to the results untouched)."""

    position: int
    header: str
    samples: tuple[str, ...]
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Preview:
    """An upload as the loader reads it with the current choices: its columns and which
    one each field is read from (`mapping`, field → header), its data rows (`rows`; the
    first few in `first_rows` as (source row, the cell of each field of `read`)); `error`
    says why Validate, Dry run and Import cannot read it yet, `chats_error` why Update and
    Close chats cannot (None: they can)."""

    headers: tuple[str, ...] = ()
    mapping: dict[str, str] = field(default_factory=dict)
    rows: int = 0
    error: str | None = None
    chats_error: str | None = None
    columns: tuple[Column, ...] = ()
    read: tuple[str, ...] = ()
    first_rows: tuple[tuple[int, tuple[str, ...]], ...] = ()
    twice: tuple[str, ...] = ()
    """The fields two columns give, shown unread until the user chooses one (or none)."""

    @property
    def usable(self) -> bool:
        """Some run can read the sheet as it is mapped."""
        return bool(self.headers) and (self.error is None or self.chats_error is None)

    @property
    def fits_workbook(self) -> bool:
        """The results fit a worksheet; past it they are written as CSV."""
        return self.rows + 1 <= WORKSHEET_ROWS


def read_preview(upload: Upload) -> Preview:
    """Read `upload` once and check it for both kinds of run. Messages name the file as
    the user knows it, not the path it was stored under, in the page's words."""

    def told(exc: InputError) -> str:
        return in_page_words(str(exc), files=[(upload.path, upload.name)])

    # Two columns giving one field stop every run until the user says which to read, but
    # not the mapping that lets them say it: the sheet is shown with that field unread.
    columns = dict(upload.columns)
    twice: dict[str, str] = {}
    while True:
        try:
            sheet = load_sheet(
                upload.path, sheet=upload.sheet, columns=columns, require=False, chats=True
            )
            break
        except TwoColumns as exc:
            if exc.field in twice:  # cannot happen: the field is unread now; never loop
                return Preview(error=told(exc), chats_error=told(exc))
            twice[exc.field] = told(exc)
            columns[exc.field] = ""
        except InputError as exc:
            return Preview(error=told(exc), chats_error=told(exc))

    def lacks(*, chats: bool) -> str | None:
        if twice:
            return "; ".join(twice.values())
        try:
            check_columns(upload.path, sheet.fields, chats=chats)
        except InputError as exc:
            return told(exc)
        return None

    read = tuple(name for name in mapping_fields() if name in sheet.fields)
    return Preview(
        headers=tuple(sheet.headers),
        mapping={name: sheet.headers[position] for name, position in sheet.fields.items()},
        rows=len(sheet),
        error=lacks(chats=False),
        chats_error=lacks(chats=True),
        twice=tuple(twice),
        columns=_columns(sheet, read),
        read=read,
        first_rows=tuple(
            (
                sheet.source_rows[row],
                tuple(_text(sheet.cells.iat[row, sheet.fields[name]]) for name in read),
            )
            for row in range(min(PREVIEW_ROWS, len(sheet)))
        ),
    )


def _columns(sheet: Sheet, read: tuple[str, ...]) -> tuple[Column, ...]:
    columns = []
    for position, header in enumerate(sheet.headers):
        samples: list[str] = []
        for value in sheet.cells.iloc[:SAMPLE_ROWS, position]:
            text = _text(value)
            if text.strip() and text not in samples:
                samples.append(text)
                if len(samples) == SAMPLES:
                    break
        fields = tuple(name for name in read if sheet.fields[name] == position)
        columns.append(Column(position, header, tuple(samples), fields))
    return tuple(columns)


def _text(value: object) -> str:
    """A cell as the page shows it: whole numbers without `.0`, dates as ISO text, cut
    at `_SHOWN` characters."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, dt.datetime | dt.date | dt.time):
        text = value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    else:
        text = str(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def mapping_fields() -> tuple[str, ...]:
    """The fields the mapping offers, in the order a person reads them: each id field and
    then the names that may stand in for it, then the rest. From the vocabulary, so that a
    new field shows up on the page by itself."""
    order: list[str] = []
    for name in ID_FIELDS:
        order += [name, *names_for(name)]
    return (*order, *(name for name in FIELD_NAMES if name not in order))


def column_options(upload: Upload | None) -> str:
    """The `--column` options the page's mapping amounts to, as a shell would take them."""
    if upload is None:
        return ""
    return " ".join(
        f"--column {shlex.quote(f'{name}={header}')}" for name, header in upload.columns.items()
    )
