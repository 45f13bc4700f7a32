"""One run at a time per journal and scope: an OS lock on one byte of `<journal>-lock`.

Two runs sending the same rows would each create the chats the other has not recorded
yet. The operating system drops the lock when its process ends, however it ends (even by
`kill -9` or a power cut), so a killed run never leaves a stale lock behind; runs with
other scopes lock other bytes of the same file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sys
import threading
from pathlib import Path

from bulk_chats.errors import InputError
from bulk_chats.results import owner_only

if sys.platform == "win32":
    import msvcrt
else:
    import fcntl

_LOCKS_GUARD = threading.Lock()
_HELD_LOCKS: dict[Path, tuple[int, set[int]]] = {}
"""Per lock file: this process's one descriptor of it and the bytes it holds locked."""


class ScopeLock:
    """An exclusive OS lock on one byte of `<journal>-lock`, the byte chosen by the scope.

    POSIX record locks do not conflict within one process and are all dropped when any
    descriptor of the file closes, so this process keeps one descriptor per lock file and
    its own table of held bytes.
    """

    def __init__(self, lock_path: Path, offset: int) -> None:
        self._lock_path = lock_path
        self._offset = offset
        self._released = False

    @classmethod
    def acquire(cls, path: Path, scope: str) -> ScopeLock:
        """Take the scope's lock on the journal at `path`, or raise `InputError`."""
        owner_only.make_folder(path.parent)
        lock_path = path.with_name(path.name + "-lock").resolve()
        digest = hashlib.sha256(scope.encode("utf-8")).digest()
        offset = int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
        busy = InputError(
            f"{path}: another bulk-chats run is sending to {scope} with this journal; "
            "wait for it to finish (two runs at once could create the same chat twice)"
        )
        with _LOCKS_GUARD:
            fd, offsets = _HELD_LOCKS.get(lock_path, (-1, set()))
            if offset in offsets:
                raise busy
            if fd < 0:
                try:
                    if not owner_only.create_file(lock_path):
                        owner_only.restrict(lock_path)
                    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, owner_only.FILE_MODE)
                except OSError as exc:
                    raise InputError(
                        f"{lock_path}: cannot open the journal's lock file ({exc.strerror})"
                    ) from None
            try:
                taken = _lock_byte(fd, offset)
            except OSError as exc:
                if not offsets:
                    os.close(fd)
                raise InputError(f"{lock_path}: cannot lock the journal ({exc.strerror})") from None
            if not taken:
                if not offsets:
                    os.close(fd)
                raise busy
            offsets.add(offset)
            _HELD_LOCKS[lock_path] = (fd, offsets)
        return cls(lock_path, offset)

    def release(self) -> None:
        """Let another run take the scope."""
        with _LOCKS_GUARD:
            if self._released:
                return
            self._released = True
            fd, offsets = _HELD_LOCKS[self._lock_path]
            _unlock_byte(fd, self._offset)
            offsets.discard(self._offset)
            if not offsets:
                os.close(fd)
                del _HELD_LOCKS[self._lock_path]


if sys.platform == "win32":

    def _lock_byte(fd: int, offset: int) -> bool:
        """Lock byte `offset` of `fd`; False when another process holds it."""
        os.lseek(fd, offset, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EDEADLK):
                return False
            raise
        return True

    def _unlock_byte(fd: int, offset: int) -> None:
        os.lseek(fd, offset, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:

    def _lock_byte(fd: int, offset: int) -> bool:
        """Lock byte `offset` of `fd`; False when another process holds it."""
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset, os.SEEK_SET)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                return False
            raise
        return True

    def _unlock_byte(fd: int, offset: int) -> None:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset, os.SEEK_SET)
