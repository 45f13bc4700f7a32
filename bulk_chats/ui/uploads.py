"""The page's uploads: the file the user chose, stored under the reports folder.

An upload lands in a folder of its own under `reports/uploads/`, owner-only as the
journal and the results workbooks are (it holds the same customer data), with the file's
own name stripped of folders and odd characters, and no bigger than the cap: a body is
cut off as soon as it passes it, whatever its declared length.

Only the page's current upload is kept: the page discards the one it replaces and its own
when it stops, and an upload refused halfway leaves nothing. A page killed before it could
leaves its upload behind; the folder is named for the page's process, so the next page to
start removes the uploads of pages no longer running (and those of versions that kept
every upload), never one that another running page still reads.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from starlette.requests import Request

from bulk_chats.errors import InputError
from bulk_chats.results import owner_only
from bulk_chats.sheet.loading import CSV_SUFFIXES, WORKBOOK_SUFFIXES
from bulk_chats.sheet.workbook import sheet_names

DEFAULT_MAX_UPLOAD = 200 * 1024 * 1024
"""Bytes an upload may have (a million-row CSV is about 100 MB)."""

UPLOADS = "uploads"
"""The folder under the reports folder where uploads land, one subfolder each."""


@dataclass(slots=True)
class Upload:
    """The sheet the page works on, and the user's choices for reading it: the workbook's
    sheet (None: the first) and the `--column` mapping. `name` is the file's name as the
    user chose it, for what the page says and the results; `path` is where it is stored,
    under a name made safe."""

    path: Path
    name: str
    sheets: list[str]
    sheet: str | None = None
    columns: dict[str, str] = field(default_factory=dict)


class UploadRefused(Exception):
    """An upload the page does not take: the message for the user, and the HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


async def receive_upload(request: Request, *, reports_dir: Path, cap: int) -> Upload:
    """Store the request's body (the file itself; its name in the `name` query parameter)
    under `reports_dir`, 0600 in 0700 folders; at most `cap` bytes. Raises UploadRefused."""
    chosen = request.query_params.get("name", "")
    name, stored = _shown_name(chosen), _safe_name(chosen)
    if Path(stored).suffix.lower() not in CSV_SUFFIXES | WORKBOOK_SUFFIXES:
        raise UploadRefused(
            f"{name or 'the file'}: not a spreadsheet; choose a .csv, .xlsx, .xls or .ods file",
            400,
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise UploadRefused(_too_large(name, cap), 413)
    folder = reports_dir / UPLOADS / f"{os.getpid()}-{secrets.token_hex(8)}"
    path = folder / stored
    with _KEEPING:
        _KEPT.add(folder)
    try:
        try:
            owner_only.make_folder(folder)  # reports/ and uploads/ too, if new
            size = await _store(request.stream(), path, cap)
        except OSError as exc:
            raise UploadRefused(
                f"{name}: cannot be stored in the reports folder: {exc.strerror}", 500
            ) from None
        if size is None:
            raise UploadRefused(_too_large(name, cap), 413)
        if not size:
            raise UploadRefused(f"{name}: the file is empty", 400)
        try:
            sheets = await anyio.to_thread.run_sync(_sheets_of, path)
        except InputError as exc:
            raise UploadRefused(str(exc).replace(str(path), name), 400) from None
    except BaseException:
        _remove(folder)
        raise
    return Upload(path=path, name=name, sheets=sheets)


def discard(upload: Upload) -> None:
    """Remove `upload`'s file and the folder it was stored in."""
    _remove(upload.path.parent)


def sweep_uploads(reports_dir: Path) -> None:
    """Remove the uploads under `reports_dir` that no running page keeps: those of pages
    killed before they could remove their own, and those of versions that kept them all.
    Where a process cannot be looked at without harm (Windows), its uploads stay."""
    try:
        folders = list((reports_dir / UPLOADS).iterdir())
    except OSError:
        return
    for folder in folders:
        owner, dash, _ = folder.name.partition("-")
        if dash and owner.isdigit() and running_elsewhere(int(owner)):
            continue
        with _KEEPING:
            if folder in _KEPT:  # another page of this process
                continue
        if folder.is_dir() and not folder.is_symlink():
            _remove(folder)


async def _store(chunks: AsyncIterator[bytes], path: Path, cap: int) -> int | None:
    """Write `chunks` to a new owner-only file at `path`; its size, or None (and no file)
    once it passes `cap` bytes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    size = 0
    with os.fdopen(fd, "wb") as out:
        async for chunk in chunks:
            size += len(chunk)
            if size > cap:
                break
            out.write(chunk)
    if size > cap:
        path.unlink(missing_ok=True)
        return None
    return size


_KEEPING = threading.Lock()
_KEPT: set[Path] = set()
"""The upload folders of the pages this process serves, until each is removed."""


def _remove(folder: Path) -> None:
    with _KEEPING:
        _KEPT.discard(folder)
    shutil.rmtree(folder, ignore_errors=True)


def running_elsewhere(pid: int) -> bool:
    """Whether process `pid` runs and is not this one (an earlier process may have had
    this one's number); True where that cannot be asked without harm."""
    if pid == os.getpid():
        return False
    if sys.platform == "win32":  # os.kill would end the process, whatever the signal
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's: running
        return True
    return True


def _shown_name(name: str) -> str:
    """The file's own name as the user chose it, for messages and the results: without
    folders or characters that do not print; at most 100 characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c for c in base if c.isprintable()).strip()[:100]


def _safe_name(name: str) -> str:
    """The file's own name, without folders or characters that mean something to a shell
    or a file system; at most 100 characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    kept = "".join(c if c.isalnum() or c in " ._-()" else "_" for c in base).strip(" .")
    stem, dot, suffix = kept.rpartition(".")
    if not dot:
        return kept[:100]
    return f"{stem[: 99 - len(suffix)]}.{suffix}"


def _too_large(name: str, cap: int) -> str:
    return (
        f"{name}: larger than {cap // (1024 * 1024)} MB, the most the page takes; use "
        "`bulk-chats import` in a terminal"
    )


def _sheets_of(path: Path) -> list[str]:
    return sheet_names(path) if path.suffix.lower() in WORKBOOK_SUFFIXES else []
