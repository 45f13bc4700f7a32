"""`bulk-chats export`: the account's chats (filtered) to a workbook (docs/export.md)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import NoReturn

import click

from bulk_chats.checks.columns import chat_status_option
from bulk_chats.cli.options import (
    api_options,
    api_target,
    exit_with,
    terminal_hooks,
    user_errors,
)
from bulk_chats.errors import InputError
from bulk_chats.jobs.export_chats import ExportResult, export_chats
from bulk_chats.jobs.export_filters import parse_when
from bulk_chats.jobs.interrupt import run_interruptible
from bulk_chats.progress import limit_text
from bulk_chats.settings import DEFAULT_RATE, REPORTS_DIR, ExportFilters, ExportSettings

DATE_HELP = (
    "a date or a date-time (2026-10-01, 2026-10-01 09:30), local time unless it has an offset"
)


@click.command()
@click.option(
    "--status",
    "statuses",
    multiple=True,
    metavar="STATUS",
    help="Only chats of this status (new, opened, pending, on hold, no communication, "
    "closed); repeatable: any of them.",
)
@click.option(
    "--assignee", type=click.IntRange(min=1), metavar="ID", help="Only this agent's chats."
)
@click.option(
    "--assignee-email", metavar="EMAIL", help="Only the chats of the agent with this email."
)
@click.option(
    "--department", type=click.IntRange(min=1), metavar="ID", help="Only this department's chats."
)
@click.option(
    "--department-name", metavar="NAME", help="Only the chats of the department so named."
)
@click.option(
    "--customer-email", metavar="EMAIL", help="Only the chats of the customer(s) with this email."
)
@click.option(
    "--customer-user-id", metavar="USERID", help="Only the chats of the customer with this userId."
)
@click.option("--since", metavar="DATE", help=f"Only chats created at or after DATE: {DATE_HELP}.")
@click.option("--until", metavar="DATE", help=f"Only chats created before DATE: {DATE_HELP}.")
@click.option(
    "--messages",
    is_flag=True,
    help="Add a sheet of every chat's messages (a request a chat, more for long ones).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where the workbook goes (.xlsx). Default: reports/chats-export-<YYYYmmdd-HHMMSS>.xlsx.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=1, min_open=False),
    default=None,
    help=f"Requests per minute, all requests counted.  [default: {DEFAULT_RATE}, or the "
    "account's limit an earlier run learned for this API root]",
)
@api_options
@click.option(
    "--quirks",
    is_flag=True,
    hidden=True,  # for the tests: the stand-in answers as the API's other revisions do
    help="With --sandbox: answer as the API documentation's other revisions do.",
)
@click.option("--yes", "-y", is_flag=True, help="No confirmation prompt.")
@click.option("--no-progress", is_flag=True, help="No progress bar or progress lines.")
def export(
    statuses: tuple[str, ...],
    assignee: int | None,
    assignee_email: str | None,
    department: int | None,
    department_name: str | None,
    customer_email: str | None,
    customer_user_id: str | None,
    since: str | None,
    until: str | None,
    messages: bool,
    out: Path | None,
    rate: float | None,
    base_url: str | None,
    api_key_file: Path | None,
    sandbox: bool,
    quirks: bool,
    yes: bool,
    no_progress: bool,
) -> NoReturn:
    """Write the account's chats to a workbook that update and close take back: every
    chat, or those the filters (joined with AND) name, oldest first.

    Exit 0 when every chat asked for is in the workbook, 1 when it is partial, 2 when
    nothing was read because an option is unusable or a name matches nothing, 3 on a
    refused API key, 130 on Ctrl-C (the chats read until then are written).
    """
    with user_errors(), contextlib.ExitStack() as stack:
        filters = ExportFilters(
            statuses=tuple(
                dict.fromkeys(chat_status_option(s, named="--status") for s in statuses)
            ),
            assignee=assignee,
            assignee_email=_one_of("--assignee", assignee, "--assignee-email", assignee_email),
            department=department,
            department_name=_one_of(
                "--department", department, "--department-name", department_name
            ),
            customer_email=_one_of(
                "--customer-user-id", customer_user_id, "--customer-email", customer_email
            ),
            customer_user_id=_text("--customer-user-id", customer_user_id),
            since=parse_when(since, "--since"),
            until=parse_when(until, "--until"),
        )
        if filters.since and filters.until and filters.since >= filters.until:
            raise InputError("--since must come before --until")
        root, key = api_target(
            stack,
            sandbox=sandbox,
            base_url=base_url,
            api_key_file=api_key_file,
            rate=rate or DEFAULT_RATE,
            quirks=quirks,
            history=True,
        )
        settings = ExportSettings(
            filters=filters,
            messages=messages,
            out=out,
            rate=rate,
            base_url=root,
            api_key=key,
            reports_dir=REPORTS_DIR,
        )
        hooks = terminal_hooks(no_progress=no_progress, yes=yes)
        result = run_interruptible(export_chats, settings, hooks)
    _print_summary(result)
    exit_with(result)


def _one_of(id_option: str, given: object, name_option: str, name: str | None) -> str | None:
    """`name`, when its id option is not given too."""
    if given is not None and name is not None:
        raise InputError(f"give {id_option} or {name_option}, not both")
    return _text(name_option, name)


def _text(option: str, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise InputError(f"{option}: is blank")
    return None if value is None else value.strip()


def _print_summary(result: ExportResult) -> None:
    messages = "" if result.messages is None else f", {result.messages} messages"
    click.echo(f"{result.chats} chats exported{messages}", err=True)
    if result.partial:
        click.echo(f"partial: {result.partial}", err=True)
    if result.learned_limit is not None:
        click.echo(limit_text(result.learned_limit), err=True)
    click.echo(f"export: {result.out}", err=True)
