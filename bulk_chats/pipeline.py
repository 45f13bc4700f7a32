"""The two jobs, start to end: `validate_file` and `import_file`.

Each reads the sheet, validates it, and (for import) runs the pre-flight, plans, looks up
names, sends and journals, then writes the results workbook. They return a `RunResult`;
the CLI maps it to an exit status. Nothing here prints: notices, the plan among them, go
to the `notify` callback.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import anyio
import httpx

from bulk_chats import owner_only
from bulk_chats.client import HelpCrunchClient
from bulk_chats.customer_creation import create_customers, created_earlier
from bulk_chats.customers import Lookups, look_up_customers, search_requests
from bulk_chats.errors import ApiError, AuthenticationError, InputError
from bulk_chats.fields import RESULT_COLUMNS
from bulk_chats.journal import Journal, journal_path, scope_for
from bulk_chats.loading import Sheet, load_sheet
from bulk_chats.progress import NullProgress, ProgressSink
from bulk_chats.records import ChangeRequest, ChatRequest, Outcome, Status
from bulk_chats.report import build_results, default_out_path
from bulk_chats.report_writer import (
    Summary,
    count_error_codes,
    count_statuses,
    prepare_out,
    write_results,
)
from bulk_chats.resolve import (
    Directory,
    Preflight,
    assign_customers,
    check_rows,
    read_directory,
)
from bulk_chats.resume import ResumePlan, plan_resume
from bulk_chats.rows import fed_back, rows_to_send
from bulk_chats.sending import send_chats
from bulk_chats.settings import DEFAULT_RATE, Settings
from bulk_chats.throttle import RateLimiter, default_concurrency
from bulk_chats.validation import Validation, validate_sheet

Notify = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Plan:
    """What an import is about to do, shown before it starts and for the confirmation prompt.

    `to_send` rows passed the pre-flight: they need `chats` chats, `messages` first messages,
    `lookups` customer searches (their distinct emails and userIds, `BATCH_SIZE` a search)
    and `customers` new customers (`--create-customers`); `requests` counts them all and
    `seconds` is how long they take at `rate` requests per minute. The key check and the
    reads of agents and departments are done by then and not counted, and so are the
    look-ups with `--create-customers` (`lookups_made`), which precede the plan.
    `already_done` rows have their chat from an earlier run; `not_to_send` rows are invalid
    or duplicate; `held` rows an earlier run left `unknown` are held back (see
    `resume.plan_resume`). `warnings` counts rows sent despite a warning. `changes` counts
    the `PUT /v1/chats/...` requests: the statuses an import sets, or with `updating`
    every change of `update` or `close` (which create no chat).
    """

    rows: int
    to_send: int
    chats: int
    messages: int
    lookups: int
    requests: int
    seconds: float
    already_done: int
    not_to_send: int
    rate: float = DEFAULT_RATE
    warnings: int = 0
    held: int = 0
    dry_run: bool = False
    changes: int = 0
    updating: bool = False
    customers: int = 0
    lookups_made: int = 0

    def describe(self) -> str:
        """The plan in a few lines, as the CLI shows it before asking to go on."""
        work = [] if self.updating else [_count(self.chats, "chat")]
        if self.messages:
            work.append(_count(self.messages, "first message"))
        if self.changes or self.updating:
            work.append(_count(self.changes, "change" if self.updating else "status change"))
        if self.lookups:
            work.append(_count(self.lookups, "customer look-up"))
        if self.customers:
            work.append(_count(self.customers, "new customer"))
        rows = f"{self.to_send} of {_count(self.rows, 'row')}"
        if self.dry_run:
            lines = [
                f"dry run: {rows} would be sent ({', '.join(work)}); nothing is created",
            ]
            if self.lookups:
                lines.append(
                    f"the look-ups are made now: {_count(self.lookups, 'request')}, about "
                    f"{_duration(self.lookups * 60 / self.rate)} at {self.rate:g} a minute"
                )
        else:
            lines = [
                f"{rows} to send: {', '.join(work)}",
                f"{_count(self.requests, 'request')}, about {_duration(self.seconds)} at "
                f"{self.rate:g} a minute",
            ]
        if self.lookups_made:
            lines.append(
                f"customers looked up first ({_count(self.lookups_made, 'request')}): "
                f"{_count(self.customers, 'customer')} to create"
                + (" (none is created in a dry run)" if self.dry_run else "")
            )
        if self.lookups:
            lines.append("rows whose customer matches no one, or several, are left out")
        if self.already_done:
            done = "updated" if self.updating else "created"
            lines.append(f"{_count(self.already_done, 'row')} already {done} earlier; not sent")
        if self.not_to_send:
            lines.append(f"{_count(self.not_to_send, 'row')} invalid or duplicate; not sent")
        if self.held:
            lines.append(
                f"{_count(self.held, 'row')} left unknown by an earlier run; held back "
                "(see error_message)"
            )
        if self.warnings:
            sent = "would be sent" if self.dry_run else "sent"
            lines.append(
                f"{_count(self.warnings, 'row')} with a warning, {sent} anyway (see error_message)"
            )
        return "\n".join(lines)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _duration(seconds: float) -> str:
    minutes, rest = divmod(math.ceil(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {rest:02d}s" if minutes else f"{rest}s"


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
    learned_limit: float | None = None
    """The account's limit (requests a minute) the run learned from a 429, if it did."""

    @property
    def all_done(self) -> bool:
        """Every row is created (now or earlier), or for validate every row is valid, or
        for update and close every row is updated (now or earlier) or has nothing to do."""
        done = {
            Status.CREATED,
            Status.ALREADY_CREATED,
            Status.VALID,
            Status.UPDATED,
            Status.ALREADY_UPDATED,
            Status.SKIPPED,
        }
        return sum(self.counts.get(s.value, 0) for s in done) == self.total


