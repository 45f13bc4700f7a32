"""`bulk-chats export` on the command line: its options, one line and exit 2 for what
cannot be used, and the exit statuses of a run against the sandbox over loopback."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from bulk_chats.api import retry
from bulk_chats.cli.main import cli
from bulk_chats.errors import InputError
from bulk_chats.jobs.export_filters import parse_when
from bulk_chats.sandbox import (
    Faults,
    RunningSandbox,
    SandboxConfig,
    SandboxState,
    Seed,
    create_app,
    history,
)
from tests.e2e.test_secrets import KEY as SECRET
from tests.e2e.test_secrets import assert_key_nowhere
from tests.fakes import StartSandbox

KEY = "export-cli-key"
NOW = 1_790_000_000.0


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory, so `reports/` lands in it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def seeded(start_sandbox: StartSandbox) -> RunningSandbox:
    """A sandbox on loopback holding 130 chats of the past, accepting only `KEY`."""
    state = SandboxState(Seed(chats=history(130, end=NOW)))
    return start_sandbox(create_app(SandboxConfig(api_key=KEY, rate=None), state=state))


def run(*args: str, key: str | None = KEY) -> tuple[int, str]:
    env = {"HELPCRUNCH_API_KEY": key} if key else None
    result = CliRunner().invoke(cli, ["export", *args], env=env, catch_exceptions=False)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--assignee", "4188", "--assignee-email", "anna@example.com"],
            "give --assignee or --assignee-email, not both",
        ),
        (
            ["--department", "1", "--department-name", "Sales"],
            "give --department or --department-name, not both",
        ),
        (
            ["--customer-email", "a@b.co", "--customer-user-id", "crm-1"],
            "give --customer-user-id or --customer-email, not both",
        ),
        (
            ["--since", "last week"],
            "--since: 'last week' is not a date or a date-time; write 2026-10-01 or "
            "2026-10-01 09:30 (local time unless an offset such as +02:00 is given)",
        ),
        (["--since", "2026-10-02", "--until", "2026-10-01"], "--since must come before --until"),
        (
            ["--status", "archived"],
            "--status: 'archived' is not a chat status; use one of new, opened, pending, "
            "on hold, no communication, closed",
        ),
        (["--department-name", " "], "--department-name: is blank"),
        (["--quirks"], "--quirks changes the stand-in's answers: use it with --sandbox"),
    ],
)
def test_unusable_options_exit_2_with_one_line(
    workdir: Path, args: list[str], message: str
) -> None:
    """Each mistake on the command line is one line naming the option; nothing is read."""
    status, output = run(*args)
    assert status == 2
    assert output.strip() == f"bulk-chats: error: {message}"
    assert not (workdir / "reports").exists()


def test_a_date_is_local_time_unless_it_carries_an_offset() -> None:
    """`--since 2026-10-01` is local midnight; an offset or `Z` is kept."""
    local = parse_when("2026-10-01", "--since")
    assert local == dt.datetime(2026, 10, 1).astimezone()
    assert parse_when("2026-10-01 09:30+02:00", "--since") == dt.datetime(
        2026, 10, 1, 7, 30, tzinfo=dt.UTC
    )
    assert parse_when("2026-10-01T09:30:15Z", "--until") == dt.datetime(
        2026, 10, 1, 9, 30, 15, tzinfo=dt.UTC
    )
    with pytest.raises(InputError):
        parse_when("01/10/2026", "--until")


def test_an_export_exits_0_and_says_where_it_went(workdir: Path, seeded: RunningSandbox) -> None:
    """Every chat read: exit 0, the count and the workbook's path on stderr."""
    status, output = run("--base-url", seeded.base_url, "--status", "pending", "--no-progress")
    assert status == 0, output
    pending = sum(c.status == "pending" for c in seeded.state.chats)
    assert f"{pending} chats exported" in output
    (path,) = (workdir / "reports").glob("chats-export-*.xlsx")
    assert f"export: {Path('reports') / path.name}" in output
    assert openpyxl.load_workbook(path)["chats"].max_row == pending + 1


def test_a_refused_key_exits_3(workdir: Path, seeded: RunningSandbox) -> None:
    """A key the API refuses: exit 3, and the workbook says so."""
    status, output = run("--base-url", seeded.base_url, "--out", "x.xlsx", key="wrong")
    assert status == 3
    assert "partial: the API refused the key (401)" in output
    assert KEY not in output


def test_a_name_that_matches_nothing_exits_2_before_any_chat_is_read(
    workdir: Path, seeded: RunningSandbox
) -> None:
    """`--department-name Legal`: no such department, exit 2, no chat read, no file."""
    status, output = run("--base-url", seeded.base_url, "--department-name", "Legal")
    assert status == 2
    assert "--department-name: 'Legal' matches no department" in output
    requests = seeded.state.requests
    assert requests["GET /v1/chats"] == requests["POST /v1/chats/search"] == 0
    assert not list((workdir / "reports").glob("*.xlsx"))


def test_a_partial_export_exits_1(
    workdir: Path, start_sandbox: StartSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads that keep failing (a 500 to every one) end the export partial: exit 1, the
    reason on stderr and in the workbook."""
    monkeypatch.setattr(retry, "BACKOFF_BASE", 0.01)
    faults = Faults(error_before=1.0, reads=True)
    broken = start_sandbox(SandboxConfig(api_key=KEY, rate=None, faults=faults))
    status, output = run("--base-url", broken.base_url, "--out", "x.xlsx")
    assert status == 1
    assert "partial: the pre-flight read of agents and departments failed" in output
    assert openpyxl.load_workbook(workdir / "x.xlsx")["chats"].max_row == 1


def test_importing_an_export_is_refused_before_anything_is_sent(
    workdir: Path, seeded: RunningSandbox
) -> None:
    """`import` of an export: exit 2, one line, no chat created."""
    status, output = run("--base-url", seeded.base_url, "--out", "x.xlsx", "--no-progress")
    assert status == 0, output
    before = len(seeded.state.chats)
    result = CliRunner().invoke(
        cli,
        ["import", "x.xlsx", "--base-url", seeded.base_url, "--yes"],
        env={"HELPCRUNCH_API_KEY": KEY},
    )
    assert result.exit_code == 2
    assert result.output.startswith("bulk-chats: error: x.xlsx: an export of chats that exist")
    assert len(seeded.state.chats) == before


def test_the_key_is_in_no_output_log_or_file_of_an_export(
    workdir: Path, start_sandbox: StartSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """An export with messages, and one whose key is refused, leak the key into no
    output, log record, workbook or journal."""
    caplog.set_level(logging.DEBUG)
    state = SandboxState(Seed(chats=history(30, end=NOW)))
    sandbox = start_sandbox(create_app(SandboxConfig(api_key=SECRET, rate=None), state=state))
    for key, status in ((SECRET, 0), (SECRET + "-revoked", 3)):
        result = CliRunner().invoke(
            cli,
            ["export", "--base-url", sandbox.base_url, "--messages", "--yes", "--rate", "60000"],
            env={"HELPCRUNCH_API_KEY": key},
        )
        assert result.exit_code == status, result.output
        assert_key_nowhere(result, caplog, workdir)
