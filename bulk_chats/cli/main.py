"""The command line's entry point: the `bulk-chats` group and its commands.

`cli/options.py` holds what the commands share; `cli/runs.py` the commands that read a
sheet, `cli/export.py` the one that writes the account's chats to one, `cli/servers.py`
those that serve.
"""

from __future__ import annotations

import click

from bulk_chats.cli.export import export
from bulk_chats.cli.runs import close, import_, update, validate
from bulk_chats.cli.servers import sandbox, ui


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bulk-chats")
def cli() -> None:
    """Create HelpCrunch chats in bulk from a CSV or Excel sheet.

    Try it with no account: bulk-chats import sample_data/chats.csv --sandbox
    """


for command in (validate, import_, update, close, export, sandbox, ui):
    cli.add_command(command)


def main() -> None:
    """The console script's entry point."""
    cli(prog_name="bulk-chats")
