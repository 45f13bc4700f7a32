"""Does bulk-chats keep the account's rate full? Its throughput against the sandbox.

    python benchmarks/throughput.py [--rows N] [--long-rows N] [--adaptive-rows N]
                                    [--sequential-rows N] [--cases 1,2,3,4,5,6,7,8,9]

Every case starts a fresh `bulk-chats sandbox --port 0 --rate 1200 --latency 0.4` (a limit
of 1,200 requests a minute, every answer 0.4 s late) and imports a generated CSV into it
through `bulk_chats.pipeline.import_file`, the function behind `bulk-chats import`: the
pre-flight (its reads of agents and departments are the key check), then one
`POST /v1/chats` per row. Each row has its own customer, an application, an assignee and
a department.

1. told the limit (`--rate 1200`), `--rows` rows (400): target >= 0.97 of the limit, no 429;
2. the same, `--long-rows` rows (1,300), long enough to run past the sandbox's window,
   where pacing alone at exactly the limit would meet the window's edge: same target;
3. told twice the limit (`--rate 2400`), `--rows` rows: reported, no target (see below);
4. told twice the limit, `--adaptive-rows` rows (3,600), three minutes and more of
   sending: target >= 0.95 of the limit with at most 2% of requests answered 429;
5. the same against a sandbox whose 429s carry no Retry-After, as HelpCrunch documents
   none: the tool then has only its own count of what was accepted to go by; same target;
6. for contrast, a plain loop that sends one request and awaits its answer before the next,
   `--sequential-rows` rows (50): no target;
7. a second run against the same API root and reports directory as case 4 (which runs
   first when not chosen), `--long-rows` rows again with `--fresh`, without `--rate`: it
   starts at the limit the journal remembers from case 4; target no 429 at all, from the
   first request on, and >= 0.97 of the limit;
8. told twice the limit of a sandbox whose window is 10 s (undocumented: 200 requests in
   any 10 s, the same 1,200 a minute), `--long-rows` rows: target >= 0.50 of the limit;
9. the same, its 429s without Retry-After: same target.

What is counted. Every HTTP request the tool makes (the pre-flight reads included) is
recorded as it is handed to the network, with the status that came back; a request is
accepted when the answer is anything but 429. The achieved rate is (accepted - 1) per
minute over the time from the first request to the last accepted one, so requests sent
exactly at the limit read 1.00 (the pre-flight's round trip before the first chat counts
against it). The counts are checked against the sandbox's own (`GET /_sandbox/state`).

The window. The sandbox admits at most 1,200 requests in any 60 seconds (a sliding window,
all endpoints together; its 429s carry Retry-After unless case 5 starts it with
`--no-retry-after`). 400 rows told 2,400 a minute take 10 s: they all fit in the first
window, so they draw no 429 and read about 2 of the limit, which says nothing about
adapting. Cases 4 and 5 therefore send enough rows to keep sending through two windows and
are measured over whole windows from the first request: the accepted requests in the first
k whole 60-second windows, over k x 1,200, the most any client can get there. Case 3 is
printed only to make that visible. Cases 8 and 9 are measured like cases 1 and 2.

Why a separate process for the sandbox. The sender's pacing rests on its event loop waking
on time. A sandbox in a thread of the same process shares the GIL and would delay those
wake-ups with its own work; the figures would then measure two programs fighting over one
interpreter, where the real API runs on another machine.

Each case is bounded in time (`anyio.fail_after`). Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import csv
import math
import shlex
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
from sandbox_child import sandbox_child

from bulk_chats.jobs.hooks import Hooks
from bulk_chats.jobs.import_chats import import_file
from bulk_chats.sandbox import APPLICATIONS, DEPARTMENTS
from bulk_chats.sandbox.seed import FIRST_CUSTOMER_ID
from bulk_chats.settings import ApiKey, Settings

LIMIT = 1200
"""The sandbox's limit: requests a minute, over a sliding window of WINDOW seconds."""
WINDOW = 60.0
LATENCY = 0.4
"""Seconds the sandbox holds every answer."""

