"""A migration soak: faults on every endpoint, kill -9 mid-run, the documentation's other
revisions; does anything get created twice, lost, or left as it should not be?

    python benchmarks/migration_soak.py [--rows N] [--new N] [--kills N] [--seed N]

One `bulk-chats sandbox --quirks` in a child process (answers as the documentation's other
revisions give them: a chat's messages under `messages`, string timestamps, short pages,
a stray customer in every search), with `--customers 800` and faults on every endpoint
that creates or changes something, chats, messages, customers and changes alike: 500
before and after storing, 503, connections dropped before and after storing (13% of
those requests in all, most of them stored with the answer lost). Its rate limit is
6,000 requests a minute; the tool is told the same.

The sheet: `--rows` rows (1,000), customers by email, `--new` of them (268) new to the
account, some on two or three rows, each row with its own first message; a migration's
command, `import --create-customers --chat-status closed`. It runs, and is killed -9
after 2 to 8 seconds (seeded), `--kills` times (4); then the same command runs until it
exits 0 (at most 6 more runs). Then an `update` that sets every chat `pending` is killed
mid-run and left so, and `close` takes the import's results back (killed once, then run
to the end): every chat must end closed, whatever the killed update did to it.

Counted from the sandbox's own record (`GET /_sandbox/state`): chats per row (a row is
known by its message's text), first messages per chat, customers created per new email,
chats not closed at the end, the faults it struck. Prints the counts and the command
that reproduces them; exits 1 when anything is duplicated, missing or not closed. Every
run is bounded in time.
"""

from __future__ import annotations

import argparse
import collections
import csv
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sandbox_child import sandbox_child

RATE = 6000
"""The sandbox's limit and the tool's rate, requests a minute."""
CUSTOMERS = 800
"""Made-up customers the sandbox adds to its seeded ones."""
FAULTS = {
    "error_before": 0.02,
    "unavailable": 0.02,
    "drop_before": 0.01,
    "error_after": 0.03,
    "drop_after": 0.05,
}
"""Each fault's share of the requests that create or change something."""
RUN_TIMEOUT = 900.0
"""Seconds one run of the tool may take."""
MAX_RUNS = 6
"""Runs of a command to the end, after its kills, before the soak gives up on it."""
KEY = "soak-key"


def sandbox_command(seed: int) -> list[str]:
    """`bulk-chats sandbox` with the soak's quirks, customers, rate and faults."""
    return [
        sys.executable,
        "-m",
        "bulk_chats",
        "sandbox",
        "--port=0",
        f"--rate={RATE}",
        "--quirks",
        f"--customers={CUSTOMERS}",
        f"--seed={seed}",
        *(f"--fault={kind}={share}" for kind, share in FAULTS.items()),
        *(f"--fault-on={kind}" for kind in ("messages", "customers", "updates")),
    ]


def write_sheet(path: Path, rows: int, new: int, rng: random.Random) -> list[str]:
    """The migration sheet; the first message of each row, in row order."""
    names = [f"new{k}@old-desk.example" for k in range(new)]
    # Every new customer on one row at least, a third of them on two or three.
    emails = names + [names[k] for k in range(0, new, 3)] + [names[k] for k in range(0, new, 9)]
    known = rows - len(emails)
    emails += [f"customer{rng.randint(1, CUSTOMERS)}@example.com" for _ in range(known)]
    rng.shuffle(emails)
    texts = []
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_email", "customer_name", "application", "message"])
        for n, email in enumerate(emails[:rows]):
            text = f"[old desk #{n}] Order {1000 + n}: where is my parcel?"
            texts.append(text)
            writer.writerow([email, f"Client {n}", 3838, text])
    return texts


