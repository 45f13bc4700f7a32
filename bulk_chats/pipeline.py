"""The two jobs, start to end: `validate_file` and `import_file`.

Each reads the sheet, validates it, and (for import) checks the key, plans, sends and
journals, then writes the results workbook. They return a `RunResult`; the CLI maps it to
an exit status. Nothing here prints: notices go to the `notify` callback.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
import pandas as pd

from bulk_chats.client import HelpCrunchClient
from bulk_chats.errors import AuthenticationError, InputError
from bulk_chats.journal import Earlier, Journal, journal_path, plan_resume, scope_for
from bulk_chats.loading import Sheet, load_sheet
from bulk_chats.progress import NullProgress, ProgressSink
from bulk_chats.records import ChatRequest, FirstMessage, Outcome, Status
from bulk_chats.report import (
    Summary,
    build_results,
    count_error_codes,
    count_statuses,
    default_out_path,
    write_results,
)
from bulk_chats.sending import send_chats
from bulk_chats.settings import Settings
from bulk_chats.throttle import RateLimiter, default_concurrency
from bulk_chats.validation import Validation, validate_sheet

Notify = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Plan:
    """What an import is about to do, for the confirmation prompt.

    `requests` counts every request the plan needs (key check, chats, messages); `seconds`
    is how long they take at the rate.
    """

    rows: int
    to_send: int
    chats: int
    messages: int
    requests: int
    seconds: float
    already_done: int
    not_to_send: int

    def describe(self) -> str:
        """The plan in a few lines, as the CLI shows it before asking to go on."""
        minutes, seconds = divmod(math.ceil(self.seconds), 60)
        hours, minutes = divmod(minutes, 60)
        duration = f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s"
        lines = [
            f"{self.to_send} of {self.rows} rows to send: {self.chats} chats"
            + (f" and {self.messages} first messages" if self.messages else ""),
            f"{self.requests} requests, about {duration} at the rate",
        ]
        if self.already_done:
            lines.append(f"{self.already_done} rows already created earlier; not sent again")
        if self.not_to_send:
            lines.append(f"{self.not_to_send} rows invalid or duplicate; not sent")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class RunResult:
    """The end of a run: where the workbook went and what became of the rows."""

    out: Path
    counts: dict[str, int]
    error_codes: dict[str, int]
    total: int
    auth_failed: bool = False
    interrupted: bool = False
    declined: bool = False
    plan: Plan | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def all_done(self) -> bool:
        """Every row is created (now or earlier), or for validate every row is valid."""
        done = {Status.CREATED, Status.ALREADY_CREATED, Status.VALID}
        return sum(self.counts.get(s.value, 0) for s in done) == self.total


def validate_file(settings: Settings, *, now: dt.datetime | None = None) -> RunResult:
    """Read and validate every row of `settings.input_path`; send nothing; write the
    results workbook. Raises InputError when the file cannot be used."""
    now = now or dt.datetime.now()
    sheet, validation = read_and_validate(settings)
    out = settings.out or default_out_path(settings.input_path, settings.reports_dir, now)
    return _finish(sheet, validation, {}, out, Summary(settings.input_path, "validate", "", now))


def read_and_validate(settings: Settings) -> tuple[Sheet, Validation]:
    """The offline part of both jobs: load the sheet and validate every row."""
    sheet = load_sheet(settings.input_path, sheet=settings.sheet, columns=settings.columns)
    return sheet, validate_sheet(sheet)


async def import_file(
    settings: Settings,
    *,
    progress: ProgressSink | None = None,
    confirm: Callable[[Plan], bool] | None = None,
    notify: Notify | None = None,
    stop: anyio.Event | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    now: dt.datetime | None = None,
) -> RunResult:
    """Validate, check the key, then create a chat for every valid row and write the
    results workbook.

    Every request shares one limiter at `settings.rate` per minute. `confirm` sees the plan
    before anything is created and may decline; `stop` (set on Ctrl-C) stops starting new
    rows. A 401 stops the run: the rest is `not_sent`. Raises InputError when the file or
    the settings cannot be used.
    """
    now = now or dt.datetime.now()
    say = notify or (lambda _: None)
    if settings.api_key is None:
        raise InputError("no API key given")
    sheet, validation = read_and_validate(settings)
    out = settings.out or default_out_path(settings.input_path, settings.reports_dir, now)
    mode = "dry-run" if settings.dry_run else "import"
    summary = Summary(settings.input_path, mode, settings.base_url, now)
    requests = build_requests(sheet, validation)
    limiter = RateLimiter(settings.rate)
    concurrency = settings.concurrency or default_concurrency(settings.rate)

    with Journal.open(
        journal_path(settings.reports_dir),
        scope=scope_for(settings.base_url),
        fresh=settings.fresh,
        input_name=settings.input_path.name,
    ) as journal:
        earlier = journal.earlier(r.key for r in requests)
        resume = plan_resume(requests, earlier)
        if earlier:
            say(resume.describe())
        done = {o.index: o for o in resume.already_created}
        to_send = resume.to_send
        claimed = _claimed_chat_ids(validation, earlier.values())

        async with HelpCrunchClient(
            settings.base_url, settings.api_key, limiter=limiter, transport=transport
        ) as client:
            try:
                await client.check_key()
            except AuthenticationError as exc:
                say(f"the API refused the key ({exc.http_status}): nothing was sent")
                outcomes = done | _all(
                    to_send, Status.NOT_SENT, "not sent: the API refused the key"
                )
                return _finish(sheet, validation, outcomes, out, summary, auth_failed=True)

            plan = make_plan(validation, to_send, already_done=len(done), rate=settings.rate)
            if settings.dry_run:
                outcomes = done | _all(to_send, Status.VALID, "")
                return _finish(sheet, validation, outcomes, out, summary, plan=plan)
            if confirm is not None and to_send and not confirm(plan):
                outcomes = done | _all(
                    to_send, Status.NOT_SENT, "not sent: the run was not confirmed"
                )
                return _finish(sheet, validation, outcomes, out, summary, plan=plan, declined=True)

            result = await send_chats(
                to_send,
                client,
                concurrency=concurrency,
                progress=progress or NullProgress(),
                journal=journal,
                stop=stop,
                claimed_chat_ids=claimed,
            )
    return _finish(
        sheet,
        validation,
        done | dict(result.outcomes),
        out,
        summary,
        plan=plan,
        auth_failed=result.auth_failed,
        interrupted=result.interrupted,
    )


def build_requests(sheet: Sheet, validation: Validation) -> list[ChatRequest]:
    """A `ChatRequest` for every valid row, and for every earlier-created row whose first
    message is still missing (that one carries its `chat_id`, so only the message goes)."""
    status = validation.status
    message_missing = (
        status.eq(Status.ALREADY_CREATED.value)
        & validation.message.ne("")
        & validation.previous_message_id.isna()
    )
    chosen = (status.eq(Status.VALID.value) | message_missing).to_numpy()
    positions = [int(p) for p in status.index[chosen]]

    def ids(name: str) -> list[int | None]:
        column = validation.ids.get(name)
        if column is None:
            return [None] * len(positions)
        return _optional_ints(column[chosen])

    customers, applications = ids("customer"), ids("application")
    assignees, departments, agents = ids("assignee"), ids("department"), ids("message_agent")
    chat_ids = _optional_ints(validation.previous_chat_id[chosen])
    texts = validation.message[chosen].tolist()
    kinds = validation.message_type[chosen].tolist()
    requests = []
    for n, position in enumerate(positions):
        customer, application = customers[n], applications[n]
        if customer is None or application is None:
            continue  # named by a customer_email / customer_user_id column: resolved later
        requests.append(
            ChatRequest(
                index=position,
                source_row=sheet.source_rows[position],
                customer=customer,
                application=application,
                assignee=assignees[n],
                department=departments[n],
                message=FirstMessage(texts[n], kinds[n], agents[n]) if texts[n] else None,
                chat_id=chat_ids[n],
            )
        )
    return requests


def _optional_ints(column: pd.Series) -> list[int | None]:
    """A nullable Int64 column as Python ints (JSON-ready) and None."""
    return [None if value is pd.NA else int(value) for value in column.tolist()]


def make_plan(
    validation: Validation, requests: list[ChatRequest], *, already_done: int, rate: float
) -> Plan:
    """Count what `requests` will cost at `rate` requests per minute.

    `already_done` counts the rows the journal knows as created; rows an earlier results
    workbook gave a chat id count too, unless only their message is left.
    """
    chats = sum(1 for r in requests if r.chat_id is None)
    messages = sum(1 for r in requests if r.message is not None)
    total = chats + messages + 1
    message_only = len(requests) - chats
    from_workbook = int(validation.status.eq(Status.ALREADY_CREATED.value).sum())
    done = already_done + from_workbook - message_only
    return Plan(
        rows=len(validation.status),
        to_send=len(requests),
        chats=chats,
        messages=messages,
        requests=total,
        seconds=total * 60 / rate,
        already_done=done,
        not_to_send=int(
            validation.status.isin([Status.INVALID.value, Status.DUPLICATE.value]).sum()
        ),
    )


def _claimed_chat_ids(validation: Validation, earlier: Iterable[Earlier]) -> set[int]:
    """Chats known to belong to rows: a confirming search must never adopt them."""
    claimed = {int(i) for i in validation.previous_chat_id.dropna()}
    claimed.update(e.chat_id for e in earlier if e.chat_id is not None)
    return claimed


def _all(requests: list[ChatRequest], status: Status, message: str) -> dict[int, Outcome]:
    return {
        r.index: Outcome(index=r.index, status=status, chat_id=r.chat_id, error_message=message)
        for r in requests
    }


def _finish(
    sheet: Sheet,
    validation: Validation,
    outcomes: dict[int, Outcome],
    out: Path,
    summary: Summary,
    **flags: object,
) -> RunResult:
    results = build_results(sheet, validation, outcomes)
    write_results(results, out, summary)
    return RunResult(
        out=out,
        counts=count_statuses(results),
        error_codes=count_error_codes(results),
        total=len(results),
        **flags,  # type: ignore[arg-type]
    )
