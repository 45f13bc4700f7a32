"""`export`, start to end: the account's chats (filtered) to a workbook that `update` and
`close` take back (docs/export.md).

In order: the pre-flight (the account's agents and departments read, which checks the
key; names resolved, customers looked up: a name that matches nothing stops here with
`InputError`, before any chat is read); the chats, read and written as they come, oldest
first; with `messages`, the plan of the messages (a request a chat, more for long ones)
told and confirmed, then each chat's messages; the summary. Every request waits its turn
at one rate limiter, at the account's limit an earlier run learned unless told a rate.

Whatever stops the reading (Ctrl-C or the page's Stop, a refused key, a read that keeps
failing, a full sheet) the chats read so far are written, and the summary says the
export is partial and why. Nothing here prints: notices go to `Hooks.notify`.
"""

from __future__ import annotations

import datetime as dt
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import anyio

from bulk_chats.api.chat_listing import ChatQuery, ChatReader
from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.api.entities import Chat
from bulk_chats.api.limiter import default_concurrency
from bulk_chats.api.retry import READ_ATTEMPTS, read_with_retries
from bulk_chats.errors import ApiError, AuthenticationError, InputError
from bulk_chats.fields import EXPORT_COLUMNS
from bulk_chats.jobs.export_filters import (
    check_customers,
    export_queries,
    exported_chat,
    exported_messages,
)
from bulk_chats.jobs.hooks import Hooks
from bulk_chats.jobs.plan import Plan
from bulk_chats.jobs.result import RunResult, make_reports_dir
from bulk_chats.jobs.session import open_limiter
from bulk_chats.journal.journal import Journal, journal_path, scope_for
from bulk_chats.lookups.customers import Stops, name_key, search_names
from bulk_chats.lookups.directory import Directory, read_directory
from bulk_chats.progress import ProgressSink, duration_text
from bulk_chats.records import ExportedMessage, Outcome, Status
from bulk_chats.results.export_workbook import (
    ROWS_PER_SHEET,
    ExportSummary,
    ExportWorkbook,
    default_export_path,
    write_export,
)
from bulk_chats.results.workbook import prepare_out
from bulk_chats.send.stopping import STOP_GRACE, pause, waits_end_once_stopped
from bulk_chats.settings import ExportSettings
from bulk_chats.timing import Sleep

KEY_REFUSED = "the API refused the key (401)"
INTERRUPTED = "interrupted; the chats read until then are here"
SHEET_FULL = (
    f"more chats than a sheet holds ({ROWS_PER_SHEET:,}); narrow the export with "
    "--since and --until"
)

_LEAD = 1_000
"""Chats whose messages may be read ahead of the one written next."""


@dataclass(frozen=True, slots=True)
class ExportResult(RunResult):
    """The end of an export: the workbook (`out`), `chats` and `messages` written (None
    without `--messages`), and `partial`, why not every chat asked for is in it ("" when
    every one is); `unread` the chats whose messages could not be read. `counts` holds
    `exported`: the chats."""

    chats: int = 0
    messages: int | None = None
    partial: str = ""
    unread: tuple[int, ...] = ()

    @property
    def all_done(self) -> bool:
        """Every chat asked for (and its messages, when asked) is in the workbook."""
        return not self.partial


@dataclass(frozen=True, slots=True)
class MessagesPlan(Plan):
    """What reading the messages of an export's chats costs: a request a chat at least."""

    def describe(self) -> str:
        """The plan as the command line shows it before asking to go on."""
        return (
            f"{self.rows} chats read; their messages take at least {self.requests} "
            f"request{'s' if self.requests != 1 else ''} (one a chat, more for long ones), "
            f"about {duration_text(self.seconds)} at {self.rate:g} a minute"
        )


async def export_chats(settings: ExportSettings, hooks: Hooks | None = None) -> ExportResult:
    """Write the chats `settings.filters` ask for to a workbook; see the module docstring.

    `hooks.stop` (Ctrl-C, the page's Stop) ends the reading: what was read is written,
    marked partial, and the result is `interrupted`. A 401 ends it too (`auth_failed`).
    `hooks.confirm`, when given, is asked before the messages are read. Raises
    `InputError` when the settings cannot be used or a name matches nothing, before any
    chat is read; `ReportError` when the workbook cannot be written.
    """
    hooks = hooks or Hooks()
    now, sink = hooks.started(), hooks.progress
    if settings.api_key is None:
        raise InputError("no API key given")
    make_reports_dir(settings.reports_dir)
    out = settings.out or default_export_path(settings.reports_dir, now)
    if out.suffix.lower() != ".xlsx":
        raise InputError(f"--out {out}: an export is a workbook; name it .xlsx")
    prepare_out(out, 0, len(EXPORT_COLUMNS))  # writable, and what a killed run left, gone
    scope = scope_for(settings.base_url)
    with Journal.open(journal_path(settings.reports_dir), scope=scope, input_name="export") as j:
        limiter = open_limiter(settings.rate, j, sink)
        async with HelpCrunchClient(
            settings.base_url, settings.api_key, limiter=limiter, transport=hooks.transport
        ) as client:
            export = _Export(settings, hooks, client)
            directory, queries = await export.preflight()
            with write_export(
                out, messages=settings.messages, replace=settings.out is not None
            ) as book:
                await export.run(book, directory, queries)
                book.close(export.summary(now, book))
    if book.out is None:  # `write_export` puts a closed workbook in place
        raise AssertionError("the export workbook was not written")
    return ExportResult(
        out=book.out,
        counts={Status.EXPORTED.value: book.chats} if book.chats else {},
        error_codes={},
        total=book.chats,
        auth_failed=export.auth_failed,
        interrupted=hooks.stopped(),
        declined=export.declined,
        plan=export.plan,
        learned_limit=limiter.learned_limit,
        chats=book.chats,
        messages=book.messages if settings.messages else None,
        partial=export.partial,
        unread=tuple(export.failed_chats),
    )


