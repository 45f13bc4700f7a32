"""`bulk-chats ui` as a user runs it: its options, the `ui: <url>` line, and Ctrl-C, which
stops a run in progress as it does in `import`."""

from __future__ import annotations

import csv
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import openpyxl
import pytest
from click.testing import CliRunner

from bulk_chats.cli.main import cli
from bulk_chats.sandbox import CUSTOMERS
from tests.ui.pages import UPLOAD_HEADERS

WAIT = 30.0
"""Seconds any one step may take."""


def test_ui_options_exist_with_help() -> None:
    """Each option PRODUCT.md gives `ui` is accepted and has help text."""
    result = CliRunner().invoke(cli, ["ui", "--help"])
    assert result.exit_code == 0
    for option in ("--port", "--no-browser", "--sandbox", "--base-url", "--api-key-file"):
        assert re.search(rf"^\s+{option}\b.*\S", result.output, re.MULTILINE), option


def test_sandbox_with_a_base_url_is_one_line_and_exit_2() -> None:
    """`ui --sandbox --base-url` is a usage mistake: one line, exit 2, nothing served."""
    result = CliRunner().invoke(cli, ["ui", "--sandbox", "--base-url", "https://x.example/v1"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "bulk-chats: error: --sandbox runs its own API: leave out --base-url and --api-key-file"
    ]


class Served:
    """`bulk-chats ui --sandbox --no-browser` (or with `browser` set, opening that; or
    with `options` instead of `--sandbox`, and `env` added to the environment) in a child
    process, its stderr read by a thread."""

    def __init__(
        self,
        cwd: Path,
        *,
        browser: dict[str, str] | None = None,
        options: Sequence[str] = ("--sandbox",),
        env: dict[str, str] | None = None,
    ) -> None:
        flags = ["--no-browser"] if browser is None else []
        base = dict(os.environ) if browser is None else {**without_browsers(), **browser}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bulk_chats", "ui", *options, *flags],
            cwd=cwd,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**base, **(env or {})},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = self.wait_for(r"^ui: (http://127\.0\.0\.1:\d+/\?token=\S+)$").group(1)
        self.root, _, token = self.url.partition("/?token=")
        self.params = {"token": token}

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            self.seen.append(line)
            if found := re.search(pattern, line):
                return found
        raise AssertionError(f"no line like {pattern!r} in {self.seen}")

    def page(self, client: httpx.Client) -> str:
        answer = client.get(f"{self.root}/", params=self.params)
        assert answer.status_code == 200
        return answer.text

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(WAIT)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(WAIT)
        self._reader.join(WAIT)
        assert self.process.stderr is not None
        self.process.stderr.close()


def without_browsers() -> dict[str, str]:
    """This environment as it would be on a machine with no browser for Python's
    `webbrowser` to find: no display, no `BROWSER`, nothing on the `PATH`."""
    hidden = {"BROWSER", "DISPLAY", "WAYLAND_DISPLAY", "PATH"}
    return {name: value for name, value in os.environ.items() if name not in hidden}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    child = Served(tmp_path)
    yield child
    child.kill()


