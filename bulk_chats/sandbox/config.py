"""How a sandbox behaves: its key, rate limit, latency, quirks and the faults it injects.

The gate (`bulk_chats.sandbox.gate`) applies all of it but the quirks, which the endpoints
(`bulk_chats.sandbox.app`) apply.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import ClassVar

from bulk_chats.settings import DEFAULT_RATE

WINDOW_SECONDS = 60.0
"""The rate limit's default window: the rate is per minute."""

PROBE_GAP = 1.0
"""Seconds after the first 429 from which a request counts as a probe (`Faults.drop_probe`):
the requests in flight at the 429 come sooner, a client's probe of the window later."""


@dataclass(frozen=True, slots=True)
class Faults:
    """Which faults to inject, each a probability in [0, 1]; together at most 1.

    `seed` makes the sequence of faults repeatable. `slow_seconds` is how long `slow_after`
    holds its answer. `messages` extends the faults to `POST /v1/messages`, `customers` to
    `POST /v1/customers`, `updates` to the `PUT /v1/chats/...` endpoints (a change applied,
    then the fault), `reads` to the listings and searches (`GET /v1/chats`, a chat's
    messages, agents, departments, both searches: "after" faults lose an answer that
    changed nothing). `widget_chat` strikes `POST /v1/chats` only. `drop_probe` drops, once,
    the answer of the first request admitted `PROBE_GAP` seconds or more after the first
    429, whatever its endpoint: a client's probe of the rate window, lost.
    """

    seed: int = 0
    error_before: float = 0.0
    unavailable: float = 0.0
    drop_before: float = 0.0
    error_after: float = 0.0
    drop_after: float = 0.0
    slow_after: float = 0.0
    widget_chat: float = 0.0
    slow_seconds: float = 30.0
    messages: bool = False
    customers: bool = False
    updates: bool = False
    reads: bool = False
    drop_probe: bool = False

    KINDS: ClassVar[tuple[str, ...]] = (
        "error_before",
        "unavailable",
        "drop_before",
        "error_after",
        "drop_after",
        "slow_after",
    )
    """The faults of the connection and the server, which every endpoint can meet."""

    ALL_KINDS: ClassVar[tuple[str, ...]] = (*KINDS, "widget_chat")
    """`KINDS` and the customer's own widget chat, in the order one draw is matched
    against them."""

    def __post_init__(self) -> None:
        chances = [getattr(self, kind) for kind in self.ALL_KINDS]
        if any(not 0.0 <= p <= 1.0 for p in chances):
            raise ValueError("fault probabilities must be between 0 and 1")
        if sum(chances) > 1.0 + 1e-9:
            raise ValueError("fault probabilities must add up to at most 1")
        if self.slow_seconds < 0:
            raise ValueError("slow_seconds must not be negative")

    def draw(self, rng: random.Random) -> str | None:
        """The fault for one request (one number drawn from `rng`), or None."""
        point = rng.random()
        for kind in self.ALL_KINDS:
            point -= getattr(self, kind)
            if point < 0:
                return kind
        return None


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """How a sandbox behaves.

    `api_key` None accepts any non-empty bearer key; `revoke_key_after` revokes it once that
    many `/v1` requests passed authentication, so every later one gets 401 (a key revoked
    mid-run). `rate` is in requests per `window`
    seconds (per minute by default), None for no limit; a short `window` lets tests see
    429s come and go in seconds. `latency` is seconds added before each `/v1` answer, fixed
    or drawn uniformly from a (min, max) range. `quirks` answers as the documentation's
    other revisions do (see the module docstring).
    """

    api_key: str | None = field(default=None, repr=False)
    rate: int | None = DEFAULT_RATE
    latency: float | tuple[float, float] = 0.0
    faults: Faults = field(default_factory=Faults)
    retry_after_header: bool = True
    window: float = WINDOW_SECONDS
    quirks: bool = False
    revoke_key_after: int | None = None

    def __post_init__(self) -> None:
        if self.revoke_key_after is not None and self.revoke_key_after < 0:
            raise ValueError("revoke_key_after must be a number of requests >= 0, or None")
        if self.rate is not None and self.rate < 1:
            raise ValueError("rate must be at least 1 request per minute, or None")
        if not self.window > 0:
            raise ValueError("window must be seconds > 0")
        low, high = self.latency if isinstance(self.latency, tuple) else (self.latency,) * 2
        if not 0 <= low <= high:
            raise ValueError("latency must be seconds >= 0, or a (min, max) range")
