"""`import`, start to end: read and validate, the pre-flight, the plan, the look-ups, the
sending, the results workbook.

`import_file` returns a `RunResult`; the command line maps it to an exit status. Nothing
here prints: notices, the plan among them, go to `Hooks.notify`.
"""

from __future__ import annotations

from functools import partial

from bulk_chats.checks.verdict import fed_back, rows_to_send
from bulk_chats.errors import InputError
from bulk_chats.jobs.hooks import Hooks
from bulk_chats.jobs.plan import plan_import
from bulk_chats.jobs.result import RunResult, end_rows, results_for
from bulk_chats.jobs.resume import sort_by_earlier_runs
from bulk_chats.jobs.session import KEY_REFUSED, go_on, open_session, preflight_read
from bulk_chats.jobs.validate import read_and_validate
from bulk_chats.lookups.customers import assign_customers, look_up_customers
from bulk_chats.lookups.directory import check_rows
from bulk_chats.lookups.new_customers import create_customers, created_earlier
from bulk_chats.records import Status
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
    the settings cannot be used.
    """
    hooks = hooks or Hooks()
    now, tell, stop, sink = hooks.started(), hooks.notify, hooks.stop, hooks.progress
    if settings.api_key is None:
        raise InputError("no API key given")
    sheet, validation = read_and_validate(settings)
    mode = "dry-run" if settings.dry_run else "import"
    results = results_for(settings, sheet, validation, mode=mode, now=now)
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

        directory = await preflight_read(client, resume.to_send, results, tell, rows=resume.to_send)
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
        plan = plan_import(
            validation.counts(),
            resume,
            preflight,
            rate=session.limiter.rate,
            dry_run=settings.dry_run,
            lookups=lookups,
        )
        if resume.worth_telling:
            tell(resume.describe())
        ended = go_on(
            plan,
            results,
            tell,
            confirm=hooks.confirm,
            rows=preflight.passed,
            dry_run=settings.dry_run,
        )
        if ended is not None:
            return ended

        if lookups is None:
            lookups = await look_up()
        elif lookups.missing and not (settings.dry_run or lookups.auth_failed):
            lookups = await create_customers(
                client, journal, lookups, preflight.passed, concurrency=concurrency, stop=stop
            )
        resolution = assign_customers(preflight, lookups, would_create=create and settings.dry_run)
        results.record(resolution.outcomes.values())
        # Rows an earlier run finished are not looked up: their customer is the journal's.
        resolved = {name: dict(ids) for name, ids in resolution.resolved.items()}
        resolved.setdefault("customer", {}).update({**earlier, **resume.customers})
        results.resolved = resolved
        if create or earlier or resolution.customer_created:
            results.customer_created = frozenset(earlier) | resolution.customer_created
        if resolution.auth_failed:
            tell("the API refused the key (401) during the look-ups: nothing more was sent")
            results.record(end_rows(resolution.requests, Status.NOT_SENT, KEY_REFUSED))
            return results.finish(auth_failed=True)
        if settings.dry_run:
            results.record(end_rows(resolution.requests, Status.VALID, ""))
            return results.finish(interrupted=hooks.stopped())

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
