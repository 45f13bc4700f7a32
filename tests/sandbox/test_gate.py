"""The sandbox's gate: the key, the rate limit, latency and faults, around any endpoint."""

from __future__ import annotations

import httpx
import pytest

from bulk_chats.sandbox import AGENTS, CUSTOMERS, DEPARTMENTS, Faults, SandboxConfig
from bulk_chats.sandbox.config import PROBE_GAP
from tests.sandbox import test_app as test_sandbox
from tests.sandbox.test_app import (
    AGENT,
    APP,
    CHAT,
    DEPARTMENT,
    KEY,
    FakeClock,
    FakeSleep,
    client,
    errors,
    make_app,
)

clock = test_sandbox.clock


# --- authentication ---------------------------------------------------------------------

UNAUTHORIZED = errors(("unauthorized", "Unauthorized"))


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer ", "Bearer wrong", f"Basic {KEY}", f"Bearer {KEY}x"]
)
@pytest.mark.anyio
async def test_anything_but_the_configured_key_gets_401(header: str | None) -> None:
    """With a key configured, a missing, malformed or different key answers 401."""
    app = make_app(api_key=KEY)
    headers = {} if header is None else {"Authorization": header}
    async with client(app, key=None) as c:
        response = await c.get("/agents", headers=headers)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


@pytest.mark.anyio
async def test_without_a_configured_key_any_bearer_key_passes_but_none_does_not() -> None:
    """With no key configured, any non-empty bearer key works and a missing one is 401."""
    app = make_app()
    async with client(app, key="anything") as c:
        assert (await c.get("/agents")).status_code == 200
    async with client(app, key=None) as c:
        assert (await c.get("/agents")).status_code == 401


@pytest.mark.anyio
async def test_the_configured_key_passes() -> None:
    """The configured key is accepted, and the config's repr does not show it."""
    app = make_app(api_key=KEY)
    async with client(app) as c:
        assert (await c.post("/chats", json=CHAT)).status_code == 201
    assert KEY not in repr(app.config)


@pytest.mark.anyio
async def test_a_key_revoked_mid_run_gets_401_from_then_on_and_each_is_counted() -> None:
    """With `revoke_key_after=2` the first two requests pass and every later one is 401,
    each counted in `unauthorized`; a wrong key before that is counted too."""
    app = make_app(api_key=KEY, revoke_key_after=2)
    async with client(app, key="wrong") as c:
        assert (await c.get("/agents")).status_code == 401
    async with client(app) as c:
        statuses = [(await c.get("/agents")).status_code for _ in range(4)]
    assert statuses == [200, 200, 401, 401]
    assert app.state.unauthorized == 3
    assert app.state.snapshot()["unauthorized"] == 3


# --- the rate limit ---------------------------------------------------------------------

TOO_MANY = errors(("too_many_requests", "Too many requests"))


@pytest.mark.anyio
async def test_rate_limit_answers_429_within_the_window_and_recovers_after(
    clock: FakeClock,
) -> None:
    """Past `rate` requests in 60 s: 429 with Retry-After, nothing stored; then room again."""
    app = make_app(clock, rate=3)
    async with client(app) as c:
        for _ in range(2):
            assert (await c.post("/chats", json=CHAT)).status_code == 201
            clock.now += 10
        assert (await c.get("/agents")).status_code == 200  # every endpoint counts
        clock.now += 5
        refused = await c.post("/chats", json=CHAT)
        assert refused.status_code == 429
        assert refused.json() == TOO_MANY
        assert refused.headers["Retry-After"] == "35"  # the first request leaves at t=60
        assert len(app.state.chats) == 2
        clock.now += 35
        assert (await c.post("/chats", json=CHAT)).status_code == 201
        assert (await c.post("/chats", json=CHAT)).status_code == 429
    assert app.state.rate_limited == 2
    assert app.state.requests["POST /v1/chats"] == 5
    assert len(app.state.chats) == 3


@pytest.mark.anyio
async def test_retry_after_can_be_left_out(clock: FakeClock) -> None:
    """With retry_after_header off, a 429 carries no Retry-After, as the real API documents none."""
    app = make_app(clock, rate=1, retry_after_header=False)
    async with client(app) as c:
        await c.get("/agents")
        refused = await c.get("/agents")
    assert refused.status_code == 429
    assert "Retry-After" not in refused.headers


