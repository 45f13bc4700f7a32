"""The page's import soaked: through every fault the sandbox has (on chats, messages,
customers and status changes), and through a `kill -9` of the page in the middle of a
run, against the documented answers and the other revisions' (`--quirks`). Every row ends
with exactly one chat and every new customer exists once; the list of runs says what
became of each run, the killed one included."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import anyio
import httpx
import pytest

from bulk_chats.api import retry
from bulk_chats.sandbox import Faults, SandboxConfig, run_in_thread
from bulk_chats.settings import ApiKey
from tests.e2e.test_customers import HEADER, assert_one_customer_each, migration_rows
from tests.sheets import read_results, write_csv
from tests.ui.pages import UPLOAD_HEADERS, client_for, make_ui, q, upload
from tests.ui.test_app import KEY, until_confirm
from tests.ui.test_browser import rows_csv
from tests.ui.test_command import WAIT, Served, poll

RUN_TIMEOUT = 120.0


async def import_confirmed(app: object, client: httpx.AsyncClient, **body: object) -> object:
    """Import from the page, Confirm its plan, wait for it to end; its view."""
    answer = await client.post("/run", params=q(), json={"kind": "import", **body})
    assert answer.status_code == 200, answer.text
    job = app.job  # type: ignore[attr-defined]
    await until_confirm(job)
    assert (await client.post("/confirm", params=q(), json={"go_on": True})).status_code == 200
    assert await anyio.to_thread.run_sync(job.join, RUN_TIMEOUT)
    return job.view()


@pytest.mark.anyio
async def test_the_page_s_import_converges_through_every_fault(
    tmp_path: Path, quirks: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration (new customers, first messages, chat statuses) imported from the page
    while the sandbox fails before and after storing, drops connections and answers late,
    on every endpoint it writes: Import again from the page converges, with one chat per
    row and one customer per new name, and the list of runs holds both runs."""
    monkeypatch.setattr(retry, "BACKOFF_BASE", 0.05)
    faults = Faults(
        seed=21,
        error_before=0.05,
        unavailable=0.05,
        drop_before=0.05,
        error_after=0.08,
        drop_after=0.08,
        slow_after=0.05,
        slow_seconds=0.3,
        messages=True,
        customers=True,
        updates=True,
    )
    rows = [[*row, "closed"] for row in migration_rows()]
    source = write_csv(tmp_path / "migration.csv", [*HEADER, "Chat status"], rows)
    config = SandboxConfig(api_key=KEY, rate=None, faults=faults, quirks=quirks)
    with run_in_thread(config) as running:
        app = make_ui(tmp_path, base_url=running.base_url, api_key=ApiKey(KEY))
        async with client_for(app) as client:
            assert (await upload(client, source)).status_code == 200
            views = [await import_confirmed(app, client, create_customers=True)]
            if not views[0].result.all_done:  # type: ignore[attr-defined]
                views.append(await import_confirmed(app, client, create_customers=True))
            page = (await client.get("/", params=q())).text
        assert sum(running.state.faults.values()) > 5, running.state.faults
        last = views[-1].result  # type: ignore[attr-defined]
        assert last.all_done, last.counts
        results = read_results(last.out)
        assert_one_customer_each(running, results)
        assert [len(chat.messages) for chat in running.state.chats] == [1] * len(rows)
        assert {chat.status for chat in running.state.chats} == {"closed"}
    assert page.count("<td>Import</td>") == len(views)
    assert "not finished" not in page


def start_import(served: Served, client: httpx.Client, source: Path, *, rate: int) -> None:
    """Upload `source` to the page served, Import it at `rate` and Confirm its plan, as its
    script would (no browser: a script with the token sends no origin headers)."""
    params = served.params
    answer = client.post(
        f"{served.root}/upload",
        params={**params, "name": source.name},
        content=source.read_bytes(),
        headers=UPLOAD_HEADERS,
    )
    assert answer.status_code == 200, answer.text
    started = client.post(
        f"{served.root}/run", params=params, json={"kind": "import", "rate": rate}
    )
    assert started.status_code == 200, started.text
    poll('data-phase="confirm"', lambda: served.page(client))
    assert client.post(f"{served.root}/confirm", params=params, json={}).status_code == 200


def test_a_page_killed_mid_run_is_listed_and_its_file_resumes_without_a_second_chat(
    tmp_path: Path, quirks: bool
) -> None:
    """`kill -9` of `bulk-chats ui` while its import sends: the page started again lists
    that run as not finished, and importing the same file from it sends only the rows
    left, every row ending with exactly one chat."""
    source = rows_csv(tmp_path / "sixty.csv", 60)
    env = {"HELPCRUNCH_API_KEY": KEY}
    with run_in_thread(SandboxConfig(api_key=KEY, rate=None, quirks=quirks)) as running:
        options = ["--base-url", running.base_url]
        first = Served(tmp_path, options=options, env=env)
        try:
            with httpx.Client(timeout=WAIT) as client:
                start_import(first, client, source, rate=240)
                poll("sent", lambda: "sent" if len(running.state.chats) >= 5 else "")
        finally:
            first.kill()
        killed_at = len(running.state.chats)
        assert killed_at < 60

        second = Served(tmp_path, options=options, env=env)
        try:
            with httpx.Client(timeout=WAIT) as client:
                page = second.page(client)
                assert "not finished: its page stopped first" in page
                assert ">sixty.csv<" in page
                start_import(second, client, source, rate=60_000)
                poll(r"<td>done</td>", lambda: second.page(client))
                page = second.page(client)
        finally:
            second.kill()
        chats = Counter(
            (chat.customer.id, chat.assignee.id if chat.assignee else None)
            for chat in running.state.chats
        )
        assert len(running.state.chats) == len(chats) == 60
    [summary] = re.findall(r'role="status" aria-label="Summary".*?</div>', page, re.S)
    counts = dict(re.findall(r"([a-z_]+) (\d+)</li>", summary))
    assert int(counts.get("created", 0)) + int(counts.get("already_created", 0)) == 60
    assert "not finished: its page stopped first" in page
