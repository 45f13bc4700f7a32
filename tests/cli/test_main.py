"""The command line: exit statuses, messages, the documented options, and the key kept
secret. Imports run against the sandbox over real loopback HTTP."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from bulk_chats.cli.main import cli
from bulk_chats.cli.options import print_summary
from bulk_chats.jobs.result import RunResult
from bulk_chats.sandbox import RunningSandbox, SandboxConfig

ROOT = Path(__file__).resolve().parents[2]
SHARED_OPTIONS = ["--out", "--sheet", "--column", "--no-progress"]
SENDING_OPTIONS = [
    *SHARED_OPTIONS,
    "--rate",
    "--concurrency",
    "--base-url",
    "--api-key-file",
    "--sandbox",
    "--fresh",
    "--yes",
]
"""What `import`, `update` and `close` all take."""
PRODUCT_OPTIONS = {
    "validate": SHARED_OPTIONS,
    "import": [
        *SENDING_OPTIONS,
        "--dry-run",
        "--create-customers",
        "--chat-status",
        "--no-time-prefix",
    ],
    "update": [*SENDING_OPTIONS, "--chat-status"],
    "close": SENDING_OPTIONS,
    "export": [
        "--status",
        "--assignee",
        "--assignee-email",
        "--department",
        "--department-name",
        "--customer-email",
        "--customer-user-id",
        "--since",
        "--until",
        "--messages",
        "--out",
        "--rate",
        "--base-url",
        "--api-key-file",
        "--sandbox",
        "--yes",
        "--no-progress",
    ],
    "sandbox": [
        "--host",
        "--port",
        "--rate",
        "--key",
        "--latency",
        "--fault",
        "--seed",
        "--no-retry-after",
        "--seed-chats",
    ],
}
FAKE_KEY = "hc-test-key-DO-NOT-LEAK-7f3a9c"
VALID_ROWS = "customer,application,assignee\n8738438,3838,4188\n8738439,3838,\n"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory, so `reports/` lands in it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def sandbox_config(quirks: bool) -> SandboxConfig:
    """A sandbox that accepts only `FAKE_KEY`, with a rate no test waits for, answering as
    the documentation does and (`quirks`) as its other revisions do."""
    return SandboxConfig(api_key=FAKE_KEY, rate=6000, quirks=quirks)


DOCS_ONLY = pytest.mark.parametrize("quirks", [False], ids=["docs"])
"""For a test whose sandbox's answers are not the point: it runs once."""


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the CLI in-process; return the exit status and everything it printed."""
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


def run_import(
    source: Path, sandbox: RunningSandbox, *, out: str = "out.xlsx", key: str = FAKE_KEY
) -> tuple[int, str]:
    """Run `import` of `source` into `sandbox`, results to `out`, `key` in the environment."""
    return run(
        "import",
        str(source),
        "--base-url",
        sandbox.base_url,
        "--out",
        out,
        env={"HELPCRUNCH_API_KEY": key},
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_every_documented_command_and_option_exists_with_help() -> None:
    """Each command and option PRODUCT.md names is accepted and has help text."""
    for command, options in PRODUCT_OPTIONS.items():
        status, output = run(command, "--help")
        assert status == 0, output
        for option in options:
            match = re.search(rf"^\s+(-\w, )?{re.escape(option)}\b.*\S", output, re.MULTILINE)
            assert match, f"{command} {option} is missing from --help"


def test_python_dash_m_runs_the_cli() -> None:
    """`python -m bulk_chats --help` works like the console script."""
    done = subprocess.run(
        [sys.executable, "-m", "bulk_chats", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "validate" in done.stdout
    assert "import" in done.stdout


def test_validate_all_valid_exits_0(workdir: Path) -> None:
    """validate exits 0 when every row is valid and says where the workbook is."""
    source = write(workdir / "good.csv", VALID_ROWS)
    status, output = run("validate", str(source), "--out", "out.xlsx")
    assert status == 0
    assert "2 rows: valid 2" in output
    assert (workdir / "out.xlsx").exists()


def test_validate_with_invalid_rows_exits_1(workdir: Path) -> None:
    """validate exits 1 when some rows are invalid, and names their error codes."""
    source = write(workdir / "bad.csv", "customer,application\n8738438,3838\nabc,3838\n")
    status, output = run("validate", str(source))
    assert status == 1
    assert "invalid 1" in output
    assert "invalid_customer 1" in output
    assert list((workdir / "reports").glob("bad-results-*.xlsx"))


def test_a_column_option_without_a_header_reads_the_field_from_no_column(workdir: Path) -> None:
    """`--column assignee=`: the Agent ID column is not read as the assignee (its bad ids
    are no problem), and the run is valid."""
    write(workdir / "agents.csv", "customer,application,Agent ID\n8738438,3838,not an id\n")
    status, output = run("validate", "agents.csv", "--column", "assignee=")
    assert status == 0, output
    assert "valid 1" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate", "missing.csv"], "bulk-chats: error: missing.csv: no such file\n"),
        (
            ["validate", "nocolumn.csv"],
            "bulk-chats: error: nocolumn.csv: no application column (looked for application, "
            "application_id, app, app_id, applicationid); name one with --column "
            "application=HEADER\n",
        ),
        (
            ["validate", "good.csv", "--column", "customer"],
            None,
        ),
        (
            ["import", "good.csv", "--base-url", "http://example.com/v1"],
            "bulk-chats: error: --base-url: 'http://example.com/v1' uses plain http; use https "
            "(plain http is allowed only for loopback addresses)\n",
        ),
        (
            ["import", "good.csv"],
            "bulk-chats: error: no API key: set HELPCRUNCH_API_KEY or pass --api-key-file "
            "(or try the built-in sandbox with --sandbox)\n",
        ),
    ],
)
def test_unusable_input_or_options_exit_2_with_one_line(
    workdir: Path, args: list[str], message: str | None
) -> None:
    """Unusable input or options: exit 2, one line, no traceback, no workbook."""
    write(workdir / "good.csv", VALID_ROWS)
    write(workdir / "nocolumn.csv", "customer,agent\n1,2\n")
    status, output = run(*args)
    assert status == 2
    assert "Traceback" not in output
    if message is not None:
        assert output == message
    assert not (workdir / "reports").exists() or not list((workdir / "reports").glob("*.xlsx"))


def test_import_all_created_exits_0(workdir: Path, sandbox: RunningSandbox) -> None:
    """import exits 0 when every row is created, once each."""
    source = write(workdir / "good.csv", VALID_ROWS)
    status, output = run_import(source, sandbox)
    assert status == 0, output
    assert "created 2" in output
    assert sorted(c.customer.id for c in sandbox.state.chats) == [8738438, 8738439]


def test_import_with_invalid_rows_exits_1_and_sends_only_valid(
    workdir: Path, sandbox: RunningSandbox
) -> None:
    """import exits 1 when some rows are invalid; the invalid ones are never sent."""
    source = write(workdir / "mixed.csv", "customer,application\n8738438,3838\n12.5,3838\n")
    status, output = run_import(source, sandbox)
    assert status == 1, output
    assert [c.customer.id for c in sandbox.state.chats] == [8738438]
    assert sandbox.state.requests["POST /v1/chats"] == 1


@DOCS_ONLY
def test_refused_key_exits_3_creates_nothing_and_marks_not_sent(
    workdir: Path, sandbox: RunningSandbox
) -> None:
    """A 401 on the key check: exit 3, no chat request, every row not_sent in the workbook."""
    source = write(workdir / "good.csv", VALID_ROWS)
    status, output = run_import(source, sandbox, key="a-wrong-key")
    assert status == 3, output
    assert sandbox.state.requests["POST /v1/chats"] == 0
    sheet = openpyxl.load_workbook(workdir / "out.xlsx")["results"]
    header = [c.value for c in sheet[1]]
    statuses = [row[header.index("status")] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert statuses == ["not_sent", "not_sent"]


def test_api_key_appears_in_no_output_and_no_file(workdir: Path, sandbox: RunningSandbox) -> None:
    """The key read from a file shows up in nothing the tool prints or writes."""
    source = write(workdir / "mixed.csv", "customer,application\n8738438,3838\n8738499,3838\n")
    key_file = write(workdir.parent / "key.txt", FAKE_KEY + "\n")
    status, output = run(
        "import",
        str(source),
        "--base-url",
        sandbox.base_url,
        "--api-key-file",
        str(key_file),
    )
    assert status == 1, output
    assert FAKE_KEY not in output
    written = [p for p in (workdir / "reports").rglob("*") if p.is_file()]
    assert any(p.suffix == ".xlsx" for p in written)
    for path in written:
        assert FAKE_KEY.encode() not in path.read_bytes(), path
        if path.suffix == ".xlsx":
            import zipfile

            with zipfile.ZipFile(path) as book:
                for part in book.namelist():
                    assert FAKE_KEY.encode() not in book.read(part), part


def test_sandbox_demo_runs_without_a_key(workdir: Path, quirks: bool) -> None:
    """`import --sandbox` (and `--quirks`) needs no key and creates the sample's valid rows."""
    sandbox = ["--sandbox", "--quirks"] if quirks else ["--sandbox"]
    status, output = run(
        "import", str(ROOT / "sample_data" / "chats.csv"), *sandbox, "--yes", "--rate", "6000"
    )
    assert status == 1, output
    assert "created 8" in output
    assert "invalid 8" in output


