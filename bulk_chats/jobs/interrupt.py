"""Ctrl-C during a run from a terminal: the first stops it gracefully, the second quits.

The first SIGINT sets the run's `stop` event: no new rows start, requests in flight
finish, and the results workbook is written. The second ends the process at once with
`EXIT_INTERRUPTED`; every journal write is its own transaction, so the journal stays
consistent and a later run resumes from it. `bulk-chats ui` follows the same policy from
its own thread (`ui.server.serve_ui`).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any, TypeVar

import anyio

from bulk_chats.jobs.hooks import Hooks
from bulk_chats.jobs.result import RunResult

EXIT_INTERRUPTED = 130
"""The exit status of a run Ctrl-C stopped, as a shell gives a process SIGINT ended."""

STOPPING = "stopping: no new rows; waiting for requests in flight (Ctrl-C again to quit at once)"
"""The notice of the first Ctrl-C."""

EXITING = "interrupted again: exiting now"
"""The notice of the second Ctrl-C, just before the process ends."""


S = TypeVar("S")
R = TypeVar("R", bound=RunResult)


def run_interruptible(
    job: Callable[[S, Hooks], Coroutine[Any, Any, R]], settings: S, hooks: Hooks
) -> R:
    """Run `job` (a `JobFunction`, or `export_chats` with its own settings) on a new event
    loop of this (the main) thread, with the two-stage Ctrl-C above as its `hooks.stop`;
    `hooks.notify` gets the run's notices and the Ctrl-C ones (each after a line break, so
    that it starts clear of a progress bar)."""
    notify = hooks.notify

    async def main() -> R:
        stop = anyio.Event()

        def on_interrupt() -> None:
            if stop.is_set():
                notify(f"\n{EXITING}")
                os._exit(EXIT_INTERRUPTED)
            notify(f"\n{STOPPING}")
            stop.set()

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, on_interrupt)
        try:
            return await job(settings, replace(hooks, stop=stop))
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    return anyio.run(main)
