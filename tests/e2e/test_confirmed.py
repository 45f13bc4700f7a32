"""Trust only what the API confirmed, end to end: a lost answer never freezes the rate,
repeats a message, or passes for a change that holds.

Each test runs the tool over loopback against a sandbox served from a thread of this
process, with its documented answers and with `quirks`, and meets the fault that once
fooled it: a probe of the rate window whose answer is dropped; changes applied whose
answers are lost; a look-up of a chat's messages that cannot be read; a run killed with
answers on the way; Ctrl-C while customers wait to be created; a journal that fills up.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bulk_chats.jobs.import_chats import import_file
from bulk_chats.journal.journal import Journal, journal_path, scope_for
from bulk_chats.sandbox import SandboxApp, SandboxConfig, SandboxState, Seed, run_in_thread
from bulk_chats.sandbox.gate import DROP_CONNECTION
from bulk_chats.settings import ApiKey, Settings
from tests.e2e.test_durability import HEADER, valid_rows
from tests.sheets import write_csv

KEY = "confirmed-test-key"


def settings_for(
    tmp_path: Path, source: Path, base_url: str, *, rate: float | None, **more: Any
) -> Settings:
    """The settings of `bulk-chats import` in `tmp_path`, its results and journal there."""
    return Settings(
        input_path=source,
        out=tmp_path / f"{source.stem}-results.xlsx",
        rate=rate,
        base_url=base_url,
        api_key=ApiKey(KEY),
        reports_dir=tmp_path / "reports",
        **more,
    )


# --- 1. a probe whose answer is lost ----------------------------------------------------


class DropsTheProbe(SandboxApp):
    """The sandbox, dropping the answer of the first request that arrives a second or more
    after its first 429: the rate limiter's probe of the window (it goes `DEFAULT_PAUSE`
    after the 429 that taught the limit), counted and then cut off unanswered."""

    first_429: float | None = None
    dropped: float | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        now = time.monotonic()
        if (
            scope["type"] == "http"
            and scope["path"].startswith("/v1/")
            and self.first_429 is not None
            and self.dropped is None
            and now - self.first_429 >= 1.0
        ):
            self.dropped = now
            drop = scope["extensions"][DROP_CONNECTION]

            async def unanswered(message: Any) -> None:
                if message["type"] == "http.response.start":
                    drop()

            send = unanswered
        refused = self.state.rate_limited
        await super().__call__(scope, receive, send)
        if self.first_429 is None and self.state.rate_limited > refused:
            self.first_429 = time.monotonic()


@pytest.mark.anyio
async def test_a_lost_probe_never_leaves_the_rate_crawling(tmp_path: Path, quirks: bool) -> None:
    """Told twice an account's limit of 100 requests in any 5 s (1,200 a minute), no
    Retry-After, the probe of the window's length dropped unanswered: the probe goes again,
    the limit learned is confirmed at half the true one or more, the journal remembers it,
    and a run after it starts there and meets no 429."""
    config = SandboxConfig(
        api_key=KEY, rate=100, window=5.0, retry_after_header=False, quirks=quirks
    )
    app = DropsTheProbe(config, SandboxState(Seed.generated(customers=200)))
    first = write_csv(tmp_path / "first.csv", HEADER, valid_rows(130, messages=False))
    with run_in_thread(app) as sandbox:
        result = await import_file(settings_for(tmp_path, first, sandbox.base_url, rate=2400))
        assert result.all_done, result.counts
        assert app.dropped is not None, "the probe was never dropped"
        assert result.learned_limit is not None
        assert result.learned_limit >= 600
        assert result.limit_confirmed
        with Journal.open(
            journal_path(tmp_path / "reports"), scope=scope_for(sandbox.base_url)
        ) as journal:
            assert journal.limits.learned() == result.learned_limit

        refused = sandbox.state.rate_limited
        second = write_csv(tmp_path / "second.csv", HEADER, valid_rows(20, messages=False))
        again = await import_file(
            settings_for(tmp_path, second, sandbox.base_url, rate=None, fresh=True)
        )
        assert again.all_done, again.counts
        assert sandbox.state.rate_limited == refused
