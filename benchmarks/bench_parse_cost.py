"""
DAG-parse cost: importing a DAG file that uses the provider, against the same DAG built from standard operators.

Why: the DAG processor re-imports every DAG file every few seconds or minutes; whatever a provider imports at
module level (OAuth libraries, HTTP sessions, the test emulator) is paid on every parse, by every DAG that uses
it. The provider's operators should import their hook (requests, requests-oauthlib, oauthlib) only when a task
runs, and never import the emulator.

How: ``dags_parse/parse_ringout_dag.py`` (RingOutOperator, RingOutSensor, RingOutCancelOperator) against two
baselines with the same four tasks and edges: ``parse_standard_dag.py`` (PythonOperator / PythonSensor from the
standard provider) and ``parse_minimal_dag.py`` (EmptyOperator and a ``BaseSensorOperator`` subclass from
``airflow.sdk``, the lightest possible). Each is imported in a fresh ``python -X importtime`` process, in
rotating order, REPS times each; the figure is the cumulative import time of the DAG module (module body
included, so building the DAG counts), median of the repetitions. The target is judged against the lighter
baseline.

- warm (the target): ``airflow.sdk`` is imported first, as in the DAG processor, so only what the DAG file adds
  is timed;
- cold (for information): nothing imported first; the DAG module's cumulative time then includes Airflow.

Watched modules (requests_oauthlib, oauthlib, requests, requests.sessions, httpx, airflow_provider_ringout.testing,
and the provider's hook module): which are loaded after parsing, and which of them the DAG file itself brought
in (not already loaded by ``airflow.sdk``), with the import chain from the importtime tree.
Target: at most 30 ms added (warm), and none of the OAuth / HTTP-session / emulator modules imported by parsing.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from typing import Any

from _common import BENCH_DIR, PYTHON, Report, isolate_airflow, parser

DAG_DIR = BENCH_DIR / "dags_parse"
VARIANTS = {"ringout": "parse_ringout_dag", "standard": "parse_standard_dag", "minimal": "parse_minimal_dag"}
REPS_WARM = 9
REPS_COLD = 4
WATCHED = (
    "requests_oauthlib",
    "oauthlib",
    "requests",
    "requests.sessions",
    "httpx",
    "airflow_provider_ringout.testing",
    "airflow_provider_ringout.testing.emulator",
    "airflow_provider_ringout.hooks.ringcentral",
)
FORBIDDEN = (
    "requests_oauthlib",
    "oauthlib",
    "requests.sessions",
    "httpx",
    "airflow_provider_ringout.testing",
    "airflow_provider_ringout.testing.emulator",
)

PROBE = """
import json, sys, time
WATCHED = {watched!r}
if {warm!r}:
    import airflow.sdk  # what the DAG processor has loaded before it parses a file
