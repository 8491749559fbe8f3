"""
Run every benchmark one after the other and rebuild the table of latest figures in benchmarks/README.md.

Why: the figures in the README must come from one run on one machine, next to their targets, with the date and
the machine they were taken on. Each benchmark runs in its own process (``--json`` collects its rows into
``results/``); benchmarks never run in parallel, since they measure time and CPU.

Usage: ``python benchmarks/run_all.py`` (10 to 13 minutes), ``--only 1,3`` for some (the README is then left
alone), ``--no-readme`` to leave the README alone, ``--table-only`` to rebuild the table from ``results/``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import BENCH_DIR, MISSED, PYTHON, describe_machine, machine, parser

SCRIPTS = {
    "1": "bench_logins.py",
    "2": "bench_requests_per_call.py",
    "3": "bench_rate_limits.py",
    "4": "bench_detection_latency.py",
    "5": "bench_triggerer_scale.py",
    "6": "bench_parse_cost.py",
    "7": "bench_escalation_latency.py",
}
RESULTS = BENCH_DIR / "results"
README = BENCH_DIR / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def table(reports: list[dict[str, Any]], total_s: float) -> str:
    """The markdown block that goes between the README markers."""
    info = reports[0]["machine"] if reports else machine()
    lines = [
        f"Latest full run: {total_s / 60:.1f} min in all. Machine and start: {describe_machine(info)}.",
        "Shared 2-core machine: other work ran at the same time, so timings carry noise.",
        "",
        "| # | figure | measured | target | |",
        "|---|---|---|---|---|",
    ]
    for report in reports:
        number = report["name"].split()[0]
        for row in report["rows"]:
            status = "**MISSED**" if row["status"] == MISSED else row["status"]
            value = row["value"].replace("|", "/")
            lines.append(f"| {number} | {row['figure']} | {value} | {row['target']} | {status} |")
    lines.append("")
    lines.append("Notes from the run:")
    lines.append("")
    for report in reports:
        for note in report["notes"]:
            lines.append(f"- ({report['name']}) {note}")
        lines.append(f"- ({report['name']}) ran {report['seconds']:.0f} s")
    return "\n".join(lines)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--only", help="comma-separated benchmark numbers, e.g. 1,3")
    p.add_argument("--no-readme", action="store_true", help="do not rewrite the table in README.md")
    p.add_argument("--table-only", action="store_true", help="rebuild the README table from results/ without running")
    args = p.parse_args()
    chosen = [] if args.table_only else (args.only.split(",") if args.only else list(SCRIPTS))
    RESULTS.mkdir(exist_ok=True)
    began = time.monotonic()
    failed = []
    for number in chosen:
        script = SCRIPTS[number.strip()]
        out = RESULTS / script.replace(".py", ".json")
        print(f"\n##### {script}", flush=True)
        t0 = time.monotonic()
        proc = subprocess.run([PYTHON, str(BENCH_DIR / script), "--json", str(out)], cwd=BENCH_DIR, check=False)
        print(f"##### {script}: exit {proc.returncode} after {time.monotonic() - t0:.0f} s", flush=True)
        if proc.returncode != 0:
            failed.append(script)
    run_file = RESULTS / "_run.json"
    if args.table_only:
        total = json.loads(run_file.read_text())["seconds"] if run_file.exists() else float("nan")
    else:
        total = time.monotonic() - began
        if not args.only:
            run_file.write_text(json.dumps({"seconds": total}))
    files = [RESULTS / s.replace(".py", ".json") for s in SCRIPTS.values()]
    reports = [json.loads(f.read_text()) for f in files if f.exists()]
    block = table(reports, total)
    print("\n" + block)
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2))
    if not args.no_readme and (args.table_only or not args.only):
        text = README.read_text()
        if START in text and END in text:
            head, rest = text.split(START, 1)
            _, tail = rest.split(END, 1)
            README.write_text(f"{head}{START}\n{block}\n{END}{tail}")
            print(f"\nupdated {README}")
    if failed:
        print(f"benchmarks that failed to run: {failed}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
