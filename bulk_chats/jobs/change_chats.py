"""The jobs that change chats that exist: `update_file` and `close_file`.

They run the machinery of `import` (docs/migrations.md): read and validate offline,
open the journal, the pre-flight (the key checked, agent and department ids checked and
names resolved), the plan and its confirmation, the changes at the rate, and the results
workbook. Nothing here prints: notices go to `Hooks.notify`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from bulk_chats.checks.changes import validate_changes
from bulk_chats.checks.exported import mark_unchanged
from bulk_chats.checks.verdict import changes_to_send
from bulk_chats.errors import InputError
from bulk_chats.jobs.from_export import check_both_changed, compare_export
from bulk_chats.jobs.hooks import Hooks
from bulk_chats.jobs.plan import plan_changes
from bulk_chats.jobs.result import RunResult, results_for
from bulk_chats.jobs.session import go_on, open_session, preflight_read
from bulk_chats.lookups.directory import check_changes
from bulk_chats.records import ChangeRequest, ChatChange, Outcome, Status
from bulk_chats.send.changes import send_changes
from bulk_chats.settings import Settings
from bulk_chats.sheet.loading import load_sheet


async def update_file(settings: Settings, hooks: Hooks | None = None) -> RunResult:
    """Change the chats the rows of `settings.input_path` name by `chat_id`: assignee,
    department, then status, one `PUT` each; write the results workbook.

    In order: read and validate (`checks.changes.validate_changes`; `settings.chat_status`
    fills blank `chat_status` cells; given an export, only the cells that differ from what
    it read are changes, `jobs.from_export`); open the journal; the pre-flight (its first request
    checks the key: a 401 stops here with exit 3 and nothing sent; then agents and
    departments are checked and names resolved); the changes earlier runs applied are
    left out (a row with none left is `already_updated`), unless another value of the
    same field was sent after them: whatever became of that send, the chat may not hold
    them now, so they are sent again (they set a value: cheap and safe); the plan, given
    to `notify` and then to `hooks.confirm`, which may decline; the changes. `hooks.stop`
    (Ctrl-C) starts no new row; a 401 stops the run and the rest is `not_sent`; so does a
    journal that cannot be written, as for `import_file`. Raises InputError when the file
    or the settings cannot be used.
    """
    return await _change_file(settings, hooks or Hooks(), close=False)


async def close_file(settings: Settings, hooks: Hooks | None = None) -> RunResult:
    """Close every chat the `chat_id` column of `settings.input_path` names, and change
    nothing else; rows without a `chat_id` are `skipped`. Given an import's results
    workbook, this undoes that import as far as the API allows (it deletes nothing).
    Everything else is as `update_file`."""
    return await _change_file(settings, hooks or Hooks(), close=True)


async def _change_file(settings: Settings, hooks: Hooks, *, close: bool) -> RunResult:
    now, tell, sink = hooks.started(), hooks.notify, hooks.progress
    if settings.api_key is None:
        raise InputError("no API key given")
    sheet = load_sheet(
        settings.input_path, sheet=settings.sheet, columns=settings.columns, chats=True
    )
    export = None if close else compare_export(settings, sheet)
    validation = validate_changes(
        export.sheet if export else sheet,
        close=close,
        chat_status=None if export else settings.chat_status,
    )
    if export is not None:
        validation = mark_unchanged(validation, export)
    results = results_for(
        settings,
        sheet,
        validation,
        mode="close" if close else "update",
        now=now,
        written=hooks.written,
    )
    rows = changes_to_send(sheet, validation)

    sink = results.watching(sink)
    transport = hooks.transport
    async with open_session(settings, results, sink, rows=rows, transport=transport) as session:
        journal, client = session.journal, session.client
        directory = await preflight_read(client, rows, results, tell, rows=rows)
        if isinstance(directory, RunResult):
            return directory
        preflight = check_changes(rows, directory)
        if export is not None:
            preflight = check_both_changed(preflight, export, directory)
        checked, rejected = preflight.passed, list(preflight.rejected.values())
        results.record(rejected)
        results.warnings.update(preflight.warnings)

        applied = journal.changes.applied(row.chat_id for row in checked)
        to_send, finished = _resume(checked, applied)
        results.record(finished)
        plan = plan_changes(
            validation.counts(),
            to_send,
            finished,
            rejected,
            rate=session.limiter.rate,
            warnings=len(preflight.warnings),
        )
        ended = go_on(plan, results, tell, confirm=hooks.confirm, rows=to_send)
        if ended is not None:
            return ended

        result = await send_changes(
            to_send,
            client,
            concurrency=session.concurrency,
            progress=sink,
            journal=journal.changes,
            stop=hooks.stop,
        )
    if session.stopped.result is not None:
        tell(session.stopped.result.journal_error or "")
        return session.stopped.result
    results.record(result.outcomes.values())
    return results.finish(auth_failed=result.auth_failed, interrupted=result.interrupted)


def _resume(
    rows: Iterable[ChangeRequest], applied: set[tuple[int, str, str]]
) -> tuple[list[ChangeRequest], list[Outcome]]:
    """Rows with changes left to send (those applied earlier marked so), and the outcomes
    of rows whose every change an earlier run applied: `already_updated`."""
    to_send: list[ChangeRequest] = []
    finished: list[Outcome] = []
    for row in rows:
        done = frozenset(c for c in row.changes if _key(row, c) in applied)
        if len(done) == len(row.changes):
            finished.append(
                Outcome(index=row.index, status=Status.ALREADY_UPDATED, chat_id=row.chat_id)
            )
        else:
            to_send.append(replace(row, applied=done))
    return to_send, finished


def _key(row: ChangeRequest, change: ChatChange) -> tuple[int, str, str]:
    return (row.chat_id, change.field, change.journal_value)
