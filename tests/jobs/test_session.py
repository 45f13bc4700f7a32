"""The run's limiter: which rate it starts at and where a learned limit goes."""

from __future__ import annotations

import pytest

from bulk_chats.jobs.session import open_limiter
from bulk_chats.journal.journal import Journal
from bulk_chats.progress import NullProgress
from bulk_chats.settings import DEFAULT_RATE

pytestmark = pytest.mark.anyio


class Heard(NullProgress):
    """A progress sink that keeps the limits it is told of."""

    def __init__(self) -> None:
        self.limits: list[tuple[float | None, bool]] = []

    def limit_learned(self, rate: float | None, *, confirmed: bool) -> None:
        self.limits.append((rate, confirmed))


def test_without_a_rate_the_limit_an_earlier_run_learned_is_used(journal: Journal) -> None:
    """No --rate: the remembered limit of this API root, from the first request."""
    journal.limits.remember(60.0)
    limiter = open_limiter(None, journal, NullProgress())
    assert (limiter.rate, limiter.learned_limit) == (60.0, 60.0)


def test_a_rate_given_wins_over_the_remembered_limit(journal: Journal) -> None:
    """--rate is what the user asked for: the remembered limit is not applied."""
    journal.limits.remember(60.0)
    limiter = open_limiter(300.0, journal, NullProgress())
    assert (limiter.rate, limiter.learned_limit) == (300.0, None)


def test_nothing_remembered_starts_at_the_default_rate(journal: Journal) -> None:
    """A first run against an API root starts at HelpCrunch's default limit."""
    assert open_limiter(None, journal, NullProgress()).rate == DEFAULT_RATE


async def test_a_limit_confirmed_mid_run_is_journalled_and_shown_at_once(
    journal: Journal,
) -> None:
    """A 429 with Retry-After after five accepted requests teaches a limit the API confirmed:
    the journal has it at once (a killed run keeps it) and progress is told."""
    heard = Heard()
    limiter = open_limiter(6000.0, journal, heard)
    for _ in range(5):
        await limiter.acquire()
    limiter.throttled(60.0)
    assert heard.limits == [(5, True)]
    assert journal.limits.learned() == 5.0


async def test_a_provisional_limit_is_shown_but_never_remembered(journal: Journal) -> None:
    """A 429 without Retry-After teaches a limit the API has not confirmed: progress is told
    so, and the journal keeps the limit an earlier run confirmed, not this one."""
    journal.limits.remember(600.0)
    heard = Heard()
    limiter = open_limiter(6000.0, journal, heard)
    for _ in range(5):
        await limiter.acquire()
    limiter.throttled(None)
    assert heard.limits == [(5, False)]
    assert journal.limits.learned() == 600.0
