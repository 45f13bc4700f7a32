"""Secrets and output safety: the API key never reaches stdout, stderr, a log record, the
results workbook, the journal or any other file the tool writes, however a request ends;
text that looks like a formula stays text; plain http goes to loopback only; and TLS
certificates are always verified. Everything runs on loopback."""

from __future__ import annotations

import inspect
import logging
import socket
import ssl
import traceback
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import openpyxl
import pytest
from click.testing import CliRunner, Result

from bulk_chats.api import retry
from bulk_chats.api.client import HelpCrunchClient
from bulk_chats.api.limiter import RateLimiter
from bulk_chats.cli.main import cli
from bulk_chats.errors import ApiError, InputError
from bulk_chats.sandbox import Faults, RunningSandbox, SandboxConfig
from bulk_chats.settings import ApiKey, check_base_url
from tests.fakes import StartSandbox

KEY = "hc-test-key-DO-NOT-LEAK-1234"
ROWS = "customer,application,assignee\n8738438,3838,4188\n8738439,3838,\n"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory, so `reports/` lands in it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "chats.csv").write_text(ROWS)
    return tmp_path


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries back off by a millisecond, so failing runs end at once."""
    monkeypatch.setattr(retry, "BACKOFF_BASE", 0.001)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record of every logger, httpx and httpcore included, down to DEBUG."""
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    """A sandbox that accepts only `KEY`."""
    return SandboxConfig(api_key=KEY, rate=6000)


@pytest.fixture
def other_key_sandbox(start_sandbox: StartSandbox) -> RunningSandbox:
    """A sandbox that accepts another key only: every request gets 401."""
    return start_sandbox(SandboxConfig(api_key="some-other-key", rate=6000))


@pytest.fixture
def failing_sandbox(start_sandbox: StartSandbox) -> RunningSandbox:
    """A sandbox whose every POST /v1/chats answers 500."""
    return start_sandbox(SandboxConfig(api_key=KEY, rate=6000, faults=Faults(error_before=1.0)))


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def import_into(base_url: str, *extra: str) -> Result:
    """`bulk-chats import chats.csv` against `base_url`, the key in the environment."""
    return CliRunner().invoke(
        cli,
        [
            *("import", "chats.csv", "--base-url", base_url),
            *("--yes", "--no-progress", "--rate", "6000", *extra),
        ],
        env={"HELPCRUNCH_API_KEY": KEY},
    )


def assert_key_nowhere(result: Result, logs: pytest.LogCaptureFixture, folder: Path) -> None:
    """The key is in no output, no log record and no byte of any file under `folder`,
    inside every part of every workbook, the journal's side files included."""
    assert KEY not in result.stdout
    assert KEY not in result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        text = "".join(traceback.format_exception(result.exception))
        assert KEY not in text
    for record in logs.records:
        assert KEY not in record.getMessage(), record
        assert KEY not in repr(record.args), record
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files, "the run wrote nothing to look in"
    for path in files:
        data = path.read_bytes()
        assert KEY.encode() not in data, path
        assert KEY.encode("utf-16-le") not in data, path
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as book:
                for part in book.namelist():
                    assert KEY.encode() not in book.read(part), (path, part)


def written(folder: Path) -> set[str]:
    """The suffixes of the files a run left under `folder`."""
    return {p.suffix for p in folder.rglob("*") if p.is_file()}


# --- the key, through the command line ------------------------------------------------------


def test_key_kept_out_of_a_successful_run(
    workdir: Path, sandbox: RunningSandbox, logs: pytest.LogCaptureFixture
) -> None:
    """A run that creates every chat leaks the key into no output, log, workbook or journal."""
    result = import_into(sandbox.base_url)
    assert result.exit_code == 0, result.output
    assert {".xlsx", ".sqlite3"} <= written(workdir / "reports")
    assert_key_nowhere(result, logs, workdir)


