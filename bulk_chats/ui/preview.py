"""How the page shows an upload: its headers, the column each field is read from, and
whether the runs can read it.

One sheet serves several runs: Validate, Dry run and Import read a customer and an
application; Update and Close chats read a `chat_id` (a results workbook's own one too).
The preview reads the upload once, as `update` and `close` do but without requiring a
column, and then says for each kind of run what it lacks, in the loader's own words.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from bulk_chats.errors import InputError
from bulk_chats.fields import FIELD_NAMES, ID_FIELDS, names_for
from bulk_chats.sheet.loading import check_columns, load_sheet
from bulk_chats.ui.uploads import Upload


@dataclass(frozen=True, slots=True)
class Preview:
    """An upload as the loader reads it with the current choices: the headers and which
    one each field is read from; `error` says why Validate, Dry run and Import cannot read
    it yet, `chats_error` why Update and Close chats cannot (None: they can)."""

    headers: tuple[str, ...] = ()
    mapping: dict[str, str] = field(default_factory=dict)
    rows: int = 0
    error: str | None = None
    chats_error: str | None = None


def read_preview(upload: Upload) -> Preview:
    """Read `upload` once and check it for both kinds of run. Messages name the file as
    the user knows it, not the path it was stored under."""

    def told(exc: InputError) -> str:
        return str(exc).replace(str(upload.path), upload.name)

    try:
        sheet = load_sheet(
            upload.path, sheet=upload.sheet, columns=upload.columns, require=False, chats=True
        )
    except InputError as exc:
        return Preview(error=told(exc), chats_error=told(exc))

    def lacks(*, chats: bool) -> str | None:
        try:
            check_columns(upload.path, sheet.fields, chats=chats)
        except InputError as exc:
            return told(exc)
        return None

    return Preview(
        headers=tuple(sheet.headers),
        mapping={name: sheet.headers[position] for name, position in sheet.fields.items()},
        rows=len(sheet),
        error=lacks(chats=False),
        chats_error=lacks(chats=True),
    )


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
