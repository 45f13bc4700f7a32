"""What `import`, `update` and `close` share around their sending: the run's machinery.

A run gathers its rows' outcomes as it goes (`ResultsSoFar`) and ends by writing the
results workbook (`RunResult`); it holds open the journal of its API root, one rate limiter
and one client for every request (`open_session`); its pre-flight read ends the run when
the key is refused or the read keeps failing; it tells its plan and asks to go on
(`go_on`). `pipeline` (validate, import) and `changing` (update, close) run on it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.api.limiter import RateLimiter, default_concurrency
from bulk_chats.checks.columns import Verdict
from bulk_chats.errors import ApiError, AuthenticationError, InputError
from bulk_chats.fields import RESULT_COLUMNS
from bulk_chats.jobs.plan import Plan
from bulk_chats.journal.journal import Journal, journal_path, scope_for
from bulk_chats.lookups.directory import Directory, read_directory
from bulk_chats.progress import ProgressSink
from bulk_chats.records import ChangeRequest, ChatRequest, Outcome, Status
from bulk_chats.results import owner_only
from bulk_chats.results.table import build_results, default_out_path
from bulk_chats.results.workbook import (
    Summary,
    count_error_codes,
    count_statuses,
    prepare_out,
    write_results,
)
from bulk_chats.settings import DEFAULT_RATE, Settings
from bulk_chats.sheet.loading import Sheet

Notify = Callable[[str], None]
"""Where a run's notices go (the plan among them): the CLI prints them."""


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


def make_reports_dir(reports_dir: Path) -> None:
    """Create the reports folder owner-only when it is missing: the journal and the default
    workbook in it hold customer data. Raises InputError."""
    try:
        owner_only.make_folder(reports_dir)
    except OSError as exc:
        raise InputError(
            f"{reports_dir}: cannot create the reports folder ({exc.strerror})"
        ) from None


def prepare_results(out: Path, sheet: Sheet) -> None:
    """Fail before any work is done or sent when the results could not be written."""
    prepare_out(out, len(sheet), len(sheet.headers) + len(RESULT_COLUMNS) + 1)


def results_for(
    settings: Settings, sheet: Sheet, validation: Verdict, *, mode: str, now: dt.datetime
) -> ResultsSoFar:
    """What gathers a run's outcomes, once it is sure its results workbook can be written
    (in the reports folder, made for the journal too, unless `--out` says elsewhere)."""
    make_reports_dir(settings.reports_dir)
    out = settings.out or default_out_path(settings.input_path, settings.reports_dir, now)
    prepare_results(out, sheet)
    summary = Summary(settings.input_path, mode, settings.base_url, now)
    return ResultsSoFar(sheet, validation, out, summary, out_given=settings.out is not None)


def open_journal(settings: Settings) -> Journal:
    """The journal of the run's API root, in its reports directory."""
    return Journal.open(
        journal_path(settings.reports_dir),
        scope=scope_for(settings.base_url),
        fresh=settings.fresh,
        input_name=settings.input_path.name,
    )


@dataclass(frozen=True, slots=True)
class Session:
    """What a sending run holds open: the journal of its API root, one limiter and one
    client for every request, and how many requests it keeps in flight."""

    journal: Journal
    client: HelpCrunchClient
    limiter: RateLimiter
    concurrency: int


@asynccontextmanager
async def open_session(
    settings: Settings,
    results: ResultsSoFar,
    progress: ProgressSink,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Session]:
    """Open the run's journal, its limiter (`open_limiter`, which `results` keeps so that
    the summary says what it learned) and its client, for the `async with` block.

    The concurrency is `settings.concurrency`, or enough to keep the limiter's rate full.
    """
    with open_journal(settings) as journal:
        limiter = open_limiter(settings.rate, journal, progress)
        results.limiter = limiter
        concurrency = settings.concurrency or default_concurrency(limiter.rate)
        async with HelpCrunchClient(
            settings.base_url, settings.api_key, limiter=limiter, transport=transport
        ) as client:
            yield Session(journal, client, limiter, concurrency)


def go_on(
    plan: Plan,
    results: ResultsSoFar,
    tell: Notify,
    *,
    confirm: Callable[[Plan], bool] | None,
    rows: Iterable[AnyRequest],
    dry_run: bool = False,
) -> RunResult | None:
    """Tell the plan and ask `confirm` whether to go on: None to go on, else the run's end
    with every row of `rows` `not_sent`. A dry run, a plan with nothing to send and a run
    without `confirm` (no terminal, `--yes`) go on unasked."""
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
    """The pre-flight's reads for `to_check` (`resolve.read_directory`), or the run's end
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


def open_limiter(rate: float | None, journal: Journal, progress: ProgressSink) -> RateLimiter:
    """The run's one rate limiter: at `rate` requests a minute when given, else at the
    account's limit an earlier run learned for this API root, else at `DEFAULT_RATE`.

    A limit learned during the run goes to the journal at once, so that a killed run
    remembers it too, and to `progress`.
    """

    def learned(per_minute: float) -> None:
        journal.limits.remember(per_minute)
        progress.limit_learned(per_minute)

    remembered = journal.limits.learned() if rate is None else None
    return RateLimiter(rate or remembered or DEFAULT_RATE, learned=remembered, on_learned=learned)


AnyRequest = ChatRequest | ChangeRequest


def end_rows(rows: Iterable[AnyRequest], status: Status, message: str) -> list[Outcome]:
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
class ResultsSoFar:
    """What a run gathers for its results workbook as it goes: the last outcome recorded
    for a row is the one written."""

    sheet: Sheet
    validation: Verdict
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
        return write_run(
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


def write_run(
    sheet: Sheet,
    validation: Verdict,
    outcomes: dict[int, Outcome],
    out: Path,
    summary: Summary,
    *,
    resolved: Mapping[str, Mapping[int, int]] | None = None,
    customer_created: frozenset[int] | None = None,
    out_given: bool,
    **flags: object,
) -> RunResult:
    """Write the results workbook of `outcomes` to `out`; the run's result, with `flags`
    (`RunResult`'s `auth_failed`, `plan`, ...)."""
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