def validate_file(settings: Settings, *, now: dt.datetime | None = None) -> RunResult:
    """Read and validate every row of `settings.input_path`; send nothing; write the
    results workbook. Raises InputError when the file cannot be used."""
    now = now or dt.datetime.now()
    sheet, validation = read_and_validate(settings)
    if settings.out is None:
        _make_reports_dir(settings.reports_dir)
    out = settings.out or default_out_path(settings.input_path, settings.reports_dir, now)
    _prepare(out, sheet)
    summary = Summary(settings.input_path, "validate", "", now)
    return _finish(sheet, validation, {}, out, summary, out_given=settings.out is not None)


def _make_reports_dir(reports_dir: Path) -> None:
    """Create the reports folder owner-only when it is missing: the journal and the default
    workbook in it hold customer data. Raises InputError."""
    try:
        owner_only.make_folder(reports_dir)
    except OSError as exc:
        raise InputError(
            f"{reports_dir}: cannot create the reports folder ({exc.strerror})"
        ) from None


def _prepare(out: Path, sheet: Sheet) -> None:
    """Fail before any work is done or sent when the results could not be written."""
    prepare_out(out, len(sheet), len(sheet.headers) + len(RESULT_COLUMNS) + 1)


def _results_for(
    settings: Settings, sheet: Sheet, validation: Validation, *, mode: str, now: dt.datetime
) -> _ResultsSoFar:
    """What gathers a run's outcomes, once it is sure its results workbook can be written
    (in the reports folder, made for the journal too, unless `--out` says elsewhere)."""
    _make_reports_dir(settings.reports_dir)
    out = settings.out or default_out_path(settings.input_path, settings.reports_dir, now)
    _prepare(out, sheet)
    summary = Summary(settings.input_path, mode, settings.base_url, now)
    return _ResultsSoFar(sheet, validation, out, summary, out_given=settings.out is not None)


def _open_journal(settings: Settings) -> Journal:
    """The journal of the run's API root, in its reports directory."""
    return Journal.open(
        journal_path(settings.reports_dir),
        scope=scope_for(settings.base_url),
        fresh=settings.fresh,
        input_name=settings.input_path.name,
    )