@pytest.mark.anyio
async def test_rate_limit_window_can_be_shortened(clock: FakeClock) -> None:
    """With window=2, `rate` counts per 2 s: Retry-After and the room again follow it."""
    app = make_app(clock, rate=2, window=2.0)
    async with client(app) as c:
        assert (await c.get("/agents")).status_code == 200
        clock.now += 0.5
        assert (await c.get("/agents")).status_code == 200
        refused = await c.get("/agents")
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "2"  # 1.5 s until the first leaves, rounded up
        clock.now += 1.5
        assert (await c.get("/agents")).status_code == 200
    assert app.state.rate_limited == 1


@pytest.mark.anyio
async def test_drop_probe_loses_the_answer_of_the_first_request_after_a_429_once(
    clock: FakeClock,
) -> None:
    """With `drop_probe`, the first request admitted PROBE_GAP or more after the first 429
    is stored and its answer dropped; requests before it and after it are answered."""
    app = make_app(clock, rate=1, window=2.0, faults=Faults(drop_probe=True))
    async with client(app) as c:
        assert (await c.post("/chats", json=CHAT)).status_code == 201
        assert (await c.post("/chats", json=CHAT)).status_code == 429
        clock.now += PROBE_GAP / 2
        assert (await c.post("/chats", json=CHAT)).status_code == 429  # in flight then
        clock.now += 2.0
        with pytest.raises(httpx.RemoteProtocolError):
            await c.post("/chats", json=CHAT)
        clock.now += 2.0
        assert (await c.post("/chats", json=CHAT)).status_code == 201
    assert len(app.state.chats) == 3
    assert app.state.faults == {"drop_probe": 1}


@pytest.mark.parametrize("window", [0.0, -1.0, float("nan")])
def test_a_window_that_is_not_positive_is_refused(window: float) -> None:
    """A rate window of zero, negative or NaN seconds raises ValueError."""
    with pytest.raises(ValueError, match="window must be seconds > 0"):
        SandboxConfig(window=window)


@pytest.mark.anyio
async def test_refused_requests_do_not_use_up_the_rate(clock: FakeClock) -> None:
    """A 401 or a 429 does not take a place in the window."""
    app = make_app(clock, rate=2, api_key=KEY)
    async with client(app, key="wrong") as c:
        assert (await c.get("/agents")).status_code == 401
    async with client(app) as c:
        statuses = [(await c.get("/agents")).status_code for _ in range(4)]
        clock.now += 60
        assert (await c.get("/agents")).status_code == 200
    assert statuses == [200, 200, 429, 429]


# --- latency ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_latency_is_waited_before_each_answer() -> None:
    """A fixed latency is waited once per /v1 request; a range draws within its bounds."""
    fixed, ranged = FakeSleep(), FakeSleep()
    async with client(make_app(sleep=fixed, latency=0.25)) as c:
        await c.get("/agents")
        await c.post("/chats", json=CHAT)
    async with client(make_app(sleep=ranged, latency=(0.1, 0.2))) as c:
        for _ in range(20):
            await c.get("/agents")
    assert fixed.waits == [0.25, 0.25]
    assert len(ranged.waits) == 20
    assert all(0.1 <= w <= 0.2 for w in ranged.waits)
    assert len(set(ranged.waits)) > 1


# --- faults -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "stored"),
    [("error_before", 500, 0), ("unavailable", 503, 0), ("error_after", 500, 1)],
)
@pytest.mark.anyio
async def test_server_error_faults(kind: str, status: int, stored: int) -> None:
    """5xx faults answer their status; only error_after has stored the chat."""
    app = make_app(faults=Faults(**{kind: 1.0}))
    async with client(app) as c:
        response = await c.post("/chats", json=CHAT)
    assert response.status_code == status
    assert "invalid_request" not in response.text
    assert len(app.state.chats) == stored
    assert app.state.faults == {kind: 1}


@pytest.mark.parametrize(("kind", "stored"), [("drop_before", 0), ("drop_after", 1)])
@pytest.mark.anyio
async def test_drop_faults_in_process_raise_what_httpx_raises_on_a_dropped_connection(
    kind: str, stored: int
) -> None:
    """Under ASGITransport a drop raises RemoteProtocolError; drop_after has stored the chat."""
    app = make_app(faults=Faults(**{kind: 1.0}))
    async with client(app) as c:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await c.post("/chats", json=CHAT)
    assert len(app.state.chats) == stored


@pytest.mark.anyio
async def test_slow_after_stores_then_holds_the_answer() -> None:
    """slow_after stores the chat and answers normally only after slow_seconds."""
    sleep = FakeSleep()
    app = make_app(sleep=sleep, faults=Faults(slow_after=1.0, slow_seconds=30))
    async with client(app) as c:
        response = await c.post("/chats", json=CHAT)
    assert response.status_code == 201
    assert sleep.waits == [30]
    assert len(app.state.chats) == 1


