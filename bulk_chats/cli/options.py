"""What the commands share: their options, where their API is, how a user's mistake and a
run's end are told, and the exit statuses (docs/reference.md › Exit status).

Only the command line prints, prompts and exits; the jobs it calls do none of that.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from bulk_chats.errors import BulkChatsError, InputError
from bulk_chats.jobs.hooks import Hooks
from bulk_chats.jobs.interrupt import EXIT_INTERRUPTED
from bulk_chats.jobs.plan import Plan
from bulk_chats.jobs.result import RunResult
from bulk_chats.progress import BarProgress, LogProgress, NullProgress, ProgressSink, limit_text
from bulk_chats.settings import (
    API_KEY_ENV,
    BASE_URL_ENV,
    DEFAULT_BASE_URL,
    DEFAULT_RATE,
    ApiKey,
    check_base_url,
    read_api_key,
)

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_UNUSABLE = 2
EXIT_AUTH = 3

SANDBOX_KEY = "sandbox-key"
"""The key `--sandbox` uses against its own in-process stand-in: not a secret."""

SANDBOX_HISTORY = 60
"""The made-up chats `export --sandbox` finds in its stand-in, created over 90 days."""
F = TypeVar("F", bound=Callable[..., Any])


def shared_options(command: F) -> F:
    """Options that `validate` and `import` both take."""
    options = [
        click.argument("file", type=click.Path(path_type=Path)),
        click.option(
            "--out",
            type=click.Path(path_type=Path, dir_okay=False),
            help="Where the results workbook goes (.xlsx, or .csv for very large inputs). "
            "Default: reports/<input stem>-results-<YYYYmmdd-HHMMSS>.xlsx.",
        ),
        click.option("--sheet", metavar="NAME", help="Which sheet of a workbook to read."),
        click.option(
            "--column",
            "columns",
            multiple=True,
            metavar="FIELD=HEADER",
            help="Map a field to a header the aliases don't cover (FIELD= reads it from "
            "no column); repeatable.",
        ),
        click.option("--no-progress", is_flag=True, help="No progress bar or progress lines."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def api_options(command: F) -> F:
    """Options that say which API to talk to, and with which key."""
    options = [
        click.option(
            "--base-url",
            metavar="URL",
            help=f"API root; else env {BASE_URL_ENV}, else {DEFAULT_BASE_URL}.",
        ),
        click.option(
            "--api-key-file",
            type=click.Path(path_type=Path, dir_okay=False),
            help="Read the API key from this file; else env HELPCRUNCH_API_KEY.",
        ),
        click.option(
            "--sandbox",
            is_flag=True,
            help="Start the local stand-in for the API in-process and use it; no key needed.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def sending_options(command: F) -> F:
    """Options that `import`, `update` and `close` take: where and how fast to send."""
    options = [
        click.option(
            "--rate",
            type=click.FloatRange(min=1, min_open=False),
            default=None,
            help=f"Requests per minute, all requests counted.  [default: {DEFAULT_RATE}, or "
            "the account's limit an earlier run learned for this API root]",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(min=1, max=256),
            help="Requests in flight at once. Default: enough to keep the rate full at high "
            "latency.",
        ),
        api_options,
        click.option(
            "--quirks",
            is_flag=True,
            hidden=True,  # for the tests: the stand-in answers as the API's other revisions do
            help="With --sandbox: answer as the API documentation's other revisions do.",
        ),
        click.option(
            "--fresh",
            is_flag=True,
            help="Ignore earlier runs of the same rows and send them again.",
        ),
        click.option("--yes", "-y", is_flag=True, help="No confirmation prompt."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


chat_status_option = click.option(
    "--chat-status",
    metavar="STATUS",
    help="The status for rows whose chat_status cell is blank: new, opened, pending, "
    "on hold, no communication or closed.",
)


def api_target(
    stack: contextlib.ExitStack,
    *,
    sandbox: bool,
    base_url: str | None,
    api_key_file: Path | None,
    rate: float = DEFAULT_RATE,
    quirks: bool = False,
    key_required: bool = True,
    history: bool = False,
) -> tuple[str, ApiKey | None]:
    """The API root and key the options name: the in-process sandbox's (started on `stack`,
    limited to `rate` requests a minute, answering with the documentation's `quirks`,
    holding `SANDBOX_HISTORY` made-up chats of the past months with `history`), or
    `--base-url`/env and the key from `--api-key-file`/env. With `key_required` False, no
    key anywhere gives None."""
    if sandbox:
        if base_url or api_key_file:
            raise InputError("--sandbox runs its own API: leave out --base-url and --api-key-file")
        from bulk_chats.sandbox import SandboxConfig, run_in_thread

        config = SandboxConfig(rate=round(rate), quirks=quirks)
        app: Any = config
        if history:
            from bulk_chats.sandbox import SandboxState, Seed, create_app
            from bulk_chats.sandbox import history as made_up

            chats = made_up(SANDBOX_HISTORY, end=time.time())
            app = create_app(config, state=SandboxState(Seed(chats=chats)))
        running = stack.enter_context(run_in_thread(app))
        click.echo(f"sandbox: a local stand-in for the API at {running.base_url}", err=True)
        return running.base_url, ApiKey(SANDBOX_KEY)
    if quirks:
        raise InputError("--quirks changes the stand-in's answers: use it with --sandbox")
    root = check_base_url(base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL)
    if not key_required and api_key_file is None and not os.environ.get(API_KEY_ENV, "").strip():
        return root, None
    return root, read_api_key(api_key_file)


def terminal_hooks(*, no_progress: bool, yes: bool) -> Hooks:
    """A run's ties to the terminal: the progress bar (or lines, or none), the prompt to go
    on (only on a terminal, and not with `--yes`), notices on stderr."""
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    return Hooks(
        progress=pick_progress(no_progress),
        confirm=None if yes or not interactive else confirm,
        notify=lambda text: click.echo(text, err=True),
    )


def exit_with(result: RunResult) -> NoReturn:
    """Exit with the status of docs/reference.md › Exit status for `result`."""
    if result.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if result.auth_failed:
        sys.exit(EXIT_AUTH)
    done = result.all_done and not result.declined and result.journal_error is None
    sys.exit(EXIT_OK if done else EXIT_INCOMPLETE)


def confirm(plan: Plan) -> bool:
    """Ask to go on; the plan itself was already printed (it is printed on every run)."""
    return click.confirm("Go on?", default=False, err=True)


def pick_progress(disabled: bool) -> ProgressSink:
    if disabled:
        return NullProgress()
    if sys.stderr.isatty():
        return BarProgress()
    return LogProgress()


def parse_columns(pairs: tuple[str, ...]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        name, sep, header = pair.partition("=")
        # FIELD= (no header) reads the field from no column, whatever a header says.
        if not sep or not name.strip():
            raise click.BadParameter(f"{pair!r} is not FIELD=HEADER", param_hint="--column")
        mapping[name.strip().lower()] = header.strip()
    return mapping


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """A user's mistake is one line and exit 2; Ctrl-C before sending is exit 130."""
    try:
        yield
    except InputError as exc:
        fail(str(exc), EXIT_UNUSABLE)
    except BulkChatsError as exc:
        fail(str(exc), EXIT_INCOMPLETE)
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)


def fail(message: str, status: int) -> NoReturn:
    click.echo(f"bulk-chats: error: {message}", err=True)
    sys.exit(status)


def print_summary(result: RunResult) -> None:
    counts = ", ".join(f"{status} {n}" for status, n in result.counts.items())
    click.echo(f"{result.total} rows: {counts}", err=True)
    if result.error_codes:
        top = ", ".join(f"{code} {n}" for code, n in list(result.error_codes.items())[:8])
        click.echo(f"errors: {top}", err=True)
    if result.learned_limit is not None and result.limit_confirmed:
        click.echo(limit_text(result.learned_limit), err=True)
    elif result.learned_limit is not None:
        click.echo(
            f"the account seemed to allow {result.learned_limit:g} requests a minute, but "
            "the API did not confirm it before the run ended: not remembered for the next run",
            err=True,
        )
    click.echo(f"results: {result.out}", err=True)
