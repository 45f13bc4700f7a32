"""The guided path of the page: file → columns → check → plan → run → results, one step
at a time, each with Back (docs/reference.md › The web page).

The page holds every step and shows one; Back, Next and the list of steps move between
them in the browser. The server says which step a run belongs on, so that a reload, or a
second tab, opens where the run is: Validate on Check, Dry run and a plan waiting for
Confirm on Plan, a run sending on Run, its end on Results.
"""

from __future__ import annotations

from dataclasses import dataclass

from bulk_chats.ui.jobs import JobView
from bulk_chats.ui.preview import Preview


@dataclass(frozen=True, slots=True)
class Step:
    """One step: its name in the page's code, its title, and whether it can be shown now
    (`why_not` says what it waits for)."""

    name: str
    title: str
    open: bool
    why_not: str = ""


STEP_NAMES = ("file", "columns", "check", "plan", "run", "results")
"""The steps, in order."""

_TITLES = {
    "file": "File",
    "columns": "Columns",
    "check": "Check",
    "plan": "Plan",
    "run": "Run",
    "results": "Results",
}


def step_of_run(job: JobView) -> str:
    """The step a run is shown on."""
    kind = job.kind.name
    if kind == "validate":
        return "check"
    if kind == "dry_run":
        return "plan"
    if kind == "export":  # started from the File step, with no plan to show there
        return "run" if job.active else "results"
    if job.active:
        return "plan" if job.phase == "confirm" or job.planning else "run"
    declined = job.result is not None and job.result.declined
    return "plan" if job.phase == "failed" or declined else "results"


def steps(*, has_upload: bool, preview: Preview, job: JobView | None) -> tuple[Step, ...]:
    """Every step, with whether it can be shown now."""
    ran = job is not None and job.kind.progress
    ended = ran and job is not None and not job.active and step_of_run(job) == "results"
    why = {
        "columns": "" if has_upload else "choose a file first",
        "check": "" if preview.usable else "choose the columns first",
        "plan": "" if preview.usable else "choose the columns first",
        "run": "" if ran else "start a run first",
        "results": "" if ended else "the results come when a run ends",
    }
    return tuple(
        Step(name, _TITLES[name], open=not why.get(name, ""), why_not=why.get(name, ""))
        for name in STEP_NAMES
    )


def opening_step(*, has_upload: bool, job: JobView | None, uploaded_since: bool) -> str:
    """The step the page opens on: the latest run's (unless a file was chosen since and no
    run is in progress), else the columns of the upload, else the file."""
    if job is not None and (job.active or not uploaded_since):
        return step_of_run(job)
    return "columns" if has_upload else "file"