def test_key_kept_out_of_a_refused_key(
    workdir: Path, other_key_sandbox: RunningSandbox, logs: pytest.LogCaptureFixture
) -> None:
    """When the API answers 401, the message and every file stay free of the key."""
    result = import_into(other_key_sandbox.base_url)
    assert result.exit_code == 3, result.output
    assert_key_nowhere(result, logs, workdir)


def test_key_kept_out_of_server_errors(
    workdir: Path,
    failing_sandbox: RunningSandbox,
    fast_retries: None,
    logs: pytest.LogCaptureFixture,
) -> None:
    """When every chat request answers 500, the failed rows, messages and journal carry no
    key."""
    result = import_into(failing_sandbox.base_url)
    assert result.exit_code == 1, result.output
    assert_key_nowhere(result, logs, workdir)


def test_key_kept_out_of_a_refused_connection(
    workdir: Path, fast_retries: None, logs: pytest.LogCaptureFixture
) -> None:
    """When the connection is refused (a closed loopback port), nothing printed, logged or
    written carries the key."""
    result = import_into(f"http://127.0.0.1:{closed_port()}/v1")
    assert result.exit_code == 1, result.output
    assert "could not connect to the API" in result.stderr
    assert_key_nowhere(result, logs, workdir)


def test_key_file_kept_out_of_everything(
    workdir: Path, sandbox: RunningSandbox, logs: pytest.LogCaptureFixture
) -> None:
    """A key given by --api-key-file (with its trailing newline) leaks nowhere either."""
    key_file = workdir.parent / f"{workdir.name}-key.txt"
    key_file.write_text(KEY + "\n")
    result = CliRunner().invoke(
        cli,
        [
            *("import", "chats.csv", "--base-url", sandbox.base_url, "--yes"),
            *("--api-key-file", str(key_file), "--out", "out.xlsx", "--rate", "6000"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert_key_nowhere(result, logs, workdir)


def test_key_never_on_the_command_line() -> None:
    """No option takes the key itself (it would land in shell history and `ps`)."""
    result = CliRunner().invoke(cli, ["import", "--help"])
    options = [p.opts for p in cli.commands["import"].params]  # type: ignore[attr-defined]
    assert not any(o in ("--api-key", "--key", "--token") for opts in options for o in opts)
    assert "--api-key-file" in result.output


# --- the key, through the client --------------------------------------------------------------


def echo_authorization(status: int) -> Callable[[httpx.Request], httpx.Response]:
    """A hostile or broken server that quotes the request's Authorization header back in
    its error body and its reason text."""

    def answer(request: httpx.Request) -> httpx.Response:
        header = request.headers["Authorization"]
        return httpx.Response(
            status,
            json={"errors": [{"code": f"bad {header}", "message": f"you sent {header}"}]},
            headers={"X-Echo": header},
        )

    return answer


def client_for(handler: Callable[[httpx.Request], httpx.Response]) -> HelpCrunchClient:
    return HelpCrunchClient(
        "https://api.helpcrunch.example/v1",
        ApiKey(KEY),
        limiter=RateLimiter(60_000),
        transport=httpx.MockTransport(handler),
    )


def assert_error_clean(error: BaseException) -> None:
    """Nothing an error shows, however it is printed, carries the key: its text, repr,
    fields, and the full traceback with its chained causes."""
    shown = [
        str(error),
        repr(error),
        repr(error.args),
        "".join(traceback.format_exception(error)),
    ]
    if isinstance(error, ApiError):
        shown += [error.error_code, error.error_message, repr(error.codes), repr(error.messages)]
    for text in shown:
        assert KEY not in text


@pytest.mark.parametrize("status", [400, 401, 404, 429, 500, 503])
@pytest.mark.anyio
async def test_error_answers_quoting_the_key_are_scrubbed(
    status: int, logs: pytest.LogCaptureFixture
) -> None:
    """An error answer that quotes the Authorization header back becomes an error whose
    text, fields and traceback hold no key."""
    async with client_for(echo_authorization(status)) as client:
        with pytest.raises(ApiError) as raised:
            await client.create_chat({"customer": 1, "application": 2})
    assert raised.value.http_status == status
    assert_error_clean(raised.value)
    assert KEY not in logs.text


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError, httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError],
)
@pytest.mark.parametrize("quotes_key", [False, True])
@pytest.mark.anyio
async def test_transport_errors_with_the_request_attached(
    failure: type[httpx.RequestError], quotes_key: bool, logs: pytest.LogCaptureFixture
) -> None:
    """An httpx error raised with the request attached (whose headers hold the key), and
    even one whose text quotes the key, leaves the client as an error that shows no key,
    in its text, its fields or its traceback."""

    def fail(request: httpx.Request) -> httpx.Response:
        text = f"failed sending {request.headers['Authorization']}" if quotes_key else "failed"
        raise failure(text, request=request)

    async with client_for(fail) as client:
        with pytest.raises(ApiError) as raised:
            await client.create_chat({"customer": 1, "application": 2})
    assert_error_clean(raised.value)
    assert KEY not in logs.text


def test_key_and_client_reprs_are_redacted() -> None:
    """The key's and the client's repr and str show no key."""
    key = ApiKey(KEY)
    client = HelpCrunchClient("https://api.helpcrunch.example/v1", key)
    for text in (repr(key), str(key), f"{key}", repr(client), str(client)):
        assert KEY not in text


@pytest.mark.anyio
async def test_redirects_are_not_followed() -> None:
    """A 3xx (say, to plain http elsewhere) is not followed: the key goes to no other host."""
    seen: list[str] = []

    def redirect(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://evil.example/steal"})

    async with client_for(redirect) as client:
        with pytest.raises(ApiError):
            await client.check_key()
    assert all(url.startswith("https://api.helpcrunch.example/") for url in seen)


# --- formula-looking text ---------------------------------------------------------------------

FORMULA_LIKE = [
    "=1+1",
    "+1",
    "-1",
    "@SUM(A1)",
    "\t=1+1",
    "\r=1+1",
    '=HYPERLINK("http://evil.example","x")',
    "=cmd|' /C calc'!A0",
]


def formula_cells(path: Path) -> list[str]:
    """Coordinates of every formula cell in every sheet of the workbook at `path`."""
    book = openpyxl.load_workbook(path)
    try:
        return [
            f"{sheet.title}!{cell.coordinate}"
            for sheet in book.worksheets
            for row in sheet.iter_rows()
            for cell in row
            if cell.data_type == "f"
        ]
    finally:
        book.close()


def test_formula_looking_csv_text_is_written_as_text(workdir: Path) -> None:
    """Cells and headers starting with =, +, -, @, tab or CR come out as text cells, and
    read back as the same text."""
    lines = ["customer,application,=note"]
    lines += [f'{n},2,"{v.replace(chr(34), chr(34) * 2)}"' for n, v in enumerate(FORMULA_LIKE, 1)]
    (workdir / "formulas.csv").write_text("\n".join(lines) + "\n", newline="")
    result = CliRunner().invoke(cli, ["validate", "formulas.csv", "--out", "out.xlsx"])
    assert result.exit_code == 0, result.output
    assert formula_cells(workdir / "out.xlsx") == []
    book = openpyxl.load_workbook(workdir / "out.xlsx")
    sheet = book["results"]
    assert sheet["D1"].value == "=note"
    assert [sheet.cell(row=r, column=4).data_type for r in range(2, 10)] == ["s"] * 8
    book.close()


def test_formula_cells_of_a_workbook_input_are_not_copied_as_formulas(workdir: Path) -> None:
    """A workbook input holding real formulas (and formula-looking text) gives a results
    workbook without a single formula."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["customer", "application", "note", "link"])
    sheet.append([1, 2, "=1+1", '=HYPERLINK("http://evil.example","x")'])
    sheet.append([3, 4, "@SUM(A1)", "=A2*2"])
    book.save(workdir / "formulas.xlsx")
    assert formula_cells(workdir / "formulas.xlsx")  # the input does hold formulas
    result = CliRunner().invoke(cli, ["validate", "formulas.xlsx", "--out", "out.xlsx"])
    assert result.exit_code == 0, result.output
    assert formula_cells(workdir / "out.xlsx") == []


# --- where the key may go ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/v1",
        "http://api.helpcrunch.com/v1",
        "http://127.0.0.1.evil.example/v1",
        "http://10.0.0.5/v1",
        "http://[2001:db8::1]/v1",
        "ftp://api.helpcrunch.com/v1",
        "api.helpcrunch.com/v1",
    ],
)
def test_base_url_refused(workdir: Path, url: str) -> None:
    """--base-url with plain http to anything but loopback (or not http at all) is
    refused: exit 2, one line, nothing sent."""
    result = import_into(url)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1
    assert "--base-url" in result.stderr
    assert not (workdir / "reports").exists()


def test_base_url_from_the_environment_is_checked_too(workdir: Path) -> None:
    """HELPCRUNCH_BASE_URL is held to the same rule as --base-url."""
    result = CliRunner().invoke(
        cli,
        ["import", "chats.csv", "--yes"],
        env={"HELPCRUNCH_API_KEY": KEY, "HELPCRUNCH_BASE_URL": "http://example.com/v1"},
    )
    assert result.exit_code == 2, result.output
    assert "plain http" in result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "https://api.helpcrunch.com/v1",
        "http://127.0.0.1:8080/v1",
        "http://127.5.6.7/v1",
        "http://localhost:9000/v1/",
        "http://[::1]:9000/v1",
    ],
)
def test_base_url_allowed(url: str) -> None:
    """https anywhere, and plain http to loopback addresses, are accepted."""
    assert check_base_url(url) == url.rstrip("/")


def test_plain_http_to_loopback_runs(workdir: Path, sandbox: RunningSandbox) -> None:
    """An http://127.0.0.1:… root (the sandbox) is used as given."""
    assert sandbox.base_url.startswith("http://127.0.0.1:")
    result = import_into(sandbox.base_url)
    assert result.exit_code == 0, result.output


def test_check_base_url_raises_input_error() -> None:
    """The check raises InputError (exit 2), naming the URL and the rule."""
    with pytest.raises(InputError, match="plain http"):
        check_base_url("http://example.com/v1")


# --- TLS ----------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_tls_verification_is_on() -> None:
    """The client's connections verify certificates and host names, with no way to turn it
    off: HelpCrunchClient takes no `verify` argument and the CLI has no such option."""
    client = HelpCrunchClient("https://api.helpcrunch.com/v1", ApiKey(KEY))
    async with client:
        # httpx keeps the context on its default transport's connection pool.
        context = client._http._transport._pool._ssl_context  # type: ignore[attr-defined]
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname is True
    parameters = inspect.signature(HelpCrunchClient).parameters
    assert not {"verify", "ssl", "insecure", "cert"} & parameters.keys()
    for command in ("import", "validate"):
        text = CliRunner().invoke(cli, [command, "--help"]).output.lower()
        assert "insecure" not in text
        assert "verify" not in text


def test_tls_verification_survives_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Environment variables some tools read to skip verification change nothing."""
    for name in ("PYTHONHTTPSVERIFY", "CURL_INSECURE", "HTTPX_SSL_VERIFY", "SSL_NO_VERIFY"):
        monkeypatch.setenv(name, "0")
    client = HelpCrunchClient("https://api.helpcrunch.com/v1", ApiKey(KEY))
    context = client._http._transport._pool._ssl_context  # type: ignore[attr-defined]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
