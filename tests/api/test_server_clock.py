"""The API's clock against ours, from the `Date` of its answers."""

from __future__ import annotations

import email.utils

import httpx
import pytest
import respx

from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.api.limiter import RateLimiter
from bulk_chats.api.server_clock import SAMPLES, ServerClock
from bulk_chats.errors import RateLimitedError
from bulk_chats.settings import ApiKey
from tests.fakes import API_ROOT, WALL0, FakeTime


def date(at: float) -> str:
    return email.utils.formatdate(at, usegmt=True)


def test_no_answer_yet_no_lead() -> None:
    assert ServerClock().lead is None


def test_the_lead_is_the_largest_of_the_answers_dates_less_their_arrival() -> None:
    """Each `Date` is the API's time when the answer was made, to the second: less the
    time it came, it is at most the lead; the largest is the closest."""
    clock = ServerClock()
    clock.observe(date(1_000_030.0), 1_000_000.4)  # made at 30.9 on its clock, came at .4
    clock.observe(date(1_000_031.0), 1_000_000.9)
    clock.observe(date(1_000_030.0), 1_000_000.2)
    assert clock.lead == pytest.approx(30.1)


@pytest.mark.parametrize("header", [None, "", "soon", "Tue, 08 Dec 2026 01:02:03"])
def test_a_date_absent_or_unreadable_or_without_its_zone_is_passed_over(
    header: str | None,
) -> None:
    clock = ServerClock()
    clock.observe(header, 1_000_000.0)
    assert clock.lead is None


def test_only_the_latest_answers_count() -> None:
    """A clock set anew is followed: the old answers' dates fall out."""
    clock = ServerClock()
    clock.observe(date(1_000_060.0), 1_000_000.0)
    for n in range(SAMPLES):
        clock.observe(date(1_000_000.0 + n), 1_000_000.0 + n)
    assert clock.lead == pytest.approx(0.0)


@pytest.mark.anyio
async def test_the_client_learns_the_lead_from_every_answer(
    api: respx.MockRouter, fake: FakeTime
) -> None:
    """A 429 and a 200, each with its `Date`: the client's server clock has both."""
    api.get("/agents").mock(
        side_effect=[
            httpx.Response(429, headers={"Date": date(WALL0 + 7)}, json={"errors": []}),
            httpx.Response(200, headers={"Date": date(WALL0 + 9)}, json={"data": []}),
        ]
    )
    async with HelpCrunchClient(
        API_ROOT,
        ApiKey("sk-test"),
        limiter=RateLimiter(60, clock=fake.clock, sleep=fake.sleep),
        transport=httpx.MockTransport(api.async_handler),
        wall_clock=lambda: WALL0,
    ) as client:
        with pytest.raises(RateLimitedError):
            await client.request("GET", "/agents")
        assert client.server_clock.lead == pytest.approx(7.0)
        await client.request("GET", "/agents")
        assert client.server_clock.lead == pytest.approx(9.0)
