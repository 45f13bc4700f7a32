"""The shared rate limiter: even pacing, 429 push-back, the learned limit, concurrency."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import anyio
import anyio.lowlevel
import pytest

from bulk_chats.api.limiter import (
    CHECK_INTERVAL,
    DECREASE_FACTOR,
    DEFAULT_PAUSE,
    LOST_PROBE_PAUSE,
    MAX_CONCURRENCY,
    MIN_CONCURRENCY,
    MIN_RATE_FRACTION,
    PROBE_POLL,
    WINDOW,
    WINDOW_MARGIN,
    RateLimiter,
    default_concurrency,
)
from tests.fakes import FakeTime


def limiter_at(rate: float, fake: FakeTime) -> RateLimiter:
    return RateLimiter(rate, clock=fake.clock, sleep=fake.sleep)


@pytest.mark.anyio
async def test_paces_evenly_from_the_first_request(fake: FakeTime) -> None:
    """N acquires at rate R go at 0, 60/R, 2·60/R, … with no initial burst."""
    limiter = limiter_at(120, fake)
    times = [await limiter.acquire() for _ in range(5)]
    assert times == [0.0, 0.5, 1.0, 1.5, 2.0]


@pytest.mark.anyio
async def test_concurrent_tasks_share_one_schedule(fake: FakeTime) -> None:
    """Tasks acquiring at once get distinct slots, evenly spaced, in arrival order."""
    limiter = limiter_at(60, fake)
    granted: list[tuple[int, float]] = []

    async def take(n: int) -> None:
        granted.append((n, await limiter.acquire()))

    async with anyio.create_task_group() as group:
        for n in range(6):
            group.start_soon(take, n)
    assert [t for _, t in granted] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert [n for n, _ in granted] == sorted(n for n, _ in granted)


@pytest.mark.anyio
async def test_idle_time_does_not_build_up_a_burst(fake: FakeTime) -> None:
    """After a quiet spell the next requests are still spaced, not sent in a burst."""
    limiter = limiter_at(120, fake)
    await limiter.acquire()
    fake.now = 100.0
    times = [await limiter.acquire() for _ in range(3)]
    assert times == [100.0, 100.5, 101.0]


@pytest.mark.anyio
async def test_a_sleep_that_wakes_late_does_not_shift_later_slots(fake: FakeTime) -> None:
    """Timer overshoot delays only its own request: later slots stay on the 60/R grid."""

    async def oversleep(seconds: float) -> None:
        await fake.sleep(seconds + 0.01)

    limiter = RateLimiter(120, clock=fake.clock, sleep=oversleep)
    times = [await limiter.acquire() for _ in range(5)]
    assert times == pytest.approx([0.0, 0.51, 1.01, 1.51, 2.01])


@pytest.mark.anyio
async def test_a_stall_longer_than_an_interval_restarts_the_schedule(fake: FakeTime) -> None:
    """A wake-up a whole interval late counts the next slot from then: no catch-up burst."""
    stalls = [2.0]

    async def stall_once(seconds: float) -> None:
        await fake.sleep(seconds + (stalls.pop() if stalls else 0.0))

    limiter = RateLimiter(120, clock=fake.clock, sleep=stall_once)
    times = [await limiter.acquire() for _ in range(4)]
    assert times == [0.0, 2.5, 3.0, 3.5]


@pytest.mark.anyio
async def test_no_more_than_rate_requests_in_any_window_and_a_margin(fake: FakeTime) -> None:
    """At the limit, request rate+1 waits WINDOW + WINDOW_MARGIN after the first, not WINDOW."""
    limiter = limiter_at(4, fake)
    times = [await limiter.acquire() for _ in range(7)]
    shifted = WINDOW + WINDOW_MARGIN
    assert times == pytest.approx([0, 15, 30, 45, shifted, shifted + 15, shifted + 30])
    for n in range(len(times) - 4):
        assert times[n + 4] - times[n] >= WINDOW + WINDOW_MARGIN


@pytest.mark.anyio
async def test_retry_after_is_honoured_in_full(fake: FakeTime) -> None:
    """A 429 with Retry-After holds the next request exactly that long, even a long one."""
    limiter = limiter_at(120, fake)
    await limiter.acquire()
    assert limiter.throttled(90.0) == 90.0
    assert await limiter.acquire() == 90.0


@pytest.mark.anyio
async def test_a_429_that_teaches_nothing_slows_down_blindly(fake: FakeTime) -> None:
    """A 429 when nothing was accepted in the last minute pauses, then paces lower."""
    limiter = limiter_at(120, fake)
    await limiter.acquire()
    assert limiter.throttled(10.0, sent_at=0.0) == 10.0
    assert limiter.rate == 120 * DECREASE_FACTOR
    assert limiter.learned_limit is None
    times = [await limiter.acquire() for _ in range(2)]
    assert times == [10.0, pytest.approx(10.0 + 60 / (120 * DECREASE_FACTOR))]


@pytest.mark.anyio
async def test_a_waiting_request_sees_a_later_push_back(fake: FakeTime) -> None:
    """A request already waiting for its slot also waits out a 429 that comes meanwhile."""
    pushed = False

    async def sleep_then_throttle(seconds: float) -> None:
        nonlocal pushed
        if not pushed:
            pushed = True
            limiter.throttled(30.0)
        await fake.sleep(seconds)

    limiter = RateLimiter(60, clock=fake.clock, sleep=sleep_then_throttle)
    await limiter.acquire()
    assert await limiter.acquire() == 30.0
    assert fake.sleeps == [1.0, 29.0]


def test_429_without_retry_after_pauses_and_doubles(fake: FakeTime) -> None:
    """Without Retry-After the pause is DEFAULT_PAUSE, doubling per 429 in a row until a success."""
    limiter = limiter_at(120, fake)
    assert limiter.throttled(None) == DEFAULT_PAUSE
    assert limiter.throttled(None) == 2 * DEFAULT_PAUSE
    limiter.succeeded()
    assert limiter.throttled(None) == DEFAULT_PAUSE


@pytest.mark.anyio
async def test_429s_of_requests_in_flight_do_not_double_the_pause(fake: FakeTime) -> None:
    """Without Retry-After, 429s for requests sent before the first one's slow-down keep
    the pause it started; the next 429 of a later request doubles it."""
    limiter = limiter_at(120, fake)
    in_flight = [await limiter.acquire() for _ in range(4)]
    fake.now = 2.0
    assert limiter.throttled(None, sent_at=in_flight[0]) == DEFAULT_PAUSE
    for sent_at in in_flight[1:]:
        fake.now += 0.1
        limiter.throttled(None, sent_at=sent_at)
    later = await limiter.acquire()
    assert later == 2.0 + DEFAULT_PAUSE
    assert limiter.throttled(None, sent_at=later) == 2 * DEFAULT_PAUSE


def test_rate_never_drops_below_the_floor(fake: FakeTime) -> None:
    """However many 429s come, the effective rate stays at or above the floor."""
    limiter = limiter_at(120, fake)
    for _ in range(50):
        limiter.throttled(0.0)
    assert limiter.rate == pytest.approx(120 * MIN_RATE_FRACTION)


@pytest.mark.anyio
async def test_429s_from_requests_sent_before_a_slow_down_do_not_slow_down_again(
    fake: FakeTime,
) -> None:
    """Blind slow-downs too: of 429s for requests in flight together, only the first counts."""
    limiter = limiter_at(120, fake)
    first = await limiter.acquire()
    second = await limiter.acquire()
    limiter.throttled(1.0, sent_at=first)
    limiter.throttled(1.0, sent_at=second)
    assert limiter.rate == 120 * DECREASE_FACTOR
    later = await limiter.acquire()
    limiter.throttled(1.0, sent_at=later)
    assert limiter.rate == pytest.approx(120 * DECREASE_FACTOR**2)


@pytest.mark.parametrize("rate", [0, -5, float("nan"), float("inf")])
def test_rejects_a_rate_that_is_not_a_positive_number(rate: float) -> None:
    """A rate or a remembered limit must be a positive, finite number a minute."""
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(rate)
    with pytest.raises(ValueError, match="learned limit"):
        RateLimiter(120, learned=rate)


@pytest.mark.parametrize(
    ("rate", "expected"),
    [(120, 7), (600, 31), (1, MIN_CONCURRENCY), (60, MIN_CONCURRENCY), (100_000, MAX_CONCURRENCY)],
)
def test_default_concurrency_keeps_the_rate_full_at_high_latency(rate: int, expected: int) -> None:
    """Enough requests in flight for 3 s answers at the rate, plus one, within 4..64."""
    assert default_concurrency(rate) == expected


Heard = tuple[float | None, bool]
"""A limit the limiter told of, and whether the API confirmed it."""


def keep(heard: list[Heard]) -> Callable[[float | None, bool], None]:
    """An `on_learned` listener that appends what it is told to `heard`."""
    return lambda limit, confirmed: heard.append((limit, confirmed))


async def send_and_accept(limiter: RateLimiter, requests: int) -> list[float]:
    """Grant `requests` requests one after another; the API accepts them all."""
    times = []
    for _ in range(requests):
        times.append(await limiter.acquire())
        limiter.succeeded(sent_at=times[-1])
    return times


@pytest.mark.anyio
async def test_a_429_at_the_limit_teaches_the_limit_and_the_limiter_runs_at_it(
    fake: FakeTime,
) -> None:
    """Told 120 where the account allows 60: the 429 after 60 accepted in 30 s teaches 60,
    confirmed by its Retry-After; from then on requests are paced a second apart and no 61
    go in any window and margin."""
    heard: list[Heard] = []
    limiter = RateLimiter(120, on_learned=keep(heard), clock=fake.clock, sleep=fake.sleep)
    accepted = await send_and_accept(limiter, 60)
    refused = await limiter.acquire()
    assert refused == 30.0
    assert limiter.throttled(30.0, sent_at=refused) == 30.0
    assert (limiter.learned_limit, limiter.rate, heard) == (60, 60, [(60, True)])
    assert limiter.limit_confirmed
    later = [await limiter.acquire() for _ in range(70)]
    # The window still holds the 60 accepted and the refused one: it frees at the second.
    assert later[0] == accepted[1] + WINDOW + WINDOW_MARGIN
    gaps = [b - a for a, b in itertools.pairwise(later)]
    # A second apart, but for the margin's slip once a minute.
    assert min(gaps) == pytest.approx(1.0)
    assert max(gaps) == pytest.approx(1.0 + WINDOW_MARGIN)
    granted = [*accepted, refused, *later]
    for n in range(1, len(granted) - 60):  # every window that ends after the lesson
        assert granted[n + 60] - granted[n] >= WINDOW + WINDOW_MARGIN


@pytest.mark.anyio
async def test_429s_of_requests_in_flight_do_not_lower_the_learned_limit(fake: FakeTime) -> None:
    """Told 240 where the account allows 120: the first 429 teaches 120 (provisional: no
    Retry-After); the 429s of the requests in flight then, answered out of order or a
    minute late, change nothing."""
    heard: list[Heard] = []
    limiter = RateLimiter(240, on_learned=keep(heard), clock=fake.clock, sleep=fake.sleep)
    await send_and_accept(limiter, 119)
    in_flight = [await limiter.acquire() for _ in range(9)]
    fake.now = 32.0
    limiter.throttled(None, sent_at=in_flight[1])
    assert limiter.learned_limit == 120
    # Sent before the one that taught the limit, refused after it: counted afresh, the
    # minute before it would hold 119 accepted requests.
    fake.now = 32.1
    limiter.throttled(None, sent_at=in_flight[0])
    fake.now = 95.0
    for sent_at in in_flight[2:]:
        limiter.throttled(None, sent_at=sent_at)
    assert (limiter.learned_limit, limiter.rate, heard) == (120, 120, [(120, False)])


@pytest.mark.anyio
async def test_a_remembered_limit_paces_at_it_from_the_first_request(fake: FakeTime) -> None:
    """A limiter started from a remembered limit of 60 while told 240 sends a second apart
    from the first request on, and the 61st waits for the first to leave the window."""
    limiter = RateLimiter(240, learned=60, clock=fake.clock, sleep=fake.sleep)
    assert (limiter.learned_limit, limiter.rate) == (60, 60)
    times = [await limiter.acquire() for _ in range(61)]
    assert times[:60] == [float(n) for n in range(60)]
    assert times[60] == WINDOW + WINDOW_MARGIN


@pytest.mark.anyio
async def test_retry_after_shows_a_window_shorter_than_a_minute(fake: FakeTime) -> None:
    """Told 240 where the server admits 20 in any 10 s: the 429 after 5 s carries
    Retry-After 5, so 20 accepted count over about 10.4 s, not a minute: 115 a minute."""
    limiter = limiter_at(240, fake)
    await send_and_accept(limiter, 20)
    refused = await limiter.acquire()
    fake.now = refused + 0.4
    assert limiter.throttled(5.0, sent_at=refused) == 5.0
    assert limiter.learned_limit == 115
    assert limiter.rate == 115
    assert await limiter.acquire() == pytest.approx(refused + 0.4 + 5.0)


@pytest.mark.anyio
async def test_a_remembered_limit_above_the_told_rate_keeps_the_told_rate(fake: FakeTime) -> None:
    """Knowing the account allows more never speeds the limiter past the rate it was told."""
    limiter = RateLimiter(60, learned=1200, clock=fake.clock, sleep=fake.sleep)
    assert limiter.rate == 60
    assert [await limiter.acquire() for _ in range(3)] == [0.0, 1.0, 2.0]


@pytest.mark.anyio
async def test_without_retry_after_a_probe_shows_a_window_shorter_than_a_minute(
    fake: FakeTime,
) -> None:
    """Told 240 where the server admits 20 in any 10 s and sends no Retry-After: the 429
    teaches 20, provisionally; after the pause one probe goes past the full window;
    answered 10.8 s after the first request, it shows 20 in at most 10.8 s (the server
    decided before its answer came), 111 a minute, confirmed, and the limiter paces at it."""
    heard: list[Heard] = []
    limiter = RateLimiter(240, on_learned=keep(heard), clock=fake.clock, sleep=fake.sleep)
    await send_and_accept(limiter, 20)
    refused = await limiter.acquire()
    fake.now = refused + 0.4
    assert limiter.throttled(None, sent_at=refused) == DEFAULT_PAUSE
    assert (limiter.learned_limit, limiter.limit_confirmed) == (20, False)
    probe = await limiter.acquire()
    assert probe == pytest.approx(refused + 0.4 + DEFAULT_PAUSE)
    fake.now = probe + 0.4
    limiter.succeeded(sent_at=probe)
    assert (limiter.learned_limit, heard) == (111, [(20, False), (111, True)])
    assert await limiter.acquire() == pytest.approx(probe + 60 / 111)


@pytest.mark.anyio
async def test_refused_probes_wait_longer_each_and_end_when_the_window_frees(
    fake: FakeTime,
) -> None:
    """Against the documented minute and no Retry-After, the probes after 5 s and 10 s more
    are refused without lowering the limit, and the next request waits for the window."""
    limiter = limiter_at(120, fake)
    accepted = await send_and_accept(limiter, 60)
    limiter.throttled(None, sent_at=await limiter.acquire())
    probes = []
    for _ in range(2):
        probes.append(await limiter.acquire())
        limiter.throttled(None, sent_at=probes[-1])
    assert probes == [30.0 + DEFAULT_PAUSE, 30.0 + 3 * DEFAULT_PAUSE]
    assert limiter.learned_limit == 60
    assert await limiter.acquire() == accepted[3] + WINDOW + WINDOW_MARGIN


@pytest.mark.anyio
async def test_a_request_waiting_for_the_window_goes_once_the_probe_is_accepted(
    fake: FakeTime,
) -> None:
    """A request held by the full window while the probe is out goes within PROBE_POLL of
    the probe's acceptance, not when the window would have freed."""
    answer_due: list[float] = []

    async def sleep_and_answer(seconds: float) -> None:
        await fake.sleep(seconds)
        if answer_due and fake.now >= answer_due[0]:
            limiter.succeeded(sent_at=answer_due.pop() - 0.4)

    limiter = RateLimiter(240, clock=fake.clock, sleep=sleep_and_answer)
    await send_and_accept(limiter, 20)
    refused = await limiter.acquire()
    limiter.throttled(None, sent_at=refused)
    probe = await limiter.acquire()
    answer_due.append(probe + 0.4)
    after = await limiter.acquire()
    # At the limit the probe showed: within a poll of its answer, or at its pace after it.
    assert probe + 0.4 <= after <= max(probe + 0.4 + PROBE_POLL, probe + limiter.interval)
    assert max(fake.sleeps) <= DEFAULT_PAUSE


