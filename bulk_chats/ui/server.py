"""The page's server: uvicorn on 127.0.0.1, from a background thread (`bulk_chats.serving`).

`run_ui_in_thread` serves for the length of a `with` block (tests, and `serve_ui`);
`serve_ui` serves until Ctrl-C for `bulk-chats ui`, and opens the browser on a file that
redirects, so that the token stays off the browser's command line (`launch.py`). The first
Ctrl-C stops a run in progress as it does in `import` (no new rows; requests in flight
finish; the workbook is written) and then the server; a second one quits at once. Either
way the page's upload is removed; results workbooks and the journal stay.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
import webbrowser
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import uvicorn

from bulk_chats.jobs.interrupt import EXIT_INTERRUPTED, EXITING, STOPPING
from bulk_chats.serving import LOOPBACK, address, bind, quiet_config, serve_in_thread
from bulk_chats.ui.app import UiApp, UiConfig
from bulk_chats.ui.launch import redirect_file
from bulk_chats.ui.uploads import sweep_uploads

RUN_STOP_TIMEOUT = 300.0
"""Seconds a stopped run may take to finish the requests in flight and write its workbook."""

CTRL_C_STOPS = "Ctrl-C here stops the page"
"""The end of the start-up line that follows `ui: <url>`."""


@dataclass(frozen=True, slots=True)
class RunningUi:
    """A page being served: its address (token included) and its state."""

    url: str
    app: UiApp


@contextlib.contextmanager
def run_ui_in_thread(
    config: UiConfig, *, port: int = 0, token: str | None = None
) -> Iterator[RunningUi]:
    """Serve the page from a background thread for the duration of the `with` block.

    Port 0 picks a free one. Uploads left by pages no longer running are removed first.
    On exit a run still going is stopped (and given `RUN_STOP_TIMEOUT` seconds to end),
    the page's upload is removed, then the server stops and its thread is joined.
    Raises `InputError` for a port that cannot be bound, `RuntimeError` if the server does
    not start.
    """
    sock = bind(LOOPBACK, port, who="ui")
    sweep_uploads(config.reports_dir)
    app = UiApp(config, token=token or secrets.token_urlsafe(24), port=sock.getsockname()[1])
    server = uvicorn.Server(quiet_config(app.asgi))
    with serve_in_thread(server, sock, name="ui"):
        try:
            yield RunningUi(f"http://{address(sock)}/?token={app.token}", app)
        finally:
            try:
                stop_run(app)
            finally:
                app.close()


def stop_run(app: UiApp) -> bool:
    """Stop the run in progress, if any, and wait for it to end; True if there was one."""
    job = app.job
    if job is None or not job.view().active:
        return False
    job.stop()
    job.join(RUN_STOP_TIMEOUT)
    return True


def serve_ui(
    config: UiConfig,
    *,
    port: int = 0,
    announce: Callable[[str], None],
    open_browser: Callable[[str], object] | None = None,
) -> int:
    """Serve the page until Ctrl-C; the exit status (130 when that stopped a run).

    `announce` gets the `ui: <url>` line, then one saying whether a browser shows it and
    that Ctrl-C stops it, and the notices about stopping. `open_browser` (None: do not) is
    given the `file:` URL of an owner-only file that redirects to the page, never the
    page's own URL with its token; it returns False when no browser could be started.
    """
    with run_ui_in_thread(config, port=port) as running, contextlib.ExitStack() as opened:
        try:  # from the first line on, a Ctrl-C is the user's way to stop
            announce(f"ui: {running.url}")
            if open_browser is None:
                announce(f"ui: open the address above in a browser; {CTRL_C_STOPS}")
            elif _open(open_browser, running.url, config, opened):
                announce(f"ui: opened in the browser; {CTRL_C_STOPS}")
            else:
                announce(f"ui: no browser found: open the address above in one; {CTRL_C_STOPS}")
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            job = running.app.job
            if job is None or not job.view().active:
                return 0
            announce(STOPPING)
            try:
                stop_run(running.app)
            except KeyboardInterrupt:
                announce(EXITING)
                running.app.close()
                opened.close()
                os._exit(EXIT_INTERRUPTED)
            return EXIT_INTERRUPTED


def _open(
    open_browser: Callable[[str], object],
    url: str,
    config: UiConfig,
    opened: contextlib.ExitStack,
) -> bool:
    """Open the browser on a redirect file kept until `opened` closes; whether it started."""
    try:
        path = opened.enter_context(redirect_file(url, folder=config.reports_dir))
        return open_browser(path.as_uri()) is not False
    except (OSError, webbrowser.Error):
        return False
