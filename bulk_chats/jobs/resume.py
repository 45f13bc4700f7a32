"""The resume plan: what a run does with each row, given what earlier runs left.

Decided once, before anything is looked up or sent, from three sources: the rows to send,
the journal's entries for them, and a results workbook fed back in. The plan text and the
sender both read this one plan (docs/sending.md › Resume).

A row the workbook left `unknown` that the journal does not know (the workbook moved to
another directory, `reports/` deleted, another API root) is held back: nothing says when
its request went out, and a search without that bound could adopt an older chat of the
same customer and leave the row without its own.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final

from bulk_chats.journal.chats import JournalEntry
from bulk_chats.records import ChatRequest, FedBack, Outcome, Status

HELD_UNKNOWN: Final = (
    "an earlier run left this row unknown: its chat may exist, and this journal does not "
    "know when it was sent, so it is not sent again; look for the chat in HelpCrunch and "
    "put its id in chat_id if it exists, or clear this status cell if it does not, then "
    "run again (or import with --fresh to send it regardless)"
)
"""The `error_message` of a row held back."""


NOTHING_FED_BACK: Final = FedBack()
"""What a sheet that is no results workbook says of earlier runs: nothing."""


@dataclass(frozen=True, slots=True)
class EarlierRuns:
    """Every row to send, sorted by what earlier runs left of it.

    `finished` holds the outcomes of rows the journal knows are done (`already_created`,
    `attempts` 0: this run sends nothing for them); `finished_in_workbook` counts those a
    fed-back workbook gives as done (validation already marked them). `held` holds the
    `unknown` outcomes of rows held back. `to_send` keeps input order: `chat_id` set when
    only the first message is left, `search_since` set when an earlier attempt may have
    created the chat or posted its message (the sender looks before sending again).
    `last_created_at` is when the latest `finished` chat was created (unix seconds).
    `claimed_chat_ids` are the chats known to belong to rows, never to be adopted by a
    search for a lost answer. `known` counts the rows the journal had an entry for.
    `ids_used` maps each id field to the id a `finished` row's chat was sent with, by the
    row's index, where the journal knows it: such rows are not looked up again, and still
    show their `resolved_*` ids.
    """

    finished: tuple[Outcome, ...] = ()
    held: tuple[Outcome, ...] = ()
    to_send: tuple[ChatRequest, ...] = ()
    finished_in_workbook: int = 0
    last_created_at: float | None = None
    claimed_chat_ids: frozenset[int] = frozenset()
    known: int = 0
    ids_used: Mapping[str, Mapping[int, int]] = field(default_factory=dict)

    @property
    def already_done(self) -> int:
        """Rows whose chat an earlier run created and finished: not sent again."""
        return len(self.finished) + self.finished_in_workbook

    @property
    def message_only(self) -> int:
        """Rows whose chat exists and the first message is left (and their status)."""
        return sum(
            1
            for row in self.to_send
            if row.chat_id is not None and row.message is not None and row.message_id is None
        )

    @property
    def status_only(self) -> int:
        """Rows whose chat and first message exist and only the status is left."""
        return sum(
            1
            for row in self.to_send
            if row.chat_id is not None and (row.message is None or row.message_id is not None)
        )

    @property
    def to_look_for(self) -> int:
        """Rows to look for by search before sending, since an attempt got no answer."""
        return sum(
            1 for row in self.to_send if row.chat_id is None and row.search_since is not None
        )

    @property
    def worth_telling(self) -> bool:
        """Whether earlier runs left anything to say before the plan (see `describe`)."""
        return bool(self.known or self.held)

    def describe(self) -> str:
        """What earlier runs left, in one line: `312 rows were already created (the latest
        on 2026-11-25 14:12); 88 to send (5 only the first message)`."""
        parts = []
        if self.finished:
            when = ""
            if self.last_created_at is not None:
                stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.last_created_at))
                when = f" (the latest on {stamp})"
            verb = "was" if len(self.finished) == 1 else "were"
            parts.append(f"{_rows(len(self.finished))} {verb} already created{when}")
        notes = []
        if self.message_only:
            notes.append(f"{self.message_only} only the first message")
        if self.status_only:
            notes.append(f"{self.status_only} only the status")
        if self.to_look_for:
            notes.append(
                f"{self.to_look_for} first looked for, as an earlier attempt got no answer"
            )
        text = f"{len(self.to_send)} to send"
        parts.append(f"{text} ({'; '.join(notes)})" if notes else text)
        if self.held:
            them = "it" if len(self.held) == 1 else "them"
            parts.append(
                f"{len(self.held)} held back: an earlier run left {them} unknown "
                "and the journal does not know when it was sent (see error_message)"
            )
        return "; ".join(parts)


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def sort_by_earlier_runs(
    rows: Iterable[ChatRequest],
    entries: Mapping[str, JournalEntry],
    fed_back: FedBack = NOTHING_FED_BACK,
    *,
    fresh: bool = False,
    applied: Collection[tuple[int, str, str]] = frozenset(),
) -> EarlierRuns:
    """Sort `rows` by what the journal's `entries` (by `ChatRequest.key`) and `fed_back` say.

    - a chat exists, its first message was posted (or it has none) and its `status` is
      set (or it has none; `applied` holds the (chat, "status", status) the journal's
      changes table says are set): finished;
    - the same, but the status is not set: sent with `chat_id` and `message_id` set, so
      only the status goes out;
    - a chat exists but the message is missing: sent with `chat_id` set, so only the
      message goes out, never a second chat, and `search_since` set to the chat's first
      attempt, so that the sender looks for the message in the chat before posting it;
    - an attempt got no answer (`sending`, `unknown`, or stopped mid-request): sent with
      `search_since` set to that attempt's start, so the sender searches for the chat
      first. It is the local clock's time: the search should allow for some clock skew;
    - no entry, but the fed-back workbook left the row `unknown`: held back (module docs),
      unless `fresh`;
    - refused earlier (`failed`), `not_sent`, or no entry: sent as is.
    """
    finished: list[Outcome] = []
    held: list[Outcome] = []
    to_send: list[ChatRequest] = []
    ids_used: dict[str, dict[int, int]] = defaultdict(dict)
    last_created_at: float | None = None
    known = 0
    for row in rows:
        entry = entries.get(row.key)
        if entry is not None:
            known += 1
            if entry.chat_id is not None:
                message_id = entry.message_id or row.message_id
                row = replace(row, chat_id=entry.chat_id, message_id=message_id)
        if row.chat_id is not None and _finished(row, applied):
            finished.append(
                Outcome(
                    index=row.index,
                    status=Status.ALREADY_CREATED,
                    chat_id=row.chat_id,
                    message_id=row.message_id,
                )
            )
            if entry is not None and entry.created_at is not None:
                last_created_at = max(last_created_at or entry.created_at, entry.created_at)
            if entry is not None:
                for id_field, used in entry.ids_used.items():
                    ids_used[id_field][row.index] = used
        elif entry is not None:
            to_send.append(_resumed(row, entry))
        elif row.chat_id is None and row.index in fed_back.unknown and not fresh:
            held.append(Outcome(index=row.index, status=Status.UNKNOWN, error_message=HELD_UNKNOWN))
        else:
            to_send.append(row)
    claimed = fed_back.chat_ids | {e.chat_id for e in entries.values() if e.chat_id is not None}
    return EarlierRuns(
        finished=tuple(finished),
        held=tuple(held),
        to_send=tuple(to_send),
        finished_in_workbook=fed_back.finished,
        last_created_at=last_created_at,
        claimed_chat_ids=frozenset(claimed),
        known=known,
        ids_used=dict(ids_used),
    )


def _finished(row: ChatRequest, applied: Collection[tuple[int, str, str]]) -> bool:
    """Whether nothing is left of a row whose chat exists: its message posted, if it has
    one, and its status set, if it has one."""
    message_done = row.message is None or row.message_id is not None
    status_done = row.status is None or (row.chat_id, "status", row.status) in applied
    return message_done and status_done


def _resumed(row: ChatRequest, entry: JournalEntry) -> ChatRequest:
    """`row` as the sender gets it: with the chat id when only the message is left, and
    `search_since` when an earlier attempt (or message) may have gone through."""
    if entry.chat_id is not None:
        since = entry.first_started_at if entry.first_started_at is not None else entry.created_at
        return replace(row, chat_id=entry.chat_id, search_since=since)
    if entry.unresolved_since is not None:
        return replace(row, search_since=entry.unresolved_since)
    return row
