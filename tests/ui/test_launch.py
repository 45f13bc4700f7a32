"""The file the browser is opened on: owner-only whatever the umask, the address escaped
in it, gone when the page stops."""

from __future__ import annotations

import html
import stat
from pathlib import Path

import pytest

from bulk_chats.ui.launch import redirect_file

URL = 'http://127.0.0.1:8765/?token=a&b<c>"'


@pytest.mark.usefixtures("open_umask")
def test_the_file_is_owner_only_and_removed_at_the_end(tmp_path: Path) -> None:
    """The redirect file and a new folder for it are the owner's alone even under umask 0;
    the address is in it, escaped; the file is gone after the block, even a failed one."""
    folder = tmp_path / "reports"
    seen: list[tuple[int, int, str]] = []

    def fail_while_open() -> None:
        with redirect_file(URL, folder=folder) as path:
            assert path.parent == folder.resolve()
            modes = (path.stat().st_mode, folder.stat().st_mode)
            seen.append((*map(stat.S_IMODE, modes), path.read_text(encoding="utf-8")))
            raise RuntimeError("the page failed")

    with pytest.raises(RuntimeError):
        fail_while_open()
    [(file_mode, folder_mode, text)] = seen
    assert (file_mode, folder_mode) == (0o600, 0o700)
    assert f'content="0;url={html.escape(URL)}"' in text
    assert URL not in text
    assert list(folder.iterdir()) == []


def test_a_file_left_by_an_earlier_process_is_replaced(tmp_path: Path) -> None:
    """A file of the same name left by a killed page (with a dead token) is replaced."""
    with redirect_file(URL, folder=tmp_path) as path:
        pass
    path.write_text("stale", encoding="utf-8")
    with redirect_file("http://127.0.0.1:1/?token=new", folder=tmp_path) as again:
        assert again == path
        assert "token=new" in again.read_text(encoding="utf-8")
