"""The sandbox's chats for export: seeded in the past with their messages (in Python or
from a file), listed by `GET /v1/chats` and searched by creation time, status, assignee,
department and customer, sorted and paged; faults on reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from bulk_chats import sandbox
from bulk_chats.cli.main import cli
from bulk_chats.errors import InputError
from bulk_chats.sandbox import (
    AGENTS,
    CUSTOMERS,
    DEPARTMENTS,
    Faults,
    SandboxApp,
    SandboxConfig,
    SandboxState,
    Seed,
    SeedChat,
    SeedMessage,
    create_app,
    history,
    load_seed_chats,
)
from bulk_chats.sandbox.state import FIRST_CHAT_ID, FIRST_MESSAGE_ID

ROOT = Path(__file__).resolve().parents[2]
KEY = "history-test-key"
NOW = 1_700_000_000.0
DAY = 86_400.0


def make_app(chats: tuple[SeedChat, ...] = (), **config: Any) -> SandboxApp:
    """An app holding `chats`, dated by a wall clock at `NOW`."""
    state = SandboxState(Seed(chats=chats), wall_clock=lambda: NOW)
    return create_app(SandboxConfig(rate=None, **config), state=state)


def client(app: SandboxApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://sandbox.test/v1",
        headers={"Authorization": f"Bearer {KEY}"},
    )


async def search(c: httpx.AsyncClient, *filters: tuple[str, str, Any], **more: Any) -> list[int]:
    body = {"filter": [{"field": f, "operator": o, "value": v} for f, o, v in filters], **more}
    answer = await c.post("/chats/search", json=body)
    assert answer.status_code == 200, answer.text
    return [chat["id"] for chat in answer.json()["data"]]


def test_seeded_chats_get_ids_in_creation_order_with_their_past_messages() -> None:
    """Seeded chats are stored oldest first whatever their order in the seed, with their
    messages at their own times; new chats and messages take the ids after them."""
    later = SeedChat(CUSTOMERS[1].id, 3838, NOW - DAY, messages=(SeedMessage("hi", NOW - DAY),))
    earlier = SeedChat(CUSTOMERS[0].id, 3838, NOW - 2 * DAY, closed_at=NOW - 2 * DAY + 60)
    state = SandboxState(Seed(chats=(later, earlier)), wall_clock=lambda: NOW)
    first, second = state.chats
    assert (first.id, first.customer.id, first.status) == (FIRST_CHAT_ID, CUSTOMERS[0].id, "closed")
    assert (second.status, second.messages[0].created_at) == ("new", NOW - DAY)
    assert second.messages[0].id == FIRST_MESSAGE_ID
    made = state.add_chat(
        customer=CUSTOMERS[0], application=3838, assignee=None, department=None, payload={}
    )
    assert made.id == FIRST_CHAT_ID + 2
    assert [c.id for c in state.by_creation()] == [FIRST_CHAT_ID, FIRST_CHAT_ID + 1, made.id]


def test_a_seeded_chat_naming_what_the_sandbox_lacks_is_refused() -> None:
    """A customer, agent, department or application the seed does not have is one line."""
    with pytest.raises(InputError, match="customer 1"):
        SandboxState(Seed(chats=(SeedChat(1, 3838, NOW),)))
    with pytest.raises(InputError, match="assignee 7"):
        SandboxState(Seed(chats=(SeedChat(CUSTOMERS[0].id, 3838, NOW, assignee=7),)))
    chat = SeedChat(CUSTOMERS[0].id, 3838, NOW, messages=(SeedMessage("x", NOW, agent=9),))
    with pytest.raises(InputError, match="agent 9"):
        SandboxState(Seed(chats=(chat,)))


def test_history_is_made_up_the_same_way_every_time() -> None:
    """`history` spreads its chats over the days before `end`, oldest first, every
    status, department and a fifth unassigned; the same arguments give the same chats."""
    chats = history(35, end=NOW, days=7)
    assert chats == history(35, end=NOW, days=7)
    assert [c.created_at for c in chats] == sorted(c.created_at for c in chats)
    assert NOW - 7 * DAY <= chats[0].created_at < chats[-1].created_at < NOW
    assert {c.status for c in chats} == {"closed", "pending", "opened", "on hold", "new"}
    assert sum(c.assignee is None for c in chats) == 7
    assert all(c.closed_at is not None for c in chats if c.status == "closed")
    SandboxState(Seed(chats=chats))  # every id it names is the seed's


def test_a_seed_file_is_read_with_iso_and_unix_times(tmp_path: Path) -> None:
    """The file's chats and messages, times as ISO 8601 (UTC unless an offset is given) or
    unix seconds; a message without `agent` is the customer's."""
    path = tmp_path / "seed.json"
    path.write_text(
        json.dumps(
            {
                "chats": [
                    {
                        "customer": CUSTOMERS[0].id,
                        "application": 3838,
                        "assignee": AGENTS[0].id,
                        "status": "pending",
                        "createdAt": "2023-11-14T22:13:20",
                        "messages": [
                            {"text": "Hello", "createdAt": 1_700_000_000},
                            {
                                "text": "Hi",
                                "agent": AGENTS[0].id,
                                "createdAt": "2023-11-14T23:14:20+01:00",
                            },
                        ],
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    (chat,) = load_seed_chats(path)
    assert chat.created_at == NOW
    assert chat.messages == (
        SeedMessage("Hello", NOW),
        SeedMessage("Hi", NOW + 60, agent=AGENTS[0].id),
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not a JSON file"),
        ('{"chats": 3}', "expected"),
        (
            '[{"customer": 1, "application": 3838, "createdAt": 1, "colour": "red"}]',
            "chats[0]: unknown field 'colour'",
        ),
        (
            '[{"customer": "8738438", "application": 3838, "createdAt": 1}]',
            "chats[0].customer: '8738438' is not an id",
        ),
        (
            '[{"customer": 8738438, "application": 3838, "createdAt": "yesterday"}]',
            "chats[0].createdAt: 'yesterday' is not a time",
        ),
        (
            '[{"customer": 8738438, "application": 3838, "createdAt": 1, '
            '"messages": [{"createdAt": 1}]}]',
            "chats[0].messages[0].text: required",
        ),
    ],
)
def test_a_seed_file_that_cannot_be_used_is_one_line_naming_the_place(
    tmp_path: Path, content: str, message: str
) -> None:
    """Each mistake in a seed file names the file, the chat (and message) and the field."""
    path = tmp_path / "seed.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_seed_chats(path)


@pytest.mark.anyio
async def test_the_listing_is_oldest_first_and_paged() -> None:
    """`GET /v1/chats` lists every chat by creation time (asc or desc), paged, with the
    true total; other sort fields sort too, empty values last."""
    chats = history(130, end=NOW, days=10)
    async with client(make_app(chats)) as c:
        first = (await c.get("/chats", params={"limit": 100})).json()
        rest = (await c.get("/chats", params={"offset": 100, "limit": 100})).json()
        newest = (await c.get("/chats", params={"order": "desc", "limit": 1})).json()
        by_closing = (await c.get("/chats", params={"sort": "chats.closedAt"})).json()
    ids = [chat["id"] for chat in first["data"] + rest["data"]]
    assert ids == list(range(FIRST_CHAT_ID, FIRST_CHAT_ID + 130))
    assert (len(first["data"]), first["meta"]["total"]) == (100, 130)
    assert newest["data"][0]["id"] == FIRST_CHAT_ID + 129
    closed = [chat["closedAt"] for chat in by_closing["data"] if chat["closedAt"] is not None]
    assert closed == sorted(closed)
    assert by_closing["data"][-1]["closedAt"] is None


@pytest.mark.anyio
async def test_the_listing_refuses_what_the_api_would() -> None:
    """A sort field it does not have, or a limit over 100, is a 400."""
    async with client(make_app()) as c:
        assert (await c.get("/chats", params={"sort": "chats.id"})).status_code == 400
        assert (await c.get("/chats", params={"limit": 101})).status_code == 400


@pytest.mark.anyio
async def test_with_quirks_the_listing_pages_by_fifty_with_a_wrong_total() -> None:
    """As a revision answers: 50 chats a page whatever is asked, `meta.total` 0, and
    timestamps as strings."""
    async with client(make_app(history(80, end=NOW), quirks=True)) as c:
        page = (await c.get("/chats", params={"limit": 100})).json()
    assert (len(page["data"]), page["meta"]["total"]) == (50, 0)
    assert isinstance(page["data"][0]["createdAt"], str)


@pytest.mark.anyio
async def test_chats_are_searched_by_every_field_an_export_filters_on() -> None:
    """Status, assignee, department, customer email (any case) and userId, and a range
    of creation times, joined with AND; each chat carries its rating and closing time."""
    chats = history(60, end=NOW, days=6)
    app = make_app(chats)
    by_id = {FIRST_CHAT_ID + n: chat for n, chat in enumerate(chats)}
    customer = CUSTOMERS[2]
    async with client(app) as c:
        pending = await search(c, ("chats.status", "=", "pending"))
        billing = await search(c, ("chats.department", "=", DEPARTMENTS[2].id))
        unassigned = await search(c, ("chats.assignee", "=", None))
        by_email = await search(c, ("chats.customer.email", "=", customer.email.upper()))
        by_user = await search(c, ("chats.customer.userId", "=", customer.user_id))
        window = await search(
            c,
            ("chats.createdAt", ">=", int(chats[10].created_at)),
            ("chats.createdAt", "<", int(chats[20].created_at)),
        )
        great = await search(c, ("chats.rating", "=", "great"))
    assert pending == [i for i, chat in by_id.items() if chat.status == "pending"]
    assert billing == [i for i, chat in by_id.items() if chat.department == DEPARTMENTS[2].id]
    assert unassigned == [i for i, chat in by_id.items() if chat.assignee is None]
    assert by_email == by_user == [i for i, chat in by_id.items() if chat.customer == customer.id]
    assert window == list(by_id)[10:20]
    assert great == [i for i, chat in by_id.items() if chat.rating == "great"]


@pytest.mark.anyio
async def test_a_search_sorted_by_creation_time_keeps_ties_in_creation_order() -> None:
    """Chats of one second come in the order they were created, page after page."""
    chats = tuple(SeedChat(CUSTOMERS[0].id, 3838, NOW) for _ in range(150))
    async with client(make_app(chats)) as c:
        ids = []
        for offset in (0, 100):
            ids += await search(
                c,
                ("chats.createdAt", ">=", int(NOW)),
                sort="chats.createdAt",
                order="asc",
                offset=offset,
            )
    assert ids == list(range(FIRST_CHAT_ID, FIRST_CHAT_ID + 150))


@pytest.mark.anyio
@pytest.mark.parametrize("fault", ["unavailable", "error_after"])
async def test_faults_strike_the_reads_when_asked(fault: str) -> None:
    """`Faults(reads=True)` puts the faults on the listings and searches too; without it
    they are left alone."""
    faults = Faults(**{fault: 1.0}, reads=True)
    async with client(make_app(history(3, end=NOW), faults=faults)) as c:
        listed = await c.get("/chats")
        searched = await c.post("/chats/search", json={})
        messages = await c.get(f"/chats/{FIRST_CHAT_ID}/messages")
    expected = 503 if fault == "unavailable" else 500
    assert [listed.status_code, searched.status_code, messages.status_code] == [expected] * 3
    async with client(make_app(history(3, end=NOW), faults=Faults(unavailable=1.0))) as c:
        assert (await c.get("/chats")).status_code == 200


def test_the_sandbox_command_seeds_the_chats_of_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """`bulk-chats sandbox --seed-chats FILE --fault-on reads` starts with the file's
    chats, faults on the reads; the shipped sample is such a file."""
    seen: list[tuple[SandboxConfig, SandboxState]] = []
    monkeypatch.setattr(
        sandbox, "serve", lambda config, *, state, **_: seen.append((config, state))
    )
    sample = ROOT / "sample_data" / "history.json"
    args = ["sandbox", "--seed-chats", str(sample), "--fault-on", "reads"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    ((config, state),) = seen
    assert config.faults.reads
    assert len(state.chats) == len(json.loads(sample.read_text(encoding="utf-8"))["chats"])
    assert all(chat.created_at < state.now() for chat in state.chats)


def test_a_seed_file_that_cannot_be_used_is_exit_2_and_one_line(tmp_path: Path) -> None:
    """A broken seed file stops the command before it serves: one line, exit 2."""
    path = tmp_path / "seed.json"
    path.write_text('[{"customer": 1, "application": 3838, "createdAt": 1}]', encoding="utf-8")
    result = CliRunner().invoke(cli, ["sandbox", "--seed-chats", str(path)])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "bulk-chats: error: a seeded chat names customer 1, which the sandbox does not have"
    )