def read_and_validate(settings: Settings) -> tuple[Sheet, Validation]:
    """The offline part of both jobs: load the sheet and validate every row."""
    sheet = load_sheet(settings.input_path, sheet=settings.sheet, columns=settings.columns)
    return sheet, validate_sheet(sheet, chat_status=settings.chat_status)


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
    """Validate, run the pre-flight, then create a chat (and its first message) for every
    row that passed, and write the results workbook.

    In order: read and validate; open the journal and plan the resume (rows an earlier
    run finished are neither looked up nor sent); the pre-flight (its first request
    checks the key: a 401 stops here, nothing created; then agent and department ids and
    names are checked); the plan, given to `notify` and then to `confirm`, which may
    decline; the customer look-ups; the sending. With `settings.dry_run` everything but
    the sending runs, and the rows that would be sent are `valid`.

    Every request shares one limiter at `settings.rate` per minute. `stop` (set on Ctrl-C)
    stops starting new look-ups and rows. A 401 stops the run: the rest is `not_sent`.
    Raises InputError when the file or the settings cannot be used.
    """
    now = now or dt.datetime.now()
    tell = notify or (lambda _: None)
    if settings.api_key is None:
        raise InputError("no API key given")
    sheet, validation = read_and_validate(settings)
    mode = "dry-run" if settings.dry_run else "import"
    results = _results_for(settings, sheet, validation, mode=mode, now=now)
    rows = rows_to_send(sheet, validation)
    sink = progress or NullProgress()

    with _open_journal(settings) as journal:
        limiter = open_limiter(settings.rate, journal, sink)
        results.limiter = limiter
        concurrency = settings.concurrency or default_concurrency(limiter.rate)
        entries = journal.entries(row.key for row in rows)
        chats = [e.chat_id for e in entries.values()] + [r.chat_id for r in rows]
        resume = plan_resume(
            rows,
            entries,
            fed_back(sheet, validation),
            fresh=settings.fresh,
            applied=journal.applied_changes(c for c in chats if c is not None),
        )
        results.record(resume.finished)
        results.record(resume.held)
        done = {outcome.index for outcome in resume.finished}
        earlier = created_earlier(journal, (row for row in rows if row.index in done))

        async with HelpCrunchClient(
            settings.base_url, settings.api_key, limiter=limiter, transport=transport
        ) as client:
            directory = await _read_directory(
                client, resume.to_send, results, tell, rows=resume.to_send
            )
            if isinstance(directory, RunResult):
                return directory
            preflight = check_rows(resume.to_send, directory)
            results.record(preflight.rejected.values())
            results.warnings.update(preflight.warnings)

            create = settings.create_customers
            look_up = partial(
                look_up_customers,
                client,
                preflight.passed,
                journal=journal,
                concurrency=concurrency,
                stop=stop,
            )
            # With --create-customers the plan counts the customers to create, which only
            # the look-ups can tell: they go first. They are reads; nothing is created
            # before the prompt.
            lookups = await look_up() if create else None
            plan = make_plan(
                validation.counts(),
                resume,
                preflight,
                rate=limiter.rate,
                dry_run=settings.dry_run,
                lookups=lookups,
            )
            if resume.worth_telling:
                tell(resume.describe())
            tell(plan.describe())
            results.plan = plan
            if not settings.dry_run and confirm is not None and plan.to_send and not confirm(plan):
                declined = "not sent: the run was not confirmed"
                results.record(_ending(preflight.passed, Status.NOT_SENT, declined))
                return results.finish(declined=True)

            if lookups is None:
                lookups = await look_up()
            elif lookups.missing and not (settings.dry_run or lookups.auth_failed):
                lookups = await create_customers(
                    client, journal, lookups, preflight.passed, concurrency=concurrency, stop=stop
                )
            resolution = assign_customers(
                preflight, lookups, would_create=create and settings.dry_run
            )
            results.record(resolution.outcomes.values())
            results.resolved = resolution.resolved
            if create or earlier or resolution.customer_created:
                results.customer_created = earlier | resolution.customer_created
            if resolution.auth_failed:
                tell("the API refused the key (401) during the look-ups: nothing more was sent")
                results.record(_ending(resolution.requests, Status.NOT_SENT, _KEY_REFUSED))
                return results.finish(auth_failed=True)
            if settings.dry_run:
                results.record(_ending(resolution.requests, Status.VALID, ""))
                return results.finish(interrupted=_stopped(stop))

            result = await send_chats(
                resolution.requests,
                client,
                concurrency=concurrency,
                progress=sink,
                journal=journal,
                stop=stop,
                claimed_chat_ids=set(resume.claimed_chat_ids),
            )
    results.record(result.outcomes.values())
    return results.finish(auth_failed=result.auth_failed, interrupted=result.interrupted)


_KEY_REFUSED = "not sent: the API refused the key"


async def _read_directory(
    client: HelpCrunchClient,
    drafts: Sequence[ChatRequest],
    results: _ResultsSoFar,
    tell: Notify,
    *,
    rows: Iterable[_Row],
) -> Directory | RunResult:
    """The pre-flight's reads for `drafts` (`resolve.read_directory`), or the run's end
    when they fail: a refused key or a read that keeps failing sends nothing, and `rows`
    are `not_sent`."""
    try:
        return await read_directory(client, drafts)
    except AuthenticationError as exc:
        tell(f"the API refused the key ({exc.http_status}): nothing was sent")
        results.record(_ending(rows, Status.NOT_SENT, _KEY_REFUSED))
        return results.finish(auth_failed=True)
    except ApiError as exc:
        tell(f"the pre-flight read failed, so nothing was sent: {exc}")
        failed = f"not sent: the pre-flight read failed: {exc}"
        results.record(_ending(rows, Status.NOT_SENT, failed))
        return results.finish()


def open_limiter(rate: float | None, journal: Journal, progress: ProgressSink) -> RateLimiter:
    """The run's one rate limiter: at `rate` requests a minute when given, else at the
    account's limit an earlier run learned for this API root, else at `DEFAULT_RATE`.

    A limit learned during the run goes to the journal at once, so that a killed run
    remembers it too, and to `progress`.
    """

    def learned(per_minute: float) -> None:
        journal.remember_limit(per_minute)
        progress.limit_learned(per_minute)

    remembered = journal.learned_limit() if rate is None else None
    return RateLimiter(rate or remembered or DEFAULT_RATE, learned=remembered, on_learned=learned)


