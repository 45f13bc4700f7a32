"""A run told to stop (Ctrl-C), as the stages that send requests see it: the customer
look-ups and creations (`lookups.customers`, `lookups.new_customers`) and the senders
(`send.pool`, `send.chats`, `send.conversations`, `send.changes`).

A stopped stage starts no new row or look-up. What is in flight may finish within
`STOP_GRACE` seconds; then every request still waiting for its turn at the rate limiter
is refused (`HelpCrunchClient.stop_waiting`): it has sent nothing, so nothing is lost, and
the run never sits out a long `Retry-After`. A back-off between two tries ends at once
(`pause`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.timing import Sleep

STOP_GRACE = 3.0
"""Seconds a stopped run lets what is in flight wait for its next turn at the rate limiter
(a search for it, a first message, a look-up's retry) before every wait there is
refused."""


@asynccontextmanager
async def waits_end_once_stopped(
    client: HelpCrunchClient,
    stop: anyio.Event | None,
    *,
    grace: float = STOP_GRACE,
    sleep: Sleep = anyio.sleep,
) -> AsyncIterator[None]:
    """While inside, once `stop` is set, wait `grace` seconds (through `sleep`), then make
    `client` refuse every wait at its rate limiter, now and later."""
    if stop is None:
        yield
        return

    async def end_waits() -> None:
        await stop.wait()
        await sleep(grace)
        client.stop_waiting()

    async with anyio.create_task_group() as watch:
        watch.start_soon(end_waits)
        yield
        watch.cancel_scope.cancel()


async def pause(seconds: float, *, stop: anyio.Event | None, sleep: Sleep = anyio.sleep) -> None:
    """Sleep `seconds`, or less when `stop` is set by then or meanwhile: no retry follows."""
    if stop is None:
        await sleep(seconds)
        return
    if stop.is_set():
        return
    async with anyio.create_task_group() as group:

        async def wake() -> None:
            await stop.wait()
            group.cancel_scope.cancel()

        group.start_soon(wake)
        await sleep(seconds)
        group.cancel_scope.cancel()