@pytest.mark.anyio
async def test_a_probe_answered_after_the_window_freed_teaches_nothing(fake: FakeTime) -> None:
    """A probe with no answer by the time the window frees on its own is forgotten, and the
    lesson nothing confirmed is given up (the rate told again): its late success does not
    pass for a short window either."""
    limiter = limiter_at(120, fake)
    accepted = await send_and_accept(limiter, 60)
    limiter.throttled(None, sent_at=await limiter.acquire())
    probe = await limiter.acquire()
    assert await limiter.acquire() == pytest.approx(accepted[2] + WINDOW + WINDOW_MARGIN)
    limiter.succeeded(sent_at=probe)
    assert (limiter.learned_limit, limiter.rate) == (None, 120)


class Server:
    """The API's rate limit as the sandbox keeps it: at most `limit` requests accepted in
    any `window` seconds (a sliding window); refused ones do not count."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.admitted: list[float] = []
        self.refused = 0

    def admit(self, now: float) -> bool:
        self.admitted = [t for t in self.admitted if t > now - self.window]
        if len(self.admitted) < self.limit:
            self.admitted.append(now)
            return True
        self.refused += 1
        return False


async def drive(
    limiter: RateLimiter,
    server: Server,
    fake: FakeTime,
    *,
    until: float,
    lose: Callable[[float], bool] = lambda at: False,
) -> list[float]:
    """Requests one after another until `until` on the fake clock, each answered at once:
    lost when `lose(granted)` (the server still counts it, as after a dropped answer),
    else accepted or 429 (no Retry-After) as `server` says. The times of those accepted."""
    accepted = []
    while fake.now < until:
        granted = await limiter.acquire()
        lost = lose(granted)
        admitted = server.admit(granted)
        if lost:
            limiter.lost(sent_at=granted)
        elif admitted:
            accepted.append(granted)
            limiter.succeeded(sent_at=granted)
        else:
            limiter.throttled(None, sent_at=granted)
    return accepted


class LoseTheProbe:
    """Loses the answer of the first request after the first 429 (the window's probe), and
    of `more` after it, as a dropped connection would."""

    def __init__(self, server: Server, more: int = 0) -> None:
        self.server = server
        self.left = 1 + more

    def __call__(self, granted: float) -> bool:
        if self.server.refused and self.left:
            self.left -= 1
            return True
        return False


@pytest.mark.anyio
async def test_a_probe_whose_answer_is_lost_is_sent_again_and_the_rate_recovers(
    fake: FakeTime,
) -> None:
    """Told 2400 where the API admits 100 in any 5 s (1200 a minute), without Retry-After,
    the probe's answer lost: the probe goes again after LOST_PROBE_PAUSE, its acceptance
    confirms a limit of at least half the true one, and the run keeps to it."""
    heard: list[Heard] = []
    limiter = RateLimiter(2400, on_learned=keep(heard), clock=fake.clock, sleep=fake.sleep)
    server = Server(100, 5.0)
    accepted = await drive(limiter, server, fake, until=120.0, lose=LoseTheProbe(server))
    assert heard[0] == (100, False)
    assert limiter.limit_confirmed
    assert limiter.learned_limit is not None
    assert limiter.learned_limit >= 600
    per_minute = (len(accepted) - 1) / (accepted[-1] - accepted[0]) * 60
    assert per_minute >= 0.5 * 1200


@pytest.mark.anyio
async def test_lost_probes_back_off_doubling(fake: FakeTime) -> None:
    """Each probe whose answer is lost is sent again LOST_PROBE_PAUSE later, doubling."""
    limiter = limiter_at(2400, fake)
    server = Server(100, 5.0)
    lose = LoseTheProbe(server, more=2)
    granted: list[float] = []

    def lose_and_note(at: float) -> bool:
        lost = lose(at)
        if lost:
            granted.append(at)
        return lost

    await drive(limiter, server, fake, until=20.0, lose=lose_and_note)
    gaps = [b - a for a, b in itertools.pairwise(granted)]
    assert gaps == pytest.approx([LOST_PROBE_PAUSE, 2 * LOST_PROBE_PAUSE])


@pytest.mark.anyio
async def test_a_lesson_nothing_confirmed_is_given_up_when_the_window_frees(
    fake: FakeTime,
) -> None:
    """Every probe's answer lost: once the window frees on its own the provisional limit is
    given up (never held, never remembered) and the limiter runs at the rate told again."""
    heard: list[Heard] = []
    limiter = RateLimiter(2400, on_learned=keep(heard), clock=fake.clock, sleep=fake.sleep)
    server = Server(100, 5.0)
    lose = LoseTheProbe(server, more=1_000_000)
    await drive(limiter, server, fake, until=WINDOW + 5.0, lose=lose)
    assert heard[:2] == [(100, False), (None, False)]
    assert (limiter.learned_limit, limiter.rate) == (None, 2400)


@pytest.mark.anyio
async def test_probes_refused_until_the_window_frees_confirm_a_minute_count(
    fake: FakeTime,
) -> None:
    """Against the documented minute, probes are refused until the window frees on its
    own: the count is the limit, confirmed then."""
    heard: list[Heard] = []
    limiter = RateLimiter(240, on_learned=keep(heard), clock=fake.clock, sleep=fake.sleep)
    await drive(limiter, Server(120, WINDOW), fake, until=WINDOW + 40.0)
    assert heard == [(120, False), (120, True)]


@pytest.mark.anyio
async def test_a_check_costs_one_429_when_the_limit_holds(fake: FakeTime) -> None:
    """Long at a confirmed limit below the rate told, the limiter checks upward now and
    then: one request at a time ahead of the schedule, ended by a single 429 when the
    account allows no more; the limit and the rate stay."""
    limiter = limiter_at(120, fake)
    server = Server(60, WINDOW)
    await drive(limiter, server, fake, until=WINDOW + 40.0)
    assert (limiter.learned_limit, limiter.limit_confirmed) == (60, True)
    refused = server.refused
    await drive(limiter, server, fake, until=fake.now + 2 * CHECK_INTERVAL + 1.0)
    assert server.refused - refused == 2  # two checks, one 429 each
    assert (limiter.learned_limit, limiter.rate) == (60, 60)


@pytest.mark.anyio
async def test_a_check_finds_a_limit_raised_mid_run(fake: FakeTime) -> None:
    """Plans change: the account's limit doubles mid-run, and the next check finds it, at
    the cost of at most one 429, and the limiter runs at the new limit, confirmed."""
    heard: list[Heard] = []
    limiter = RateLimiter(240, on_learned=keep(heard), clock=fake.clock, sleep=fake.sleep)
    server = Server(60, WINDOW)
    await drive(limiter, server, fake, until=WINDOW + 40.0)
    assert heard[-1] == (60, True)
    server.limit = 120
    refused = server.refused
    await drive(limiter, server, fake, until=fake.now + CHECK_INTERVAL + 3 * WINDOW)
    assert server.refused - refused <= 1
    assert limiter.limit_confirmed
    assert limiter.learned_limit is not None
    assert limiter.learned_limit >= 110


@pytest.mark.anyio
async def test_a_check_never_goes_faster_than_the_rate_told(fake: FakeTime) -> None:
    """During a check, requests ahead of the schedule and paced ones together stay within
    the rate told: never more than it in any minute and margin."""
    limiter = limiter_at(120, fake)
    server = Server(60, WINDOW)
    await drive(limiter, server, fake, until=WINDOW + 40.0)
    server.limit = 1000
    start = fake.now
    granted: list[float] = []

    def note(at: float) -> bool:
        granted.append(at)
        return False

    await drive(limiter, server, fake, until=start + CHECK_INTERVAL + 3 * WINDOW, lose=note)
    for n in range(len(granted) - 120):
        assert granted[n + 120] - granted[n] >= WINDOW
