"""`bulk-chats ui`: a local web page that does what the commands do, on the same library.

`UiApp` is the page's state and ASGI app; `run_ui_in_thread` and `serve_ui` serve it on
127.0.0.1 (see `server.py`); `jobs.JOB_KINDS` lists what the page can run.
"""

from bulk_chats.ui.app import UiApp, UiConfig
from bulk_chats.ui.server import RunningUi, run_ui_in_thread, serve_ui

__all__ = ["RunningUi", "UiApp", "UiConfig", "run_ui_in_thread", "serve_ui"]
