"""The two jobs, start to end: `validate_file` and `import_file`.

Each reads the sheet, validates it, and (for import) runs the pre-flight, plans, looks up
names, sends and journals, then writes the results workbook. They return a `RunResult`;
the CLI maps it to an exit status. Nothing here prints: notices, the plan among them, go
to the `notify` callback.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import anyio
import httpx
import pandas as pd

from bulk_chats.client import HelpCrunchClient
from bulk_chats.errors import ApiError, AuthenticationError, InputError
from bulk_chats.journal import (
    Earlier,
    Journal,
    describe_resume,
    journal_path,
    latest,
    plan_resume,
    scope_for,
    settled,
)
from bulk_chats.loading import RESULT_COLUMNS, Sheet, load_sheet
from bulk_chats.progress import NullProgress, ProgressSink
from bulk_chats.records import ChatRequest, Outcome, Status
from bulk_chats.report import (
    Summary,
    build_results,
    count_error_codes,
    count_statuses,
    default_out_path,
    prepare_out,
    write_results,
)
from bulk_chats.resolve import (
    Draft,
    Preflight,
    check_rows,
    draft_rows,
    read_directory,
    resolve_customers,
    resolved_columns,
)
from bulk_chats.sending import send_chats
from bulk_chats.settings import DEFAULT_RATE, Settings
from bulk_chats.throttle import RateLimiter, default_concurrency
from bulk_chats.validation import Validation, validate_sheet

Notify = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Plan:
    """What an import is about to do, shown before it starts and for the confirmation prompt.

    `to_send` rows passed the pre-flight: they need `chats` chats, `messages` first messages
    and `lookups` customer searches (one per distinct email or userId); `requests` counts
    them all and `seconds` is how long they take at `rate` requests per minute. The key
    check and the reads of agents and departments are done by then and not counted.
    `already_done` rows have their chat from an earlier run; `not_to_send` rows are invalid
    or duplicate; `held` rows an earlier run left `unknown` are held back (see
    `journal.plan_resume`). `warnings` counts rows sent despite a warning.
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

    def describe(self) -> str:
        """The plan in a few lines, as the CLI shows it before asking to go on."""
        work = [_count(self.chats, "chat")]
        if self.messages:
            work.append(_count(self.messages, "first message"))
        if self.lookups:
            work.append(_count(self.lookups, "customer look-up"))
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
        if self.lookups:
            lines.append("rows whose customer matches no one, or several, are left out")
        if self.already_done:
            lines.append(f"{_count(self.already_done, 'row')} already created earlier; not sent")
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
    _prepare(out, sheet)
    return _finish(sheet, validation, {}, out, Summary(settings.input_path, "validate", "", now))


