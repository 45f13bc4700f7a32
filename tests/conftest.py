"""Fixtures every test gets: a clean environment, the asyncio backend for anyio, fake time."""

from __future__ import annotations

import os

import pytest

from tests.fakes import FakeTime


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
