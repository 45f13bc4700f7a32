"""Speed and memory of `bulk-chats validate` on big sheets, against plain baselines.

    python benchmarks/loader.py [--rows-xlsx N] [--rows-csv N] [--repeat N] [--keep DIR]

Generates, into a temporary folder, a 100,000-row XLSX and a 1,000,000-row CSV (four id
columns, two text columns, some blanks, some 17-digit text ids), then runs each command as
a whole process and takes its wall time and peak resident memory (from `wait4`):

- `bulk-chats validate` on the XLSX (workbook out) against "read it with python-calamine
  and write the same rows with xlsxwriter's constant_memory mode": target <= 1.25x;
- `bulk-chats validate --out x.csv` on the CSV against `pandas.read_csv(dtype=str,
  keep_default_na=False)` + `DataFrame.to_csv`: target <= 2x, and peak memory <= 600 MiB;
- that every 17-digit id came through exact, by reading each report back;
- for scale, the XLSX baseline run on the results workbook (`xlsx floor`): reading and
  writing the results' own cells (`source_row` and `status` on every row, on top of the
  input's) takes xlsxwriter this long, whatever writes them.

Each figure is the best of `--repeat` runs, taken in turns with the baseline (wall time:
fastest; memory: the highest peak). Prints every figure and ratio, pass or fail against
its target, and the command that reproduces it. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

XLSX_ROWS = 100_000
CSV_ROWS = 1_000_000
XLSX_TARGET = 1.25
CSV_TARGET = 2.0
CSV_MEMORY_TARGET_MIB = 600
TIMEOUT = 600.0
"""Seconds any one process may take before it is killed and the benchmark fails."""

HEADERS = ("customer", "application", "assignee", "department", "subject", "notes")
SEED = 20261125

XLSX_BASELINE = """\
import sys
import xlsxwriter
from python_calamine import CalamineWorkbook

rows = CalamineWorkbook.from_path(sys.argv[1]).get_sheet_by_index(0).to_python()
book = xlsxwriter.Workbook(sys.argv[2], {"constant_memory": True})
sheet = book.add_worksheet()
for number, row in enumerate(rows):
    sheet.write_row(number, 0, row)
book.close()
"""

CSV_BASELINE = """\
import sys
import pandas as pd

frame = pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False)
frame.to_csv(sys.argv[2], index=False)
"""


@dataclass(frozen=True, slots=True)
class Measure:
    """One process run: wall seconds, CPU seconds (user and system, its children's
    included), peak resident memory in MiB, exit status."""

    seconds: float
    cpu_seconds: float
    peak_mib: float
    returncode: int


@dataclass(frozen=True, slots=True)
class Row:
    """One generated row; ids as int (a number cell) or str (text, kept exact), "" blank."""

    customer: int | str
    application: int
    assignee: int | str
    department: int | str
    subject: str
    notes: str


def generate_rows(count: int, *, seed: int = SEED) -> list[Row]:
    """`count` rows: about 5% 17-digit text customer ids, 0.1% blank customers, 10% blank
    assignees, 25% blank departments, 5% blank notes."""
    rng = random.Random(seed)
    words = ("chat", "migration", "customer", "order", "refund", "invoice", "delivery", "help")
    rows = []
    for number in range(count):
        roll = rng.random()
        customer: int | str
        if roll < 0.05:
            customer = str(rng.randrange(10**16, 10**17))
        elif roll < 0.051:
            customer = ""
        else:
            customer = rng.randrange(1, 10**9)
        rows.append(
            Row(
                customer=customer,
                application=rng.randrange(1, 6),
                assignee="" if rng.random() < 0.10 else rng.randrange(1, 500),
                department="" if rng.random() < 0.25 else rng.randrange(1, 40),
                subject=f"{rng.choice(words)} {rng.choice(words)} #{number}",
                notes="" if rng.random() < 0.05 else " ".join(rng.choices(words, k=8)),
            )
        )
    return rows


def write_xlsx(rows: Sequence[Row], path: Path) -> None:
    """The rows as a workbook: ids as number cells, 17-digit ids as text cells."""
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = book.add_worksheet("chats")
    sheet.write_row(0, 0, HEADERS)
    for number, row in enumerate(rows, start=1):
        for column, value in enumerate(
            (row.customer, row.application, row.assignee, row.department, row.subject, row.notes)
        ):
            if isinstance(value, int):
                sheet.write_number(number, column, value)
            elif value:
                sheet.write_string(number, column, value)
    book.close()


def write_csv(rows: Sequence[Row], path: Path) -> None:
    """The rows as UTF-8 CSV."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADERS)
        writer.writerows(
            (r.customer, r.application, r.assignee, r.department, r.subject, r.notes) for r in rows
        )