def _prepare(out: Path, sheet: Sheet) -> None:
    """Fail before any work is done or sent when the results could not be written."""
    prepare_out(out, len(sheet), len(sheet.headers) + len(RESULT_COLUMNS) + 1)


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
    """Validate, run the pre-flight, then create a chat (and its first message) for every
    row that passed, and write the results workbook.

    In order: read and validate; open the journal and set aside the rows an earlier run
    finished (they are neither looked up nor sent); the pre-flight (its first request
    checks the key: a 401 stops here, nothing created; then agent and department ids and
    names are checked); the plan, given to `notify` and then to `confirm`, which may
    decline; the customer look-ups; the sending. With `settings.dry_run` everything but
    the sending runs, and the rows that would be sent are `valid`.

    Every request shares one limiter at `settings.rate` per minute. `stop` (set on Ctrl-C)
    stops starting new look-ups and rows. A 401 stops the run: the rest is `not_sent`.
    Raises InputError when the file or the settings cannot be used.
    """
    now = now or dt.datetime.now()
    say = notify or (lambda _: None)
    if settings.api_key is None:
        raise InputError("no API key given")
    sheet, validation = read_and_validate(settings)
    out = settings.out or default_out_path(settings.input_path, settings.reports_dir, now)
    _prepare(out, sheet)
    mode = "dry-run" if settings.dry_run else "import"
    report = _Report(
        sheet, validation, out, Summary(settings.input_path, mode, settings.base_url, now)
    )
    drafts = draft_rows(sheet, validation)
    limiter = RateLimiter(settings.rate)
    concurrency = settings.concurrency or default_concurrency(settings.rate)

    with Journal.open(
        journal_path(settings.reports_dir),
        scope=scope_for(settings.base_url),
        fresh=settings.fresh,
        input_name=settings.input_path.name,
    ) as journal:
        earlier = journal.earlier(d.key for d in drafts)
        unknown_before = _unknown_before(sheet, fresh=settings.fresh)
        finished, held, pending, last_created_at = _set_aside(drafts, earlier, unknown_before)
        report.outcomes.update(finished)
        report.outcomes.update(held)
        claimed = _claimed_chat_ids(validation, earlier.values())

        async with HelpCrunchClient(
            settings.base_url, settings.api_key, limiter=limiter, transport=transport
        ) as client:
            try:
                directory = await read_directory(client, pending)
            except AuthenticationError as exc:
                say(f"the API refused the key ({exc.http_status}): nothing was sent")
                report.outcomes.update(_all(pending, Status.NOT_SENT, _KEY_REFUSED))
                return report.finish(auth_failed=True)
            except ApiError as exc:
                say(f"the pre-flight read failed, so nothing was sent: {exc}")
                report.outcomes.update(
                    _all(pending, Status.NOT_SENT, f"not sent: the pre-flight read failed: {exc}")
                )
                return report.finish()
            preflight = check_rows(pending, directory)
            report.outcomes.update(preflight.rejected)
            report.warnings.update(preflight.warnings)

            plan = make_plan(
                validation,
                drafts,
                preflight,
                already_done=len(finished),
                held=len(held),
                rate=settings.rate,
                dry_run=settings.dry_run,
            )
            if earlier or held:
                say(_resume_note(finished, held, pending, earlier, last_created_at))
            say(plan.describe())
            report.plan = plan
            if not settings.dry_run and confirm is not None and plan.to_send and not confirm(plan):
                report.outcomes.update(
                    _all(preflight.passed, Status.NOT_SENT, "not sent: the run was not confirmed")
                )
                return report.finish(declined=True)

            resolution = await resolve_customers(
                client, preflight, concurrency=concurrency, stop=stop
            )
            report.outcomes.update(resolution.outcomes)
            report.resolved = resolution.resolved
            resume = plan_resume(resolution.requests, earlier, unknown_before=unknown_before)
            report.outcomes.update((o.index, o) for o in resume.held)
            if resolution.auth_failed:
                say("the API refused the key (401) during the look-ups: nothing more was sent")
                report.outcomes.update(_all(resume.to_send, Status.NOT_SENT, _KEY_REFUSED))
                return report.finish(auth_failed=True)
            if settings.dry_run:
                report.outcomes.update(_all(resume.to_send, Status.VALID, ""))
                return report.finish(interrupted=_stopped(stop))

            result = await send_chats(
                resume.to_send,
                client,
                concurrency=concurrency,
                progress=progress or NullProgress(),
                journal=journal,
                stop=stop,
                claimed_chat_ids=claimed,
            )
    report.outcomes.update(result.outcomes)
    return report.finish(auth_failed=result.auth_failed, interrupted=result.interrupted)


_KEY_REFUSED = "not sent: the API refused the key"


def _stopped(stop: anyio.Event | None) -> bool:
    return stop is not None and stop.is_set()


def _resume_note(
    finished: Mapping[int, Outcome],
    held: Mapping[int, Outcome],
    pending: Sequence[Draft],
    earlier: Mapping[str, Earlier],
    last_created_at: float | None,
) -> str:
    """One line on what earlier runs left, e.g. `312 rows were already created ...`."""
    to_confirm = 0
    for draft in pending:
        entry = earlier.get(draft.key)
        if entry is not None and entry.chat_id is None and entry.unresolved_since is not None:
            to_confirm += 1
    return describe_resume(
        finished=len(finished),
        last_created_at=last_created_at,
        to_send=len(pending),
        message_only=sum(1 for d in pending if d.chat_id is not None),
        to_confirm=to_confirm,
        held=len(held),
    )


def _unknown_before(sheet: Sheet, *, fresh: bool) -> frozenset[int]:
    """Rows a results workbook fed back in marks `unknown` (none in a `--fresh` run)."""
    column = sheet.column("status") if "status" in sheet.previous else None
    if fresh or column is None:
        return frozenset()
    marked = column.astype(str).str.strip().str.lower().eq(Status.UNKNOWN.value)
    return frozenset(int(i) for i in column.index[marked.to_numpy(dtype=bool)])