@pytest.mark.anyio
async def test_after_faults_do_not_strike_a_refused_request() -> None:
    """A request refused with 400 is answered normally even when an after-fault is drawn."""
    app = make_app(faults=Faults(error_after=1.0))
    async with client(app) as c:
        response = await c.post("/chats", json={"customer": "x", "application": APP})
    assert response.status_code == 400
    assert app.state.faults == {}


async def fault_trace(seed: int, requests: int = 60) -> list[str]:
    """What each of `requests` creates met under a mix of faults with `seed`."""
    faults = Faults(
        seed=seed,
        error_before=0.1,
        unavailable=0.1,
        drop_before=0.1,
        error_after=0.1,
        drop_after=0.1,
    )
    app = make_app(faults=faults)
    trace = []
    async with client(app) as c:
        for _ in range(requests):
            try:
                trace.append(str((await c.post("/chats", json=CHAT)).status_code))
            except httpx.RemoteProtocolError:
                trace.append("dropped")
    return trace


@pytest.mark.anyio
async def test_seeded_faults_repeat_exactly() -> None:
    """The same seed gives the same faults in the same order; another seed does not."""
    first, again, other = await fault_trace(1), await fault_trace(1), await fault_trace(2)
    assert first == again
    assert first != other
    assert {"201", "500", "503", "dropped"} <= set(first)


@pytest.mark.parametrize(
    "faults",
    [
        {"error_before": 1.5},
        {"drop_after": -0.1},
        {"error_after": 0.6, "drop_after": 0.6},
        {"slow_seconds": -1},
        {"widget_chat": 0.5, "drop_after": 0.6},
    ],
)
def test_impossible_faults_are_refused(faults: dict[str, float]) -> None:
    """Probabilities outside [0, 1], adding up past 1, or a negative delay raise ValueError."""
    with pytest.raises(ValueError, match="must"):
        Faults(**faults)


@pytest.mark.anyio
async def test_faults_reach_messages_only_when_asked() -> None:
    """Faults hit POST /v1/messages only with Faults(messages=True)."""
    quiet = make_app(faults=Faults(error_before=1.0))
    loud = make_app(faults=Faults(error_before=1.0, messages=True))
    for app in (quiet, loud):
        chat = app.state.add_chat(
            customer=CUSTOMERS[0], application=APP, assignee=None, department=None, payload={}
        )
        async with client(app) as c:
            response = await c.post(
                "/messages", json={"chat": chat.id, "text": "Hi", "type": "message"}
            )
        assert response.status_code == (500 if app is loud else 200)


# --- faults on customers and updates ---------------------------------------------------


@pytest.mark.anyio
async def test_faults_reach_customers_and_updates_only_when_asked() -> None:
    """drop_after on customers/updates stores the customer or applies the change, then drops."""
    quiet = make_app(faults=Faults(drop_after=1.0))
    loud = make_app(faults=Faults(drop_after=1.0, customers=True, updates=True))
    for app in (quiet, loud):
        chat = app.state.add_chat(
            customer=CUSTOMERS[0], application=APP, assignee=None, department=None, payload={}
        )
        calls = [
            ("POST", "/customers", {"email": "new@example.com"}),
            ("PUT", "/chats/status", {"id": chat.id, "status": "closed"}),
            ("PUT", "/chats/assignee", {"id": chat.id, "assignee": AGENT}),
            ("PUT", "/chats/department", {"id": chat.id, "department": DEPARTMENT}),
        ]
        async with client(app) as c:
            for method, path, body in calls:
                if app is quiet:
                    assert (await c.request(method, path, json=body)).status_code in (200, 201)
                else:
                    with pytest.raises(httpx.RemoteProtocolError):
                        await c.request(method, path, json=body)
        assert len(app.state.created_customers) == 1
        assert (chat.status, chat.assignee, chat.department) == (
            "closed",
            AGENTS[0],
            DEPARTMENTS[0],
        )
    assert loud.state.faults == {"drop_after": 4}
    assert quiet.state.faults == {}


@pytest.mark.anyio
async def test_before_faults_on_updates_change_nothing() -> None:
    """error_before on an update answers 500 and leaves the chat as it was."""
    app = make_app(faults=Faults(error_before=1.0, updates=True))
    chat = app.state.add_chat(
        customer=CUSTOMERS[0], application=APP, assignee=None, department=None, payload={}
    )
    async with client(app) as c:
        response = await c.put("/chats/status", json={"id": chat.id, "status": "closed"})
    assert response.status_code == 500
    assert (chat.status, app.state.changes) == ("empty", [])
