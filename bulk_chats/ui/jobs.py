"""The runs the page starts, and the one registry of what it can run.

A run belongs to the server, not to the tab: it runs in a thread of its own, on an event
loop of its own, calling the same library functions as the command line; the page only
watches it (a reload finds it again). Stop is Ctrl-C's first press in `import`: no new
rows start, requests in flight finish, the results workbook is written.

Adding a command to the page is one `JobKind` entry in `JOB_KINDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

import anyio

from bulk_chats.errors import BulkChatsError
from bulk_chats.jobs.change_chats import close_file, update_file
from bulk_chats.jobs.export_chats import export_chats
from bulk_chats.jobs.hooks import Hooks, JobFunction
from bulk_chats.jobs.import_chats import import_file
from bulk_chats.jobs.plan import Plan
from bulk_chats.jobs.result import RunResult
from bulk_chats.jobs.validate import validate_file
from bulk_chats.records import Outcome, Status
from bulk_chats.settings import ExportFilters, ExportSettings, Settings
from bulk_chats.ui.pace import Budget, Pace, time_left

CONFIRM_TIMEOUT = 3600.0
"""Seconds a run waits for the page's Confirm before it declines (the rows stay not_sent)."""

_CONFIRM_POLL = 0.2
"""Seconds between looks at Stop while waiting for Confirm."""


@dataclass(frozen=True, slots=True)
class JobKind:
    """One thing the page can run: its button's name, whether it talks to the API (and so
    needs the key), whether it sends rows (and so shows a progress bar), and the library
    call. `chats`: its rows name chats that exist by `chat_id` (`load_sheet(chats=True)`);
    `effect` is what it does to chats, for the page's sentences ("nothing was created").
    `export_kind` makes the one run that needs no sheet."""

    name: str
    label: str
    sends: bool
    run: JobFunction
    progress: bool = False
    chats: bool = False
    effect: str = "created"
    unit: str = "row"
    """What its progress counts, one of them (`count` makes the plural)."""


async def _validate(settings: Settings, hooks: Hooks) -> RunResult:
    # Offline and synchronous; it blocks only this run's own loop. Writing the results is
    # most of its time on a big file: the page shows how far that is.
    return validate_file(settings, written=hooks.written)


async def _dry_run(settings: Settings, hooks: Hooks) -> RunResult:
    # Nothing is sent, so there is neither progress to show nor a plan to confirm.
    quiet = Hooks(
        notify=hooks.notify, stop=hooks.stop, transport=hooks.transport, written=hooks.written
    )
    return await import_file(replace(settings, dry_run=True), quiet)


def _changing(name: str, label: str, function: JobFunction) -> JobKind:
    """A run that changes chats that exist, which its rows name by `chat_id`."""
    return JobKind(
        name,
        label,
        sends=True,
        run=function,
        progress=True,
        chats=True,
        effect="changed",
    )


JOB_KINDS: dict[str, JobKind] = {
    kind.name: kind
    for kind in (
        JobKind("validate", "Validate", sends=False, run=_validate),
        JobKind("dry_run", "Dry run", sends=True, run=_dry_run),
        JobKind("import", "Import", sends=True, run=import_file, progress=True),
        _changing("update", "Update", update_file),
        _changing("close", "Close chats", close_file),
    )
}
"""Every run the page offers, in button order."""


def export_kind(filters: ExportFilters, *, messages: bool) -> JobKind:
    """The page's Export of the chats `filters` name (with `messages`, theirs too). The
    run takes the API, key and rate from the `Settings` it is given, so that the key goes
    when the run ends, as for every other run."""

    async def run(settings: Settings, hooks: Hooks) -> RunResult:
        export = ExportSettings(
            filters=filters,
            messages=messages,
            rate=settings.rate,
            base_url=settings.base_url,
            api_key=settings.api_key,
            reports_dir=settings.reports_dir,
        )
        return await export_chats(export, hooks)

    return JobKind(
        "export", "Export", sends=True, run=run, progress=True, effect="exported", unit="chat"
    )