def run(command: Sequence[str], *, cwd: Path, timeout: float = TIMEOUT) -> Measure:
    """Run `command` to its end; its wall time and its own peak RSS (from wait4)."""
    with (cwd / "stdout.log").open("wb") as out, (cwd / "stderr.log").open("wb") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=err)
        timer = threading.Timer(timeout, os.kill, (process.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode < 0:
        raise SystemExit(f"killed after {timeout:.0f} s: {shlex.join(command)}")
    # ru_maxrss is in KiB on Linux.
    cpu = usage.ru_utime + usage.ru_stime
    return Measure(seconds, cpu, usage.ru_maxrss / 1024, process.returncode)


def measure(
    commands: dict[str, list[str]], *, cwd: Path, repeat: int, ok: Sequence[int]
) -> dict[str, Measure]:
    """Each command's fastest of `repeat` runs (memory: the highest peak seen).

    The commands take turns, round after round, so that a busy spell of the machine
    slows a command and its baseline alike rather than one of them. CPU time is shown
    too: on a machine busy with other work it varies less than wall time.
    """
    runs: dict[str, list[Measure]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, command in commands.items():
            measure = run(command, cwd=cwd)
            if measure.returncode not in ok:
                error = (cwd / "stderr.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"exit {measure.returncode}: {shlex.join(command)}\n{error}")
            runs[name].append(measure)
    return {
        name: Measure(
            seconds=min(m.seconds for m in found),
            cpu_seconds=min(m.cpu_seconds for m in found),
            peak_mib=max(m.peak_mib for m in found),
            returncode=found[0].returncode,
        )
        for name, found in runs.items()
    }


def generate(folder: Path, xlsx_rows: int, csv_rows: int) -> None:
    """Write chats.xlsx, chats.csv and the 17-digit ids each holds (ids-*.txt: data row
    position and id, one pair a line)."""
    rows = generate_rows(max(xlsx_rows, csv_rows))
    write_xlsx(rows[:xlsx_rows], folder / "chats.xlsx")
    write_csv(rows[:csv_rows], folder / "chats.csv")
    for kind, count in (("xlsx", xlsx_rows), ("csv", csv_rows)):
        with (folder / f"ids-{kind}.txt").open("w") as handle:
            for position, row in enumerate(rows[:count]):
                if isinstance(row.customer, str) and row.customer:
                    handle.write(f"{position} {row.customer}\n")


def expected_long_ids(path: Path) -> dict[int, str]:
    """Data row position → the 17-digit text customer id it holds, as `generate` wrote."""
    pairs = (line.split() for line in path.read_text().splitlines())
    return {int(position): text for position, text in pairs}


def read_back_xlsx(path: Path) -> list[object]:
    """The `customer` column of a results workbook, in row order."""
    from python_calamine import CalamineWorkbook

    data = CalamineWorkbook.from_path(str(path)).get_sheet_by_name("results").to_python()
    position = data[0].index("customer")
    return [row[position] for row in data[1:]]


def count_cells(path: Path) -> int:
    """The cells of a workbook's first sheet that hold a value."""
    from python_calamine import CalamineWorkbook

    data = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()
    return sum(1 for row in data for value in row if value != "")


def read_back_csv(path: Path) -> list[object]:
    """The `customer` column of a results CSV, in row order."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        position = next(reader).index("customer")
        return [row[position] for row in reader]


def check_exact(values: Sequence[object], expected: dict[int, str], total: int) -> str | None:
    """None when every expected 17-digit id reads back as the same text; else what is off."""
    if len(values) != total:
        return f"{len(values)} rows read back, {total} expected"
    wrong = [(i, values[i]) for i, text in expected.items() if values[i] != text]
    if wrong:
        i, got = wrong[0]
        return (
            f"{len(wrong)} of {len(expected)} ids changed; row {i + 2}: {got!r} != {expected[i]!r}"
        )
    return None


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows-xlsx", type=int, default=XLSX_ROWS)
    parser.add_argument("--rows-csv", type=int, default=CSV_ROWS)
    parser.add_argument("--repeat", type=int, default=3, help="runs per command; best counts")
    parser.add_argument("--keep", type=Path, help="generate into (and keep) this folder")
    parser.add_argument("--generate-into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.generate_into:
        generate(args.generate_into, args.rows_xlsx, args.rows_csv)
        return 0

    tool = shutil.which("bulk-chats", path=str(Path(sys.executable).parent)) or shutil.which(
        "bulk-chats"
    )
    if tool is None:
        raise SystemExit("bulk-chats is not installed in this environment (pip install -e .)")
    python = sys.executable

    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        folder = args.keep.resolve()
        cleanup = None
    else:
        cleanup = tempfile.TemporaryDirectory(prefix="bulk-chats-bench-")
        folder = Path(cleanup.name)
    try:
        return _bench(folder, tool, python, args.rows_xlsx, args.rows_csv, args.repeat, argv)
    finally:
        if cleanup is not None:
            cleanup.cleanup()


def _bench(
    folder: Path,
    tool: str,
    python: str,
    xlsx_rows: int,
    csv_rows: int,
    repeat: int,
    argv: Sequence[str] | None,
) -> int:
    started = time.perf_counter()
    xlsx, csv_path = folder / "chats.xlsx", folder / "chats.csv"
    (folder / "xlsx-baseline.py").write_text(XLSX_BASELINE)
    (folder / "csv-baseline.py").write_text(CSV_BASELINE)

    # Generated by a child process: a child's peak memory counts the memory of the parent
    # it was forked from, so the parent stays small.
    subprocess.run(
        [
            python,
            __file__,
            "--generate-into",
            str(folder),
            f"--rows-xlsx={xlsx_rows}",
            f"--rows-csv={csv_rows}",
        ],
        check=True,
        timeout=TIMEOUT,
    )
    print(
        f"data: {xlsx_rows:,}-row XLSX ({xlsx.stat().st_size / 2**20:.1f} MiB), "
        f"{csv_rows:,}-row CSV ({csv_path.stat().st_size / 2**20:.1f} MiB) "
        f"generated in {time.perf_counter() - started:.1f} s; best of {repeat} runs each"
    )
    print(f"folder: {folder} (commands below run there; --keep DIR keeps it)")
    failed = False
    options = sys.argv[1:] if argv is None else list(argv)
    reproduce = shlex.join(["python", "benchmarks/loader.py", *options])

    # The tool exits 1 when some rows are invalid (the blank customers): that is a result.
    commands = {
        "xlsx validate": [tool, "validate", "chats.xlsx", "--out", "results.xlsx", "--no-progress"],
        "xlsx baseline": [python, "xlsx-baseline.py", "chats.xlsx", "baseline.xlsx"],
        # Runs after `xlsx validate` in every round, so results.xlsx is there.
        "xlsx floor": [python, "xlsx-baseline.py", "results.xlsx", "floor.xlsx"],
        "csv validate": [tool, "validate", "chats.csv", "--out", "results.csv", "--no-progress"],
        "csv baseline": [python, "csv-baseline.py", "chats.csv", "baseline.csv"],
    }
    measures = measure(commands, cwd=folder, repeat=repeat, ok=(0, 1))
    print()
    for name, command in commands.items():
        m = measures[name]
        shown = [Path(command[0]).name.replace(Path(python).name, "python"), *command[1:]]
        print(
            f"{name:14} {m.seconds:7.2f} s  cpu {m.cpu_seconds:6.2f} s  peak {m.peak_mib:6.0f} MiB"
            f"   $ {shlex.join(shown)}"
        )

    print()
    for kind, rows_count, target in (
        ("xlsx", xlsx_rows, XLSX_TARGET),
        ("csv", csv_rows, CSV_TARGET),
    ):
        tool_m, base_m = measures[f"{kind} validate"], measures[f"{kind} baseline"]
        ratio = tool_m.seconds / base_m.seconds
        ok = ratio <= target
        failed |= not ok
        print(
            f"{kind}: validate {rows_count / tool_m.seconds:,.0f} rows/s; "
            f"{tool_m.seconds:.2f} s / baseline {base_m.seconds:.2f} s = {ratio:.2f}x "
            f"(target <= {target}x) {verdict(ok)}; "
            f"cpu {tool_m.cpu_seconds / base_m.cpu_seconds:.2f}x"
        )
    floor_m, base_m = measures["xlsx floor"], measures["xlsx baseline"]
    print(
        f"xlsx: the baseline's work on the results' {count_cells(folder / 'results.xlsx'):,} "
        f"cells (the input has {count_cells(folder / 'chats.xlsx'):,}): "
        f"{floor_m.seconds:.2f} s = {floor_m.seconds / base_m.seconds:.2f}x of baseline"
    )
    peak = measures["csv validate"].peak_mib
    ok = peak <= CSV_MEMORY_TARGET_MIB
    failed |= not ok
    baseline_peak = measures["csv baseline"].peak_mib
    print(
        f"csv: validate peak memory {peak:.0f} MiB (baseline {baseline_peak:.0f} MiB; "
        f"target <= {CSV_MEMORY_TARGET_MIB} MiB) {verdict(ok)}"
    )

    expected_xlsx = expected_long_ids(folder / "ids-xlsx.txt")
    expected_csv = expected_long_ids(folder / "ids-csv.txt")
    for kind, values, expected, total in (
        ("xlsx", read_back_xlsx(folder / "results.xlsx"), expected_xlsx, xlsx_rows),
        ("csv", read_back_csv(folder / "results.csv"), expected_csv, csv_rows),
    ):
        problem = check_exact(values, expected, total)
        failed |= problem is not None
        print(
            f"{kind}: {len(expected):,} 17-digit ids read back "
            + ("exact PASS" if problem is None else f"FAIL: {problem}")
        )

    print(f"\ntotal {time.perf_counter() - started:.0f} s; reproduce: {reproduce}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
