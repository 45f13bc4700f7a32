"""The page's web application: one user's uploaded sheet, its column mapping, and the runs.

Every request passes the token, `Host`, `Origin` and content-type checks first
(`guard.py`); uploads are stored by `uploads.py`, one at a time, and read for the mapping
by `preview.py`; only the current one is kept. The page is rendered here, with Jinja2
escaping every value from a sheet; its script only sends actions, follows progress
(server-sent events) and swaps in the regions the server renders again.

The API key, from the environment or typed into the page, reaches a run's `Settings` and
nothing else: no response, log or file carries it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import jinja2
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

from bulk_chats.checks.columns import CHAT_STATUSES, chat_status_option
from bulk_chats.errors import InputError
from bulk_chats.fields import FIELD_NAMES
from bulk_chats.jobs.result import RunResult
from bulk_chats.progress import duration_text, limit_text
from bulk_chats.records import Status
from bulk_chats.results.workbook import STATUS_COLOURS
from bulk_chats.settings import DEFAULT_BASE_URL, DEFAULT_RATE, REPORTS_DIR, ApiKey, Settings
from bulk_chats.ui.export_form import export_filters
from bulk_chats.ui.guard import Guard
from bulk_chats.ui.jobs import JOB_KINDS, Job, JobKind, JobView, export_kind
from bulk_chats.ui.preview import Preview, column_options, mapping_fields, read_preview
from bulk_chats.ui.problems import ProblemTable, read_problems
from bulk_chats.ui.uploads import (
    DEFAULT_MAX_UPLOAD,
    Upload,
    UploadRefused,
    discard,
    receive_upload,
)

EVENT_INTERVAL = 0.25
"""Seconds between looks at a run for the page's progress events."""

HEARTBEAT = 15.0
"""Seconds of quiet after which an event stream sends a comment, to keep it open."""