class JobProgress:
    """A progress sink that keeps rows done, counts by status, the pace (rows a minute
    lately, `pace.py`) and the time left, and how far the results are written. Safe to
    read from other threads."""

    def __init__(self, changed: Callable[[], None], clock: Callable[[], float]) -> None:
        self._changed = changed
        self._clock = clock
        self._lock = threading.Lock()
        self.total = 0
        self.done = 0
        self.counts: Counter[str] = Counter()
        self.started: float | None = None
        self.learned_limit: float | None = None
        self.conversations_over: tuple[int, int] | None = None
        self.limit_confirmed = False
        self.budget: Budget | None = None
        self.written: tuple[int, int] | None = None
        self._pace = Pace()

    def start(self, total: int) -> None:
        with self._lock:
            self.total, self.done, self.started = total, 0, self._clock()
            self.counts.clear()
            self._pace.restart(self.started)
        self._changed()

    def advance(self, outcome: Outcome) -> None:
        with self._lock:
            # After Stop the rest arrive at once as not_sent: counted, but not as progress
            # (nor in the rate), so the bar shows where the run stopped.
            if outcome.status is not Status.NOT_SENT:
                self.done += 1
                self._pace.add(self._clock(), self.done)
            self.counts[outcome.status.value] += 1
        self._changed()

    def planned(self, plan: Plan) -> None:
        """The plan says what a row costs: the time left never beats what that allows."""
        with self._lock:
            self.budget = Budget(plan.requests / plan.to_send if plan.to_send else 1.0, plan.rate)
        self._changed()

    def writing(self, done: int, total: int) -> None:
        """`done` of the `total` rows of the results are written (`Hooks.written`)."""
        with self._lock:
            self.written = (done, total)
        self._changed()

    def limit_learned(self, rate: float | None, *, confirmed: bool) -> None:
        with self._lock:
            self.learned_limit, self.limit_confirmed = rate, confirmed
        self._changed()

    def conversations(self, done: int, total: int) -> None:
        with self._lock:
            self.conversations_over = (done, total)
        self._changed()

    def close(self) -> None:
        self._changed()

    def view(self) -> ProgressView:
        """Rows done of total now, with the rate in rows a minute lately and the seconds
        left (`pace.time_left`)."""
        with self._lock:
            done, total, started = self.done, self.total, self.started
            counts, learned = dict(self.counts), self.learned_limit
            conversations, budget, written = self.conversations_over, self.budget, self.written
            confirmed = self.limit_confirmed
            per_minute = self._pace.per_minute(self._clock())
        eta = None
        if started is not None:
            eta = time_left(total - done, per_minute, budget=budget, learned_limit=learned)
        return ProgressView(
            total=total,
            done=done,
            counts=counts,
            per_minute=per_minute,
            eta=eta,
            learned_limit=learned,
            conversations=conversations,
            limit_confirmed=confirmed,
            started=started is not None,
            written=written,
        )


@dataclass(frozen=True, slots=True)
class ProgressView:
    """Progress at one moment; `per_minute` (rows) and `eta` (seconds) are None until the
    first row is done; `learned_limit` (requests a minute) once the account's limit is
    known, `limit_confirmed` once the API confirmed it; `conversations` (done, total) when
    a transcript is sent, each row a message."""

    total: int
    done: int
    counts: dict[str, int]
    per_minute: float | None
    eta: float | None
    learned_limit: float | None = None
    conversations: tuple[int, int] | None = None
    limit_confirmed: bool = False
    started: bool = False
    """The sending has begun: the plan is over."""
    written: tuple[int, int] | None = None
    """(rows written, rows in all) of the results, once their writing has begun."""


@dataclass(frozen=True, slots=True)
class JobView:
    """A run as the page shows it. `phase` is `running`, `confirm` (the plan waits for
    Confirm), `finished` or `failed` (`error` says why: the file or an option unusable).
    `record` is its number in the page's list of runs (None: the journal did not take it)."""

    id: int
    kind: JobKind
    phase: str
    input_name: str
    notices: tuple[str, ...]
    progress: ProgressView
    plan: str | None
    """The plan as the command line tells it."""
    result: RunResult | None
    error: str | None
    stopping: bool
    version: int
    record: int | None = None
    planned: Plan | None = None
    """The plan itself, for what the page lists before Confirm (`Plan.warned`)."""

    @property
    def active(self) -> bool:
        """Still running (or waiting for Confirm)."""
        return self.phase in ("running", "confirm")

    @property
    def planning(self) -> bool:
        """Running, but neither showing its plan nor sending yet: the plan is coming."""
        return self.phase == "running" and not self.progress.started and not self.progress.written


_ids = itertools.count(1)