class Tool:
    """Runs `python -m bulk_chats COMMAND ...` in `cwd` against the sandbox."""

    def __init__(self, cwd: Path, base_url: str, rng: random.Random) -> None:
        self.cwd = cwd
        self.base_url = base_url
        self.rng = rng
        self.runs: list[str] = []

    def start(self, *args: str) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "bulk_chats", *args, "--base-url", self.base_url]
        command += ["--yes", "--no-progress", "--rate", str(RATE)]
        return subprocess.Popen(
            command,
            cwd=self.cwd,
            env={**os.environ, "HELPCRUNCH_API_KEY": KEY},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def killed(self, *args: str) -> None:
        """Start the command and kill -9 it after 2 to 8 seconds (if it still runs)."""
        process = self.start(*args)
        try:
            process.wait(timeout=self.rng.uniform(2.0, 8.0))
            self.runs.append(f"{args[0]}: ended {process.returncode} before its kill")
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            self.runs.append(f"{args[0]}: killed")

    def to_the_end(self, *args: str) -> int:
        """Run the command until it exits 0, at most `MAX_RUNS` times; its last status."""
        status = -1
        for _ in range(MAX_RUNS):
            process = self.start(*args)
            try:
                _, stderr = process.communicate(timeout=RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                _, stderr = process.communicate()
            status = process.returncode
            lines = stderr.strip().splitlines() or [""]
            summary = next((line for line in lines if " rows: " in line), lines[-1])
            self.runs.append(f"{args[0]}: exit {status}: {summary}")
            if status == 0:
                break
        return status


def counts(base_url: str, texts: list[str], new: int) -> dict[str, Any]:
    """What the sandbox holds, against what the sheet asked."""
    state = httpx.get(base_url.removesuffix("/v1") + "/_sandbox/state", timeout=60).json()
    wanted = set(texts)
    chats_by_text: dict[str, set[int]] = collections.defaultdict(set)
    per_message: collections.Counter[tuple[int, str]] = collections.Counter()
    for message in state["messages"]:
        if message["text"] in wanted:
            chats_by_text[message["text"]].add(message["chat"])
            per_message[(message["chat"], message["text"])] += 1
    with_a_row = set().union(*chats_by_text.values()) if chats_by_text else set()
    created = collections.Counter(c["email"] for c in state["customersCreated"])
    return {
        "rows": len(texts),
        "chats": len(state["chats"]),
        "rows without a chat": len(wanted - set(chats_by_text)),
        "rows in two chats or more": sum(1 for ids in chats_by_text.values() if len(ids) > 1),
        "chats of no row": len(state["chats"]) - len(with_a_row),
        "first messages": sum(per_message.values()),
        "duplicate messages": sum(n - 1 for n in per_message.values()),
        "customers created": sum(created.values()),
        "duplicate customers": sum(n - 1 for n in created.values()),
        "new customers missing": new - len(created),
        "chats not closed": sum(n for s, n in state["chatsByStatus"].items() if s != "closed"),
        "faults": sum(state["faults"].values()),
        "faults by kind": dict(sorted(state["faults"].items())),
        "requests": sum(state["requests"].values()),
        "429s": state["rateLimited"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000, help="rows of the sheet (1000)")
    parser.add_argument("--new", type=int, default=268, help="customers new to the account (268)")
    parser.add_argument("--kills", type=int, default=4, help="kill -9 of the import (4)")
    parser.add_argument("--seed", type=int, default=7, help="faults and kill times (7)")
    args = parser.parse_args(argv)
    command = shlex.join(
        [
            "python",
            "benchmarks/migration_soak.py",
            f"--rows={args.rows}",
            f"--new={args.new}",
            f"--kills={args.kills}",
            f"--seed={args.seed}",
        ]
    )
    rng = random.Random(args.seed)
    started = time.monotonic()
    with (
        sandbox_child(sandbox_command(args.seed)) as base_url,
        tempfile.TemporaryDirectory(prefix="bulk-chats-soak-") as tmp,
    ):
        work = Path(tmp)
        texts = write_sheet(work / "migration.csv", args.rows, args.new, rng)
        tool = Tool(work, base_url, rng)
        results = "reports/migration-results.xlsx"
        migrate = ["import", "migration.csv", "--create-customers", "--chat-status"]
        migrate += ["closed", "--out", results]
        for _ in range(args.kills):
            tool.killed(*migrate)
        imported = tool.to_the_end(*migrate)
        after_import = counts(base_url, texts, args.new)

        pending = work / "pending.csv"
        with pending.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["chat_id", "chat_status"])
            state = httpx.get(base_url.removesuffix("/v1") + "/_sandbox/state", timeout=60)
            writer.writerows([chat["id"], "pending"] for chat in state.json()["chats"])
        # The update is killed and never run again: the close must undo what it did,
        # whether its answers came or not.
        tool.killed("update", "pending.csv", "--out", "reports/pending-results.xlsx")
        close = ["close", results, "--out", "reports/close-results.xlsx"]
        tool.killed(*close)
        closed = tool.to_the_end(*close)
        after_close = counts(base_url, texts, args.new)

    print(
        f"sandbox: --quirks, {RATE} requests a minute, faults on chats, messages, customers "
        f"and changes: {', '.join(f'{k}={v}' for k, v in FAULTS.items())}"
    )
    print(f"runs ({time.monotonic() - started:.0f} s in all):")
    for run in tool.runs:
        print(f"  {run}")
    print("after the import:")
    for name, value in after_import.items():
        print(f"  {name}: {value}")
    print("after an update to pending killed mid-run, then close:")
    for name in ("chats", "chats not closed", "duplicate messages", "faults", "requests"):
        print(f"  {name}: {after_close[name]}")
    bad = {
        name: after_close[name]
        for name in (
            "rows without a chat",
            "rows in two chats or more",
            "chats of no row",
            "duplicate messages",
            "duplicate customers",
            "new customers missing",
            "chats not closed",
        )
        if after_close[name]
    }
    if after_close["first messages"] != args.rows:
        bad["first messages"] = after_close["first messages"]
    exits = {"import": imported, "close": closed}
    bad |= {f"{name} exit": status for name, status in exits.items() if status != 0}
    verdict = "nothing duplicated, missing or left open" if not bad else f"WRONG: {bad}"
    print(f"{verdict}; reproduce: {command}")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
