"""A sandbox in a child process of its own, for the benchmarks: the tool's pacing rests on
its event loop waking on time, which a sandbox sharing its interpreter would disturb."""

from __future__ import annotations

import queue
import shlex
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def sandbox_child(command: list[str]) -> Iterator[str]:
    """Run `command`, a sandbox that prints its API root on a line of its own once it
    listens, for the `with` block; yields that root. Ctrl-C ends it, a kill if it lingers."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        # Read off the main thread, so that a sandbox that never starts cannot hang us.
        lines: queue.Queue[str] = queue.Queue()
        out = process.stdout
        assert out is not None
        threading.Thread(target=lambda: lines.put(out.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=30)
        except queue.Empty:
            line = ""
        base_url = next((word for word in line.split() if word.startswith("http://")), "")
        if not base_url:
            raise RuntimeError(f"the sandbox did not start: {shlex.join(command)}")
        yield base_url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
