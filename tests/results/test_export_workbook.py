"""The export's workbook: the chats sheet with its columns and UTC date-time cells, the
summary, the messages, the hidden record `update` compares with, written in place only
when complete."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import openpyxl
import pytest

from bulk_chats.errors import ReportError
from bulk_chats.fields import EXPORT_COLUMNS, EXPORTED_COLUMNS, MESSAGE_COLUMNS
from bulk_chats.records import ExportedChat, ExportedMessage
from bulk_chats.results import export_workbook
from bulk_chats.results.export_workbook import ExportSummary, default_export_path, write_export

CREATED = dt.datetime(2026, 10, 1, 9, 30, 5)


def chat(chat_id: int = 542336, **changes: object) -> ExportedChat:
    fields: dict[str, object] = {
        "chat_id": chat_id,
        "chat_status": "pending",
        "assignee": 4188,
        "assignee_email": "anna@example.com",
        "department": 233048,
        "department_name": "Support",
        "customer": 8738438,
        "customer_email": "customer1@example.com",
        "customer_name": "Olivia Brown",
        "customer_user_id": "crm-1001",
        "application": 3838,
        "created_at": CREATED,
        "closed_at": None,
        "last_message_at": CREATED + dt.timedelta(minutes=1),
        "created_with": "public_api",
        "rating": None,
        "last_message_text": "Hello",
    }
    fields.update(changes)
    return ExportedChat(**fields)  # type: ignore[arg-type]


def summary(**changes: object) -> ExportSummary:
    fields: dict[str, object] = {
        "api_root": "https://api.helpcrunch.com/v1",
        "written_at": dt.datetime(2026, 12, 1, 9, 0),
        "filters": (("status", "pending"), ("department_name", "Support")),
        "chats": 1,
        "messages": None,
    }
    fields.update(changes)
    return ExportSummary(**fields)  # type: ignore[arg-type]


def rows(path: Path, sheet: str) -> list[tuple[object, ...]]:
    book = openpyxl.load_workbook(path)
    try:
        return [tuple(row) for row in book[sheet].iter_rows(values_only=True)]
    finally:
        book.close()


def test_the_chats_sheet_holds_the_columns_and_utc_date_time_cells(tmp_path: Path) -> None:
    """One row per chat under the contract's headers: ids as numbers, text as text (a
    formula's text too), times as date-time cells; blanks left empty."""
    out = tmp_path / "export.xlsx"
    with write_export(out, messages=False, replace=True) as book:
        book.add_chat(chat())
        book.add_chat(chat(542337, assignee=None, assignee_email=None, last_message_text="=1+1"))
        book.close(summary(chats=2))
    assert book.out == out
    header, first, second = rows(out, "chats")
    assert header == EXPORT_COLUMNS
    assert first[:3] == (542336, "pending", 4188)
    assert first[EXPORT_COLUMNS.index("created_at")] == CREATED
    assert first[EXPORT_COLUMNS.index("closed_at")] is None
    assert second[2:4] == (None, None)
    assert second[-1] == "=1+1"
    loaded = openpyxl.load_workbook(out)
    assert loaded["chats"]["Q3"].data_type == "s"
    assert loaded["chats"]["L2"].is_date


def test_the_record_of_what_was_read_is_a_hidden_sheet_after_the_others(tmp_path: Path) -> None:
    """`exported` keeps each chat's status, assignee and department, hidden, last; the
    chats sheet comes first and is the one a reader opens."""
    out = tmp_path / "export.xlsx"
    with write_export(out, messages=True, replace=True) as book:
        book.add_chat(chat())
        book.close(summary(messages=0))
    loaded = openpyxl.load_workbook(out)
    assert loaded.sheetnames == ["chats", "summary", "messages", "exported"]
    assert [loaded[n].sheet_state for n in loaded.sheetnames] == ["visible"] * 3 + ["hidden"]
    assert loaded.active.title == "chats"
    assert rows(out, "exported") == [
        EXPORTED_COLUMNS,
        (542336, "pending", 4188, "anna@example.com", 233048, "Support"),
    ]


def test_messages_are_rows_of_their_own_sheet(tmp_path: Path) -> None:
    """Each message under `chat_id`, `message_id`, `sent_at`, `from`, `agent_email`,
    `type`, `text`."""
    out = tmp_path / "export.xlsx"
    said = ExportedMessage(542336, 7310001, CREATED, "agent", "anna@example.com", "private", "hi")
    with write_export(out, messages=True, replace=True) as book:
        book.add_chat(chat())
        assert book.add_messages([said]) == 1
        book.close(summary(messages=1))
    assert rows(out, "messages") == [
        MESSAGE_COLUMNS,
        (542336, 7310001, CREATED, "agent", "anna@example.com", "private", "hi"),
    ]


def test_the_summary_says_what_was_asked_and_whether_it_is_complete(tmp_path: Path) -> None:
    """The summary names the API root, the time, that times are UTC, the filters, the
    count, and when partial, why."""
    out = tmp_path / "export.xlsx"
    with write_export(out, messages=False, replace=True) as book:
        book.add_chat(chat())
        book.close(summary(partial="interrupted; the chats read until then are here"))
    pairs = dict(row[:2] for row in rows(out, "summary") if row[0])
    assert pairs["api"] == "https://api.helpcrunch.com/v1"
    assert pairs["written"] == "2026-12-01 09:00:00"
    assert "UTC" in str(pairs["times"])
    assert pairs["complete"] == "no: interrupted; the chats read until then are here"
    assert (pairs["chats"], pairs["status"], pairs["department_name"]) == (1, "pending", "Support")


def test_nothing_is_put_in_place_when_the_export_fails_midway(tmp_path: Path) -> None:
    """A block that raises leaves no file, not even a half one; the folder stays clean."""
    out = tmp_path / "export.xlsx"

    def fail_midway() -> None:
        with write_export(out, messages=False, replace=True) as book:
            book.add_chat(chat())
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        fail_midway()
    assert list(tmp_path.iterdir()) == []


def test_the_default_name_never_replaces_a_file_and_the_workbook_is_the_owners(
    tmp_path: Path,
) -> None:
    """`chats-export-<time>.xlsx`, numbered when taken; written 0600 (customer data)."""
    now = dt.datetime(2026, 12, 1, 9, 0, 0)
    first = default_export_path(tmp_path, now)
    assert first.name == "chats-export-20261201-090000.xlsx"
    first.write_bytes(b"")
    second = default_export_path(tmp_path, now)
    assert second.name == "chats-export-20261201-090000-2.xlsx"
    with write_export(first, messages=False, replace=False) as book:
        book.close(summary(chats=0))
    assert book.out == second
    assert stat.S_IMODE(second.stat().st_mode) == 0o600


def test_a_full_sheet_takes_no_more_chats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the rows a sheet holds, `full` says so and another chat is refused."""
    monkeypatch.setattr(export_workbook, "ROWS_PER_SHEET", 2)
    with write_export(tmp_path / "x.xlsx", messages=True, replace=True) as book:
        book.add_chat(chat(1))
        book.add_chat(chat(2))
        assert book.full
        with pytest.raises(ReportError, match="more chats than a sheet holds"):
            book.add_chat(chat(3))
        said = ExportedMessage(1, 9, None, "customer", None, "message", "x")
        assert book.add_messages([said, said, said]) == 2
        book.close(summary(chats=2))
