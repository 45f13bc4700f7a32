"""The command line: parse options, build `Settings`, call one library function, pick the
progress sink, and map the result to PRODUCT.md's exit status.

This is the only module that prints, prompts or exits.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from bulk_chats.checks.columns import chat_status_option
from bulk_chats.errors import BulkChatsError, InputError
from bulk_chats.jobs.change_chats import close_file, update_file
from bulk_chats.jobs.hooks import Hooks, JobFunction
from bulk_chats.jobs.import_chats import import_file
from bulk_chats.jobs.interrupt import EXIT_INTERRUPTED, run_interruptible
from bulk_chats.jobs.plan import Plan
from bulk_chats.jobs.result import RunResult
from bulk_chats.jobs.validate import validate_file
from bulk_chats.progress import BarProgress, LogProgress, NullProgress, ProgressSink, limit_text
from bulk_chats.settings import (
    API_KEY_ENV,
    BASE_URL_ENV,
    DEFAULT_BASE_URL,
    DEFAULT_RATE,
    REPORTS_DIR,
    ApiKey,
    Settings,
    check_base_url,
    read_api_key,
)

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_UNUSABLE = 2
EXIT_AUTH = 3

SANDBOX_KEY = "sandbox-key"
"""The key `--sandbox` uses against its own in-process stand-in: not a secret."""

F = TypeVar("F", bound=Callable[..., Any])


def _shared_options(command: F) -> F:
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
            help="Map a field to a header the aliases don't cover; repeatable.",
        ),
        click.option("--no-progress", is_flag=True, help="No progress bar or progress lines."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _api_options(command: F) -> F:
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bulk-chats")
def cli() -> None:
    """Create HelpCrunch chats in bulk from a CSV or Excel sheet.

    Try it with no account: bulk-chats import sample_data/chats.csv --sandbox
    """


@cli.command()
@_shared_options
def validate(
    file: Path, out: Path | None, sheet: str | None, columns: tuple[str, ...], no_progress: bool
) -> None:
    """Read and validate every row of FILE; send nothing; write the results workbook.

    Exit 0 when every row is valid, 1 when some are not, 2 when FILE is unusable.
    """
    settings = Settings(input_path=file, out=out, sheet=sheet, columns=_parse_columns(columns))
    with _user_errors():
        result = validate_file(settings)
    _print_summary(result)
    sys.exit(EXIT_OK if result.all_done else EXIT_INCOMPLETE)


def _sending_options(command: F) -> F:
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
        _api_options,
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


_chat_status_option = click.option(
    "--chat-status",
    metavar="STATUS",
    help="The status for rows whose chat_status cell is blank: new, opened, pending, "
    "on hold, no communication or closed.",
)


@cli.command("import")
@_shared_options
@_sending_options
@click.option("--dry-run", is_flag=True, help="Everything but creating chats: key check, look-ups.")
@click.option(
    "--create-customers",
    is_flag=True,
    help="Create a customer for each customer_email or customer_user_id that matches no one.",
)
@_chat_status_option
def import_(**options: Any) -> None:
    """Validate FILE, then create a chat for every valid row, throttled, and write the
    results workbook.

    Exit 0 when every row is created (now or earlier), 1 when some are not, 2 when
    nothing was sent because FILE or an option is unusable, 3 on a refused API key,
    130 on Ctrl-C.
    """
    _send(import_file, **options)


@cli.command()
@_shared_options
@_sending_options
@_chat_status_option
def update(**options: Any) -> None:
    """Change the chats FILE names by chat_id: their chat_status, assignee (id, or none
    to unassign) or assignee_email, department or department_name.

    Exit 0 when every row is updated (now or earlier) or has nothing to change, 1 when
    some are not, 2 when nothing was sent because FILE or an option is unusable, 3 on a
    refused API key, 130 on Ctrl-C.
    """
    _send(update_file, **options)


@cli.command()
@_shared_options
@_sending_options
def close(**options: Any) -> None:
    """Close every chat FILE names in its chat_id column, and change nothing else: on an
    import's results workbook, the way back from that import.

    Exit statuses as for update.
    """
    _send(close_file, **options)


def _send(
    job: JobFunction,
    *,
    file: Path,
    out: Path | None,
    sheet: str | None,
    columns: tuple[str, ...],
    no_progress: bool,
    rate: float | None,
    concurrency: int | None,
    base_url: str | None,
    api_key_file: Path | None,
    sandbox: bool,
    quirks: bool,
    fresh: bool,
    yes: bool,
    dry_run: bool = False,
    create_customers: bool = False,
    chat_status: str | None = None,
) -> NoReturn:
    """Run `job` (`import_file`, `update_file`, `close_file`) with the command line's
    settings, print the summary and exit with PRODUCT.md's status."""
    with _user_errors(), contextlib.ExitStack() as stack:
        status = None
        if chat_status is not None:
            status = chat_status_option(chat_status, named="--chat-status")
        root, key = _api_target(
            stack,
            sandbox=sandbox,
            base_url=base_url,
            api_key_file=api_key_file,
            rate=rate or DEFAULT_RATE,
            quirks=quirks,
        )
        settings = Settings(
            input_path=file,
            out=out,
            sheet=sheet,
            columns=_parse_columns(columns),
            rate=rate,
            concurrency=concurrency,
            base_url=root,
            api_key=key,
            dry_run=dry_run,
            fresh=fresh,
            reports_dir=REPORTS_DIR,
            chat_status=status,
            create_customers=create_customers,
        )
        interactive = sys.stdin.isatty() and sys.stderr.isatty()
        hooks = Hooks(
            progress=_pick_progress(no_progress),
            confirm=None if yes or not interactive else _confirm,
            notify=lambda text: click.echo(text, err=True),
        )
        result = run_interruptible(job, settings, hooks)
    _print_summary(result)
    if result.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if result.auth_failed:
        sys.exit(EXIT_AUTH)
    sys.exit(EXIT_OK if result.all_done and not result.declined else EXIT_INCOMPLETE)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address to bind.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port; 0 picks a free one (the printed URL shows it).",
)
@click.option(
    "--rate",
    type=click.IntRange(min=1),
    default=DEFAULT_RATE,
    show_default=True,
    help="The stand-in's rate limit, requests per minute (answered with 429).",
)
@click.option("--key", metavar="KEY", help="The only key accepted; default: any non-empty key.")
@click.option(
    "--latency", metavar="SECONDS[-SECONDS]", help="Delay each answer: fixed, or a range."
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="KIND=P",
    help="Inject a fault into POST /v1/chats with probability P; repeatable. Kinds: "
    "error_before, unavailable, drop_before, error_after, drop_after, slow_after, "
    "widget_chat (the customer opens a chat of their own, then the connection drops).",
)
@click.option(
    "--fault-on",
    "fault_on",
    multiple=True,
    type=click.Choice(["messages", "customers", "updates"]),
    help="Inject the faults into POST /v1/messages, POST /v1/customers or the "
    "PUT /v1/chats/... endpoints too; repeatable.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the faults.")
