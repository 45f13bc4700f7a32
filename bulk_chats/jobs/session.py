"""What `import`, `update` and `close` hold open around their sending, and the steps they
share before it: the session (the journal of the API root, one rate limiter and one
client for every request), the pre-flight read that ends the run when the key is refused,
the plan told and the user asked to go on (`go_on`), and for the two kinds of `import`
(rows, transcripts) every row given its customer (`give_customers`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

import anyio

from bulk_chats.api.client import HelpCrunchClient, Transport
from bulk_chats.api.limiter import RateLimiter, default_concurrency
from bulk_chats.errors import ApiError, AuthenticationError, JournalError
from bulk_chats.jobs.hooks import Confirm, Hooks, Notify
from bulk_chats.jobs.plan import MAX_WARNED, Plan
from bulk_chats.jobs.result import AnyRequest, ResultsSoFar, RunResult, end_rows
from bulk_chats.journal.journal import Journal, journal_path, scope_for
from bulk_chats.lookups.customers import (
    Lookups,
    Resolution,
    assign_customers,
    look_up_customers,
)
from bulk_chats.lookups.directory import Directory, Preflight, check_rows, read_directory
from bulk_chats.lookups.new_customers import create_customers
from bulk_chats.progress import ProgressSink
from bulk_chats.records import ChangeRequest, ChatRequest, Status
from bulk_chats.settings import DEFAULT_RATE, Settings


def open_journal(settings: Settings) -> Journal:
    """The journal of the run's API root, in its reports directory."""
    return Journal.open(
        journal_path(settings.reports_dir),
        scope=scope_for(settings.base_url),
        fresh=settings.fresh,
        input_name=settings.input_path.name,
    )


@dataclass(slots=True)
class JournalStop:
    """The end of a run the journal stopped (a full disk), once the block has ended."""

    result: RunResult | None = None


@dataclass(frozen=True, slots=True)
class Session:
    """What a sending run holds open: the journal of its API root, one limiter and one
    client for every request, and how many requests it keeps in flight. `stopped` holds
    the run's end after the block when the journal could not be written."""

    journal: Journal
    client: HelpCrunchClient
    limiter: RateLimiter
    concurrency: int
    stopped: JournalStop = field(default_factory=JournalStop)


@asynccontextmanager
async def open_session(
    settings: Settings,
    results: ResultsSoFar,
    progress: ProgressSink,
    *,
    rows: Sequence[AnyRequest] = (),
    transport: Transport | None = None,
) -> AsyncIterator[Session]:
    """Open the run's journal, its limiter (`open_limiter`, which `results` keeps so that
    the summary says what it learned) and its client, for the `async with` block.

    The concurrency is `settings.concurrency`, or enough to keep the limiter's rate full.

    A journal that cannot be written within the block (a full disk) ends it: the rows of
    `rows` with no outcome in `results` yet are `not_sent`, the workbook is written with
    every outcome so far (`progress` is best given as `results.watching(...)`, so that a
    sender's outcomes are among them), and `Session.stopped` holds the run's end
    (`ResultsSoFar.journal_failed`, which raises `JournalError` when the workbook cannot
    be written either).
    """
    with open_journal(settings) as journal:
        limiter = open_limiter(settings.rate, journal, progress)
        results.limiter = limiter
        concurrency = settings.concurrency or default_concurrency(limiter.rate)
        async with HelpCrunchClient(
            settings.base_url, settings.api_key, limiter=limiter, transport=transport
        ) as client:
            session = Session(journal, client, limiter, concurrency)
            try:
                yield session
            except JournalError as exc:
                where = journal_path(settings.reports_dir)
                session.stopped.result = results.journal_failed(exc, rows, journal=where)


def go_on(
    plan: Plan,
    results: ResultsSoFar,
    tell: Notify,
    *,
    confirm: Confirm | None,
    rows: Iterable[AnyRequest],
    dry_run: bool = False,
) -> RunResult | None:
    """Tell the plan and ask `confirm` whether to go on: None to go on, else the run's end
    with every row of `rows` `not_sent`. A dry run, a plan with nothing to send and a run
    without `confirm` (no terminal, `--yes`) go on unasked. The plan told and asked about
    lists the first rows sent despite a warning (`Plan.warned`)."""
    if plan.warnings:
        # The page lists them before Confirm; the workbook's error_message has them all.
        rows_of = results.sheet.source_rows
        warned = sorted(results.warnings.items())[:MAX_WARNED]
        plan = replace(plan, warned=tuple((rows_of[index], text) for index, text in warned))
    tell(plan.describe())
    results.plan = plan
    if dry_run or confirm is None or not plan.to_send or confirm(plan):
        return None
    results.record(end_rows(rows, Status.NOT_SENT, "not sent: the run was not confirmed"))
    return results.finish(declined=True)


KEY_REFUSED = "not sent: the API refused the key"
"""The `error_message` of rows a refused key (401) kept from being sent."""


