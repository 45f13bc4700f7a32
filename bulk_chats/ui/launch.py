"""Opening the browser without putting the token on its command line.

`webbrowser.open(url)` starts the browser with the address as an argument, which every
user of the machine can read (`ps`), and with the token they could download the results
workbooks or start runs with the owner's key. So the browser is opened on a file instead:
an HTML page only its owner can read (0600, in the owner-only reports folder, not in a
shared temporary one that a sandboxed browser may not see) that sends the browser on to
the address, as Jupyter's server does. The file lives as long as the page is served.
"""

from __future__ import annotations

import contextlib
import html
import os
from collections.abc import Iterator
from pathlib import Path

from bulk_chats.results import owner_only

_REDIRECT = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="0;url={url}">
<title>bulk-chats</title>
</head>
<body>
<p>Opening the page of bulk-chats… If nothing happens, <a href="{url}">open it here</a>.</p>
</body>
</html>
"""


@contextlib.contextmanager
def redirect_file(url: str, *, folder: Path) -> Iterator[Path]:
    """An owner-only HTML file in `folder` (made owner-only if new) that redirects to
    `url`, for the `with` block; removed at its end. Raises `OSError` when it cannot be
    written."""
    owner_only.make_folder(folder)
    path = folder / f"open-page-{os.getpid()}.html"
    path.unlink(missing_ok=True)  # an earlier process's, with a token that is dead now
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, owner_only.FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.chmod(path, owner_only.FILE_MODE)
            out.write(_REDIRECT.format(url=html.escape(url, quote=True)))
        yield path.resolve()
    finally:
        path.unlink(missing_ok=True)