SHORT_WINDOW = 10.0
"""The window of cases 8 and 9, in seconds: LIMIT * SHORT_WINDOW / WINDOW requests in it."""

ROWS = 400
LONG_ROWS = 1300
ADAPTIVE_ROWS = 3600
SEQUENTIAL_ROWS = 50
ALL_CASES = "1,2,3,4,5,6,7,8,9,10"

RIGHT_TARGET = 0.97
ADAPTIVE_TARGET = 0.95
ADAPTIVE_MAX_429 = 0.02
SHORT_WINDOW_TARGET = 0.50

KEY = ApiKey("benchmark-key")


# --- the sandbox, in a child process ----------------------------------------------------


SHORT_WINDOW_SANDBOX = """
import sys
from bulk_chats.sandbox import SandboxConfig, SandboxState, Seed, serve
rate, window, latency, customers, retry_after = sys.argv[1:]
config = SandboxConfig(
    rate=int(rate),
    window=float(window),
    latency=float(latency),
    retry_after_header=retry_after == "1",
)
state = SandboxState(Seed.generated(customers=int(customers)))
try:
    serve(config, port=0, state=state, announce=lambda url: print(url, flush=True))
except KeyboardInterrupt:
    pass
"""
"""The sandbox of cases 8 and 9: `bulk-chats sandbox` has no option for the window."""


def sandbox_command(
    *, customers: int, retry_after: bool = True, window: float = WINDOW, port: int = 0
) -> list[str]:
    """`bulk-chats sandbox` at the benchmark's limit and latency, on a free loopback port;
    its 429s carry Retry-After unless `retry_after` is off (cases 5 and 9). A `window` other
    than WINDOW seconds admits the same share of LIMIT in it (cases 8 and 9)."""
    if window != WINDOW:
        rate = round(LIMIT * window / WINDOW)
        return [
            sys.executable,
            "-c",
            SHORT_WINDOW_SANDBOX,
            *(str(n) for n in (rate, window, LATENCY, customers, int(retry_after))),
        ]
    return [
        sys.executable,
        "-m",
        "bulk_chats",
        "sandbox",
        f"--port={port}",
        f"--rate={LIMIT}",
        f"--latency={LATENCY}",
        *([] if retry_after else ["--no-retry-after"]),
        f"--customers={customers}",
    ]


@contextmanager
def sandbox_process(
    *, customers: int, retry_after: bool = True, window: float = WINDOW, port: int = 0
) -> Iterator[str]:
    """A fresh sandbox process for the `with` block; yields its API root."""
    command = sandbox_command(
        customers=customers, retry_after=retry_after, window=window, port=port
    )
    with sandbox_child(command) as base_url:
        yield base_url


def sandbox_counts(base_url: str) -> tuple[int, int, int]:
    """The sandbox's own view: requests it saw, 429s it answered, chats it holds."""
    state = httpx.get(base_url.removesuffix("/v1") + "/_sandbox/state", timeout=30).json()
    return sum(state["requests"].values()), state["rateLimited"], len(state["chats"])


# --- what the sender does, recorded at the transport -------------------------------------


