"""The page as HTML: the page's state put into the templates (one per step, under
`templates/`), with Jinja2 escaping every value that comes from a sheet or a run.

Counts are written as a person reads them (`1 row`, `1,000,000 rows`, the `n` and `count`
filters); messages are in the page's words before they get here (`words.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from bulk_chats.checks.columns import CHAT_STATUSES
from bulk_chats.records import Status
from bulk_chats.settings import DEFAULT_RATE
from bulk_chats.ui.history import RunLine
from bulk_chats.ui.jobs import JOB_KINDS, JobView
from bulk_chats.ui.preview import Preview, column_options, mapping_fields
from bulk_chats.ui.problems import MAX_PROBLEMS, ProblemTable
from bulk_chats.ui.steps import opening_step, step_of_run, steps
from bulk_chats.ui.uploads import Upload
from bulk_chats.ui.words import count, in_page_words, number


@dataclass(frozen=True, slots=True)
class PageState:
    """Everything the page shows at one moment."""

    token: str
    config_sandbox: bool
    base_url: str
    api_key_given: bool
    rate: float | None
    upload: Upload | None
    uploads: int
    preview: Preview
    results_csv: bool
    job: JobView | None
    uploaded_since: bool
    read_since: bool
    """The sheet was read again (another file, sheet or mapping) since the latest run
    started: what Validate or Dry run said of it is out of date."""
    problems: ProblemTable | None
    progress_text: str
    runs: list[RunLine]
    runs_problem: str | None
    reading: bool


class Renderer:
    """The page's templates, from `folder`, rendered from a `PageState`."""

    def __init__(self, folder: Path) -> None:
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(folder),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self._templates.filters["n"] = number
        self._templates.filters["count"] = count
        self._templates.filters["words"] = in_page_words

    def render(self, state: PageState) -> str:
        """The whole page."""
        return self._templates.get_template("page.html").render(**context(state))


def context(state: PageState) -> dict[str, Any]:
    """The templates' names for `state`."""
    job, upload, preview = state.job, state.upload, state.preview
    opening = opening_step(
        has_upload=upload is not None, job=job, uploaded_since=state.uploaded_since
    )
    # The page moves to the step a run belongs on when the run (or its phase) changes,
    # and to the columns of a new file; otherwise it stays where the user went.
    key = f"{state.uploads}:{job.id if job else 0}:{_phase(job)}" if job else f"{state.uploads}"
    return {
        "token": state.token,
        "sandbox": state.config_sandbox,
        "base_url": state.base_url,
        "api_key_given": state.api_key_given,
        "rate": state.rate,
        "default_rate": f"{DEFAULT_RATE:g}",
        "upload": upload,
        "preview": preview,
        "fields": mapping_fields(),
        "column_options": column_options(upload),
        "chat_statuses": CHAT_STATUSES,
        "kinds": list(JOB_KINDS.values()),
        "job": job,
        "busy": job is not None and job.active,
        "reading": state.reading,
        "problems": state.problems,
        "max_problems": MAX_PROBLEMS,
        "statuses": [s.value for s in Status],
        "progress_text": state.progress_text,
        "steps": steps(has_upload=upload is not None, preview=preview, job=job),
        "opening": opening,
        "run_step": step_of_run(job) if job else "",
        "step_key": key,
        "runs": state.runs,
        "runs_problem": state.runs_problem,
        "results_csv": state.results_csv,
        "read_since": state.read_since,
    }


def _phase(job: JobView) -> str:
    """The part of a run's state that moves the page to another step."""
    if job.planning:
        return "planning"
    return job.phase
