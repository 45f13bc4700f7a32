"""The commands that read a sheet: `validate`, and `import`, `update` and `close`, which send."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from bulk_chats.checks.columns import chat_status_option as parse_chat_status
from bulk_chats.cli.options import (
    EXIT_AUTH,
    EXIT_INCOMPLETE,
    EXIT_OK,
    api_target,
    chat_status_option,
    confirm,
    parse_columns,
    pick_progress,
    print_summary,
    sending_options,
    shared_options,
    user_errors,
)
from bulk_chats.jobs.change_chats import close_file, update_file
from bulk_chats.jobs.hooks import Hooks, JobFunction
from bulk_chats.jobs.import_chats import import_file
from bulk_chats.jobs.interrupt import EXIT_INTERRUPTED, run_interruptible
from bulk_chats.jobs.validate import validate_file
from bulk_chats.settings import DEFAULT_RATE, REPORTS_DIR, Settings


@click.command()
@shared_options
def validate(
    file: Path, out: Path | None, sheet: str | None, columns: tuple[str, ...], no_progress: bool
) -> None:
    """Read and validate every row of FILE; send nothing; write the results workbook.

    Exit 0 when every row is valid, 1 when some are not, 2 when FILE is unusable.
    """
    settings = Settings(input_path=file, out=out, sheet=sheet, columns=parse_columns(columns))
    with user_errors():
        result = validate_file(settings)
    print_summary(result)
    sys.exit(EXIT_OK if result.all_done else EXIT_INCOMPLETE)


@click.command("import")
@shared_options
@sending_options
@click.option("--dry-run", is_flag=True, help="Everything but creating chats: key check, look-ups.")
@click.option(
    "--create-customers",
    is_flag=True,
    help="Create a customer for each customer_email or customer_user_id that matches no one.",
)
@chat_status_option
def import_(**options: Any) -> None:
    """Validate FILE, then create a chat for every valid row, throttled, and write the
    results workbook.

    Exit 0 when every row is created (now or earlier), 1 when some are not, 2 when
    nothing was sent because FILE or an option is unusable, 3 on a refused API key,
    130 on Ctrl-C.
    """
    send(import_file, **options)


@click.command()
@shared_options
@sending_options
@chat_status_option
def update(**options: Any) -> None:
    """Change the chats FILE names by chat_id: their chat_status, assignee (id, or none
    to unassign) or assignee_email, department or department_name.

    Exit 0 when every row is updated (now or earlier) or has nothing to change, 1 when
    some are not, 2 when nothing was sent because FILE or an option is unusable, 3 on a
    refused API key, 130 on Ctrl-C.
    """
    send(update_file, **options)


@click.command()
@shared_options
@sending_options
def close(**options: Any) -> None:
    """Close every chat FILE names in its chat_id column, and change nothing else: on an
    import's results workbook, the way back from that import.

    Exit statuses as for update.
    """
    send(close_file, **options)


def send(
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
    settings, print the summary and exit with the status of docs/reference.md › Exit status."""
    with user_errors(), contextlib.ExitStack() as stack:
        status = None
        if chat_status is not None:
            status = parse_chat_status(chat_status, named="--chat-status")
        root, key = api_target(
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
            columns=parse_columns(columns),
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
            progress=pick_progress(no_progress),
            confirm=None if yes or not interactive else confirm,
            notify=lambda text: click.echo(text, err=True),
        )
        result = run_interruptible(job, settings, hooks)
    print_summary(result)
    if result.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if result.auth_failed:
        sys.exit(EXIT_AUTH)
    done = result.all_done and not result.declined and result.journal_error is None
    sys.exit(EXIT_OK if done else EXIT_INCOMPLETE)
