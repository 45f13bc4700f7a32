"""What an export of 100,000 chats costs: requests, rate and memory, against the sandbox.

    python benchmarks/export.py [--chats N] [--rate R] [--latency S] [--status S]

A sandbox process starts holding `--chats` chats (100,050) created over the past year,
each with two messages (`bulk_chats.sandbox.history`), a limit of `--rate` requests a
minute (1,200) answered with 429, and `--latency` seconds (0.02) added to each answer.
Then `python -m bulk_chats export --rate R --yes --no-progress` runs against it as a
process of its own, as a user runs it, without filters (the listing, `GET /v1/chats`) or
with `--status` (a search per status).

What is measured, and the targets:

- requests: every request the sandbox saw, by endpoint (its own count). Target: the
  pages are ceil(chats / 100), plus one when the last page is full (only an empty page
  proves there is no more), plus the look-ups: the reads of agents and departments;
- the rate: the pages over the time from the first to the last, a minute, as the
  sandbox saw them arrive. Target: at least 0.97 of the limit with no 429 (the sender
  paces itself evenly at the rate; pages are asked for ahead, so a slow answer does not
  hold it back). The look-ups come first, a step of their own (names are resolved before
  any chat is read): the rate over every request is printed beside it;
- peak memory: the export process's maximum resident set (`wait4`'s `ru_maxrss`).
  Target: under 300 MiB, the Python interpreter and pandas included;
- the workbook: every chat once, oldest first (read back with python-calamine).

Why a separate process for the sandbox: its work on each page (JSON of 100 chats) would
otherwise take turns with the export's on one interpreter, and slow both.

Prints the figures and the command that reproduces them; exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CHATS = 100_050
RATE = 1_200
LATENCY = 0.02
RATE_TARGET = 0.97
MEMORY_TARGET_MIB = 300
RUN_TIMEOUT = 3_600.0
"""Seconds the export may take before the benchmark gives up."""
PAGES = ("/v1/chats", "/v1/chats/search")
LOOKUPS = ("/v1/agents", "/v1/departments")

SANDBOX = """
import json, signal, sys, threading, time
from bulk_chats.sandbox import SandboxApp, SandboxConfig, SandboxState, Seed, history
from bulk_chats.sandbox import run_in_thread

chats, rate, latency = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
arrivals = []

class Timed(SandboxApp):
    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            arrivals.append((time.monotonic(), scope["path"]))
        await super().__call__(scope, receive, send)

state = SandboxState(Seed(chats=history(chats, end=time.time() - 3600, days=365)))
app = Timed(SandboxConfig(rate=rate, latency=latency), state)
done = threading.Event()
signal.signal(signal.SIGINT, lambda *_: done.set())
with run_in_thread(app) as running:
    print(running.base_url, flush=True)
    done.wait()
print(json.dumps({
    "requests": dict(state.requests),
    "rate_limited": state.rate_limited,
    "arrivals": arrivals,
    "chats": len(state.chats),
}), flush=True)
"""
"""The sandbox process: prints its API root, serves until SIGINT, then prints what it saw."""


def start_sandbox(chats: int, rate: int, latency: float) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-c", SANDBOX, str(chats), str(rate), str(latency)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        base_url = lines.get(timeout=300).strip()
    except queue.Empty:
        base_url = ""
    if not base_url.startswith("http://"):
        process.kill()
        raise RuntimeError("the sandbox did not start")
    return process, base_url


def stop_sandbox(process: subprocess.Popen[str]) -> dict[str, object]:
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    lines = out.strip().splitlines()
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"the sandbox failed: {err}")
    seen: dict[str, object] = json.loads(lines[-1])
    return seen


def run_export(base_url: str, args: list[str], cwd: Path) -> tuple[int, float, float, str]:
    """The export process's exit status, seconds, peak resident memory (MiB), stderr."""
    env = {**os.environ, "HELPCRUNCH_API_KEY": "benchmark-key"}
    command = [sys.executable, "-m", "bulk_chats", "export", "--base-url", base_url, *args]
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    stderr_pipe = process.stderr
    collected: list[str] = []
    reader = threading.Thread(target=lambda: collected.append(stderr_pipe.read()), daemon=True)
    reader.start()
    deadline = started + RUN_TIMEOUT
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the export did not end in time")
        time.sleep(0.05)
    seconds = time.monotonic() - started
    reader.join(timeout=30)
    process.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in KiB on Linux.
    return process.returncode, seconds, usage.ru_maxrss / 1024, "".join(collected)


