"""The page's words: counts as a person reads them (a run's progress line too), and the
library's messages said with the page's controls rather than the command line's options
(docs/reference.md › The web page).

The library speaks to the terminal ("map the column with --column customer_email=Customer
ID"); on the page that is "choose customer_email for Customer ID in the column mapping".
Each rewrite below is pinned by a test that makes the library say the original, so a
message reworded there cannot slip through here unnoticed. Paths are the page's too: the
upload by the name the user chose it by, a results file by its name alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from bulk_chats.progress import duration_text, limit_text
from bulk_chats.ui.jobs import JobView

MAPPING = "the column mapping"
"""How a message names the step where a field is given its column."""

CSV_CHOICE = "choose CSV for Results file"
"""How a message names the page's choice of results written as CSV."""

_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        # checks/ids.py: a numeric column full of names or emails.
        (
            r"map the column with --column (?P<field>[a-z_]+)=(?P<header>.+?)(?= \| |$)",
            rf"choose \g<field> for \g<header> in {MAPPING}",
        ),
        # sheet/loading.py: a required column missing.
        (
            r"name one with --column (?P<field>[a-z_]+)=HEADER",
            rf"choose one for \g<field> in {MAPPING}",
        ),
        # sheet/loading.py: two columns for one field.
        (
            r"map the one to use with --column (?P<field>[a-z_]+)=HEADER",
            rf"choose \g<field> for the one to use in {MAPPING}",
        ),
        # jobs/resume*.py: the page has no fresh start; the way without one stays.
        (r" \(or import with --fresh to send it regardless\)", ""),
        (r", or import with --fresh to send the conversation again in a new chat", ""),
        # results/workbook.py: more rows than a worksheet holds, a cell cut.
        (r"write CSV with --out NAME\.csv", CSV_CHOICE),
        (r"--out NAME\.csv keeps the whole text", "CSV results keep the whole text"),
        # jobs/export_*.py: the Export form's fields.
        (r"give --assignee ID", "give the agent's id"),
        (r"give --department ID", "give the department's id"),
        (r"--since and --until", "Created since and Created before"),
        (r"--assignee-email\b|--assignee\b", "Assignee"),
        (r"--department-name\b|--department\b", "Department"),
        (r"--customer-email\b", "Customer email"),
        (r"--customer-user-id\b", "Customer user ID"),
    )
)


def in_page_words(text: str, *, files: Iterable[tuple[Path, str]] = ()) -> str:
    """`text` as the page says it: each path of `files` as the name paired with it (the
    upload by the name it was chosen by; a folder as "" to name what is in it by its own
    name), and the command line's options as the page's controls."""
    for path, name in sorted(files, key=lambda pair: -len(str(pair[0]))):
        if name:
            text = text.replace(str(path), name)
        else:
            text = text.replace(f"{path}/", "").replace(str(path), "the reports folder")
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    return text


def number(value: int) -> str:
    """`1,000,000`."""
    return f"{value:,}"


def count(value: int, noun: str, plural: str | None = None) -> str:
    """`1 row`, `1,000,000 rows`; `plural` for a noun that is not made with an s."""
    return f"{value:,} {noun if value == 1 else plural or noun + 's'}"


def progress_text(view: JobView) -> str:
    """`12 of 100 rows · 45 rows a minute · about 2m 00s left`; for a transcript, `3 of
    10 conversations · 25 of 80 messages · …`; then how far the results are written."""
    progress = view.progress
    parts = []
    if progress.total:
        unit = view.kind.unit
        if progress.conversations is not None:
            unit = "message"
            done, total = progress.conversations
            parts.append(f"{done:,} of {count(total, 'conversation')}")
        parts.append(f"{progress.done:,} of {count(progress.total, unit)}")
        # A run that ended (stopped, failed) short of its last row has no pace any more:
        # measured now, it would only fall with the time since.
        going = view.active and progress.done < progress.total
        if progress.per_minute is not None and going:
            parts.append(f"{count(round(progress.per_minute), unit)} a minute")
        if progress.eta is not None and going:
            parts.append(f"about {duration_text(progress.eta)} left")
        if progress.learned_limit is not None:
            parts.append(limit_text(progress.learned_limit, confirmed=progress.limit_confirmed))
    if progress.written is not None and view.active:
        done, total = progress.written
        parts.append(f"writing the results: {done:,} of {count(total, 'row')}")
    text = " · ".join(parts)
    return text[:1].upper() + text[1:]