def _set_aside(
    drafts: Sequence[Draft], earlier: Mapping[str, Earlier], unknown_before: Collection[int]
) -> tuple[dict[int, Outcome], dict[int, Outcome], list[Draft], float | None]:
    """Split off the drafts that will not be sent, before anything is looked up for them.

    Returns the outcomes of the rows an earlier run finished (`already_created`: chat
    created, and its first message posted if it has one), the outcomes of the rows held
    back (`unknown`, as `plan_resume` holds them: a fed-back workbook says `unknown` and
    the journal does not know them), the rest, and when the latest finished chat was
    created. The rest are sorted further by `plan_resume` once their ids are known.
    """
    finished: dict[int, Outcome] = {}
    held: dict[int, Outcome] = {}
    pending: list[Draft] = []
    last_created_at: float | None = None
    for draft in drafts:
        entry = earlier.get(draft.key)
        outcome = settled(
            draft.index,
            chat_id=draft.chat_id,
            has_message=draft.message is not None,
            entry=entry,
            unknown_before=unknown_before,
        )
        if outcome is None:
            known_chat = entry.chat_id if entry is not None else None
            pending.append(draft if known_chat is None else replace(draft, chat_id=known_chat))
        elif outcome.status is Status.UNKNOWN:
            held[draft.index] = outcome
        else:
            finished[draft.index] = outcome
            last_created_at = latest(last_created_at, entry)
    return finished, held, pending, last_created_at


def make_plan(
    validation: Validation,
    drafts: Sequence[Draft],
    preflight: Preflight,
    *,
    already_done: int,
    held: int = 0,
    rate: float,
    dry_run: bool = False,
) -> Plan:
    """Count what the rows that passed the pre-flight will cost at `rate` requests per minute.

    `drafts` are every row considered for sending; `already_done` counts those an earlier
    run finished (from the journal). Rows an earlier results workbook gave a chat id count
    as done too, unless only their message is left.
    """
    passed = preflight.passed
    chats = sum(1 for d in passed if d.chat_id is None)
    messages = sum(1 for d in passed if d.message is not None)
    lookups = preflight.lookups
    total = chats + messages + lookups
    from_workbook = int(validation.status.eq(Status.ALREADY_CREATED.value).sum())
    message_only_from_workbook = sum(1 for d in drafts if d.chat_id is not None)
    invalid = int(validation.status.isin([Status.INVALID.value, Status.DUPLICATE.value]).sum())
    return Plan(
        rows=len(validation.status),
        to_send=len(passed),
        chats=chats,
        messages=messages,
        lookups=lookups,
        requests=total,
        seconds=total * 60 / rate,
        already_done=already_done + from_workbook - message_only_from_workbook,
        not_to_send=invalid
        + sum(1 for o in preflight.rejected.values() if o.status is Status.INVALID),
        rate=rate,
        warnings=len(preflight.warnings),
        held=held,
        dry_run=dry_run,
    )


def _claimed_chat_ids(validation: Validation, earlier: Iterable[Earlier]) -> set[int]:
    """Chats known to belong to rows: a confirming search must never adopt them."""
    claimed = {int(i) for i in validation.previous_chat_id.dropna()}
    claimed.update(e.chat_id for e in earlier if e.chat_id is not None)
    return claimed


def _all(rows: Iterable[ChatRequest | Draft], status: Status, message: str) -> dict[int, Outcome]:
    return {
        r.index: Outcome(index=r.index, status=status, chat_id=r.chat_id, error_message=message)
        for r in rows
    }


@dataclass(slots=True)
class _Report:
    """What a run gathers for its results workbook as it goes."""

    sheet: Sheet
    validation: Validation
    out: Path
    summary: Summary
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    warnings: dict[int, str] = field(default_factory=dict)
    resolved: dict[str, dict[int, int]] = field(default_factory=dict)
    plan: Plan | None = None

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
        resolved = resolved_columns(self.sheet, self.validation, self.resolved)
        return _finish(
            self.sheet,
            self.validation,
            outcomes,
            self.out,
            self.summary,
            resolved=resolved,
            plan=self.plan,
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
    resolved: pd.DataFrame | None = None,
    **flags: object,
) -> RunResult:
    results = build_results(sheet, validation, outcomes, resolved=resolved)
    write_results(results, out, summary)
    return RunResult(
        out=out,
        counts=count_statuses(results),
        error_codes=count_error_codes(results),
        total=len(results),
        **flags,  # type: ignore[arg-type]
    )