@click.option(
    "--no-retry-after",
    is_flag=True,
    help="Answer 429 without a Retry-After header, as HelpCrunch documents none.",
)
@click.option(
    "--customers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Made-up customers added to the 20 seeded ones (ids follow theirs), for large runs.",
)
@click.option(
    "--quirks",
    is_flag=True,
    help="Answer as the API documentation's other revisions do: string timestamps, new "
    "chats 'new', short pages, a wrong meta.total, a stray customer in every search.",
)
def sandbox(
    host: str,
    port: int,
    rate: int,
    key: str | None,
    latency: str | None,
    faults: tuple[str, ...],
    fault_on: tuple[str, ...],
    seed: int,
    no_retry_after: bool,
    customers: int,
    quirks: bool,
) -> None:
    """Run a local stand-in for the HelpCrunch API on loopback until Ctrl-C."""
    from bulk_chats.sandbox import Faults, SandboxConfig, SandboxState, Seed, serve

    try:
        config = SandboxConfig(
            api_key=key,
            rate=rate,
            latency=_parse_latency(latency),
            faults=Faults(seed=seed, **_parse_faults(faults), **dict.fromkeys(fault_on, True)),
            retry_after_header=not no_retry_after,
            quirks=quirks,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    with _user_errors():
        state = SandboxState(Seed.generated(customers=customers))
        serve(config, host=host, port=port, state=state, announce=lambda url: click.echo(url))


@cli.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port on 127.0.0.1; 0 picks a free one (the printed URL shows it).",
)
@click.option("--no-browser", is_flag=True, help="Print the address; do not open a browser.")
@_api_options
def ui(
    port: int, no_browser: bool, sandbox: bool, base_url: str | None, api_key_file: Path | None
) -> None:
    """Serve a local web page that validates, dry-runs and imports, until Ctrl-C.

    Prints `ui: <url>`; the URL carries a random token, without which the page refuses
    every request. Without a key in the environment or a file, the page asks for it.
    The first Ctrl-C stops a run in progress as in `import`.
    """
    import webbrowser

    from bulk_chats.ui import UiConfig, serve_ui

    with _user_errors(), contextlib.ExitStack() as stack:
        root, key = _api_target(
            stack,
            sandbox=sandbox,
            base_url=base_url,
            api_key_file=api_key_file,
            key_required=False,
        )
        config = UiConfig(base_url=root, api_key=key, sandbox=sandbox)
        status = serve_ui(
            config,
            port=port,
            announce=lambda text: click.echo(text, err=True),
            open_browser=None if no_browser else webbrowser.open,
        )
    sys.exit(status)


