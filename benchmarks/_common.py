"""
Shared helpers for the benchmarks: machine description, throw-away Airflow state, result rows and output.

Not a benchmark itself. Every benchmark prints the machine it ran on (cores, CPU model, Python, Airflow, load)
and a list of result rows (figure, measured value, target, met/missed/info); ``--json PATH`` also writes them so
that ``run_all.py`` can rebuild the table in ``README.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PYTHON = sys.executable
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
FROM_NUMBER = "+14155550100"

MET, MISSED, INFO = "met", "MISSED", "info"


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """What the figures were taken on."""
    try:
        airflow_version = metadata.version("apache-airflow")
    except metadata.PackageNotFoundError:
        airflow_version = "not installed"
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "airflow": airflow_version,
        "platform": platform.platform(terse=True),
        "load_at_start": [round(x, 2) for x in load],
    }


def describe_machine(info: dict[str, Any]) -> str:
    """One line about the machine."""
    load = ", ".join(f"{x:.2f}" for x in info["load_at_start"])
    return (
        f"{info['date']} | {info['cores']} cores, {info['cpu']} | Python {info['python']} | "
        f"Airflow {info['airflow']} | {info['platform']} | load average at start {load}"
    )


def isolate_airflow(prefix: str) -> Path:
    """
    Point Airflow at a throw-away AIRFLOW_HOME (before anything imports airflow) so no real install is touched.

    Child processes inherit it through the environment.
    """
    home = Path(tempfile.mkdtemp(prefix=f"ringout-bench-{prefix}-"))
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    os.environ.pop("AIRFLOW__CORE__DAGS_FOLDER", None)
    return home


def fresh_cache_dir(prefix: str = "cache") -> Path:
    """A new, empty token-cache / pacer folder (never reuse one between runs)."""
    return Path(tempfile.mkdtemp(prefix=f"ringout-bench-{prefix}-"))


def connection_env(conn_json: str, cache_dir: Path) -> dict[str, str]:
    """The two variables that point the provider at the emulator and at a private token cache."""
    return {
        "AIRFLOW_CONN_RINGCENTRAL_DEFAULT": conn_json,
        "AIRFLOW__RINGCENTRAL__TOKEN_CACHE_DIR": str(cache_dir),
    }


def use_connection(conn_json: str, cache_dir: Path) -> None:
    """Apply :func:`connection_env` to this process (and children started afterwards)."""
    os.environ.update(connection_env(conn_json, cache_dir))


def quiet_logs() -> None:
    """Keep task and hook logs out of the figures (warnings and errors still show)."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("airflow", "airflow.task", "airflow_provider_ringout", "httpx", "urllib3", "requests_oauthlib"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        import structlog

        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    except Exception:  # noqa: S110 - structlog is optional here; quieter output is a nicety
        pass


@dataclass
class Row:
    """One figure of one benchmark."""

    bench: str
    figure: str
    value: str
    target: str = ""
    status: str = INFO


@dataclass
class Report:
    """Everything one benchmark run produced."""

    name: str
    machine: dict[str, Any] = field(default_factory=machine)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, figure: str, value: str, target: str = "", status: str = INFO) -> None:
        self.rows.append(Row(self.name, figure, value, target, status))

    def check(self, figure: str, value: str, target: str, ok: bool) -> None:
        self.add(figure, value, target, MET if ok else MISSED)

    def print(self) -> None:
        print()
        print(f"== {self.name} ==")
        print(f"machine: {describe_machine(self.machine)}")
        width = max([len(r.figure) for r in self.rows] + [10])
        vwidth = max([len(r.value) for r in self.rows] + [5])
        for row in self.rows:
            target = f"  target {row.target}" if row.target else ""
            print(f"  {row.figure:<{width}}  {row.value:>{vwidth}}  [{row.status}]{target}")
        for note in self.notes:
            print(f"  note: {note}")
        print(f"  (benchmark ran {self.seconds:.0f} s)")

    def write(self, path: str | None) -> None:
        if not path:
            return
        data = {
            "name": self.name,
            "machine": self.machine,
            "rows": [asdict(r) for r in self.rows],
            "notes": self.notes,
            "raw": self.raw,
            "seconds": self.seconds,
        }
        Path(path).write_text(json.dumps(data, indent=2, default=str))


def parser(doc: str | None) -> argparse.ArgumentParser:
    """The common command line: ``--json PATH`` to save the rows for run_all.py."""
    first = (doc or "").strip().splitlines()[0] if doc else None
    p = argparse.ArgumentParser(description=first)
    p.add_argument("--json", help="also write the figures to this JSON file")
    return p


def median(values: list[float]) -> float:
    """The median (nan for no values)."""
    import statistics

    return statistics.median(values) if values else float("nan")


def parse_db_time(value: str) -> float:
    """A date as Airflow stores it in sqlite (UTC, maybe with an offset) as epoch seconds."""
    parsed = dt.datetime.fromisoformat(value.replace("T", " "))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/statm."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")
