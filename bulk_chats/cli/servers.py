"""The commands that serve: `sandbox` (a local stand-in for the API) and `ui` (the page)."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from bulk_chats.cli.options import api_options, api_target, user_errors
from bulk_chats.settings import DEFAULT_RATE


@click.command()
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
    type=click.Choice(["messages", "customers", "updates", "reads"]),
    help="Inject the faults into POST /v1/messages, POST /v1/customers, the "
    "PUT /v1/chats/... endpoints or the reads (listings and searches) too; repeatable.",
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
    "--seed-chats",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Start with the chats of this JSON file, created in the past with their messages "
    "(see sample_data/history.json).",
)
@click.option(
    "--quirks",
    is_flag=True,
    help="Answer as the API documentation's other revisions do: string timestamps, new "
    "chats 'new', short pages, a wrong meta.total, a stray customer in every search, "
    "a chat's messages under 'messages'.",
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
    seed_chats: Path | None,
    quirks: bool,
) -> None:
    """Run a local stand-in for the HelpCrunch API on loopback until Ctrl-C."""
    from bulk_chats.sandbox import Faults, SandboxConfig, SandboxState, Seed, load_seed_chats, serve

    try:
        config = SandboxConfig(
            api_key=key,
            rate=rate,
            latency=parse_latency(latency),
            faults=Faults(seed=seed, **parse_faults(faults), **dict.fromkeys(fault_on, True)),
            retry_after_header=not no_retry_after,
            quirks=quirks,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    with user_errors():
        account = Seed.generated(customers=customers)
        if seed_chats is not None:
            account = replace(account, chats=load_seed_chats(seed_chats))
        state = SandboxState(account)
        serve(config, host=host, port=port, state=state, announce=lambda url: click.echo(url))


@click.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port on 127.0.0.1; 0 picks a free one (the printed URL shows it).",
)
@click.option("--no-browser", is_flag=True, help="Print the address; do not open a browser.")
@api_options
def ui(
    port: int, no_browser: bool, sandbox: bool, base_url: str | None, api_key_file: Path | None
) -> None:
    """Serve a local web page that validates, dry-runs and imports, until Ctrl-C.

    Prints `ui: <url>`; the URL carries a random token, without which the page refuses
    every request. The browser is opened on an owner-only file that redirects there, so
    the token is on no command line. Without a key in the environment or a file, the page
    asks for it. The first Ctrl-C stops a run in progress as in `import`.
    """
    import webbrowser

    from bulk_chats.ui import UiConfig, serve_ui

    with user_errors(), contextlib.ExitStack() as stack:
        root, key = api_target(
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


def parse_latency(text: str | None) -> float | tuple[float, float]:
    if not text:
        return 0.0
    try:
        low, _, high = text.partition("-")
        return (float(low), float(high)) if high else float(low)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not SECONDS or MIN-MAX", param_hint="--latency"
        ) from None


def parse_faults(pairs: tuple[str, ...]) -> dict[str, Any]:
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
