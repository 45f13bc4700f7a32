"""The two-stage Ctrl-C of a run from a terminal (the second one, which ends the process,
is pinned end to end in `test_durability`)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import anyio

from bulk_chats.jobs.hooks import Hooks
from bulk_chats.jobs.interrupt import STOPPING, run_interruptible
from bulk_chats.settings import Settings


def test_the_first_ctrl_c_sets_stop_says_so_and_lets_the_run_finish() -> None:
    """The first SIGINT sets the run's stop event and notifies `STOPPING`; the run goes on
    to its end and its result comes back, and SIGINT is Python's own again afterwards."""
    notices: list[str] = []
    finished = object()

    async def job(settings: Settings, hooks: Hooks) -> Any:
        stop = hooks.stop
        assert stop is not None
        assert not stop.is_set()
        os.kill(os.getpid(), signal.SIGINT)
        with anyio.fail_after(10):
            await stop.wait()
        hooks.notify("the run's own notice")
        return finished

    result = run_interruptible(
        job, Settings(input_path=Path("rows.csv")), Hooks(notify=notices.append)
    )

    assert result is finished
    assert notices == [f"\n{STOPPING}", "the run's own notice"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
