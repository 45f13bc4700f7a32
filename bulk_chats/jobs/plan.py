"""A run's plan: what it is about to send and what that costs, shown before it starts.

`plan_import` counts an import's chats, messages, look-ups and new customers;
`plan_transcript` a transcript's conversations and messages; `plan_changes` the `PUT`s of
`update` and `close`. `Plan.describe` is the text the CLI
and the web page show before asking to go on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bulk_chats.jobs.resume import EarlierRuns
from bulk_chats.jobs.resume_transcripts import EarlierConversations
from bulk_chats.lookups.customers import Lookups, customer_searches, name_key, search_requests
from bulk_chats.lookups.directory import Preflight
from bulk_chats.progress import duration_text
from bulk_chats.records import ChangeRequest, ChatRequest, Outcome, Status
from bulk_chats.settings import DEFAULT_RATE


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
    `resume.sort_by_earlier_runs`). `warnings` counts rows sent despite a warning.
    `changes` counts the `PUT /v1/chats/...` requests: the statuses an import sets, or with
    `updating` every change of `update` or `close` (which create no chat); `unchanged` rows of an
    export are as it read them, and cost nothing.

    When the customers were looked up before the plan (`lookups_made`), it also knows the
    names that match no one (`unmatched`: without `--create-customers` their rows are left
    out) and those that match several (`ambiguous`, left out either way): `left_out` rows,
    counted in none of the above. `warned` lists (source row, warning) of the first
    `MAX_WARNED` rows sent despite a warning, for the page to show before Confirm.
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
    conversations: int = 0
    """A transcript's: the conversations to send (each of its rows is one message)."""
    unchanged: int = 0
    unmatched: int = 0
    ambiguous: int = 0
    left_out: int = 0
    warned: tuple[tuple[int, str], ...] = ()

    def describe(self) -> str:
        """The plan in a few lines, as the CLI shows it before asking to go on."""
        work = [] if self.updating else [_count(self.chats, "chat")]
        if self.conversations:
            work.insert(0, _count(self.conversations, "conversation"))
        if self.messages:
            kind = "message" if self.conversations else "first message"
            work.append(_count(self.messages, kind))
        if self.changes or self.updating:
            work.append(_count(self.changes, "change" if self.updating else "status change"))
        if self.lookups:
            work.append(_count(self.lookups, "customer look-up"))
        if self.customers:
            work.append(_count(self.customers, "new customer"))
        rows = f"{self.to_send:,} of {_count(self.rows, 'row')}"
        if self.dry_run:
            lines = [
                f"dry run: {rows} would be sent ({', '.join(work)}); nothing is created",
            ]
            if self.lookups:
                lines.append(
                    f"the look-ups are made now: {_count(self.lookups, 'request')}, about "
                    f"{duration_text(self.lookups * 60 / self.rate)} at {_rate(self.rate)} a minute"
                )
        else:
            lines = [
                f"{rows} to send: {', '.join(work)}",
                f"{_count(self.requests, 'request')}, about {duration_text(self.seconds)} at "
                f"{_rate(self.rate)} a minute",
            ]
        if self.lookups_made:
            lines.append(self._looked_up())
        if self.lookups:
            lines.append("rows whose customer matches no one, or several, are left out")
        if self.already_done:
            done = "updated" if self.updating else "created"
            lines.append(f"{_count(self.already_done, 'row')} already {done} earlier; not sent")
        if self.not_to_send:
            lines.append(f"{_count(self.not_to_send, 'row')} invalid or duplicate; not sent")
        if self.unchanged:
            lines.append(f"{_count(self.unchanged, 'row')} unchanged since the export; not sent")
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

    def _looked_up(self) -> str:
        """What the look-ups made before the plan found."""
        found = []
        if self.customers or not (self.unmatched or self.ambiguous):
            found.append(
                f"{_count(self.customers, 'customer')} to create"
                + (" (none is created in a dry run)" if self.dry_run else "")
            )
        if self.unmatched:
            found.append(f"{_count(self.unmatched, 'customer')} matching no one")
        if self.ambiguous:
            found.append(f"{_count(self.ambiguous, 'customer')} matching several")
        line = f"customers looked up first ({_count(self.lookups_made, 'request')}): " + ", ".join(
            found
        )
        if self.left_out:
            line += f"; {_count(self.left_out, 'row')} left out for it (see error_message)"
        return line


MAX_WARNED = 500
"""Rows with a warning a plan lists at most (`Plan.warned`); it counts them all."""


def _rate(per_minute: float) -> str:
    """`120`, `60,000`, `1,000,000`, `7.5`: requests a minute as a person reads them."""
    return f"{int(per_minute):,}" if float(per_minute).is_integer() else f"{per_minute:,.4g}"


def _count(number: int, noun: str) -> str:
    """`1 row`, `1,000,000 rows`."""
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"


def _customer_costs(
    passed: Sequence[ChatRequest], lookups: Lookups | None, *, create: bool
) -> tuple[int, int, int]:
    """(customer searches still to make, customers to create, searches made before the
    plan): the look-ups are counted as searches when they come after the plan, and when
    `lookups` were made first they tell how many to create (with `create`)."""
    if lookups is None:
        return customer_searches(passed), 0, 0
    made = search_requests(len(lookups.names) - len(lookups.created))
    return 0, len(lookups.missing) if create else 0, made


@dataclass(frozen=True, slots=True)
class _Found:
    """What look-ups made before the plan say of its rows: those that stay, and the
    customers matching no one or several (see `Plan`)."""

    kept: list[ChatRequest]
    unmatched: int = 0
    ambiguous: int = 0