async def preflight_read(
    client: HelpCrunchClient,
    to_check: Sequence[ChatRequest] | Sequence[ChangeRequest],
    results: ResultsSoFar,
    tell: Notify,
    *,
    rows: Iterable[AnyRequest],
) -> Directory | RunResult:
    """The pre-flight's reads for `to_check` (`lookups.directory.read_directory`), or the run's end
    when they fail: a refused key or a read that keeps failing sends nothing, and `rows`
    are `not_sent`."""
    try:
        return await read_directory(client, to_check)
    except AuthenticationError as exc:
        tell(f"the API refused the key ({exc.http_status}): nothing was sent")
        results.record(end_rows(rows, Status.NOT_SENT, KEY_REFUSED))
        return results.finish(auth_failed=True)
    except ApiError as exc:
        tell(f"the pre-flight read failed, so nothing was sent: {exc}")
        failed = f"not sent: the pre-flight read failed: {exc}"
        results.record(end_rows(rows, Status.NOT_SENT, failed))
        return results.finish()


async def preflight(
    client: HelpCrunchClient,
    to_send: Sequence[ChatRequest],
    results: ResultsSoFar,
    tell: Notify,
    *,
    rows: Iterable[AnyRequest],
) -> Preflight[ChatRequest] | RunResult:
    """The pre-flight of `import`: its reads (`preflight_read`, which may end the run,
    `rows` then `not_sent`), then every row of `to_send` checked against them
    (`check_rows`); the rows it refuses and its warnings go to `results`."""
    directory = await preflight_read(client, to_send, results, tell, rows=rows)
    if isinstance(directory, RunResult):
        return directory
    checked = check_rows(to_send, directory)
    results.record(checked.rejected.values())
    results.warnings.update(checked.warnings)
    return checked


def open_limiter(rate: float | None, journal: Journal, progress: ProgressSink) -> RateLimiter:
    """The run's one rate limiter: at `rate` requests a minute when given, else at the
    account's limit an earlier run learned for this API root, else at `DEFAULT_RATE`.

    A limit the API confirmed during the run goes to the journal at once, so that a killed
    run remembers it too; a provisional one never does (docs/sending.md › The account's
    limit). Every change goes to `progress`, confirmed or not.
    """

    def learned(per_minute: float | None, confirmed: bool) -> None:
        if per_minute is not None and confirmed:
            # Best effort: a journal that cannot take this cannot take the next request's
            # announcement either, and that one stops the run.
            with contextlib.suppress(JournalError):
                journal.limits.remember(per_minute)
        progress.limit_learned(per_minute, confirmed=confirmed)

    remembered = journal.limits.learned() if rate is None else None
    return RateLimiter(rate or remembered or DEFAULT_RATE, learned=remembered, on_learned=learned)


async def give_customers(
    session: Session,
    preflight: Preflight[ChatRequest],
    lookups: Lookups | None,
    results: ResultsSoFar,
    *,
    settings: Settings,
    hooks: Hooks,
    earlier: Mapping[int, int],
    finished_ids: Mapping[str, Mapping[int, int]] | None = None,
) -> Resolution | RunResult:
    """After the go-ahead, every row that passed the pre-flight given its customer: the
    look-ups (unless `lookups` were made before the plan, as `--create-customers` does),
    then the customers to create; the outcomes of the rows left out go to `results`, with
    the ids used and the rows whose customer the tool created (`earlier`: by an earlier
    run, each row's index with its customer's id). Rows an earlier run finished are not
    looked up: `finished_ids` gives the ids their chats were sent with, by id field, from
    the journal, for the `resolved_*` columns. The rows to send, or the run's end: a 401
    during the look-ups (the rest `not_sent`), or a dry run (the rows that would be sent
    `valid`)."""
    client, journal, concurrency, stop = (
        session.client,
        session.journal,
        session.concurrency,
        hooks.stop,
    )
    create = settings.create_customers
    if lookups is None:
        lookups = await look_up_customers(
            client, preflight.passed, journal=journal, concurrency=concurrency, stop=stop
        )
    elif create and lookups.missing and not (settings.dry_run or lookups.auth_failed):
        lookups = await create_customers(
            client, journal, lookups, preflight.passed, concurrency=concurrency, stop=stop
        )
    resolution = assign_customers(preflight, lookups, would_create=create and settings.dry_run)
    results.record(resolution.outcomes.values())
    resolved = {name: dict(ids) for name, ids in resolution.resolved.items()}
    resolved.setdefault("customer", {}).update(earlier)
    for id_field, ids in (finished_ids or {}).items():
        resolved.setdefault(id_field, {}).update(ids)
    results.resolved = resolved
    if create or earlier or resolution.customer_created:
        results.customer_created = frozenset(earlier) | resolution.customer_created
    if resolution.auth_failed:
        hooks.notify("the API refused the key (401) during the look-ups: nothing more was sent")
        results.record(end_rows(resolution.requests, Status.NOT_SENT, KEY_REFUSED))
        return results.finish(auth_failed=True)
    if settings.dry_run:
        results.record(end_rows(resolution.requests, Status.VALID, ""))
        return results.finish(interrupted=hooks.stopped())
    return resolution


async def look_up_first(
    session: Session,
    preflight: Preflight[ChatRequest],
    *,
    settings: Settings,
    stop: anyio.Event | None,
) -> Lookups | None:
    """With `--create-customers` (or `settings.lookups_first`, as the page asks), the
    look-ups of the rows that passed the pre-flight, before the plan: it counts the
    customers to create, or that match no one, which only they can tell. They are reads;
    nothing is created before the go-ahead. None otherwise: they come after."""
    if not (settings.create_customers or settings.lookups_first):
        return None
    return await look_up_customers(
        session.client,
        preflight.passed,
        journal=session.journal,
        concurrency=session.concurrency,
        stop=stop,
    )
