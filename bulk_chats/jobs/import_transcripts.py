"""`import` of a transcript, start to end (docs/transcripts.md): each conversation one
chat, its messages in order, exactly once, then its status.

The steps of `import_chats.import_file`, which hands a transcript over here once it is
read and validated: the journal and what earlier runs left (`resume_transcripts`), the
pre-flight, the plan, the look-ups, then the conversations sent side by side
(`send.conversations`), and the results workbook, one row per message. Nothing here
prints: notices, the plan among them, go to `Hooks.notify`.
"""

from __future__ import annotations

from bulk_chats.checks.transcripts import TranscriptValidation
from bulk_chats.checks.verdict import fed_back, transcript_rows
from bulk_chats.jobs.hooks import Hooks
from bulk_chats.jobs.plan import plan_transcript
from bulk_chats.jobs.result import RunResult, end_rows, results_for
from bulk_chats.jobs.resume_transcripts import gather, hold_whole, sort_conversations
from bulk_chats.jobs.session import (
    KEY_REFUSED,
    give_customers,
    go_on,
    look_up_first,
    open_session,
    preflight,
)
from bulk_chats.lookups.new_customers import created_earlier
from bulk_chats.records import Status
from bulk_chats.send.conversations import send_conversations
from bulk_chats.settings import Settings
from bulk_chats.sheet.loading import Sheet


async def import_transcript(
    settings: Settings, hooks: Hooks, sheet: Sheet, validation: TranscriptValidation
) -> RunResult:
    """Send every conversation of the transcript `sheet` that passed `validation`, and
    write the results workbook; `import_file` says the rest (the pre-flight, the plan and
    `hooks.confirm`, `settings.dry_run`, Ctrl-C and 401s).

    A conversation goes whole or not at all: one of its rows left out by the pre-flight
    or the look-ups holds back the others (`not_sent`). With `settings.time_prefix` each
    message with a `sent_at` starts with it. Every request shares one limiter at
    `settings.rate` per minute.
    """
    now, tell, stop, sink = hooks.started(), hooks.notify, hooks.stop, hooks.progress
    mode = "dry-run" if settings.dry_run else "import"
    results = results_for(settings, sheet, validation, mode=mode, now=now, written=hooks.written)
    rows = transcript_rows(sheet, validation, time_prefix=settings.time_prefix)

    sink = results.watching(sink)
    transport = hooks.transport
    async with open_session(settings, results, sink, rows=rows, transport=transport) as session:
        journal, client = session.journal, session.client
        keys = {row.key for row in rows}
        entries = journal.chats.entries(keys)
        chats = [e.chat_id for e in entries.values()] + [r.chat_id for r in rows]
        earlier = sort_conversations(
            rows,
            entries,
            journal.messages.entries(keys),
            fed_back(sheet, validation),
            fresh=settings.fresh,
            applied=journal.changes.applied(c for c in chats if c is not None),
        )
        results.record(earlier.finished)
        results.record(earlier.held)
        done = {outcome.index for outcome in earlier.finished}
        made_earlier = created_earlier(journal, (row for row in rows if row.index in done))
        to_send = earlier.to_send
        # The last rows of the conversations that have only their status left.
        lasts = [conversation.last for conversation in earlier.status_only]

        checked = await preflight(client, to_send, results, tell, rows=[*to_send, *lasts])
        if isinstance(checked, RunResult):
            return checked
        checked, held_whole = hold_whole(checked, earlier)
        results.record(held_whole)
        lookups = await look_up_first(session, checked, settings=settings, stop=stop)
        plan = plan_transcript(
            validation.counts(),
            earlier,
            checked,
            rate=session.limiter.rate,
            dry_run=settings.dry_run,
            lookups=lookups,
            create=settings.create_customers,
        )
        if earlier.worth_telling:
            tell(earlier.describe())
        ended = go_on(
            plan,
            results,
            tell,
            confirm=hooks.confirm,
            rows=[*checked.passed, *lasts],
            dry_run=settings.dry_run,
        )
        if ended is not None:
            return ended

        if settings.dry_run:
            results.record(end_rows(lasts, Status.VALID, ""))
        else:
            # Until the sender says otherwise: a refused key during the look-ups ends here.
            results.record(end_rows(lasts, Status.NOT_SENT, KEY_REFUSED))
        resolution = await give_customers(
            session,
            checked,
            lookups,
            results,
            settings=settings,
            hooks=hooks,
            earlier=made_earlier,
            finished_ids=earlier.ids_used,
        )
        if isinstance(resolution, RunResult):
            return resolution
        conversations, held = gather(
            resolution.requests, {**checked.rejected, **resolution.outcomes}, earlier
        )
        results.record(held)
        result = await send_conversations(
            conversations,
            client,
            concurrency=session.concurrency,
            progress=sink,
            journal=journal,
            stop=stop,
            claimed_chat_ids=set(earlier.claimed_chat_ids),
        )
    if session.stopped.result is not None:
        tell(session.stopped.result.journal_error or "")
        return session.stopped.result
    results.record(result.outcomes.values())
    return results.finish(auth_failed=result.auth_failed, interrupted=result.interrupted)