def _stopped(stop: anyio.Event | None) -> bool:
    return stop is not None and stop.is_set()


def make_plan(
    counts: Mapping[str, int],
    resume: ResumePlan,
    preflight: Preflight,
    *,
    rate: float,
    dry_run: bool = False,
    lookups: Lookups | None = None,
) -> Plan:
    """Count what the rows that passed the pre-flight will cost at `rate` requests per minute.

    `counts` are validation's rows by status; `resume` says which rows earlier runs
    finished or left held back. `lookups`, when the customers were looked up already
    (`--create-customers`), says how many customers are to be created.
    """
    passed = preflight.passed
    chats = sum(1 for row in passed if row.chat_id is None)
    messages = sum(1 for row in passed if row.message is not None and row.message_id is None)
    statuses = sum(1 for row in passed if row.status is not None)
    searches = preflight.lookups if lookups is None else 0
    customers = 0 if lookups is None else len(lookups.missing)
    made = 0 if lookups is None else search_requests(len(lookups.names) - len(lookups.created))
    total = chats + messages + statuses + searches + (0 if dry_run else customers)
    invalid = counts.get(Status.INVALID.value, 0) + counts.get(Status.DUPLICATE.value, 0)
    return Plan(
        rows=sum(counts.values()),
        to_send=len(passed),
        chats=chats,
        messages=messages,
        lookups=searches,
        requests=total,
        seconds=total * 60 / rate,
        already_done=resume.already_done,
        not_to_send=invalid
        + sum(1 for o in preflight.rejected.values() if o.status is Status.INVALID),
        rate=rate,
        warnings=len(preflight.warnings),
        held=len(resume.held),
        dry_run=dry_run,
        changes=statuses,
        customers=customers,
        lookups_made=made,
    )


_Row = ChatRequest | ChangeRequest


def _ending(rows: Iterable[_Row], status: Status, message: str) -> list[Outcome]:
    """The same outcome for each of `rows`, keeping the chat (and message) an earlier run
    made."""
    return [
        Outcome(
            index=r.index,
            status=status,
            chat_id=r.chat_id,
            message_id=r.message_id if isinstance(r, ChatRequest) else None,
            error_message=message,
        )
        for r in rows
    ]


@dataclass(slots=True)
class _ResultsSoFar:
    """What a run gathers for its results workbook as it goes: the last outcome recorded
    for a row is the one written."""

    sheet: Sheet
    validation: Validation
    out: Path
    summary: Summary
    out_given: bool
    """`out` came from --out, so the workbook may replace a file there."""
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    warnings: dict[int, str] = field(default_factory=dict)
    resolved: dict[str, dict[int, int]] = field(default_factory=dict)
    customer_created: frozenset[int] | None = None
    plan: Plan | None = None
    limiter: RateLimiter | None = None

    def record(self, outcomes: Iterable[Outcome]) -> None:
        """Keep `outcomes`, each replacing what was recorded for its row before."""
        self.outcomes.update((o.index, o) for o in outcomes)

    def finish(
        self, *, auth_failed: bool = False, interrupted: bool = False, declined: bool = False
    ) -> RunResult:
        """Write the workbook; the run's result."""
        outcomes = dict(self.outcomes)
        for index, warning in self.warnings.items():
            outcome = outcomes.get(index)
            if outcome is not None:
                text = outcome.error_message
                outcomes[index] = replace(
                    outcome, error_message=f"{text} | {warning}" if text else warning
                )
        return _finish(
            self.sheet,
            self.validation,
            outcomes,
            self.out,
            self.summary,
            resolved=self.resolved,
            customer_created=self.customer_created,
            out_given=self.out_given,
            plan=self.plan,
            learned_limit=self.limiter.learned_limit if self.limiter is not None else None,
            auth_failed=auth_failed,
            interrupted=interrupted,
            declined=declined,
        )


def _finish(
    sheet: Sheet,
    validation: Validation,
    outcomes: dict[int, Outcome],
    out: Path,
    summary: Summary,
    *,
    resolved: Mapping[str, Mapping[int, int]] | None = None,
    customer_created: frozenset[int] | None = None,
    out_given: bool,
    **flags: object,
) -> RunResult:
    results = build_results(
        sheet, validation, outcomes, resolved=resolved, customer_created=customer_created
    )
    return RunResult(
        # A path of our choosing never replaces a file; one given with --out may.
        out=write_results(results, out, summary, replace=out_given),
        counts=count_statuses(results),
        error_codes=count_error_codes(results),
        total=len(results),
        **flags,  # type: ignore[arg-type]
    )
