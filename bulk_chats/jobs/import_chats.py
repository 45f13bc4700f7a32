"""`import`, start to end: read and validate, the pre-flight, the plan, the look-ups, the
sending, the results workbook.

`import_file` returns a `RunResult`; the command line maps it to an exit status. Nothing
here prints: notices, the plan among them, go to `Hooks.notify`.
"""

from __future__ import annotations

from bulk_chats.checks.exported import refuse_export
from bulk_chats.checks.transcripts import TranscriptValidation
from bulk_chats.checks.verdict import fed_back, rows_to_send
from bulk_chats.errors import InputError
from bulk_chats.jobs.hooks import Hooks
from bulk_chats.jobs.import_transcripts import import_transcript
from bulk_chats.jobs.plan import plan_import
from bulk_chats.jobs.result import RunResult, results_for
from bulk_chats.jobs.resume import sort_by_earlier_runs
from bulk_chats.jobs.session import (
    give_customers,
    go_on,
    look_up_first,
    open_session,
    preflight,
)
from bulk_chats.jobs.validate import read_and_validate
from bulk_chats.lookups.new_customers import created_earlier
from bulk_chats.send.chats import send_chats
from bulk_chats.settings import Settings


async def import_file(settings: Settings, hooks: Hooks | None = None) -> RunResult:
    """Validate, run the pre-flight, then create a chat (and its first message) for every
    row that passed, and write the results workbook.

    In order: read and validate; open the journal and plan the resume (rows an earlier
    run finished are neither looked up nor sent); the pre-flight (its first request
    checks the key: a 401 stops here, nothing created; then agent and department ids and
    names are checked); the plan, given to `hooks.notify` and then to `hooks.confirm`,
    which may decline; the customer look-ups; the sending. With `settings.dry_run`
    everything but the sending runs, and the rows that would be sent are `valid`.

    Every request shares one limiter at `settings.rate` per minute. `hooks.stop` (set on
    Ctrl-C) stops starting new look-ups and rows. A 401 stops the run: the rest is `not_sent`.
    So does a journal that cannot be written (a full disk), once the requests in flight
    are answered: the workbook says what became of every row and the result why it
    stopped (`RunResult.journal_error`, told to `hooks.notify` too), or `JournalError`
    says why the workbook could not be written either. Raises InputError when the file or
    the settings cannot be used, an export among them (its chats exist; importing it
    would create each again).
    """
    hooks = hooks or Hooks()
    now, tell, stop, sink = hooks.started(), hooks.notify, hooks.stop, hooks.progress
    if settings.api_key is None:
        raise InputError("no API key given")
    refuse_export(settings.input_path, settings.sheet)
    sheet, validation = read_and_validate(settings)
    if isinstance(validation, TranscriptValidation):
        return await import_transcript(settings, hooks, sheet, validation)
    mode = "dry-run" if settings.dry_run else "import"
    results = results_for(settings, sheet, validation, mode=mode, now=now, written=hooks.written)
    rows = rows_to_send(sheet, validation)

    sink = results.watching(sink)
    transport = hooks.transport
    async with open_session(settings, results, sink, rows=rows, transport=transport) as session:
        journal, client, concurrency = session.journal, session.client, session.concurrency
        entries = journal.chats.entries(row.key for row in rows)
        chats = [e.chat_id for e in entries.values()] + [r.chat_id for r in rows]
        resume = sort_by_earlier_runs(
            rows,
            entries,
            fed_back(sheet, validation),
            fresh=settings.fresh,
            applied=journal.changes.applied(c for c in chats if c is not None),
        )
        results.record(resume.finished)
        results.record(resume.held)
        done = {outcome.index for outcome in resume.finished}
        earlier = created_earlier(journal, (row for row in rows if row.index in done))

        checked = await preflight(client, resume.to_send, results, tell, rows=resume.to_send)
        if isinstance(checked, RunResult):
            return checked

        # With --create-customers the plan counts the customers to create, which only
        # the look-ups can tell: they go first. They are reads; nothing is created
        # before the prompt.
        lookups = await look_up_first(session, checked, settings=settings, stop=stop)
        plan = plan_import(
            validation.counts(),
            resume,
            checked,
            rate=session.limiter.rate,
            dry_run=settings.dry_run,
            lookups=lookups,
            create=settings.create_customers,
        )
        if resume.worth_telling:
            tell(resume.describe())
        ended = go_on(
            plan,
            results,
            tell,
            confirm=hooks.confirm,
            rows=checked.passed,
            dry_run=settings.dry_run,
        )
        if ended is not None:
            return ended

        resolution = await give_customers(
            session,
            checked,
            lookups,
            results,
            settings=settings,
            hooks=hooks,
            earlier=earlier,
            finished_ids=resume.ids_used,
        )
        if isinstance(resolution, RunResult):
            return resolution

        result = await send_chats(
            resolution.requests,
            client,
            concurrency=concurrency,
            progress=sink,
            journal=journal,
            stop=stop,
            claimed_chat_ids=set(resume.claimed_chat_ids),
        )
    if session.stopped.result is not None:
        tell(session.stopped.result.journal_error or "")
        return session.stopped.result
    results.record(result.outcomes.values())
    return results.finish(auth_failed=result.auth_failed, interrupted=result.interrupted)
