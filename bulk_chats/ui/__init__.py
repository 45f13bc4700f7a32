"""`bulk-chats ui`: a local web page that does what the commands do, on the same library.

`UiApp` is the page's state and ASGI app; `run_ui_in_thread` and `serve_ui` serve it on
127.0.0.1 (see `server.py`); `jobs.JOB_KINDS` lists what the page can run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bulk_chats._exports import lazy_names

if TYPE_CHECKING:
    from bulk_chats.ui.app import UiApp, UiConfig
    from bulk_chats.ui.server import RunningUi, run_ui_in_thread, serve_ui

_OWNERS: dict[str, str] = {
    "UiApp": "bulk_chats.ui.app",
    "UiConfig": "bulk_chats.ui.app",
    "RunningUi": "bulk_chats.ui.server",
    "run_ui_in_thread": "bulk_chats.ui.server",
    "serve_ui": "bulk_chats.ui.server",
}
"""Each public name → the module that defines it."""

__all__ = [
    "RunningUi",
    "UiApp",
    "UiConfig",
    "run_ui_in_thread",
    "serve_ui",
]

__getattr__, __dir__ = lazy_names(__name__, _OWNERS, globals())
