"""The page's list "Runs": the runs of the page in this reports folder, newest first, each
with its kind, file, time, counts and results file to download, surviving a restart of
the page (docs/reference.md › The web page).

The list lives in the journal file (`journal.page_runs`), the results files in the
reports folder beside it. A run is written down when it starts and again when it ends, so
one whose page was killed meanwhile is listed as not finished rather than forgotten. The
list is a record for the user, never an input: a journal that cannot take it costs the
list, not the run.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from bulk_chats.errors import BulkChatsError
from bulk_chats.jobs.export_chats import ExportResult
from bulk_chats.journal.journal import journal_path, scope_for
from bulk_chats.journal.page_runs import PageRun, PageRuns
from bulk_chats.records import Status
from bulk_chats.ui.jobs import JOB_KINDS, JobView
from bulk_chats.ui.uploads import running_elsewhere
from bulk_chats.ui.words import in_page_words

MAX_RUNS = 20
"""Runs the list shows, the newest."""

_NOTE = 160
"""Characters of a failed run's reason the list keeps."""


@dataclass(frozen=True, slots=True)
class RunLine:
    """One line of the list: `results` is the name of the results file when it is still
    in the reports folder to download; `counts` (status, rows) in the order of `Status`."""

    number: int
    kind: str
    input_name: str
    when: str
    outcome: str
    counts: tuple[tuple[str, int], ...]
    total: int
    results: str | None


class History:
    """The page's runs in the journal of `reports_dir`. `problem` says why the list could
    not be read or written (None: it could)."""

    def __init__(self, reports_dir: Path) -> None:
        self._reports = reports_dir
        self._runs = PageRuns(journal_path(reports_dir))
        self.problem: str | None = None

    def begin(self, view: JobView, *, base_url: str) -> int | None:
        """Write down a run that starts; its number, or None when the journal refused."""
        api_root = scope_for(base_url) if view.kind.sends else ""
        try:
            return self._runs.begin(
                kind=view.kind.name, input_name=view.input_name, api_root=api_root, page=os.getpid()
            )
        except BulkChatsError as exc:
            self._failed(exc)
            return None

    def end(self, view: JobView) -> None:
        """Write down how the run of `view` ended."""
        if view.record is None:
            return
        result = view.result
        results = ""
        if result is not None and result.out.parent.resolve() == self._reports.resolve():
            results = result.out.name
        try:
            self._runs.end(
                view.record,
                outcome=outcome(view, reports=self._reports),
                counts=result.counts if result else None,
                total=result.total if result else 0,
                results=results,
            )
        except BulkChatsError as exc:
            self._failed(exc)

    def lines(self, active: int | None) -> list[RunLine]:
        """The newest runs, newest first; `active` is the number of this page's run in
        progress, if any."""
        try:
            runs = self._runs.latest(MAX_RUNS)
        except BulkChatsError as exc:
            self._failed(exc)
            return []
        return [self._line(run, active) for run in runs]

    def results_file(self, number: int) -> Path | None:
        """The results file of run `number`, when it is still in the reports folder."""
        try:
            run = self._runs.get(number)
        except BulkChatsError as exc:
            self._failed(exc)
            return None
        return None if run is None else self._file(run)

    def _file(self, run: PageRun) -> Path | None:
        # The name alone, looked for in the reports folder: the journal names no other place.
        name = Path(run.results).name
        path = self._reports / name
        return path if name and name == run.results and path.is_file() else None

    def _line(self, run: PageRun, active: int | None) -> RunLine:
        kind = JOB_KINDS.get(run.kind)
        when = dt.datetime.fromtimestamp(run.started_at).strftime("%Y-%m-%d %H:%M")
        if run.ended_at is not None:
            said = run.outcome
        elif run.id == active:
            said = "running"
        elif run.page != os.getpid() and running_elsewhere(run.page):
            said = "running in another page"
        else:
            said = "not finished: its page stopped first"
        order = {status.value: n for n, status in enumerate(Status)}
        counts = sorted(run.counts.items(), key=lambda pair: order.get(pair[0], len(order)))
        file = self._file(run)
        return RunLine(
            number=run.id,
            kind=kind.label if kind else run.kind.capitalize(),
            input_name=run.input_name,
            when=when,
            outcome=said,
            counts=tuple(counts),
            total=run.total,
            results=file.name if file else None,
        )

    def _failed(self, exc: BulkChatsError) -> None:
        self.problem = "the list of runs could not be kept: " + in_page_words(
            str(exc), files=[(self._reports, "")]
        )


def outcome(view: JobView, *, reports: Path) -> str:
    """How a run ended, in a few of the page's words."""
    result = view.result
    if view.phase == "failed" or result is None:
        reason = in_page_words(view.error or "", files=[(reports, "")])
        return ("failed: " + reason)[:_NOTE]
    if result.auth_failed:
        return "the API refused the key"
    if result.declined:
        return "not confirmed"
    if result.interrupted:
        return "stopped"
    if isinstance(result, ExportResult) and result.partial:
        return "partial"
    return "done"
