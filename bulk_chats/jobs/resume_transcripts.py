"""The resume plan of a transcript: what is left of each conversation, given what earlier
runs left (docs/transcripts.md › Run it again).

Decided once, before anything is looked up or sent, from the rows of the conversations,
the journal (their chats, their messages by position, the statuses set) and a results
workbook fed back in. A conversation's messages are in its chat as a prefix of its
order: an earlier run posts the next one only once the one before is in. So a
conversation resumes at its first message not yet in, which is looked for in the chat
first when an earlier attempt of it got no answer, or when only a fed-back workbook (no
journal) says where the conversation stands.

Then, once the look-ups have given every row its ids, `gather` puts each conversation's
rows together for the sender (`send.conversations`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from bulk_chats.journal.chats import JournalEntry
from bulk_chats.journal.messages import POSTED, UNANSWERED, MessageEntry
from bulk_chats.lookups.directory import Preflight
from bulk_chats.records import ChatRequest, Conversation, FedBack, Outcome, Status

CHANGED: Final = "changed_conversation"
"""The `error_code` of the rows of a conversation whose messages differ from those an
earlier run posted."""


@dataclass(frozen=True, slots=True)
class _Standing:
    """What earlier runs left of one conversation: its chat (when it exists, or when an
    attempt at it got no answer: `chat_since`, unix seconds), the ids of its messages in
    the chat, its last row, whether its status is set."""

    chat_id: int | None
    chat_since: float | None
    posted: frozenset[int]
    last: ChatRequest


@dataclass(frozen=True, slots=True)
class EarlierConversations:
    """Every row of a transcript's conversations, sorted by what earlier runs left.

    `finished` holds the outcomes of rows whose message is in (`already_created`: this
    run sends nothing for them); `held` those of rows held back (`unknown`: a workbook
    fed back in left the chat unknown and the journal does not know when it was sent;
    `invalid`: the conversation differs from what was posted). `to_send` are the rows
    whose message is still to post, in input order: `chat_id` set when the chat exists,
    `search_since` when the message may be in it already and is looked for first.
    `status_only` are the conversations whose messages are all in and whose status is
    left. `claimed_chat_ids` are the chats known to belong to rows; `known` counts the
    conversations the journal had an entry for; `unanswered` those whose chat or next
    message an earlier attempt sent without an answer. `ids_used` maps each id field to the id
    a `finished` row's chat (or message, for `message_agent`) was sent with, by the row's
    index, where the journal knows it.
    """

    finished: tuple[Outcome, ...] = ()
    held: tuple[Outcome, ...] = ()
    to_send: tuple[ChatRequest, ...] = ()
    status_only: tuple[Conversation, ...] = ()
    standing: Mapping[str, _Standing] = field(default_factory=dict)
    claimed_chat_ids: frozenset[int] = frozenset()
    known: int = 0
    last_created_at: float | None = None
    unanswered: int = 0
    ids_used: Mapping[str, Mapping[int, int]] = field(default_factory=dict)

    @property
    def already_done(self) -> int:
        """Rows whose message an earlier run posted: not sent again."""
        return len(self.finished)

    @property
    def worth_telling(self) -> bool:
        """Whether earlier runs left anything to say before the plan."""
        return bool(self.known or self.held or self.finished)

    def describe(self) -> str:
        """What earlier runs left, in one line: `25 messages were already posted (the
        latest chat created on 2026-11-25 14:12); 15 messages of 4 conversations to send
        (2 go on where an earlier run stopped, their next message looked for in the chat
        first)`."""
        parts = []
        if self.finished:
            when = ""
            if self.last_created_at is not None:
                stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.last_created_at))
                when = f" (the latest chat created on {stamp})"
            verb = "was" if len(self.finished) == 1 else "were"
            parts.append(f"{_count(len(self.finished), 'message')} {verb} already posted{when}")
        keys = {row.key for row in self.to_send}
        text = (
            f"{_count(len(self.to_send), 'message')} of {_count(len(keys), 'conversation')} to send"
        )
        notes = []
        going_on = sum(1 for key in keys if self.standing[key].chat_id is not None)
        if going_on:
            notes.append(
                f"{going_on} go on where an earlier run stopped, their next message looked "
                "for in the chat first"
            )
        if self.unanswered:
            notes.append(f"{self.unanswered} first looked for, as an earlier attempt got no answer")
        if self.status_only:
            notes.append(f"{_count(len(self.status_only), 'conversation')} only its status")
        parts.append(f"{text} ({'; '.join(notes)})" if notes else text)
        if self.held:
            parts.append(f"{_count(len(self.held), 'row')} held back (see error_message)")
        return "; ".join(parts)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


HELD_UNKNOWN: Final = (
    "an earlier run left this conversation's chat unknown: it may exist, and this journal "
    "does not know when it was sent, so it is not sent again; look for the chat in "
    "HelpCrunch and put its id in chat_id if it exists, or clear the status cells of the "
    "conversation if it does not, then run again (or import with --fresh to send it "
    "regardless)"
)
"""The `error_message` of the rows of a conversation held back."""


def sort_conversations(
    rows: Iterable[ChatRequest],
    entries: Mapping[str, JournalEntry],
    messages: Mapping[str, Mapping[int, MessageEntry]],
    fed_back: FedBack,
    *,
    fresh: bool = False,
    applied: Collection[tuple[int, str, str]] = frozenset(),
) -> EarlierConversations:
    """Sort the rows of a transcript's conversations (`checks.verdict.transcript_rows`,
    with the messages a fed-back workbook gives) by what the journal's chat `entries` and
    `messages` (by the conversations' `ChatRequest.key`) and `fed_back` say; `applied`
    holds the (chat, "status", status) the journal's changes say are set."""
    by_key: dict[str, list[ChatRequest]] = defaultdict(list)
    for row in rows:
        by_key[row.key].append(row)
    finished: list[Outcome] = []
    held: list[Outcome] = []
    to_send: list[ChatRequest] = []
    status_only: list[Conversation] = []
    standing: dict[str, _Standing] = {}
    last_created_at: float | None = None
    ids_used: dict[str, dict[int, int]] = defaultdict(dict)
    unanswered = 0
    for key, members in by_key.items():
        members.sort(key=lambda row: row.position)
        entry = entries.get(key)
        chat_id = entry.chat_id if entry is not None and entry.chat_id is not None else None
        chat_id = chat_id or next((r.chat_id for r in members if r.chat_id is not None), None)
        if chat_id is None:
            since = entry.unresolved_since if entry is not None else None
            unknown = any(r.index in fed_back.unknown for r in members)
            if since is None and entry is None and unknown and not fresh:
                held += [_held(r, Status.UNKNOWN, "", HELD_UNKNOWN) for r in members]
                continue
            standing[key] = _Standing(None, since, frozenset(), members[-1])
            if since is not None:
                unanswered += 1
            to_send += [replace(r, chat_id=None, message_id=None) for r in members]
            continue
        if entry is not None and entry.created_at is not None:
            last_created_at = max(last_created_at or entry.created_at, entry.created_at)
        stand = _stand(members, chat_id, messages.get(key, {}))
        if isinstance(stand, str):
            held += [_held(r, Status.INVALID, CHANGED, stand, chat_id) for r in members]
            continue
        done, left = stand
        posted = frozenset(r.message_id for r in done if r.message_id is not None)
        last = done[-1] if not left else left[-1]
        standing[key] = _Standing(chat_id, None, posted, last)
        status_left = last.status is not None and (chat_id, "status", last.status) not in applied
        _note_ids(ids_used, done, entry, messages.get(key, {}))
        sent = messages.get(key, {}).get(left[0].position) if left else None
        if sent is not None and sent.chat_id == chat_id and sent.state in UNANSWERED:
            unanswered += 1
        if left or not status_left:
            finished += [_finished(r) for r in done]
            to_send += left
            continue
        finished += [_finished(r) for r in done[:-1]]
        chat = replace(last, message=None, search_since=None)
        status_only.append(Conversation(chat=chat, messages=(), last=last, posted=posted))
    claimed = fed_back.chat_ids | {e.chat_id for e in entries.values() if e.chat_id is not None}
    to_send.sort(key=lambda row: row.index)
    return EarlierConversations(
        finished=tuple(finished),
        held=tuple(held),
        to_send=tuple(to_send),
        status_only=tuple(status_only),
        standing=standing,
        claimed_chat_ids=frozenset(claimed),
        known=sum(1 for key in by_key if key in entries or key in messages),
        last_created_at=last_created_at,
        unanswered=unanswered,
        ids_used=dict(ids_used),
    )


def _stand(
    members: Sequence[ChatRequest], chat_id: int, journal: Mapping[int, MessageEntry]
) -> tuple[list[ChatRequest], list[ChatRequest]] | str:
    """The rows of a conversation whose chat exists: those whose message is in, a prefix
    of its order, each with its id, and those left, each in the chat; or why the
    conversation differs from what was posted.

    A message is in when the journal says it was posted at its position (the same
    message, into this chat: a `--fresh` run's new chat leaves the old chat's entries
    behind) or a fed-back workbook gives its id. The first one left is always looked for
    in the chat first: the journal tells what this directory's runs did, and a run
    elsewhere (on a results workbook) may have posted it since.
    """
    done: list[ChatRequest] = []
    left: list[ChatRequest] = []
    for row in members:
        entry = journal.get(row.position)
        if entry is not None and entry.chat_id != chat_id:
            entry = None
        same = entry is not None and entry.message_key == row.message_key
        posted = entry is not None and entry.state == POSTED
        if posted and not same:
            return _changed(row)
        message_id = entry.message_id if same and posted and entry is not None else None
        message_id = message_id or row.message_id
        if message_id is not None:
            if left:
                return _changed(row)
            done.append(replace(row, chat_id=chat_id, message_id=message_id))
            continue
        since = (entry.first_started_at if entry is not None else None) or 0.0
        left.append(replace(row, chat_id=chat_id, search_since=None if left else since))
    return done, left


def _changed(row: ChatRequest) -> str:
    return (
        f"conversation: the messages of this conversation are not those an earlier run "
        f"posted (row {row.source_row}'s is not the one in its place); put the rows back as "
        "they were, or import with --fresh to send the conversation again in a new chat"
    )


def _note_ids(
    ids_used: dict[str, dict[int, int]],
    rows: Iterable[ChatRequest],
    entry: JournalEntry | None,
    messages: Mapping[int, MessageEntry],
) -> None:
    """Keep in `ids_used` the ids the journal says `rows` (whose messages are in) were
    sent with: the chat's from its `entry`, each message's agent from its own entry."""
    chat_ids = entry.ids_used if entry is not None else {}
    for row in rows:
        for id_field, used in chat_ids.items():
            if id_field != "message_agent":
                ids_used[id_field][row.index] = used
        posted = messages.get(row.position)
        if posted is not None and posted.agent_id is not None:
            ids_used["message_agent"][row.index] = posted.agent_id


def _finished(row: ChatRequest) -> Outcome:
    return Outcome(
        index=row.index,
        status=Status.ALREADY_CREATED,
        chat_id=row.chat_id,
        message_id=row.message_id,
    )


def _held(
    row: ChatRequest, status: Status, code: str, text: str, chat_id: int | None = None
) -> Outcome:
    return Outcome(
        index=row.index,
        status=status,
        chat_id=chat_id,
        message_id=row.message_id,
        error_code=code,
        error_message=text,
    )


def gather(
    requests: Iterable[ChatRequest],
    left_out: Mapping[int, Outcome],
    earlier: EarlierConversations,
) -> tuple[list[Conversation], list[Outcome]]:
    """The conversations to send, from their rows with every id known (`requests`), and
    the outcomes of the rows they cannot send: a conversation one of whose rows the
    pre-flight or the look-ups `left_out` is held back whole, each of its other rows
    `not_sent`, naming that one. The conversations with only their status left follow.
    """
    by_key: dict[str, list[ChatRequest]] = defaultdict(list)
    for row in requests:
        by_key[row.key].append(row)
    blocking = _blocking(earlier, left_out)
    conversations: list[Conversation] = []
    held: list[Outcome] = []
    for key, members in by_key.items():
        members.sort(key=lambda row: row.position)
        stand = earlier.standing[key]
        if key in blocking:
            blocker, outcome = blocking[key]
            invalid = outcome.status is Status.INVALID
            held += [_held_behind(r, blocker, stand.chat_id, invalid=invalid) for r in members]
            continue
        first = members[0]
        chat = replace(first, message=None, chat_id=stand.chat_id, search_since=stand.chat_since)
        conversations.append(
            Conversation(chat=chat, messages=tuple(members), last=members[-1], posted=stand.posted)
        )
    return conversations + list(earlier.status_only), held


def hold_whole(
    checked: Preflight[ChatRequest], earlier: EarlierConversations
) -> tuple[Preflight[ChatRequest], list[Outcome]]:
    """The pre-flight's verdict made whole: a conversation one of whose rows it refused
    sends none of its rows, which are `invalid` (`invalid_conversation`, naming that row),
    so that the plan counts only what will be sent. The rows left, and those held back."""
    blocking = _blocking(earlier, checked.rejected)
    passed = [row for row in checked.passed if row.key not in blocking]
    held = [
        _held_behind(row, blocking[row.key][0], earlier.standing[row.key].chat_id, invalid=True)
        for row in checked.passed
        if row.key in blocking
    ]
    rejected = {**checked.rejected, **{outcome.index: outcome for outcome in held}}
    return replace(checked, passed=passed, rejected=rejected), held


def _blocking(
    earlier: EarlierConversations, left_out: Mapping[int, Outcome]
) -> dict[str, tuple[ChatRequest, Outcome]]:
    """The first row of each conversation that `left_out` ends, with its outcome."""
    blocking: dict[str, tuple[ChatRequest, Outcome]] = {}
    for row in earlier.to_send:
        outcome = left_out.get(row.index)
        if outcome is not None and row.key not in blocking:
            blocking[row.key] = (row, outcome)
    return blocking


def _held_behind(
    row: ChatRequest, blocker: ChatRequest, chat_id: int | None, *, invalid: bool
) -> Outcome:
    """The outcome of `row`, held back with its conversation behind the `blocker` row:
    `invalid` when that row is (the sheet must change), else `not_sent`."""
    if invalid:
        text = (
            f"conversation: not sent, since row {blocker.source_row} of this conversation "
            "is invalid; a conversation is sent whole, in order"
        )
        return _held(row, Status.INVALID, "invalid_conversation", text, chat_id)
    text = (
        f"not sent: row {blocker.source_row} of this conversation is not sent; a "
        "conversation goes whole, in order"
    )
    return _held(row, Status.NOT_SENT, "", text, chat_id)
