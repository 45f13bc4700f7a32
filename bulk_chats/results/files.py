"""Putting a results file in place, and cleaning up after a write that was killed.

A file is written in a hidden folder beside its destination (`staging`), created
owner-only, while its writer holds a lock on the folder, and renamed into place
(`place`): a run killed mid-write leaves the earlier file (or none), never half a file,
and the next run removes the folder (`remove_leftovers`).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bulk_chats.errors import ReportError

if sys.platform != "win32":
    import fcntl

STALE_AFTER = 60.0
"""Seconds after which a hidden folder left by a write that no process holds is removed."""

_STAGING = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")
"""The name of the folder `staging` makes: `.<name>.<8 random characters>.tmp`."""

_MAX_NUMBER = 10_000
"""How far `numbered` counts before giving up on finding a free name."""


@contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A new empty owner-only file to write `out`'s content in, alone in a hidden folder
    beside `out` that the caller may use for scratch files too; the folder is removed on
    leaving. Raises OSError."""
    folder = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        with _holding(folder):
            staged = folder / out.name
            # Owner-only: it holds customer data. Writers that open it again by name keep
            # its mode.
            os.close(os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            yield staged
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def place(staged: Path, out: Path, *, replace: bool) -> Path:
    """Rename `staged` to `out` and return `out`; with `replace` False, never over an
    existing file: to the first free name of `numbered(out)` instead."""
    if replace:
        os.replace(staged, out)
        return out
    for path in numbered(out):
        try:
            # Claims the name: of two runs finishing at once, one gets it.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            continue
        try:
            os.replace(staged, path)
        except OSError:
            path.unlink(missing_ok=True)
            raise
        return path
    raise AssertionError("unreachable: numbered raises when it runs out")


def numbered(path: Path) -> Iterator[Path]:
    """`path`, then `<stem>-2<suffix>`, `<stem>-3<suffix>`, …"""
    yield path
    for number in range(2, _MAX_NUMBER):
        yield path.with_name(f"{path.stem}-{number}{path.suffix}")
    raise ReportError(f"{path}: {_MAX_NUMBER} files of that name already; move some away")


def remove_leftovers(folder: Path) -> list[Path]:
    """Remove what writes killed midway left in `folder`; return what was removed.

    Only hidden folders named as `staging` names them (and files so named, which earlier
    versions wrote), untouched for `STALE_AFTER` seconds and held by no process:
    a run writing its results beside ours right now keeps its folder. (Where folders
    cannot be locked, on Windows, only what was untouched for a day.)
    """
    try:
        entries = [e for e in os.scandir(folder) if _STAGING.fullmatch(e.name)]
    except OSError:
        return []
    removed = []
    for entry in entries:
        try:
            if entry.is_symlink():
                continue
            age = time.time() - entry.stat().st_mtime
            if age < STALE_AFTER or _held(entry.path, age):
                continue
            if entry.is_dir():
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def _held(path: str, age: float) -> bool:
    """Whether a process is writing in `path` (it holds the lock `_holding` takes)."""
    if sys.platform == "win32":
        return age < 86_400
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@contextmanager
def _holding(folder: Path) -> Iterator[None]:
    """Hold a lock on `folder` while writing in it, so that `remove_leftovers` of another
    run leaves it alone. The lock ends with the process, however it ends."""
    if sys.platform == "win32":
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
