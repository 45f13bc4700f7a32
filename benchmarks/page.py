"""What the web page's guided import costs on a big sheet, beside what the library itself
costs there.

    python benchmarks/page.py [--rows N] [--repeat N] [--keep DIR]

Generates a CSV of `--rows` rows (default 1,000,000; one row in ten invalid) and times, in
this process, the best of `--repeat` runs of:

- the Columns step: `ui.preview.read_preview` (the sheet read, each column's first values,
  the first rows as they will be read, both kinds of run checked) against `load_sheet`
  alone, which any run does first: target <= 1.2x;
- the Problems table from the results of Validate, as CSV and as a workbook of `--rows`
  rows: its first 500 problems read as the page reads them (`ui.problems.read_problems`,
  which stops once it has them) against reading every row of that file (the csv module;
  python-calamine's `to_python`, as the page did before): the page's table must not cost
  a pass over a big result.

Prints every figure and ratio, pass or fail against its target, and the command that
reproduces it. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

ROWS = 1_000_000
PREVIEW_TARGET = 1.2
SEED = 20261207


def generate(path: Path, rows: int) -> None:
    """A CSV of `rows` rows: customer, application, agent, a note; one in ten invalid."""
    random.seed(SEED)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["Customer ID", "Application", "Agent ID", "Note"])
        for n in range(rows):
            application = "12.5" if n % 10 == 3 else 3838
            writer.writerow(
                [8_000_000 + n, application, 4188 + n % 5, f"note {random.random():.6f}"]
            )


def every_row(path: Path) -> int:
    """Read every row of a results file, as a page that read them all would."""
    if path.suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return sum(1 for _ in csv.reader(handle))
    from python_calamine import CalamineWorkbook

    return len(CalamineWorkbook.from_path(str(path)).get_sheet_by_name("results").to_python())


def best(call: Callable[[], object], repeat: int) -> float:
    """The fastest of `repeat` runs of `call`, in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="generate into DIR and keep it")
    args = parser.parse_args(argv)

    from bulk_chats.jobs.validate import validate_file
    from bulk_chats.settings import Settings
    from bulk_chats.sheet.loading import load_sheet
    from bulk_chats.ui.preview import read_preview
    from bulk_chats.ui.problems import read_problems
    from bulk_chats.ui.uploads import Upload

    folder = args.keep or Path(tempfile.mkdtemp(prefix="bulk-chats-page-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        source = folder / "big.csv"
        generate(source, args.rows)
        upload = Upload(path=source, name=source.name, sheets=[])

        loading = best(lambda: load_sheet(source, require=False, chats=True), args.repeat)
        previewing = best(lambda: read_preview(upload), args.repeat)

        fields = {"customer": "Customer ID", "application": "Application", "assignee": "Agent ID"}
        lines = []
        passed = previewing / loading <= PREVIEW_TARGET
        for csv_results in (True, False):
            settings = Settings(
                input_path=source, reports_dir=folder / "reports", csv_results=csv_results
            )
            result = validate_file(settings, now=dt.datetime(2026, 12, 7))
            table = read_problems(result.out, fields, result.counts)
            out, counts = result.out, result.counts
            problems = best(partial(read_problems, out, fields, counts), args.repeat)
            whole = best(partial(every_row, out), args.repeat)
            passed = passed and problems < whole
            lines.append(
                f"Problems table from {result.out.suffix}: first {len(table.shown)} of "
                f"{table.rows:,} problems in {problems * 1000:.1f} ms; every row read: "
                f"{whole:.2f} s"
            )
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)

    print(f"rows: {args.rows:,}; best of {args.repeat}")
    print(
        f"Columns step: read_preview {previewing:.2f} s, load_sheet {loading:.2f} s: "
        f"{previewing / loading:.2f}x (target <= {PREVIEW_TARGET}x)"
    )
    print("\n".join(lines))
    print("pass" if passed else "FAIL")
    command = ["python", "benchmarks/page.py", *(argv if argv is not None else sys.argv[1:])]
    print(f"reproduce: {shlex.join(command)}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