def test_the_transcripts_sample_imports_its_conversations(workdir: Path, quirks: bool) -> None:
    """The transcripts sample on the sandbox: three conversations in, the one whose rows
    disagree left out (exit 1); validate says the same offline."""
    sample = str(ROOT / "sample_data" / "transcripts.csv")
    status, output = run("validate", sample)
    assert status == 1, output
    assert "12 rows: valid 10, invalid 2" in output
    sandbox = ["--sandbox", "--quirks"] if quirks else ["--sandbox"]
    status, output = run("import", sample, *sandbox, "--yes", "--rate", "6000")
    assert status == 1, output
    assert "3 conversations, 3 chats, 10 messages, 2 status changes" in output
    assert "12 rows: created 10, invalid 2" in output
    assert "conflicting_application 2" in output


@DOCS_ONLY
def test_unwritable_out_exits_2_before_anything_is_sent(
    workdir: Path, sandbox: RunningSandbox
) -> None:
    """An --out that cannot be written stops the import before its first request."""
    source = write(workdir / "good.csv", VALID_ROWS)
    write(workdir / "blocker", "a file, not a folder")
    status, output = run_import(source, sandbox, out="blocker/out.xlsx")
    assert status == 2, output
    assert output.startswith("bulk-chats: error: blocker/out.xlsx: cannot write the results")
    assert sum(sandbox.state.requests.values()) == 0