def read_back(path: Path) -> list[int]:
    from python_calamine import CalamineWorkbook

    rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_name("chats").to_python()
    return [int(row[0]) for row in rows[1:]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=CHATS)
    parser.add_argument("--rate", type=int, default=RATE)
    parser.add_argument("--latency", type=float, default=LATENCY)
    parser.add_argument("--status", action="append", default=[])
    options = parser.parse_args(argv)
    reproduce = shlex.join(["python", "benchmarks/export.py", *(argv or sys.argv[1:])])

    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        sandbox, base_url = start_sandbox(options.chats, options.rate, options.latency)
        try:
            args = ["--rate", str(options.rate), "--yes", "--no-progress", "--out", "export.xlsx"]
            for status in options.status:
                args += ["--status", status]
            code, seconds, peak, stderr = run_export(base_url, args, cwd)
        finally:
            seen = stop_sandbox(sandbox)
        ids = read_back(cwd / "export.xlsx") if code == 0 else []

    requests: dict[str, int] = seen["requests"]  # type: ignore[assignment]
    arrived: list[list[object]] = seen["arrivals"]  # type: ignore[assignment]
    every = [float(at) for at, _ in arrived]  # type: ignore[arg-type]
    pages_at = [float(at) for at, path in arrived if path in PAGES]  # type: ignore[arg-type]
    pages = requests.get("GET /v1/chats", 0) + requests.get("POST /v1/chats/search", 0)
    lookups = sum(n for endpoint, n in requests.items() if endpoint.endswith(LOOKUPS))
    exported = len(ids)
    # Only an empty page proves the end after a full one.
    minimum = exported // 100 + 1
    per_minute, overall = per_minute_of(pages_at), per_minute_of(every)
    in_order = ids == sorted(ids) and len(ids) == len(set(ids))
    limit = options.rate

    print(f"export of {options.chats:,} seeded chats, limit {limit:,} a minute, ", end="")
    print(f"latency {options.latency} s, statuses {options.status or 'all'}")
    print(f"  exit status          {code}")
    print(f"  chats written        {exported:,} (each once, oldest first: {yes(in_order)})")
    print(f"  pages read           {pages:,}   (ceil(chats / 100) = {math.ceil(exported / 100):,})")
    print(f"  look-ups             {lookups:,}   (agents and departments)")
    print(f"  requests             {sum(requests.values()):,}   {dict(sorted(requests.items()))}")
    print(f"  429s                 {seen['rate_limited']}")
    print(
        f"  rate of the pages    {per_minute:,.0f} a minute = {per_minute / limit:.3f} of the limit"
    )
    print(f"  rate, look-ups too   {overall:,.0f} a minute = {overall / limit:.3f} of the limit")
    print(f"  wall time            {seconds:,.1f} s")
    print(f"  peak memory          {peak:,.0f} MiB (the export process)")
    print(f"reproduce: {reproduce}")

    missed = []
    if code != 0:
        missed.append(f"the export exited {code}: {stderr.strip()[-500:]}")
    if exported != options.chats and not options.status:
        missed.append(f"{exported} chats written of {options.chats}")
    if not in_order:
        missed.append("chats repeated or out of order")
    if not options.status and pages > minimum:
        missed.append(f"{pages} pages, more than the {minimum} needed")
    if seen["rate_limited"] or per_minute < RATE_TARGET * limit:
        missed.append(f"the rate was not held at the limit ({per_minute:.0f} a minute)")
    if peak >= MEMORY_TARGET_MIB:
        missed.append(f"peak memory {peak:.0f} MiB")
    for miss in missed:
        print(f"MISSED: {miss}")
    return 1 if missed else 0


def yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def per_minute_of(times: list[float]) -> float:
    """Requests a minute: the intervals between `times` over their span."""
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return (len(times) - 1) / span * 60 if span else math.inf


if __name__ == "__main__":
    sys.exit(main())
