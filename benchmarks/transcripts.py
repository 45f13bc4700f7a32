"""Does a transcript still run at the account's limit? Its rate against the sandbox.

    python benchmarks/transcripts.py [--messages N] [--per-conversation N]

A transcript's messages go one after another within their conversation, each after the
previous one's answer; only conversations side by side can keep the rate full when every
answer is late. This imports a generated transcript of `--messages` messages (5,000),
`--per-conversation` (8) to a conversation, rows shuffled, each conversation ending
closed, into a fresh `bulk-chats sandbox --rate 1200 --latency 0.4` (a limit of 1,200
requests a minute, every answer 0.4 s late; the child process of `throughput.py`, so that
it does not share this one's interpreter), told the limit
(`--rate LIMIT`), through `import_file`, the function behind `bulk-chats import`.

It prints every request by endpoint (the sandbox's own count), the rate held: accepted
requests (anything but a 429; the pre-flight's reads included) a minute from the first
request to the last accepted one, over the limit, with target >= 0.97 and no 429; and
the command that reproduces it. Exits 1 when the target is missed or the sandbox does
not hold every message once, in order.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
import shlex
import sys
import tempfile
from pathlib import Path

import anyio
import httpx
from throughput import LATENCY, LIMIT, RIGHT_TARGET, RecordingTransport, sandbox_process

from bulk_chats.jobs.hooks import Hooks
from bulk_chats.jobs.import_chats import import_file
from bulk_chats.sandbox import APPLICATIONS
from bulk_chats.sandbox.seed import FIRST_CUSTOMER_ID
from bulk_chats.settings import ApiKey, Settings

MESSAGES = 5000
PER_CONVERSATION = 8
KEY = ApiKey("benchmark-key")
START = dt.datetime(2023, 4, 1, 9, 0)


def write_transcript(path: Path, messages: int, per_conversation: int) -> dict[str, list[str]]:
    """A transcript of `messages` rows, shuffled; each conversation its own customer. The
    texts each conversation must end with, in order (time prefix included)."""
    rows = []
    expected: dict[str, list[str]] = {}
    for n in range(messages):
        talk, k = divmod(n, per_conversation)
        name = f"T-{talk:05d}"
        when = START + dt.timedelta(minutes=talk * per_conversation + k)
        first = k == 0
        text = f"{name}: message {k}"
        rows.append(
            [
                name,
                FIRST_CUSTOMER_ID + talk if first else "",
                APPLICATIONS[talk % len(APPLICATIONS)] if first else "",
                "closed" if first else "",
                when.strftime("%Y-%m-%d %H:%M"),
                text,
            ]
        )
        expected.setdefault(name, []).append(f"[{when:%Y-%m-%d %H:%M}] {text}")
    random.Random(0).shuffle(rows)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ticket", "customer", "application", "chat_status", "sent_at", "message"])
        writer.writerows(rows)
    return expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=MESSAGES, help=f"rows ({MESSAGES})")
    parser.add_argument(
        "--per-conversation",
        type=int,
        default=PER_CONVERSATION,
        help=f"messages a conversation ({PER_CONVERSATION})",
    )
    args = parser.parse_args(argv)
    command = shlex.join(
        [
            "python",
            "benchmarks/transcripts.py",
            f"--messages={args.messages}",
            f"--per-conversation={args.per_conversation}",
        ]
    )
    conversations = -(-args.messages // args.per_conversation)
    print(
        f"sandbox: bulk-chats sandbox --rate={LIMIT} --latency={LATENCY} "
        f"--customers={conversations}, in a process of its own"
    )
    print(
        f"transcript: {args.messages} messages in {conversations} conversations of "
        f"{args.per_conversation}, rows shuffled, told --rate {LIMIT}"
    )
    with tempfile.TemporaryDirectory(prefix="bulk-chats-transcripts-") as tmp:
        work = Path(tmp)
        expected = write_transcript(work / "talks.csv", args.messages, args.per_conversation)
        with sandbox_process(customers=conversations) as base_url:
            transport = RecordingTransport()
            settings = Settings(
                input_path=work / "talks.csv",
                out=work / "results.csv",
                rate=LIMIT,
                base_url=base_url,
                api_key=KEY,
                reports_dir=work / "reports",
            )
            bound = 120 + 4 * (args.messages + 2 * conversations) * 60 / LIMIT

            async def run() -> dict[str, int]:
                with anyio.fail_after(bound):
                    result = await import_file(settings, Hooks(transport=transport))
                return result.counts

            counts = anyio.run(run)
            state = httpx.get(base_url.removesuffix("/v1") + "/_sandbox/state", timeout=60).json()
    by_endpoint: dict[str, int] = state["requests"]
    print("  " + ", ".join(f"{n} {name}" for name, n in sorted(by_endpoint.items())))
    held = {str(c["id"]): c["status"] for c in state["chats"]}
    texts: dict[int, list[str]] = {}
    for message in state["messages"]:
        texts.setdefault(int(message["chat"]), []).append(message["text"])
    whole = sorted(texts.values()) == sorted(expected.values()) and set(held.values()) == {"closed"}
    accepted = sorted(t for t, status in transport.log if status is not None and status != 429)
    limited = sum(1 for _, status in transport.log if status == 429)
    span = accepted[-1] - accepted[0]
    per_minute = (len(accepted) - 1) / span * 60
    ratio = per_minute / LIMIT
    ok = ratio >= RIGHT_TARGET and limited == 0 and whole and counts == {"created": args.messages}
    print(
        f"  rows: {counts}; every conversation whole, once, in order, closed: {whole}; "
        f"{len(transport.log)} requests in {span:.1f} s, {limited} answered 429"
    )
    print(
        f"  rate held: {per_minute:.0f}/min = {ratio:.3f} of the limit "
        f"(target >= {RIGHT_TARGET} and no 429): {'PASS' if ok else 'FAIL'}"
    )
    print(f"reproduce: {command}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
