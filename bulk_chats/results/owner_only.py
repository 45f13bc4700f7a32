"""Files and folders that hold customer data are the owner's alone, whatever the umask.

The journal keeps customer ids, emails and message texts, so the reports folder the tool
creates is 0700 and the journal's files are 0600. Each is created with its mode and set to
it again right after, before any data goes in: a umask only takes bits away, and one that
takes too many (0o277 leaves the owner unable to write) must not decide either.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def make_folder(path: Path) -> None:
    """Create `path` and each missing parent, owner-only; folders that exist are left as
    they are (the user's own choice)."""
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            continue  # another run made it a moment ago: theirs to set
        os.chmod(folder, FOLDER_MODE)


def create_file(path: Path) -> bool:
    """Create `path` empty and owner-only unless it exists; whether this call created it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    os.chmod(path, FILE_MODE)
    return True


def restrict(path: Path) -> None:
    """Take group and other access away from `path` when it exists and has any: journals of
    earlier versions were created readable by every user of the machine. Best effort: a
    file this user cannot change is left as it is."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
    except OSError:
        pass
