"""Fixtures of the page's tests at the HTTP level."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bulk_chats.ui import UiApp
from tests.ui.pages import client_for, make_ui


@pytest.fixture
async def ui(tmp_path: Path) -> AsyncIterator[tuple[UiApp, httpx.AsyncClient]]:
    """An app with no API behind it (enough for everything offline) and a client for it.
    (The browser tests have a `ui` of their own: the page served on loopback.)"""
    app = make_ui(tmp_path)
    async with client_for(app) as client:
        yield app, client
