"""What a job reports to, and hears from, whoever runs it: the command line or the page.

Every job takes one `Hooks`: where progress and notices go, who is asked to go on, the
event that says stop (Ctrl-C, the page's Stop), and for tests and the in-process sandbox
the network and the time. `JobFunction` is the shape of a job that sends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from bulk_chats.api.client import Transport
from bulk_chats.progress import NullProgress, ProgressSink
from bulk_chats.settings import Settings

if TYPE_CHECKING:
    from bulk_chats.jobs.plan import Plan
    from bulk_chats.jobs.result import RunResult
    from bulk_chats.results.workbook import Written

Notify = Callable[[str], None]
"""Where a run's notices go (the plan among them): the command line prints them."""

Confirm = Callable[["Plan"], bool]
"""Asked, once the plan is told, whether to go on."""


def _ignore(text: str) -> None:
    """Notices nobody reads."""


@dataclass(frozen=True, slots=True)
class Hooks:
    """A job's ties to whoever runs it.

    `progress` hears of every row sent; `confirm`, when given, is asked whether to go on
    once the plan is told (None: go on unasked, as with `--yes` or without a terminal);
    `notify` gets the notices; `stop` set means stop as Ctrl-C does (no new rows, the
    requests in flight finish, the workbook is written); `transport` replaces the network
    (tests, the in-process sandbox); `now` dates the run (its default workbook name);
    `written` hears how far the writing of the results is, at the end (rows written, rows
    in all).
    """

    progress: ProgressSink = field(default_factory=NullProgress)
    confirm: Confirm | None = None
    notify: Notify = _ignore
    stop: anyio.Event | None = None
    transport: Transport | None = None
    now: dt.datetime | None = None
    written: Written | None = None

    def started(self) -> dt.datetime:
        """When the run started: `now`, or the clock's time."""
        return self.now or dt.datetime.now()

    def stopped(self) -> bool:
        """Whether the run was told to stop."""
        return self.stop is not None and self.stop.is_set()


JobFunction = Callable[[Settings, Hooks], Coroutine[Any, Any, "RunResult"]]
"""A job that sends: `import_file`, `update_file` or `close_file`."""