class RecordingTransport(httpx.AsyncBaseTransport):
    """Real HTTP, noting when each request was handed to the network and its status."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.log: list[tuple[float, int | None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = time.monotonic()
        try:
            response = await self._inner.handle_async_request(request)
        except Exception:
            self.log.append((sent, None))
            raise
        self.log.append((sent, response.status_code))
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass(frozen=True, slots=True)
class Measured:
    """One case's figures, from the requests as the sender sent them."""

    requests: int
    rate_limited: int
    unanswered: int
    accepted_times: list[float]
    created: int
    server_requests: int
    server_rate_limited: int
    server_chats: int
    learned: float | None = None
    """The account's limit the run's limiter learned, requests a minute; None if none."""

    @property
    def span(self) -> float:
        """Seconds from the first request to the last accepted one."""
        return self.accepted_times[-1] - self.accepted_times[0]

    @property
    def per_minute(self) -> float:
        """Accepted requests a minute: the intervals between them over the span."""
        return (len(self.accepted_times) - 1) / self.span * 60 if self.span > 0 else math.inf

    @property
    def share_429(self) -> float:
        return self.rate_limited / self.requests if self.requests else 0.0

    def whole_windows(self) -> tuple[int, int]:
        """(k, accepted in the first k whole windows from the first request)."""
        first = self.accepted_times[0]
        windows = int(self.span // WINDOW)
        end = first + windows * WINDOW
        return windows, sum(1 for t in self.accepted_times if t < end)

    def describe(self) -> str:
        check = (
            "matches the sandbox"
            if (self.server_requests, self.server_rate_limited, self.server_chats)
            == (self.requests, self.rate_limited, self.created)
            else f"the sandbox saw {self.server_requests} requests, {self.server_rate_limited} "
            f"answered 429, {self.server_chats} chats"
        )
        unanswered = f", {self.unanswered} got no answer" if self.unanswered else ""
        learned = "" if self.learned is None else f", learned {self.learned:.0f}/min"
        return (
            f"  {self.requests} requests, {self.rate_limited} answered 429{unanswered}, "
            f"{self.created} chats created, {self.span:.1f} s{learned} ({check})"
        )


def measure(
    log: list[tuple[float, int | None]],
    created: int,
    base_url: str,
    *,
    learned: float | None = None,
) -> Measured:
    server_requests, server_rate_limited, server_chats = sandbox_counts(base_url)
    return Measured(
        requests=len(log),
        rate_limited=sum(1 for _, status in log if status == 429),
        unanswered=sum(1 for _, status in log if status is None),
        accepted_times=sorted(t for t, status in log if status is not None and status != 429),
        created=created,
        server_requests=server_requests,
        server_rate_limited=server_rate_limited,
        server_chats=server_chats,
        learned=learned,
    )


# --- the cases ----------------------------------------------------------------------------


TEAMS = [(agent, department.id) for department in DEPARTMENTS for agent in department.agent_ids]
"""Every (assignee, department) pair of the seeded account where the agent is a member."""


def write_rows(path: Path, rows: int) -> Path:
    """A CSV of `rows` distinct chats, one customer each, ids the sandbox knows."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer", "application", "assignee", "department"])
        for n in range(rows):
            assignee, department = TEAMS[n % len(TEAMS)]
            customer = FIRST_CUSTOMER_ID + n
            writer.writerow([customer, APPLICATIONS[n % len(APPLICATIONS)], assignee, department])
    return path


def run_import(
    rows: int,
    rate: int | None,
    workdir: Path,
    *,
    retry_after: bool = True,
    window: float = WINDOW,
    port: int = 0,
    reports: Path | None = None,
    fresh: bool = False,
) -> Measured:
    """Import `rows` rows at `--rate rate` (None: no --rate) into a fresh sandbox on `port`;
    the figures. The sandbox counts over `window` seconds. `reports` is the reports
    directory, where the journal remembers a learned limit per API root; `fresh` sends rows
    an earlier run there created again (`--fresh`), the learned limit still applies."""
    workdir.mkdir()
    source = write_rows(workdir / "chats.csv", rows)
    # Generous: at a quarter of the limit, plus start-up.
    bound = 60 + 4 * (rows + 1) * 60 / LIMIT
    with sandbox_process(
        customers=rows, retry_after=retry_after, window=window, port=port
    ) as base_url:
        transport = RecordingTransport()
        settings = Settings(
            input_path=source,
            out=workdir / "results.csv",
            rate=rate,
            base_url=base_url,
            api_key=KEY,
            reports_dir=reports or workdir / "reports",
            fresh=fresh,
        )

        async def main() -> tuple[int, float | None]:
            with anyio.fail_after(bound):
                result = await import_file(settings, Hooks(transport=transport))
            return result.counts.get("created", 0), result.learned_limit

        created, learned = anyio.run(main)
        return measure(transport.log, created, base_url, learned=learned)


def free_port() -> int:
    """A loopback port free now, for two sandboxes in turn at one API root (cases 4 and 7)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_sequential(rows: int) -> Measured:
    """The naive loop: the key check, then one chat after another, each awaiting its answer."""
    with sandbox_process(customers=rows) as base_url:
        transport = RecordingTransport()

        async def main() -> int:
            created = 0
            with anyio.fail_after(60 + 4 * (rows + 1) * LATENCY):
                async with httpx.AsyncClient(
                    base_url=base_url,
                    transport=transport,
                    headers={"Authorization": KEY.bearer()},
                    timeout=30,
                ) as client:
                    (await client.get("/agents", params={"limit": 1})).raise_for_status()
                    for n in range(rows):
                        chat = {"customer": FIRST_CUSTOMER_ID + n, "application": APPLICATIONS[0]}
                        response = await client.post("/chats", json=chat)
                        created += response.status_code == 201
            return created

        created = anyio.run(main)
        return measure(transport.log, created, base_url)


LOOKUP_ROWS = 1000
LOOKUP_CUSTOMERS = 600
LOOKUP_TARGET = 2.05
"""Requests a row at most for a sheet naming its customers by email (case 10): a chat and a
first message are 2.00, so the look-ups of 600 distinct emails may cost 0.05 a row."""


def requests_per_row_by_email(workdir: Path) -> bool:
    """Case 10: `LOOKUP_ROWS` rows naming `LOOKUP_CUSTOMERS` distinct customers by email, a
    first message on every row, told the limit. Prints every request by endpoint (the
    sandbox's count) and the requests a row; True when it is at most `LOOKUP_TARGET`."""
    print(
        f"\n10. batched look-ups: --rate {LIMIT}, {LOOKUP_ROWS} rows, {LOOKUP_CUSTOMERS} "
        "distinct customer emails, a first message on every row"
    )
    workdir.mkdir()
    source = workdir / "by-email.csv"
    with source.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_email", "application", "message"])
        for n in range(LOOKUP_ROWS):
            # customerN@example.com is the sandbox's N-th customer (1-based).
            email = f"customer{n % LOOKUP_CUSTOMERS + 1}@example.com"
            writer.writerow([email, APPLICATIONS[n % len(APPLICATIONS)], f"Row {n}"])
    with sandbox_process(customers=LOOKUP_CUSTOMERS) as base_url:
        settings = Settings(
            input_path=source,
            out=workdir / "results.csv",
            rate=LIMIT,
            base_url=base_url,
            api_key=KEY,
            reports_dir=workdir / "reports",
        )

        async def main() -> int:
            with anyio.fail_after(60 + 4 * 3 * LOOKUP_ROWS * 60 / LIMIT):
                result = await import_file(settings)
            return result.counts.get("created", 0)

        created = anyio.run(main)
        state = httpx.get(base_url.removesuffix("/v1") + "/_sandbox/state", timeout=30).json()
    by_endpoint: dict[str, int] = state["requests"]
    total = sum(by_endpoint.values())
    per_row = total / LOOKUP_ROWS
    ok = created == LOOKUP_ROWS and per_row <= LOOKUP_TARGET
    print("  " + ", ".join(f"{count} {name}" for name, count in sorted(by_endpoint.items())))
    print(
        f"  {total} requests for {LOOKUP_ROWS} rows ({created} created) = {per_row:.3f} a row "
        f"(target <= {LOOKUP_TARGET}): {verdict(ok)}"
    )
    return ok


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def at_the_limit(measured: Measured) -> bool:
    """Print and judge a case told the right rate; True when it meets its target."""
    fraction = measured.per_minute / LIMIT
    ok = fraction >= RIGHT_TARGET and measured.rate_limited == 0
    print(measured.describe())
    print(
        f"  achieved {measured.per_minute:.0f}/min = {fraction:.3f} of the limit, "
        f"{measured.rate_limited} answered 429 (target >= {RIGHT_TARGET} and no 429): "
        f"{verdict(ok)}"
    )
    return ok


def short_window(measured: Measured) -> bool:
    """Print and judge a window shorter than a minute (8, 9); True when it meets its target."""
    fraction = measured.per_minute / LIMIT
    ok = fraction >= SHORT_WINDOW_TARGET
    print(measured.describe())
    print(
        f"  achieved {measured.per_minute:.0f}/min = {fraction:.3f} of the limit, "
        f"{measured.rate_limited} answered 429 = {measured.share_429:.1%} of requests "
        f"(target >= {SHORT_WINDOW_TARGET}): {verdict(ok)}"
    )
    return ok


def adapted(measured: Measured) -> bool:
    """Print and judge a case told twice the limit; True when it meets its target."""
    print(measured.describe())
    windows, in_windows = measured.whole_windows()
    if windows == 0:
        print(
            f"  the run lasted {measured.span:.1f} s, less than one {WINDOW:.0f} s window: "
            "raise --adaptive-rows: FAIL"
        )
        return False
    fraction = in_windows / (windows * LIMIT)
    ok = fraction >= ADAPTIVE_TARGET and measured.share_429 <= ADAPTIVE_MAX_429
    print(
        f"  accepted in its first {windows} whole window(s) ({windows * WINDOW:.0f} s from "
        f"the first request): {in_windows} of at most {windows * LIMIT} = {fraction:.3f} of "
        f"the limit; answered 429: {measured.rate_limited} of {measured.requests} requests = "
        f"{measured.share_429:.1%} (target >= {ADAPTIVE_TARGET} and <= "
        f"{ADAPTIVE_MAX_429:.0%}): {verdict(ok)}"
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=ROWS, help=f"rows of cases 1 and 3 ({ROWS})")
    parser.add_argument(
        "--long-rows",
        type=int,
        default=LONG_ROWS,
        help=f"rows at the limit, enough to run past the window ({LONG_ROWS})",
    )
    parser.add_argument(
        "--adaptive-rows",
        type=int,
        default=ADAPTIVE_ROWS,
        help=f"rows told twice the limit, three minutes of sending ({ADAPTIVE_ROWS})",
    )
    parser.add_argument(
        "--sequential-rows",
        type=int,
        default=SEQUENTIAL_ROWS,
        help=f"rows of the one-at-a-time loop ({SEQUENTIAL_ROWS})",
    )
    parser.add_argument(
        "--cases",
        default=ALL_CASES,
        help=f"which cases to run, by number ({ALL_CASES}); a run of all takes about 13 minutes",
    )
    args = parser.parse_args(argv)
    cases = {int(n) for n in args.cases.split(",") if n.strip()}
    if 7 in cases:
        cases.add(4)
    command = shlex.join(
        [
            "python",
            "benchmarks/throughput.py",
            f"--rows={args.rows}",
            f"--long-rows={args.long_rows}",
            f"--adaptive-rows={args.adaptive_rows}",
            f"--sequential-rows={args.sequential_rows}",
            f"--cases={args.cases}",
        ]
    )
    sandbox = shlex.join(["bulk-chats", *sandbox_command(customers=0)[3:-1]]) + " --customers=N"
    print(
        f"sandbox: {sandbox}, a fresh process per case: at most {LIMIT} requests in any "
        f"{WINDOW:.0f} s (a sliding window, all endpoints together; 429s carry Retry-After "
        f"except in cases 5 and 9; the window of cases 8 and 9 is {SHORT_WINDOW:.0f} s), "
        f"every answer {LATENCY} s late"
    )
    print(
        "rate = accepted requests (anything but a 429; the pre-flight reads included) a "
        "minute, from the first request to the last accepted one; "
        f"'of the limit' = rate / {LIMIT}"
    )
    passed = True
    with tempfile.TemporaryDirectory(prefix="bulk-chats-throughput-") as tmp:
        work = Path(tmp)
        # Cases 4 and 7 share an API root (one port) and a journal (one reports directory).
        port, reports = free_port(), work / "reports"

        if 1 in cases:
            print(f"\n1. told the limit: --rate {LIMIT}, {args.rows} rows")
            passed &= at_the_limit(run_import(args.rows, LIMIT, work / "right"))

        if 2 in cases:
            print(f"\n2. told the limit: --rate {LIMIT}, {args.long_rows} rows, past the window")
            passed &= at_the_limit(run_import(args.long_rows, LIMIT, work / "long"))

        if 3 in cases:
            print(f"\n3. told twice the limit: --rate {2 * LIMIT}, {args.rows} rows (no target)")
            short = run_import(args.rows, 2 * LIMIT, work / "short")
            print(short.describe())
            print(
                f"  achieved {short.per_minute:.0f}/min = {short.per_minute / LIMIT:.3f} of "
                f"the limit, {short.rate_limited} answered 429: "
                + (
                    f"all {short.requests} requests fit in one {WINDOW:.0f} s window, where "
                    f"the sandbox admits {LIMIT} at any speed, so there is nothing to adapt to"
                    if short.requests <= LIMIT
                    else "see case 4"
                )
            )

        if 4 in cases:
            print(
                f"\n4. told twice the limit: --rate {2 * LIMIT}, {args.adaptive_rows} rows, "
                "three minutes and more"
            )
            first = run_import(
                args.adaptive_rows, 2 * LIMIT, work / "adaptive", port=port, reports=reports
            )
            passed &= adapted(first)

        if 5 in cases:
            print(
                f"\n5. told twice the limit: --rate {2 * LIMIT}, {args.adaptive_rows} rows, "
                "three minutes and more, 429s without Retry-After"
            )
            bare = run_import(args.adaptive_rows, 2 * LIMIT, work / "bare", retry_after=False)
            passed &= adapted(bare)

        if 6 in cases:
            print(f"\n6. sequential loop, one request at a time, {args.sequential_rows} rows")
            sequential = run_sequential(args.sequential_rows)
            print(sequential.describe())
            print(
                f"  achieved {sequential.per_minute:.0f}/min = "
                f"{sequential.per_minute / LIMIT:.3f} of the limit (contrast; no target)"
            )

        if 7 in cases:
            print(
                f"\n7. a second run: {args.long_rows} rows, no --rate, the same API root and "
                "journal as case 4, --fresh"
            )
            again = run_import(
                args.long_rows, None, work / "again", port=port, reports=reports, fresh=True
            )
            passed &= at_the_limit(again)

        if 8 in cases:
            print(
                f"\n8. told twice the limit: --rate {2 * LIMIT}, {args.long_rows} rows, "
                f"a {SHORT_WINDOW:.0f} s window ({round(LIMIT * SHORT_WINDOW / WINDOW)} "
                f"requests in any {SHORT_WINDOW:.0f} s)"
            )
            passed &= short_window(
                run_import(args.long_rows, 2 * LIMIT, work / "short-window", window=SHORT_WINDOW)
            )

        if 9 in cases:
            print(
                f"\n9. told twice the limit: --rate {2 * LIMIT}, {args.long_rows} rows, "
                f"a {SHORT_WINDOW:.0f} s window, 429s without Retry-After"
            )
            passed &= short_window(
                run_import(
                    args.long_rows,
                    2 * LIMIT,
                    work / "short-window-bare",
                    window=SHORT_WINDOW,
                    retry_after=False,
                )
            )

        if 10 in cases:
            passed &= requests_per_row_by_email(work / "by-email")

    print(f"\n{'all targets met' if passed else 'a target was missed'}; reproduce: {command}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