def poll(condition: str, read: object) -> None:
    """Wait (bounded) until `read()` returns text matching `condition`."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if re.search(condition, read()):  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"never saw {condition!r}")


def test_serves_with_the_token_and_ends_on_ctrl_c(served: Served) -> None:
    """The printed URL opens the page; the same address without the token is refused;
    Ctrl-C with no run in progress ends the server with status 0."""
    served.wait_for(r"^ui: open the address above in a browser; Ctrl-C here stops the page$")
    with httpx.Client(timeout=WAIT) as client:
        assert "bulk-chats" in served.page(client)
        assert client.get(f"{served.root}/").status_code == 403
    assert served.interrupt() == 0


def test_ctrl_c_stops_a_run_and_writes_its_workbook(served: Served, tmp_path: Path) -> None:
    """Ctrl-C during an import stops it as in `import`: the rows not reached are not_sent
    in the results workbook, and the exit status is 130."""
    rows = tmp_path / "sixty.csv"
    with rows.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["customer", "application", "assignee"])
        for i in range(60):
            writer.writerow([CUSTOMERS[i % len(CUSTOMERS)].id, 3838, 4188 + i // len(CUSTOMERS)])
    with httpx.Client(timeout=WAIT) as client:
        post = {"params": served.params}
        upload = client.post(
            f"{served.root}/upload",
            params={**served.params, "name": rows.name},
            content=rows.read_bytes(),
            headers=UPLOAD_HEADERS,
        )
        assert upload.status_code == 200
        started = client.post(f"{served.root}/run", json={"kind": "import", "rate": 120}, **post)
        assert started.status_code == 200
        poll('data-phase="confirm"', lambda: served.page(client))
        assert client.post(f"{served.root}/confirm", json={}, **post).status_code == 200
        poll(r'aria-valuenow="[1-9]', lambda: served.page(client))
    assert served.interrupt() == 130
    assert any("stopping: no new rows" in line for line in served.seen + list(served.lines.queue))
    [workbook] = (tmp_path / "reports").glob("sixty-results-*.xlsx")
    book = openpyxl.load_workbook(workbook, read_only=True)
    table = list(book["results"].iter_rows(values_only=True))
    book.close()
    statuses = Counter(row[table[0].index("status")] for row in table[1:])
    assert statuses["created"] >= 1
    assert statuses["not_sent"] >= 1
    assert statuses["created"] + statuses["not_sent"] == 60
    assert not [p for p in (tmp_path / "reports" / "uploads").rglob("*") if p.is_file()]


RECORDER = """\
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

lines = sys.argv[1:]
opened = Path(unquote(urlsplit(sys.argv[1]).path))
if sys.argv[1].startswith("file:") and opened.is_file():
    lines += [oct(opened.stat().st_mode & 0o777), opened.read_text()]
Path(sys.argv[0]).with_name("opened.txt").write_text("\\n".join(lines))
"""
"""A browser that writes what it was started with (its command line, then the mode and
text of the file it was given) beside itself."""


def test_the_token_is_not_on_the_browser_s_command_line(tmp_path: Path) -> None:
    """The browser is started on an owner-only file that redirects to the page (the token
    is in the file, not on a command line `ps` shows), the line after the address says so
    and that Ctrl-C stops the page, and the file is gone once it stops."""
    recorder = tmp_path / "browser" / "recorder.py"
    recorder.parent.mkdir()
    recorder.write_text(f"#!{sys.executable}\n{RECORDER}", encoding="utf-8")
    recorder.chmod(0o700)
    served = Served(tmp_path, browser={"BROWSER": str(recorder)})
    try:
        opened = recorder.parent / "opened.txt"
        poll(".", lambda: opened.read_text() if opened.exists() else "")
        argument, *rest = opened.read_text().split("\n", 2)
        assert served.params["token"] not in argument
        mode, page = rest
        served.wait_for(r"^ui: opened in the browser; Ctrl-C here stops the page$")
        assert argument.startswith("file:///")
        [redirect] = (tmp_path / "reports").glob("open-page-*.html")
        assert argument == redirect.as_uri()
        assert mode == "0o600"
        assert f'content="0;url={served.url}"' in page
        with httpx.Client(timeout=WAIT) as client:
            assert "bulk-chats" in served.page(client)
        assert served.interrupt() == 0
        assert not redirect.exists()
    finally:
        served.kill()


def test_with_no_browser_the_start_up_line_says_so(tmp_path: Path) -> None:
    """Where no browser can be started, the line after the address says so, and that
    Ctrl-C stops the page."""
    served = Served(tmp_path, browser={})
    try:
        served.wait_for(
            r"^ui: no browser found: open the address above in one; Ctrl-C here stops the page$"
        )
        assert served.interrupt() == 0
    finally:
        served.kill()
