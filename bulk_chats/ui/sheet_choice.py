"""The sheet the page works on: the one upload it keeps, how it is read (sheet, column
mapping) and where its results go (a workbook, or CSV).

One at a time: while the file is stored or read (`reading`), another upload, a change of
sheet or mapping and a run are refused. Only the current upload is kept: the one it
replaces is removed, and so is the current one when the page stops (`close`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
from starlette.requests import Request

from bulk_chats.fields import FIELD_NAMES
from bulk_chats.ui.mapping import give_column, give_field
from bulk_chats.ui.preview import Preview, read_preview
from bulk_chats.ui.uploads import Upload, discard, receive_upload


class SheetChoice:
    """The current upload (`upload`, None before the first), its `preview`, how many
    files were chosen so far (`uploads`: a new one moves every tab to its columns), and how
    many times the upload, its sheet, its mapping or its results file changed (`changes`:
    every tab shows them again, so that none shows a mapping the runs will not use)."""

    def __init__(self, *, reports_dir: Path, cap: int) -> None:
        self._reports_dir = reports_dir
        self._cap = cap
        self._lock = threading.Lock()
        self.upload: Upload | None = None
        self.preview = Preview()
        self.reading = False
        self.uploads = 0
        self.changes = 0
        self.closing = False
        self._results_csv: bool | None = None

    async def receive(self, request: Request) -> None:
        """Store the request's body as the new upload (`receive_upload`, which raises
        `UploadRefused`) and read it; the one it replaces is removed."""
        self.reading = True
        try:
            upload = await receive_upload(request, reports_dir=self._reports_dir, cap=self._cap)
            await self._set(upload)
            self.uploads += 1
            self._results_csv = None
        finally:
            self.reading = False

    async def choose_sheet(self, upload: Upload, sheet: str) -> None:
        """Read another sheet of the workbook; its mapping starts again from its headers."""
        await self._read_again(replace(upload, sheet=sheet, columns={}))

    async def map(self, upload: Upload, body: Mapping[str, Any]) -> None:
        """Read a field from a column (`field` and `header`; a blank header: from none) or
        a column as a field (`column` and `field`; a blank field: as none). Raises
        `ValueError` for a field or column the sheet does not have, `MappingRefused` for
        a field another column gives (`mapping.give_column`)."""
        name = str(body.get("field", ""))
        if name and name not in FIELD_NAMES:
            raise ValueError(f"unknown field {name!r}")
        if "column" in body:
            column = str(body["column"])
            if column not in self.preview.headers:
                raise ValueError(f"no column headed {column!r}")
            columns = give_column(upload.columns, self.preview, column, name)
        else:
            header = str(body.get("header", ""))
            if not name:
                raise ValueError("name the field to map")
            if header and header not in self.preview.headers:
                raise ValueError(f"no column headed {header!r}")
            columns = give_field(upload.columns, name, header)
        await self._read_again(replace(upload, columns=columns))

    def results_as(self, choice: str) -> None:
        """The Results file of this upload: `xlsx` or `csv`; `ValueError` for another."""
        if choice not in ("xlsx", "csv"):
            raise ValueError("Results file: choose Workbook or CSV")
        self._results_csv = choice == "csv"
        self.changes += 1

    @property
    def csv(self) -> bool:
        """Whether the results are written as CSV: as chosen, else when the sheet has more
        rows than a worksheet holds."""
        if self._results_csv is not None:
            return self._results_csv
        return self.upload is not None and not self.preview.fits_workbook

    def close(self) -> None:
        """The page stops: remove the current upload (results and the journal stay)."""
        with self._lock:
            self.closing = True
            upload, self.upload, self.preview = self.upload, None, Preview()
        if upload is not None:
            discard(upload)

    async def _read_again(self, upload: Upload) -> None:
        """Read the current upload with other choices; nothing else reads it meanwhile."""
        self.reading = True
        try:
            await self._set(upload)
        finally:
            self.reading = False

    async def _set(self, upload: Upload) -> None:
        """Make `upload` current, once read; the file it replaces is removed."""
        try:
            preview = await anyio.to_thread.run_sync(read_preview, upload)
        except BaseException:
            if self.upload is None or self.upload.path != upload.path:
                discard(upload)
            raise
        with self._lock:
            before, kept = self.upload, not self.closing
            if kept:
                self.upload, self.preview = upload, preview
                self.changes += 1
        if before is not None and before.path != upload.path:
            discard(before)
        if not kept:  # the page stopped while it was read
            discard(upload)