def _api_target(
    stack: contextlib.ExitStack,
    *,
    sandbox: bool,
    base_url: str | None,
    api_key_file: Path | None,
    rate: float = DEFAULT_RATE,
    quirks: bool = False,
    key_required: bool = True,
) -> tuple[str, ApiKey | None]:
    """The API root and key the options name: the in-process sandbox's (started on `stack`,
    limited to `rate` requests a minute, answering with the documentation's `quirks`), or
    `--base-url`/env and the key from `--api-key-file`/env. With `key_required` False, no
    key anywhere gives None."""
    if sandbox:
        if base_url or api_key_file:
            raise InputError("--sandbox runs its own API: leave out --base-url and --api-key-file")
        from bulk_chats.sandbox import SandboxConfig, run_in_thread

        config = SandboxConfig(rate=round(rate), quirks=quirks)
        running = stack.enter_context(run_in_thread(config))
        click.echo(f"sandbox: a local stand-in for the API at {running.base_url}", err=True)
        return running.base_url, ApiKey(SANDBOX_KEY)
    if quirks:
        raise InputError("--quirks changes the stand-in's answers: use it with --sandbox")
    root = check_base_url(base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL)
    if not key_required and api_key_file is None and not os.environ.get(API_KEY_ENV, "").strip():
        return root, None
    return root, read_api_key(api_key_file)


def _confirm(plan: Plan) -> bool:
    """Ask to go on; the plan itself was already printed (it is printed on every run)."""
    return click.confirm("Go on?", default=False, err=True)


def _pick_progress(disabled: bool) -> ProgressSink:
    if disabled:
        return NullProgress()
    if sys.stderr.isatty():
        return BarProgress()
    return LogProgress()


def _parse_columns(pairs: tuple[str, ...]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        name, sep, header = pair.partition("=")
        if not sep or not name.strip() or not header.strip():
            raise click.BadParameter(f"{pair!r} is not FIELD=HEADER", param_hint="--column")
        mapping[name.strip().lower()] = header.strip()
    return mapping


def _parse_latency(text: str | None) -> float | tuple[float, float]:
    if not text:
        return 0.0
    try:
        low, _, high = text.partition("-")
        return (float(low), float(high)) if high else float(low)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not SECONDS or MIN-MAX", param_hint="--latency"
        ) from None


def _parse_faults(pairs: tuple[str, ...]) -> dict[str, Any]:
    from bulk_chats.sandbox import Faults

    chosen: dict[str, Any] = {}
    for pair in pairs:
        kind, _, value = pair.partition("=")
        if kind not in Faults.ALL_KINDS:
            raise click.BadParameter(
                f"{kind!r} is not one of {', '.join(Faults.ALL_KINDS)}", param_hint="--fault"
            )
        try:
            chosen[kind] = float(value)
        except ValueError:
            raise click.BadParameter(f"{pair!r} is not KIND=P", param_hint="--fault") from None
    return chosen


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """A user's mistake is one line and exit 2; Ctrl-C before sending is exit 130."""
    try:
        yield
    except InputError as exc:
        _fail(str(exc), EXIT_UNUSABLE)
    except BulkChatsError as exc:
        _fail(str(exc), EXIT_INCOMPLETE)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)


def _fail(message: str, status: int) -> NoReturn:
    click.echo(f"bulk-chats: error: {message}", err=True)
    sys.exit(status)


def _print_summary(result: RunResult) -> None:
    counts = ", ".join(f"{status} {n}" for status, n in result.counts.items())
    click.echo(f"{result.total} rows: {counts}", err=True)
    if result.error_codes:
        top = ", ".join(f"{code} {n}" for code, n in list(result.error_codes.items())[:8])
        click.echo(f"errors: {top}", err=True)
    if result.learned_limit is not None:
        click.echo(limit_text(result.learned_limit), err=True)
    click.echo(f"results: {result.out}", err=True)


def main() -> None:
    """The console script's entry point."""
    cli(prog_name="bulk-chats")