class Job:
    """One run in its own thread. Start it with `start()`; watch it with `view()`;
    `stop()` and `answer()` are safe from any thread.

    `settings` (and with it a key typed into the page) is dropped when the run ends.
    `on_result` is called, in the run's thread, with the result before the run shows as
    finished (to read its workbook), `on_end` with the view once it shows as ended,
    however it ended; every change of the view raises its `version`. `record` is the
    run's number in the page's list of runs. `reword` says the run's notices and its
    error in the page's words.
    """

    def __init__(
        self,
        kind: JobKind,
        settings: Settings,
        *,
        input_name: str,
        on_result: Callable[[RunResult], None] = lambda _: None,
        on_end: Callable[[JobView], None] = lambda _: None,
        reword: Callable[[str], str] = lambda text: text,
        clock: Callable[[], float] = time.monotonic,
        confirm_timeout: float = CONFIRM_TIMEOUT,
    ) -> None:
        self.kind = kind
        self.id = next(_ids)
        self.input_name = input_name
        self.record: int | None = None
        self._on_end = on_end
        self._reword = reword
        self._settings: Settings | None = settings
        self._on_result = on_result
        self._clock = clock
        self._confirm_timeout = confirm_timeout
        self._lock = threading.Lock()
        self._phase = "running"
        self._notices: list[str] = []
        self._plan: str | None = None
        self._planned: Plan | None = None
        self._result: RunResult | None = None
        self._error: str | None = None
        self._stopping = False
        self._version = 0
        self._answered = threading.Event()
        self._go_on = False
        self.answered: bool | None = None
        """The page's answer to the plan (Confirm: True), once it gave one."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: anyio.Event | None = None
        self._thread: threading.Thread | None = None
        self.progress = JobProgress(self._touch, clock)

    def start(self) -> None:
        """Run in a new daemon thread (a server stopping with Ctrl-C twice must not wait)."""
        self._thread = threading.Thread(target=self._main, name=f"bulk-chats-ui-{self.id}")
        self._thread.daemon = True
        self._thread.start()

    def join(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the run to end; True if it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    def stop(self) -> None:
        """Stop as Ctrl-C does: no new rows; requests in flight finish; a pending Confirm
        is declined."""
        with self._lock:
            self._stopping = True
            loop, event = self._loop, self._stop
        self._answered.set()
        if loop is not None and event is not None:
            # The loop may have ended since; then there is nothing left to stop.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)
        self._touch()

    def answer(self, go_on: bool) -> None:
        """The page's answer to the plan: Confirm (True) or not."""
        self._go_on = go_on
        self.answered = go_on
        self._answered.set()

    def view(self) -> JobView:
        """The run as it is now."""
        with self._lock:
            return JobView(
                id=self.id,
                kind=self.kind,
                phase=self._phase,
                input_name=self.input_name,
                notices=tuple(n for n in self._notices if n != self._plan),
                progress=self.progress.view(),
                plan=self._plan,
                result=self._result,
                error=self._error,
                stopping=self._stopping,
                version=self._version,
                record=self.record,
                planned=self._planned,
            )

    def _touch(self) -> None:
        # Watchers compare versions (the page's event stream looks a few times a second).
        with self._lock:
            self._version += 1

    def _main(self) -> None:
        settings = self._settings
        if settings is None:  # started twice: the first run has ended and dropped it
            return
        try:
            result = anyio.run(self._run, settings)
        except BulkChatsError as exc:
            self._end("failed", error=str(exc))
        except Exception as exc:  # shown on the page rather than lost in a thread
            self._end("failed", error=f"the run failed: {type(exc).__name__}: {exc}")
        else:
            self._on_result(result)
            self._end("finished", result=result)
        self._on_end(self.view())

    def _end(
        self, phase: str, *, result: RunResult | None = None, error: str | None = None
    ) -> None:
        key = self._settings.api_key if self._settings is not None else None
        if error is not None and key is not None:
            error = error.replace(key.reveal(), "***")
        if error is not None:
            error = self._reword(error)
        with self._lock:
            self._phase, self._result, self._error = phase, result, error
            if result is not None and result.plan is not None:
                self._plan, self._planned = self._reword(result.plan.describe()), result.plan
            self._settings = None  # the key, if typed into the page, goes with it
        self._touch()

    async def _run(self, settings: Settings) -> RunResult:
        stop = anyio.Event()
        with self._lock:
            self._loop, self._stop = asyncio.get_running_loop(), stop
            if self._stopping:
                stop.set()
        hooks = Hooks(
            progress=self.progress,
            confirm=self._confirm,
            notify=self._notify,
            stop=stop,
            written=self.progress.writing,
        )
        return await self.kind.run(settings, hooks)

    def _notify(self, text: str) -> None:
        with self._lock:
            self._notices.append(self._reword(text))
        self._touch()

    def _confirm(self, plan: Plan) -> bool:
        """Wait for the page's Confirm, Stop or `confirm_timeout` (then decline).

        It blocks this run's own event loop, which has nothing else to do meanwhile: the
        pre-flight is over and no request is in flight.
        """
        self.progress.planned(plan)
        with self._lock:
            self._plan = self._reword(plan.describe())
            self._planned = plan
            self._phase = "confirm"
        self._touch()
        deadline = self._clock() + self._confirm_timeout
        while not self._answered.wait(_CONFIRM_POLL):
            if self._clock() > deadline:
                break
        with self._lock:
            self._phase = "running"
            go_on = self._go_on and not self._stopping
        self._touch()
        return go_on
