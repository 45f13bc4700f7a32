"""The page's web application: one user's uploaded sheet, its column mapping, and the runs.

Every request passes the token, `Host`, `Origin` and content-type checks first
(`guard.py`); uploads are stored by `uploads.py`, one at a time, and read for the mapping
by `preview.py`; only the current one is kept. The page is rendered by `render.py`, with
Jinja2 escaping every value from a sheet; its script only sends actions, moves between
the steps, follows progress (server-sent events) and swaps in the regions the server
renders again.

The API key, from the environment or typed into the page, reaches a run's `Settings` and
nothing else: no response, log or file carries it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bulk_chats.checks.columns import chat_status_option
from bulk_chats.errors import InputError
from bulk_chats.jobs.result import RunResult
from bulk_chats.records import Status
from bulk_chats.results.workbook import STATUS_COLOURS
from bulk_chats.settings import DEFAULT_BASE_URL, REPORTS_DIR, ApiKey, Settings
from bulk_chats.ui.export_form import export_filters
from bulk_chats.ui.guard import Guard
from bulk_chats.ui.history import History
from bulk_chats.ui.jobs import JOB_KINDS, Job, JobKind, JobView, export_kind
from bulk_chats.ui.mapping import MappingRefused
from bulk_chats.ui.preview import Preview
from bulk_chats.ui.problems import ProblemTable, read_problems
from bulk_chats.ui.render import PageState, Renderer
from bulk_chats.ui.sheet_choice import SheetChoice
from bulk_chats.ui.steps import step_of_run
from bulk_chats.ui.uploads import DEFAULT_MAX_UPLOAD, UploadRefused
from bulk_chats.ui.words import in_page_words, progress_text

EVENT_INTERVAL = 0.25
"""Seconds between looks at a run for the page's progress events."""

HEARTBEAT = 15.0
"""Seconds of quiet after which an event stream sends a comment, to keep it open."""

READING = "the file is still being read; wait for it, then try again"
"""The answer to a request that would read or replace the sheet while it is being read."""

NO_KEY = "type the API key first (Settings → Developers → Public API)"
"""The answer to a run that needs the key when none is given."""

_HERE = Path(__file__).parent


@dataclass(frozen=True, slots=True)
class UiConfig:
    """What the page runs against. `api_key` None means the user types it into the page;
    `rate` is the requests per minute a run starts at unless the page says otherwise (None:
    the account's limit an earlier run learned for this API root, else `DEFAULT_RATE`)."""

    base_url: str = DEFAULT_BASE_URL
    api_key: ApiKey | None = None
    sandbox: bool = False
    reports_dir: Path = REPORTS_DIR
    rate: float | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD


class UiApp:
    """The page's state and its ASGI application (`.asgi`).

    `port` is the one the server listens on: with 127.0.0.1 and localhost it makes the
    only `Host` values accepted.
    """

    def __init__(self, config: UiConfig, *, token: str, port: int) -> None:
        self.config = config
        self.token = token
        self._hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
        self._lock = threading.Lock()
        self._sheet = SheetChoice(reports_dir=config.reports_dir, cap=config.max_upload_bytes)
        self._jobs: dict[int, Job] = {}
        self._job: Job | None = None
        self._job_upload = 0
        self._job_read: Preview | None = None
        """How the sheet was read when the latest run started: a result read otherwise is
        out of date."""
        self._problems: dict[int, ProblemTable] = {}
        self._history = History(config.reports_dir)
        self._renderer = Renderer(_HERE / "templates")
        self.closing = False
        """The page stops: event streams end."""
        routes = [
            Route("/", self.page),
            Route("/favicon.ico", self.favicon),
            Route("/status.css", self.status_css),
            Route("/upload", self.upload, methods=["POST"]),
            Route("/sheet", self.choose_sheet, methods=["POST"]),
            Route("/mapping", self.map_column, methods=["POST"]),
            Route("/options", self.set_options, methods=["POST"]),
            Route("/run", self.run, methods=["POST"]),
            Route("/export", self.export, methods=["POST"]),
            Route("/confirm", self.confirm, methods=["POST"]),
            Route("/stop", self.stop, methods=["POST"]),
            Route("/events", self.events),
            Route("/download/{job:int}", self.download),
            Route("/runs/{run:int}/results", self.download_run),
            Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
        ]
        self.asgi = Guard(
            Starlette(routes=routes),
            token=token,
            hosts=self._hosts,
            upload_paths=frozenset({"/upload"}),
        )

    @property
    def job(self) -> Job | None:
        """The latest run, running or ended."""
        return self._job

    # -- pages -----------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        view = self._job.view() if self._job else None
        # The journal may wait for a run's write: never on the server's own loop.
        active = view.record if view and view.active else None
        runs = await anyio.to_thread.run_sync(self._history.lines, active)
        state = PageState(
            token=self.token,
            config_sandbox=self.config.sandbox,
            base_url=self.config.base_url,
            api_key_given=self.config.api_key is not None,
            rate=self.config.rate,
            upload=self._sheet.upload,
            uploads=self._sheet.uploads,
            preview=self._sheet.preview,
            results_csv=self._sheet.csv,
            job=view,
            uploaded_since=self._sheet.uploads != self._job_upload,
            read_since=self._sheet.preview is not self._job_read,
            problems=self._problems.get(view.id) if view else None,
            progress_text=progress_text(view) if view else "",
            runs=runs,
            runs_problem=self._history.problem,
            reading=self._sheet.reading,
        )
        return HTMLResponse(self._renderer.render(state))

    async def favicon(self, request: Request) -> Response:
        """The page's icon, which a browser asks for without the token."""
        return FileResponse(_HERE / "static" / "favicon.ico", media_type="image/x-icon")

    async def status_css(self, request: Request) -> Response:
        """The status colours of the results workbook, so the page and the file agree."""
        rules = [
            f".s-{status.value} {{ background: {colour}; }}"
            for status, colour in STATUS_COLOURS.items()
        ]
        return Response("\n".join(rules) + "\n", media_type="text/css")

    # -- the sheet -------------------------------------------------------------------

    async def upload(self, request: Request) -> Response:
        """Store the request body (the file itself) under the reports folder, 0600, and
        make it the current upload, removing the one it replaces. One at a time: another
        upload while this one is stored or read is refused (409)."""
        if self._busy() or self._sheet.reading:
            return self._not_now()
        try:
            await self._sheet.receive(request)
        except UploadRefused as exc:
            return _error(str(exc), exc.status)
        return JSONResponse({"ok": True})

    async def choose_sheet(self, request: Request) -> Response:
        upload = self._sheet.upload
        if upload is None or self._busy() or self._sheet.reading:
            return self._not_now()
        sheet = str((await _json(request)).get("sheet", ""))
        if sheet not in upload.sheets:
            return _error(f"no sheet named {sheet!r}", 400)
        await self._sheet.choose_sheet(upload, sheet)
        return JSONResponse({"ok": True})

    async def map_column(self, request: Request) -> Response:
        """Read a field from a column, as `--column FIELD=HEADER` does (`field` and
        `header`; a blank header reads the field from no column), or a column as a field
        (`column` and `field`; a blank field reads the column as none). A field another
        column gives is not moved: that is refused (409), saying so."""
        upload = self._sheet.upload
        if upload is None or self._busy() or self._sheet.reading:
            return self._not_now()
        try:
            await self._sheet.map(upload, await _json(request))
        except ValueError as exc:
            return _error(str(exc), 400)
        except MappingRefused as exc:
            return _error(str(exc), 409)
        return JSONResponse({"ok": True})

    async def set_options(self, request: Request) -> Response:
        """The page's choices that outlive a step: the Results file (`results`: `xlsx` or
        `csv`)."""
        try:
            self._sheet.results_as(str((await _json(request)).get("results", "")))
        except ValueError as exc:
            return _error(str(exc), 400)
        return JSONResponse({"ok": True})

    def close(self) -> None:
        """The page stops: refuse what comes next and remove the current upload (results
        workbooks and the journal stay). Call it once no run reads the upload any more."""
        self.closing = True
        self._sheet.close()

    # -- runs ------------------------------------------------------------------------

    async def run(self, request: Request) -> Response:
        """Start a run of the kind the page asks for, unless one is running."""
        body = await _json(request)
        kind = JOB_KINDS.get(str(body.get("kind", "")))
        upload = self._sheet.upload
        if kind is None:
            return _error("unknown run", 400)
        if self._sheet.reading:
            return _error(READING, 409)
        if upload is None:
            return _error("choose a spreadsheet first", 409)
        try:
            rate, key = self._rate_and_key(body)
        except InputError as exc:
            return _error(str(exc), 400)
        if kind.sends and key is None:
            return _error(NO_KEY, 400)
        typed_status = str(body.get("chat_status") or "").strip()
        try:
            status = chat_status_option(typed_status, named="chat status") if typed_status else None
        except InputError as exc:
            return _error(str(exc), 400)
        # The options go to every run; a library call ignores what it does not read
        # (`close` sets closed whatever the cells or the option say).
        settings = Settings(
            input_path=upload.path,
            sheet=upload.sheet,
            columns=dict(upload.columns),
            rate=rate,
            base_url=self.config.base_url,
            api_key=key if kind.sends else None,
            reports_dir=self.config.reports_dir,
            chat_status=status,
            create_customers=body.get("create_customers") is True,
            time_prefix=body.get("no_time_prefix") is not True,
            input_name=upload.name,
            csv_results=self._sheet.csv,
            # The plan counts the customers that match no one before Confirm.
            lookups_first=True,
        )
        fields = dict(self._sheet.preview.mapping)
        return await self._start(
            kind,
            settings,
            input_name=upload.name,
            on_result=lambda job, result: self._read_problems(job, result, fields),
        )

    async def _start(
        self,
        kind: JobKind,
        settings: Settings,
        *,
        input_name: str,
        on_result: Callable[[int, RunResult], None] | None = None,
    ) -> Response:
        """Start a run, unless one is running; the page's list of runs writes it down.
        What the run says is said in the page's words, its file by the name it was chosen
        by."""
        files = [(settings.input_path, input_name), (self.config.reports_dir, "")]
        with self._lock:
            if self._job is not None and self._job.view().active:
                return _error("a run is in progress; stop it or wait for it to end", 409)
            job = Job(
                kind,
                settings,
                input_name=input_name,
                on_result=lambda result: on_result(job.id, result) if on_result else None,
                on_end=self._ended,
                reword=lambda text: in_page_words(text, files=files if input_name else files[1:]),
            )
            self._jobs[job.id] = self._job = job
            self._job_upload, self._job_read = self._sheet.uploads, self._sheet.preview
        begun = job.view()
        job.record = await anyio.to_thread.run_sync(
            lambda: self._history.begin(begun, base_url=self.config.base_url)
        )
        job.start()
        return JSONResponse({"ok": True, "job": job.id})

    def _ended(self, view: JobView) -> None:
        """A run ended (in its thread): the list of runs says how."""
        self._history.end(view)

    def _rate_and_key(self, body: dict[str, Any]) -> tuple[float | None, ApiKey | None]:
        """The rate typed into the page (else the server's) and the key typed (else the
        server's); `InputError` for a rate that is not a number from 1 up."""
        typed_rate = str(body.get("rate") or "").strip()
        rate = self.config.rate
        if typed_rate:
            try:
                rate = float(typed_rate)
            except ValueError:
                rate = 0.0
            if not 1 <= rate <= 1_000_000:
                raise InputError("requests per minute: give a number from 1 up")
        typed = str(body.get("api_key") or "").strip()
        return rate, ApiKey(typed) if typed and not self.config.sandbox else self.config.api_key

    async def export(self, request: Request) -> Response:
        """Start an export of the chats the page's filters name (docs/export.md › On the
        page); no sheet is needed."""
        body = await _json(request)
        try:
            rate, key = self._rate_and_key(body)
            filters = export_filters(body)
        except InputError as exc:
            return _error(str(exc), 400)
        if key is None:
            return _error(NO_KEY, 400)
        settings = Settings(
            input_path=Path("chats-export"),
            rate=rate,
            base_url=self.config.base_url,
            api_key=key,
            reports_dir=self.config.reports_dir,
        )
        kind = export_kind(filters, messages=body.get("messages") is True)
        return await self._start(kind, settings, input_name="")

    def _read_problems(self, job: int, result: RunResult, field_headers: dict[str, str]) -> None:
        """Read the problem rows from the results the run wrote (in the run's thread)."""
        self._problems[job] = read_problems(result.out, field_headers, result.counts)

    async def confirm(self, request: Request) -> Response:
        """The page's answer to the plan: Confirm (`go_on` true) or Cancel. The same answer
        again for the run that had it (a double click) is taken as already given."""
        job = self._job
        go_on = bool((await _json(request)).get("go_on", True))
        if job is not None and job.answered == go_on:
            return JSONResponse({"ok": True})
        if job is None or job.view().phase != "confirm":
            return _error("nothing waits for confirmation", 409)
        job.answer(go_on)
        return JSONResponse({"ok": True})

    async def stop(self, request: Request) -> Response:
        """Stop the run in progress, as Ctrl-C does; while its plan is coming, Cancel."""
        job = self._job
        if job is None or not job.view().active:
            return _error("no run is in progress", 409)
        job.stop()
        return JSONResponse({"ok": True})

    async def events(self, request: Request) -> Response:
        """Server-sent events: the latest run's progress whenever it changes, until it
        ends; with `follow`, for as long as the tab listens, every run, every new file and
        every change of its sheet, mapping or results file too (a second tab follows what
        the first one starts and chooses)."""
        follow = request.query_params.get("follow") == "1"
        return StreamingResponse(
            self._event_stream(follow=follow),
            media_type="text/event-stream",
            headers={"x-accel-buffering": "no"},
        )

    async def _event_stream(self, *, follow: bool) -> AsyncIterator[str]:
        last: tuple[int, int, int, int] | None = None
        quiet = 0.0
        while not self.closing:
            view = self._job.view() if self._job else None
            if view is None and not follow:
                yield "event: idle\ndata: {}\n\n"
                return
            uploads, changes = self._sheet.uploads, self._sheet.changes
            now = (view.id if view else 0, view.version if view else 0, uploads, changes)
            if now != last:
                last, quiet = now, 0.0
                yield f"data: {json.dumps(_event(view, uploads=uploads, changes=changes))}\n\n"
                if view is not None and not view.active and not follow:
                    return
            elif quiet >= HEARTBEAT:
                quiet = 0.0
                yield ": still running\n\n"
            await anyio.sleep(EVENT_INTERVAL)
            quiet += EVENT_INTERVAL

    async def download(self, request: Request) -> Response:
        job = self._jobs.get(int(request.path_params["job"]))
        result = job.view().result if job else None
        if result is None or not result.out.is_file():
            return _error("no results workbook for that run", 404)
        return FileResponse(result.out, filename=result.out.name)

    async def download_run(self, request: Request) -> Response:
        """The results file of a run of the list, while it is in the reports folder."""
        number = int(request.path_params["run"])
        path = await anyio.to_thread.run_sync(self._history.results_file, number)
        if path is None:
            return _error("that run's results are no longer in the reports folder", 404)
        return FileResponse(path, filename=path.name)

    def _not_now(self) -> Response:
        if self._sheet.reading:
            return _error(READING, 409)
        if self._sheet.upload is None:
            return _error("choose a spreadsheet first", 409)
        return _error("a run is in progress; stop it or wait for it to end", 409)

    def _busy(self) -> bool:
        return self._job is not None and self._job.view().active


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error(message: str, status: int) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def _event(view: JobView | None, *, uploads: int, changes: int) -> dict[str, Any]:
    if view is None:
        return {"job": None, "uploads": uploads, "changes": changes}
    done, total = bar_numbers(view)
    order = [status.value for status in Status]
    counts = sorted(view.progress.counts.items(), key=lambda pair: order.index(pair[0]))
    return {
        "job": view.id,
        "phase": view.phase,
        "step": step_of_run(view),
        "planning": view.planning,
        "done": done,
        "total": total,
        "text": progress_text(view),
        "counts": [[status, f"{count:,}"] for status, count in counts],
        "stopping": view.stopping,
        "uploads": uploads,
        "changes": changes,
    }


def bar_numbers(view: JobView) -> tuple[int, int]:
    """What the progress bar shows: rows done of the rows to send, or for a run that sends
    nothing (Validate), rows of its results written."""
    progress = view.progress
    if view.kind.progress:
        return progress.done, progress.total
    return progress.written or (0, 0)