class _Export:
    """One export's steps, and what they learn on the way."""

    def __init__(self, settings: ExportSettings, hooks: Hooks, client: HelpCrunchClient) -> None:
        self.settings = settings
        self.hooks = hooks
        self.client = client
        self.sleep: Sleep = partial(pause, stop=hooks.stop)
        self.partial = ""
        self.auth_failed = False
        self.declined = False
        self.plan: Plan | None = None
        self.repeats = 0
        self.failed_chats: list[int] = []

    def stop_with(self, reason: str) -> None:
        """Mark the export partial for `reason`, keeping the first reason given."""
        self.partial = self.partial or reason

    def failure(self, exc: ApiError, what: str) -> None:
        """Mark the export partial after `exc`, the failure of `what`: a refused key, or
        (unless the run was stopped, which is why the request was not sent) a read that
        kept failing."""
        if isinstance(exc, AuthenticationError):
            self.auth_failed = True
            self.hooks.notify(f"{KEY_REFUSED}: the export stops")
            self.stop_with(KEY_REFUSED)
        elif self.hooks.stopped():
            self.stop_with(INTERRUPTED)
        else:
            self.hooks.notify(f"{what} failed: {exc}")
            self.stop_with(f"{what} failed: {exc}")

    async def preflight(self) -> tuple[Directory, list[ChatQuery] | None]:
        """The account's agents and departments and the queries the filters make; None
        for the queries when the pre-flight failed (the export is then partial)."""
        filters = self.settings.filters
        try:
            directory = await read_directory(self.client, (), sleep=self.sleep, everything=True)
        except ApiError as exc:
            self.failure(exc, "the pre-flight read of agents and departments")
            return Directory(), None
        customers = None
        named = [
            (option, field, value)
            for option, field, value in (
                ("--customer-email", "customer_email", filters.customer_email),
                ("--customer-user-id", "customer_user_id", filters.customer_user_id),
            )
            if value is not None
        ]
        for option, field, value in named:
            found = await self._customers(field, value)
            if found is None:
                return directory, None
            check_customers(option, value, found)
            customers = found
        queries = export_queries(filters, directory, customers)
        self.hooks.notify(self._reading(queries))
        return directory, queries

    async def _customers(self, field: str, value: str) -> list[int] | None:
        """The ids of the customers that carry `value` in `field`; None (the export
        partial) when the look-up failed."""
        stops = Stops(self.hooks.stop)
        key = name_key((field, value))
        found = await search_names(
            self.client, {key: (field, value)}, stops, concurrency=1, sleep=self.sleep
        )
        match = found.get(key)
        if isinstance(match, list):
            return match
        if stops.auth is not None:
            self.failure(stops.auth, "the customer look-up")
        elif match is not None and match.error is not None:
            self.failure(match.error, "the customer look-up")
        else:
            self.stop_with(INTERRUPTED)
        return None

    def _reading(self, queries: Sequence[ChatQuery]) -> str:
        rate = self.client.limiter.rate
        how = (
            "every chat"
            if len(queries) == 1 and queries[0].listing
            else f"{len(queries)} search{'es' if len(queries) != 1 else ''}"
        )
        return f"export: reading {how}, 100 chats a request, at {rate:g} requests a minute"

    async def run(
        self, book: ExportWorkbook, directory: Directory, queries: list[ChatQuery] | None
    ) -> None:
        """Read the chats of `queries` into `book`, then, when asked, their messages."""
        if queries is None:
            return
        stop = self.hooks.stop
        chat_ids = array("q")
        async with waits_end_once_stopped(self.client, stop, grace=STOP_GRACE):
            await self._chats(book, directory, queries, chat_ids)
            if self.settings.messages and not self.partial and self._go_on(len(chat_ids)):
                await self._messages(book, directory, chat_ids)

    async def _chats(
        self,
        book: ExportWorkbook,
        directory: Directory,
        queries: list[ChatQuery],
        chat_ids: array[int],
    ) -> None:
        sink: ProgressSink = self.hooks.progress
        # Stopped, no page is asked for; the chats already read are written.
        reader = ChatReader(
            self.client,
            queries,
            sleep=self.sleep,
            stopped=self.hooks.stopped,
            window=self._concurrency(),
        )

        def take(chat: Chat) -> bool:
            if not book.chats:
                sink.start(reader.estimate or 0)
            if book.full:
                self.stop_with(SHEET_FULL)
                return False
            book.add_chat(exported_chat(chat, directory))
            chat_ids.append(chat.id)
            sink.advance(Outcome(index=book.chats - 1, status=Status.EXPORTED))
            return True

        try:
            await reader.read(take)
        except ApiError as exc:
            self.failure(exc, "reading the chats")
        finally:
            sink.close()
            self.repeats = reader.repeats
        if self.hooks.stopped():
            self.stop_with(INTERRUPTED)

    def _concurrency(self) -> int:
        """Requests in flight at once: enough to keep the rate full however slow the
        answers (`settings.concurrency` when given)."""
        return self.settings.concurrency or default_concurrency(self.client.limiter.rate)

    def _go_on(self, chats: int) -> bool:
        """Tell the plan of the messages and ask to go on; False (the export partial) when
        declined."""
        rate = self.client.limiter.rate
        plan = MessagesPlan(
            rows=chats,
            to_send=chats,
            chats=0,
            messages=chats,
            lookups=0,
            requests=chats,
            seconds=chats * 60 / rate,
            already_done=0,
            not_to_send=0,
            rate=rate,
        )
        self.plan = plan
        self.hooks.notify(plan.describe())
        confirm = self.hooks.confirm
        if not chats or confirm is None or confirm(plan):
            return True
        self.declined = True
        self.stop_with("the messages were not read: the run was not confirmed")
        return False

    async def _messages(
        self, book: ExportWorkbook, directory: Directory, chat_ids: array[int]
    ) -> None:
        """Each chat's messages, read `concurrency` chats at a time and written in the
        chats' order. A chat whose messages cannot be read is named in the summary."""
        sink = self.hooks.progress
        sink.start(len(chat_ids))
        concurrency = self._concurrency()
        ready: dict[int, list[ExportedMessage] | None] = {}
        written = 0
        in_flight = anyio.Semaphore(concurrency)
        lead = anyio.Semaphore(_LEAD)

        def flush() -> None:
            nonlocal written
            while written in ready:
                rows = ready.pop(written)
                if rows is None:
                    self.failed_chats.append(chat_ids[written])
                elif book.add_messages(rows) < len(rows):
                    self.stop_with(f"more messages than a sheet holds ({ROWS_PER_SHEET:,})")
                written += 1
                lead.release()
                sink.advance(Outcome(index=written - 1, status=Status.EXPORTED))

        async def read(position: int, chat_id: int) -> None:
            try:
                call = partial(self.client.list_messages, chat_id)
                newest_first = await read_with_retries(
                    call, attempts=READ_ATTEMPTS, sleep=self.sleep
                )
                ready[position] = exported_messages(chat_id, newest_first, directory)
            except AuthenticationError as exc:
                self.failure(exc, "reading the messages")
                ready[position] = None
            except ApiError as exc:
                if self.hooks.stopped():
                    self.stop_with(INTERRUPTED)
                else:
                    self.hooks.notify(f"the messages of chat {chat_id} could not be read: {exc}")
                ready[position] = None
            finally:
                in_flight.release()
            flush()

        try:
            async with anyio.create_task_group() as group:
                for position, chat_id in enumerate(chat_ids):
                    if self.hooks.stopped() or self.auth_failed:
                        break
                    await lead.acquire()
                    await in_flight.acquire()
                    group.start_soon(read, position, chat_id)
        finally:
            sink.close()
        if written < len(chat_ids) and not self.partial:
            self.stop_with(INTERRUPTED if self.hooks.stopped() else "not every chat's messages")
        if self.failed_chats:
            count = len(self.failed_chats)
            self.stop_with(
                f"the messages of {count} chat{'s' if count != 1 else ''} could not be read "
                f"(chat {', '.join(str(c) for c in self.failed_chats[:5])}"
                f"{', …' if len(self.failed_chats) > 5 else ''})"
            )

    def summary(self, now: dt.datetime, book: ExportWorkbook) -> ExportSummary:
        """What the summary sheet says of this export."""
        return ExportSummary(
            api_root=self.settings.base_url,
            written_at=now,
            filters=self.settings.filters.described(),
            chats=book.chats,
            messages=book.messages if self.settings.messages else None,
            partial=self.partial,
            repeats=self.repeats,
        )
