"""A run's results as it goes and at its end: the outcomes gathered, the workbook written,
and the `RunResult` the command line maps to an exit status.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from bulk_chats.api.limiter import RateLimiter
from bulk_chats.checks.columns import Verdict
from bulk_chats.errors import InputError, JournalError, ReportError
from bulk_chats.fields import RESULT_COLUMNS
from bulk_chats.jobs.plan import Plan
from bulk_chats.progress import ProgressSink
from bulk_chats.records import ChangeRequest, ChatRequest, Outcome, Status
from bulk_chats.results import owner_only
from bulk_chats.results.table import build_results, default_out_path
from bulk_chats.results.workbook import (
    Summary,
    Written,
    count_error_codes,
    count_statuses,
    prepare_out,
    write_results,
)
from bulk_chats.send.pool import JOURNAL_STOPPED
from bulk_chats.settings import Settings
from bulk_chats.sheet.loading import Sheet


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
    """The account's limit (requests a minute) the run ran at in the end, learned from a
    429 or remembered from an earlier run; None if none."""
    limit_confirmed: bool = False
    """Whether the API confirmed `learned_limit` (only a confirmed one is remembered)."""
    journal_error: str | None = None
    """Why the run stopped early when the journal could not be written (exit 1)."""

    @property
    def all_done(self) -> bool:
        """Every row is created (now or earlier), or for validate every row is valid, or
        for update and close every row is updated (now or earlier) or has nothing to do
        (unchanged since an export included)."""
        done = {
            Status.CREATED,
            Status.ALREADY_CREATED,
            Status.VALID,
            Status.UPDATED,
            Status.ALREADY_UPDATED,
            Status.SKIPPED,
            Status.UNCHANGED,
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
    settings: Settings,
    sheet: Sheet,
    validation: Verdict,
    *,
    mode: str,
    now: dt.datetime,
    written: Written | None = None,
) -> ResultsSoFar:
    """What gathers a run's outcomes, once it is sure its results workbook can be written
    (in the reports folder, made for the journal too, unless `--out` says elsewhere).
    `written` hears how far the writing of the results is, at the end."""
    make_reports_dir(settings.reports_dir)
    out = results_path(settings, now)
    prepare_results(out, sheet)
    summary = Summary(settings.input_path, mode, settings.base_url, now, settings.input_name)
    return ResultsSoFar(
        sheet, validation, out, summary, out_given=settings.out is not None, written=written
    )


def results_path(settings: Settings, now: dt.datetime) -> Path:
    """Where a run's results go: `--out`, else the default path in the reports folder
    (CSV with `settings.csv_results`)."""
    suffix = ".csv" if settings.csv_results else ".xlsx"
    return settings.out or default_out_path(
        settings.input_path, settings.reports_dir, now, suffix=suffix
    )


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
    written: Written | None = None

    def record(self, outcomes: Iterable[Outcome]) -> None:
        """Keep `outcomes`, each replacing what was recorded for its row before."""
        self.outcomes.update((o.index, o) for o in outcomes)

    def watching(self, sink: ProgressSink) -> ProgressSink:
        """`sink`, which also keeps here each row's outcome as it is told: a run the
        journal stops has them for its workbook, though its sender ends in the error."""
        return _Recorded(sink, self)

    def journal_failed(
        self, error: JournalError, rows: Iterable[AnyRequest], *, journal: Path
    ) -> RunResult:
        """The end of a run stopped because the journal could not be written (a full
        disk): the rows with no outcome yet are `not_sent`, and the workbook is written
        with every outcome so far, its result saying why it stopped (exit 1).

        Where the workbook cannot be written either, raises `JournalError` saying so and
        where the journal is: it holds what was sent, and the same command resumes from it.
        """
        left = [row for row in rows if row.index not in self.outcomes]
        self.record(end_rows(left, Status.NOT_SENT, JOURNAL_STOPPED))
        again = "free some space, then run the same command again: it resumes from the journal"
        try:
            result = self.finish()
        except ReportError as exc:
            raise JournalError(
                f"{error}; the results workbook could not be written either ({exc}); the "
                f"journal ({journal}) holds what was sent: {again}"
            ) from None
        return replace(result, journal_error=f"{error}; {again}")

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
            written=self.written,
            plan=self.plan,
            learned_limit=self.limiter.learned_limit if self.limiter is not None else None,
            limit_confirmed=self.limiter is not None and self.limiter.limit_confirmed,
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
    written: Written | None = None,
    **flags: object,
) -> RunResult:
    """Write the results workbook of `outcomes` to `out` (`written` hears how far it is);
    the run's result, with `flags` (`RunResult`'s `auth_failed`, `plan`, ...)."""
    results = build_results(
        sheet, validation, outcomes, resolved=resolved, customer_created=customer_created
    )
    return RunResult(
        # A path of our choosing never replaces a file; one given with --out may.
        out=write_results(results, out, summary, replace=out_given, written=written),
        counts=count_statuses(results),
        error_codes=count_error_codes(results),
        total=len(results),
        **flags,  # type: ignore[arg-type]
    )


class _Recorded:
    """A progress sink that passes every call on and keeps each outcome in `results`."""

    def __init__(self, sink: ProgressSink, results: ResultsSoFar) -> None:
        self._sink = sink
        self._results = results

    def start(self, total: int) -> None:
        self._sink.start(total)

    def advance(self, outcome: Outcome) -> None:
        self._results.record([outcome])
        self._sink.advance(outcome)

    def limit_learned(self, rate: float | None, *, confirmed: bool) -> None:
        self._sink.limit_learned(rate, confirmed=confirmed)

    def conversations(self, done: int, total: int) -> None:
        self._sink.conversations(done, total)

    def close(self) -> None:
        self._sink.close()
