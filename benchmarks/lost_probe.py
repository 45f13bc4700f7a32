"""Does a lost answer freeze the rate? The lost-probe case, and the run after it.

    python benchmarks/lost_probe.py [--rows N] [--again-rows N]

A sandbox in a child process admits 100 requests in any 5 seconds (1,200 a minute; a
window shorter than a minute, which the API does not document) and answers 429 without
Retry-After, as HelpCrunch documents none. It drops, unanswered, the first request that
arrives a second or more after its first 429: the probe the rate limiter sends to learn the
window's length (`DEFAULT_PAUSE` after the 429), counted by the sandbox and then cut off.

1. told twice the limit (`--rate 2400`), `--rows` rows (600), a fresh reports directory:
   the first 429 teaches a provisional limit (100 in the window taken for a minute), the
   probe's answer is lost; target >= 0.50 of the true limit over the whole run;
2. the run after it: `--again-rows` rows (600) more, no `--rate`, the same API root and
   reports directory, so it starts at the limit the journal remembers: the same target,
   and no 429.

Each row is one `POST /v1/chats` (the pre-flight's reads of agents and departments come
first). The rate is the accepted requests (anything but a 429) a minute, from the first
request to the last accepted one, every request recorded as it is handed to the network;
'of the limit' = rate / 1,200. Each run is bounded in time (`anyio.fail_after`). Exits 1
when a target is missed.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import sys
import tempfile
from pathlib import Path

import anyio
import httpx
from sandbox_child import sandbox_child
from throughput import RecordingTransport

from bulk_chats.jobs.hooks import Hooks
from bulk_chats.jobs.import_chats import import_file
from bulk_chats.sandbox import APPLICATIONS
from bulk_chats.sandbox.seed import FIRST_CUSTOMER_ID
from bulk_chats.settings import ApiKey, Settings

LIMIT = 100
"""Requests the sandbox admits in any `WINDOW` seconds."""
WINDOW = 5.0
PER_MINUTE = LIMIT * 60 / WINDOW
TOLD = 2400
"""The rate the first run is told: twice the true limit."""
ROWS = 600
AGAIN_ROWS = 600
TARGET = 0.50
KEY = ApiKey("benchmark-key")

SANDBOX = """
import sys
from bulk_chats.sandbox import Faults, SandboxConfig, SandboxState, Seed, serve
limit, window, customers = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
config = SandboxConfig(
    rate=limit, window=window, retry_after_header=False, faults=Faults(drop_probe=True)
)
try:
    serve(config, port=0, state=SandboxState(Seed.generated(customers=customers)),
          announce=lambda url: print(url, flush=True))
except KeyboardInterrupt:
    pass
"""
"""The sandbox's child process: `bulk-chats sandbox` has no option for the window or for
dropping the probe (`Faults.drop_probe`)."""


def write_rows(path: Path, rows: int, *, first: int) -> Path:
    """A CSV of `rows` chats, one seeded customer each from the `first`-th on."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer", "application"])
        for n in range(first, first + rows):
            writer.writerow([FIRST_CUSTOMER_ID + n, APPLICATIONS[n % len(APPLICATIONS)]])
    return path


def run(base_url: str, source: Path, reports: Path, rate: int | None) -> str | None:
    """Import `source` at `rate` (None: no --rate); print its figures; the verdict line's
    failure, or None when it meets the target."""
    transport = RecordingTransport()
    settings = Settings(
        input_path=source,
        out=source.with_suffix(".results.csv"),
        rate=rate,
        base_url=base_url,
        api_key=KEY,
        reports_dir=reports,
    )

    async def main() -> tuple[int, float | None, bool]:
        with anyio.fail_after(600):
            result = await import_file(settings, Hooks(transport=transport))
        return result.counts.get("created", 0), result.learned_limit, result.limit_confirmed

    created, learned, confirmed = anyio.run(main)
    accepted = sorted(t for t, status in transport.log if status is not None and status != 429)
    refused = sum(1 for _, status in transport.log if status == 429)
    lost = sum(1 for _, status in transport.log if status is None)
    span = accepted[-1] - accepted[0]
    per_minute = (len(accepted) - 1) / span * 60
    fraction = per_minute / PER_MINUTE
    limit = "none" if learned is None else f"{learned:.0f}/min"
    print(
        f"  {len(transport.log)} requests, {refused} answered 429, {lost} unanswered, "
        f"{created} chats created, {span:.1f} s; limit at the end {limit} "
        f"({'confirmed' if confirmed else 'not confirmed'})"
    )
    ok = fraction >= TARGET and (rate is not None or refused == 0)
    target = f">= {TARGET}" + ("" if rate is not None else " and no 429")
    print(
        f"  achieved {per_minute:.0f}/min = {fraction:.3f} of the limit (target {target}): "
        f"{'PASS' if ok else 'FAIL'}"
    )
    return None if ok else "missed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=ROWS, help=f"rows of run 1 ({ROWS})")
    parser.add_argument(
        "--again-rows", type=int, default=AGAIN_ROWS, help=f"rows of run 2 ({AGAIN_ROWS})"
    )
    args = parser.parse_args(argv)
    command = shlex.join(
        [
            "python",
            "benchmarks/lost_probe.py",
            f"--rows={args.rows}",
            f"--again-rows={args.again_rows}",
        ]
    )
    customers = args.rows + args.again_rows
    child = [sys.executable, "-c", SANDBOX, str(LIMIT), str(WINDOW), str(customers)]
    missed = []
    with (
        sandbox_child(child) as base_url,
        tempfile.TemporaryDirectory(prefix="bulk-chats-lost-probe-") as tmp,
    ):
        print(
            f"sandbox: {LIMIT} requests in any {WINDOW:.0f} s ({PER_MINUTE:.0f} a minute), "
            "429 without Retry-After, the probe's answer dropped"
        )
        work = Path(tmp)
        reports = work / "reports"
        print(f"\n1. told twice the limit: --rate {TOLD}, {args.rows} rows")
        first = write_rows(work / "first.csv", args.rows, first=0)
        missed.append(run(base_url, first, reports, TOLD))
        print(f"\n2. the run after it: {args.again_rows} rows, no --rate, the same journal")
        again = write_rows(work / "again.csv", args.again_rows, first=args.rows)
        missed.append(run(base_url, again, reports, None))
        state = httpx.get(base_url.removesuffix("/v1") + "/_sandbox/state", timeout=30)
        dropped = state.json()["faults"].get("drop_probe", 0)
    print(f"\nprobes whose answer the sandbox dropped: {dropped}")
    passed = not any(missed) and dropped == 1
    print(f"{'all targets met' if passed else 'a target was missed'}; reproduce: {command}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