before = {{m: m in sys.modules for m in WATCHED}}
sys.path.insert(0, {dag_dir!r})
t = time.perf_counter()
import {module}
wall = time.perf_counter() - t
after = {{m: m in sys.modules for m in WATCHED}}
print("PROBE" + json.dumps({{"wall": wall, "before": before, "after": after}}))
"""


def importtime_tree(stderr: str) -> list[tuple[int, int, str]]:
    """(depth, cumulative us, module) for each ``import time:`` line, in the order Python printed them."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self_us, cumulative, name = line[len("import time:") :].split("|", 2)
        indent = len(name) - len(name.lstrip(" "))
        rows.append(((indent - 1) // 2, int(cumulative.strip()), name.strip()))
    return rows


def chain(tree: list[tuple[int, int, str]], module: str) -> list[str]:
    """Who imported ``module``: walk up the importtime tree (a parent is printed after its children)."""
    for i, (depth, _, name) in enumerate(tree):
        if name != module:
            continue
        path = [name]
        want = depth - 1
        for later_depth, _, later_name in tree[i + 1 :]:
            if want < 0:
                break
            if later_depth == want:
                path.append(later_name)
                want -= 1
        return list(reversed(path))
    return []


def probe(variant: str, *, warm: bool, env: dict[str, str]) -> dict[str, Any]:
    module = VARIANTS[variant]
    code = PROBE.format(watched=WATCHED, warm=warm, dag_dir=str(DAG_DIR), module=module)
    proc = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("PROBE")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"parsing {module} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    data = json.loads(line[len("PROBE") :])
    tree = importtime_tree(proc.stderr)
    data["cumulative_ms"] = next(us for depth, us, name in tree if name == module and depth == 0) / 1000
    data["chains"] = {m: chain(tree, m) for m in WATCHED if data["after"][m] and not data["before"][m]}
    return data


def main() -> None:
    args = parser(__doc__).parse_args()
    began = time.monotonic()
    isolate_airflow("parse")
    env = {**os.environ, "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR", "PYTHONWARNINGS": "ignore"}
    report = Report("6 DAG-parse cost")
    samples: dict[tuple[str, bool], list[dict[str, Any]]] = {}
    for warm, reps in ((True, REPS_WARM), (False, REPS_COLD)):
        for rep in range(reps):
            names = list(VARIANTS)
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for variant in order:
                samples.setdefault((variant, warm), []).append(probe(variant, warm=warm, env=env))
    med = {key: statistics.median(s["cumulative_ms"] for s in values) for key, values in samples.items()}
    wall = {key: statistics.median(1000 * s["wall"] for s in values) for key, values in samples.items()}
    for (variant, warm), value in sorted(med.items()):
        print(
            f"{variant:<8} {'warm' if warm else 'cold'}: importtime cumulative median {value:.1f} ms, "
            f"perf_counter median {wall[(variant, warm)]:.1f} ms, all {[round(s['cumulative_ms'], 1) for s in samples[(variant, warm)]]}",
            flush=True,
        )
    lightest = min(("standard", "minimal"), key=lambda v: med[(v, True)])
    added_warm = med[("ringout", True)] - med[(lightest, True)]
    added_cold = med[("ringout", False)] - min(med[("standard", False)], med[("minimal", False)])
    report.add("parse, standard-operators DAG (airflow.sdk preloaded)", f"{med[('standard', True)]:.1f} ms")
    report.add("parse, minimal sdk DAG (airflow.sdk preloaded)", f"{med[('minimal', True)]:.1f} ms")
    report.add("parse, provider DAG (airflow.sdk preloaded)", f"{med[('ringout', True)]:.1f} ms")
    report.check(
        f"added by the provider vs the lighter baseline ({lightest})",
        f"{added_warm:+.1f} ms",
        "<= 30 ms",
        added_warm <= 30,
    )
    report.add(
        "cold process: standard / minimal / provider",
        f"{med[('standard', False)]:.0f} / {med[('minimal', False)]:.0f} / {med[('ringout', False)]:.0f} ms "
        f"(added {added_cold:+.0f} ms)",
    )

    ringout = samples[("ringout", True)][0]
    standard = samples[("standard", True)][0]
    minimal = samples[("minimal", True)][0]
    loaded = [m for m in WATCHED if ringout["after"][m]]
    by_airflow = [m for m in loaded if ringout["before"][m]]
    by_dag = [m for m in loaded if not ringout["before"][m]]
    by_standard_dag = [m for m in WATCHED if standard["after"][m] and not standard["before"][m]]
    by_minimal_dag = [m for m in WATCHED if minimal["after"][m] and not minimal["before"][m]]
    forbidden_by_provider = [m for m in by_dag if m in FORBIDDEN]
    report.add("watched modules loaded after parsing", ", ".join(loaded) or "none")
    report.add("... of which airflow.sdk had already loaded", ", ".join(by_airflow) or "none")
    report.check(
        "OAuth / HTTP-session / emulator modules the DAG file imports",
        ", ".join(forbidden_by_provider) or "none",
        "none",
        not forbidden_by_provider,
    )
    other = [m for m in by_dag if m not in FORBIDDEN]
    if other:
        report.add("other watched modules the DAG file imports", ", ".join(other))
    for module, path in ringout["chains"].items():
        report.notes.append(f"{module} imported via {' -> '.join(path)}")
    if by_standard_dag or by_minimal_dag:
        report.notes.append(f"baselines import too: standard {by_standard_dag}, minimal {by_minimal_dag}")
    report.notes.append(
        f"median of {REPS_WARM} (warm) / {REPS_COLD} (cold) fresh processes per variant, rotating order; "
        "figure = -X importtime cumulative time of the DAG module"
    )
    report.raw["median_ms"] = {f"{v}-{'warm' if w else 'cold'}": m for (v, w), m in med.items()}
    report.raw["wall_ms"] = {f"{v}-{'warm' if w else 'cold'}": m for (v, w), m in wall.items()}
    report.raw["chains"] = ringout["chains"]
    report.seconds = time.monotonic() - began
    report.print()
    report.write(args.json)


if __name__ == "__main__":
    main()
