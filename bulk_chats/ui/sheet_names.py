"""Print a workbook's sheet names as JSON: `python -m bulk_chats.ui.sheet_names PATH`.

The page needs them for its "Sheet" picker. It runs as a child process, as the loader
reads workbooks, so that a workbook built to crash the Rust reader costs a failed child
(and an empty picker), never the server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TIMEOUT = 60.0
"""Seconds the child may take."""


def sheet_names(path: Path) -> list[str]:
    """The sheets of the workbook at `path`, in order; [] when they cannot be read (the
    loader then says why, in its own words)."""
    try:
        # Our own interpreter and module, arguments as a list (no shell): nothing to inject.
        child = subprocess.run(  # noqa: S603
            [sys.executable, "-m", __name__, str(path)],
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
        names = json.loads(child.stdout) if child.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return []
    return [str(name) for name in names] if isinstance(names, list) else []


def _main(path: str) -> None:
    from python_calamine import CalamineWorkbook

    print(json.dumps(list(CalamineWorkbook.from_path(path).sheet_names)))


if __name__ == "__main__":
    _main(sys.argv[1])