def _found(passed: Sequence[ChatRequest], lookups: Lookups | None, *, create: bool) -> _Found:
    """The rows of `passed` whose customer the look-ups found once (or, with `create`,
    found no one: it is made), and the names found no one or several times. A name whose
    look-up failed keeps its rows: the sending says what became of them."""
    if lookups is None:
        return _Found(list(passed))
    unmatched = {key for key in lookups.missing if key not in lookups.created}
    ambiguous = {
        key for key, match in lookups.found.items() if isinstance(match, list) and len(match) > 1
    }
    out = ambiguous if create else unmatched | ambiguous
    kept = [r for r in passed if not r.customer_lookup or name_key(r.customer_lookup) not in out]
    return _Found(kept, 0 if create else len(unmatched), len(ambiguous))


def plan_import(
    counts: Mapping[str, int],
    resume: EarlierRuns,
    preflight: Preflight[ChatRequest],
    *,
    rate: float,
    dry_run: bool = False,
    lookups: Lookups | None = None,
    create: bool = False,
) -> Plan:
    """Count what the rows that passed the pre-flight will cost at `rate` requests per minute.

    `counts` are validation's rows by status; `resume` says which rows earlier runs
    finished or left held back. `lookups`, when the customers were looked up already
    (`--create-customers`, or the page), says how many customers are to be created, and
    which rows are left out because their customer matches no one or several.
    """
    found = _found(preflight.passed, lookups, create=create)
    passed = found.kept
    return _sending_plan(
        counts,
        preflight,
        found,
        lookups,
        chats=sum(1 for row in passed if row.chat_id is None),
        messages=sum(1 for row in passed if row.message is not None and row.message_id is None),
        statuses=sum(1 for row in passed if row.status is not None),
        rate=rate,
        dry_run=dry_run,
        create=create,
        already_done=resume.already_done,
        held=len(resume.held),
    )


def plan_transcript(
    counts: Mapping[str, int],
    earlier: EarlierConversations,
    preflight: Preflight[ChatRequest],
    *,
    rate: float,
    dry_run: bool = False,
    lookups: Lookups | None = None,
    create: bool = False,
) -> Plan:
    """Count what a transcript's conversations will cost at `rate` requests per minute:
    for each conversation, its chat (unless it exists), one request per message left, and
    its status (docs/transcripts.md › The plan). As `plan_import` counts the look-ups and
    the customers; `earlier` says what earlier runs did."""
    found = _found(preflight.passed, lookups, create=create)
    passed = found.kept
    return _sending_plan(
        counts,
        preflight,
        found,
        lookups,
        chats=len({row.key for row in passed if row.chat_id is None}),
        messages=len(passed),
        statuses=len({row.key for row in passed if row.status is not None})
        + len(earlier.status_only),
        rate=rate,
        dry_run=dry_run,
        create=create,
        already_done=earlier.already_done,
        held=sum(1 for o in earlier.held if o.status is Status.UNKNOWN),
        held_invalid=sum(1 for o in earlier.held if o.status is Status.INVALID),
        conversations=len({row.key for row in passed}) + len(earlier.status_only),
    )


def _sending_plan(
    counts: Mapping[str, int],
    preflight: Preflight[ChatRequest],
    found: _Found,
    lookups: Lookups | None,
    *,
    chats: int,
    messages: int,
    statuses: int,
    rate: float,
    dry_run: bool,
    create: bool,
    already_done: int,
    held: int,
    held_invalid: int = 0,
    conversations: int = 0,
) -> Plan:
    """The plan of an import (or a transcript's) that sends `found.kept`: `chats`,
    `messages` and `statuses` requests, with the customers' look-ups and creations."""
    passed = found.kept
    searches, customers, made = _customer_costs(passed, lookups, create=create)
    total = chats + messages + statuses + searches + (0 if dry_run else customers)
    return Plan(
        rows=sum(counts.values()),
        to_send=len(passed),
        chats=chats,
        messages=messages,
        lookups=searches,
        requests=total,
        seconds=total * 60 / rate,
        already_done=already_done,
        not_to_send=_invalid(counts)
        + sum(1 for o in preflight.rejected.values() if o.status is Status.INVALID)
        + held_invalid,
        rate=rate,
        warnings=len(preflight.warnings),
        held=held,
        dry_run=dry_run,
        changes=statuses,
        customers=customers,
        lookups_made=made,
        conversations=conversations,
        unmatched=found.unmatched,
        ambiguous=found.ambiguous,
        left_out=len(preflight.passed) - len(passed),
    )


def plan_changes(
    counts: Mapping[str, int],
    to_send: Sequence[ChangeRequest],
    finished: Sequence[Outcome],
    rejected: Sequence[Outcome],
    *,
    rate: float,
    warnings: int,
) -> Plan:
    """What the changes of `update` or `close` will cost at `rate` requests per minute;
    `finished` rows earlier runs updated, `rejected` failed the pre-flight, `warnings`
    rows are sent despite a warning."""
    changes = sum(len(row.pending) for row in to_send)
    return Plan(
        rows=sum(counts.values()),
        to_send=len(to_send),
        chats=0,
        messages=0,
        lookups=0,
        requests=changes,
        seconds=changes * 60 / rate,
        already_done=len(finished),
        not_to_send=_invalid(counts) + len(rejected),
        rate=rate,
        warnings=warnings,
        changes=changes,
        updating=True,
        unchanged=counts.get(Status.UNCHANGED.value, 0),
    )


def _invalid(counts: Mapping[str, int]) -> int:
    """Rows validation left out, from its `counts` by status: invalid or duplicate."""
    return counts.get(Status.INVALID.value, 0) + counts.get(Status.DUPLICATE.value, 0)