@DOCS_ONLY
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
@pytest.mark.usefixtures("open_umask")
def test_everything_written_with_customer_data_is_the_owners_alone(
    workdir: Path, sandbox: RunningSandbox
) -> None:
    """With a umask of 0, an import makes reports/ 0700 and the journal, its side files and
    the default workbook in it 0600."""
    source = write(workdir / "good.csv", VALID_ROWS)
    status, output = run(
        "import", str(source), "--base-url", sandbox.base_url, env={"HELPCRUNCH_API_KEY": FAKE_KEY}
    )
    assert status == 0, output
    reports = workdir / "reports"
    written = {p.name: stat.S_IMODE(p.stat().st_mode) for p in reports.iterdir()}
    assert {"journal.sqlite3", "journal.sqlite3-lock"} <= set(written)
    assert any(name.endswith(".xlsx") for name in written)
    assert written == dict.fromkeys(written, 0o600)
    assert stat.S_IMODE(reports.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("confirmed", "said"),
    [
        (True, "the account allows 743 requests a minute (the API confirmed it)"),
        (False, "seemed to allow 743 requests a minute, but the API did not confirm it"),
    ],
)
def test_the_summary_says_the_limit_and_whether_the_api_confirmed_it(
    capsys: pytest.CaptureFixture[str], confirmed: bool, said: str
) -> None:
    """The summary names the limit the run ended at, and whether it is remembered."""
    result = RunResult(
        out=Path("r.xlsx"),
        counts={"created": 1},
        error_codes={},
        total=1,
        learned_limit=743,
        limit_confirmed=confirmed,
    )
    print_summary(result)
    assert said in capsys.readouterr().err
