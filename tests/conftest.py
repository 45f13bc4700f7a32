"""Fixtures the tests share: a clean environment, the asyncio backend for anyio, fake time,
a journal, an open umask, both kinds of sandbox answers, sandboxes on loopback, and a
workbook reader that never answers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import respx

from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.journal.journal import Journal, journal_path
from bulk_chats.sandbox import RunningSandbox, SandboxConfig, run_in_thread
from bulk_chats.sheet import workbook, workbook_child
from tests.fakes import API_ROOT, FakeTime, StartSandbox, StuckReader, fake_client


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees a HELPCRUNCH_* variable from the machine that runs it."""
    for name in list(os.environ):
        if name.startswith("HELPCRUNCH_"):
            monkeypatch.delenv(name)


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, the loop the command line uses."""
    return "asyncio"


@pytest.fixture
def fake() -> FakeTime:
    """A fresh fake clock at 0."""
    return FakeTime()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where a journal goes in a fresh reports directory."""
    return journal_path(tmp_path / "reports")


@pytest.fixture
def journal(path: Path) -> Iterator[Journal]:
    """A journal open at `path` for the HelpCrunch API root, closed after the test."""
    with Journal.open(path, scope="https://api.helpcrunch.com/v1", input_name="march.xlsx") as j:
        yield j


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask of 0 for the test: only the modes the tool sets itself keep files private."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture(params=[False, True], ids=["docs", "quirks"])
def quirks(request: pytest.FixtureRequest) -> bool:
    """A test that takes it runs twice: against a sandbox answering as the documentation the
    tool follows, and with `SandboxConfig(quirks=True)`, as its other revisions do."""
    return bool(request.param)


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """The mocked API root (`API_ROOT`), for the HTTP unit tests."""
    with respx.mock(base_url=API_ROOT, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def client(fake: FakeTime, api: respx.MockRouter) -> AsyncIterator[HelpCrunchClient]:
    """A client at 6000 requests a minute on the fake clock over the mocked API."""
    async with fake_client(api, fake) as c:
        yield c


@pytest.fixture
def start_sandbox() -> Iterator[StartSandbox]:
    """Start sandboxes on loopback for the test; every one is stopped at its end."""
    with contextlib.ExitStack() as stack:
        yield lambda config: stack.enter_context(run_in_thread(config))


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    """How the `sandbox` fixture's stand-in behaves: any key, no rate limit to wait for. A
    test module overrides this fixture to say otherwise (its key, rate, faults, quirks)."""
    return SandboxConfig(rate=None)


@pytest.fixture
def sandbox(start_sandbox: StartSandbox, sandbox_config: SandboxConfig) -> RunningSandbox:
    """A sandbox on loopback for the test, as `sandbox_config` says."""
    return start_sandbox(sandbox_config)


@pytest.fixture
def stuck_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StuckReader:
    """Every workbook child of the test is one that never answers, and is given one second
    whatever the file's size."""
    reader = StuckReader.write(tmp_path)
    monkeypatch.setattr(workbook_child, "__file__", str(reader.script))
    monkeypatch.setattr(workbook, "READER_SECONDS", 1.0)
    monkeypatch.setattr(workbook, "READER_SECONDS_PER_MB", 0.0)
    return reader