READING = "the file is still being read; wait for it, then try again"
"""The answer to a request that would read or replace the sheet while it is being read."""

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
        self._upload: Upload | None = None
        self._preview = Preview()
        self._reading = False
        self._jobs: dict[int, Job] = {}
        self._job: Job | None = None
        self._problems: dict[int, ProblemTable] = {}
        self.closing = False
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        routes = [
            Route("/", self.page),
            Route("/favicon.ico", self.favicon),
            Route("/status.css", self.status_css),
            Route("/upload", self.upload, methods=["POST"]),
            Route("/sheet", self.choose_sheet, methods=["POST"]),
            Route("/mapping", self.map_column, methods=["POST"]),
            Route("/run", self.run, methods=["POST"]),
            Route("/export", self.export, methods=["POST"]),
            Route("/confirm", self.confirm, methods=["POST"]),
            Route("/stop", self.stop, methods=["POST"]),
            Route("/events", self.events),
            Route("/download/{job:int}", self.download),
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
        problems = self._problems.get(view.id) if view else None
        upload = self._upload
        html = self._templates.get_template("page.html").render(
            token=self.token,
            config=self.config,
            default_rate=f"{DEFAULT_RATE:g}",
            upload=upload,
            preview=self._preview,
            fields=mapping_fields(),
            column_options=column_options(upload),
            chat_statuses=CHAT_STATUSES,
            kinds=list(JOB_KINDS.values()),
            job=view,
            problems=problems,
            statuses=[s.value for s in Status],
            progress_text=_progress_text(view) if view else "",
        )
        return HTMLResponse(html)

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
        if self._busy() or self._reading:
            return self._not_now()
        self._reading = True
        try:
            try:
                upload = await receive_upload(
                    request, reports_dir=self.config.reports_dir, cap=self.config.max_upload_bytes
                )
            except UploadRefused as exc:
                return _error(str(exc), exc.status)
            await self._set_upload(upload)
        finally:
            self._reading = False
        return JSONResponse({"ok": True})

    async def choose_sheet(self, request: Request) -> Response:
        upload = self._upload
        if upload is None or self._busy() or self._reading:
            return self._not_now()
        sheet = str((await _json(request)).get("sheet", ""))
        if sheet not in upload.sheets:
            return _error(f"no sheet named {sheet!r}", 400)
        # Another sheet has other headers: the mapping starts again from what is detected.
        await self._read_again(replace(upload, sheet=sheet, columns={}))
        return JSONResponse({"ok": True})

    async def map_column(self, request: Request) -> Response:
        """Map a field to a header, as `--column FIELD=HEADER` does; a blank header undoes it."""
        upload = self._upload
        if upload is None or self._busy() or self._reading:
            return self._not_now()
        body = await _json(request)
        name, header = str(body.get("field", "")), str(body.get("header", ""))
        if name not in FIELD_NAMES:
            return _error(f"unknown field {name!r}", 400)
        if header and header not in self._preview.headers:
            return _error(f"no column headed {header!r}", 400)
        columns = dict(upload.columns)
        if header:
            columns[name] = header
        else:
            columns.pop(name, None)
        await self._read_again(replace(upload, columns=columns))
        return JSONResponse({"ok": True})

    async def _read_again(self, upload: Upload) -> None:
        """Read the current upload with other choices; nothing else reads it meanwhile."""
        self._reading = True
        try:
            await self._set_upload(upload)
        finally:
            self._reading = False

    async def _set_upload(self, upload: Upload) -> None:
        """Make `upload` current, once read; the file it replaces is removed."""
        try:
            preview = await anyio.to_thread.run_sync(read_preview, upload)
        except BaseException:
            if self._upload is None or self._upload.path != upload.path:
                discard(upload)
            raise
        with self._lock:
            before, kept = self._upload, not self.closing
            if kept:
                self._upload, self._preview = upload, preview
        if before is not None and before.path != upload.path:
            discard(before)
        if not kept:  # the page stopped while it was read
            discard(upload)

    def close(self) -> None:
        """The page stops: refuse what comes next and remove the current upload (results
        workbooks and the journal stay). Call it once no run reads the upload any more."""
        with self._lock:
            self.closing = True
            upload, self._upload, self._preview = self._upload, None, Preview()
        if upload is not None:
            discard(upload)

    # -- runs ------------------------------------------------------------------------

    async def run(self, request: Request) -> Response:
        """Start a run of the kind the page asks for, unless one is running."""
        body = await _json(request)
        kind = JOB_KINDS.get(str(body.get("kind", "")))
        upload = self._upload
        if kind is None:
            return _error("unknown run", 400)
        if self._reading:
            return _error(READING, 409)
        if upload is None:
            return _error("choose a spreadsheet first", 409)
        try:
            rate, key = self._rate_and_key(body)
        except InputError as exc:
            return _error(str(exc), 400)
        if kind.sends and key is None:
            return _error("type the API key first (Settings → Developers → Public API)", 400)
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
        )
        fields = dict(self._preview.mapping)
        return self._start(
            kind,
            settings,
            input_name=upload.name,
            on_result=lambda job, result: self._read_problems(job, result, fields),
        )

    def _start(
        self,
        kind: JobKind,
        settings: Settings,
        *,
        input_name: str,
        on_result: Callable[[int, RunResult], None] | None = None,
    ) -> Response:
        """Start a run, unless one is running."""
        with self._lock:
            if self._job is not None and self._job.view().active:
                return _error("a run is in progress; stop it or wait for it to end", 409)
            job = Job(
                kind,
                settings,
                input_name=input_name,
                on_result=lambda result: on_result(job.id, result) if on_result else None,
            )
            self._jobs[job.id] = self._job = job
        job.start()
        return JSONResponse({"ok": True, "job": job.id})

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
            return _error("type the API key first (Settings → Developers → Public API)", 400)
        settings = Settings(
            input_path=Path("chats-export"),
            rate=rate,
            base_url=self.config.base_url,
            api_key=key,
            reports_dir=self.config.reports_dir,
        )
        kind = export_kind(filters, messages=body.get("messages") is True)
        return self._start(kind, settings, input_name="")

    def _read_problems(self, job: int, result: RunResult, field_headers: dict[str, str]) -> None:
        """Read the problem rows from the workbook the run wrote (in the run's thread)."""
        self._problems[job] = read_problems(result.out, field_headers)

    async def confirm(self, request: Request) -> Response:
        job = self._job
        if job is None or job.view().phase != "confirm":
            return _error("nothing waits for confirmation", 409)
        job.answer(bool((await _json(request)).get("go_on", True)))
        return JSONResponse({"ok": True})

    async def stop(self, request: Request) -> Response:
        job = self._job
        if job is None or not job.view().active:
            return _error("no run is in progress", 409)
        job.stop()
        return JSONResponse({"ok": True})

    async def events(self, request: Request) -> Response:
        """Server-sent events: the latest run's progress whenever it changes, until it ends."""
        return StreamingResponse(
            self._event_stream(),
            media_type="text/event-stream",
            headers={"x-accel-buffering": "no"},
        )

    async def _event_stream(self) -> AsyncIterator[str]:
        last: tuple[int, int] | None = None
        quiet = 0.0
        while not self.closing:
            view = self._job.view() if self._job else None
            if view is None:
                yield "event: idle\ndata: {}\n\n"
                return
            if (view.id, view.version) != last:
                last, quiet = (view.id, view.version), 0.0
                yield f"data: {json.dumps(_event(view))}\n\n"
                if not view.active:
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

    def _not_now(self) -> Response:
        if self._reading:
            return _error(READING, 409)
        if self._upload is None:
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


def _event(view: JobView) -> dict[str, Any]:
    progress = view.progress
    return {
        "job": view.id,
        "phase": view.phase,
        "done": progress.done,
        "total": progress.total,
        "text": _progress_text(view),
        "stopping": view.stopping,
    }


def _progress_text(view: JobView) -> str:
    """`12 of 100 rows · 45 rows a minute · about 2m 00s left`; for a transcript, `3 of
    10 conversations · 25 of 80 messages · …`."""
    progress = view.progress
    if not progress.total:
        return ""
    unit = view.kind.unit
    parts = []
    if progress.conversations is not None:
        unit = "messages"
        parts.append("{} of {} conversations".format(*progress.conversations))
    parts.append(f"{progress.done} of {progress.total} {unit}")
    if progress.per_minute is not None:
        parts.append(f"{progress.per_minute:.0f} {unit} a minute")
    if progress.eta is not None and progress.done < progress.total:
        parts.append(f"about {duration_text(progress.eta)} left")
    if progress.learned_limit is not None:
        parts.append(limit_text(progress.learned_limit, confirmed=progress.limit_confirmed))
    return " · ".join(parts)
