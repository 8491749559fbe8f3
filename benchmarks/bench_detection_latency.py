"""
Detection latency: from the moment a call connects (the emulator's scripted answer time) to the task's success.

Why: a DAG waiting on a call should move on soon after the callee answers. A poller every p seconds sees the
change on average p/2 after it happens, so the target is a median of at most p/2 + 0.25 s (the 0.25 s is what
the provider and Airflow may add on top of the polling itself).

How: poll interval p = 2 s; answer times are stratified over one poll period (sample i answers
BASE + (i + 0.5) * p / n seconds after its POST), so the phase between answer and polls is uniform and the
median latency of an ideal poller is p/2.

- blocking: ``RingOutOperator(...).execute(context)`` in this process (fake ``ti``, no task_state_store), the
  samples in parallel threads; the task's end is when ``execute`` returns.
- reschedule: ``RingOutSensor(mode="reschedule")`` after a ``RingOutOperator(wait_for_connection=False)``,
- deferrable: ``RingOutOperator(deferrable=True)`` (the trigger runs in line),
  both through ``airflow dags test`` (one chain per mode, so one call waits at a time) in a throw-away
  AIRFLOW_HOME; the task's end is ``task_instance.end_date`` from the sqlite database.

The emulator runs in this process (loopback); its monotonic clock is converted to wall-clock time with an offset
taken once, to compare with end_date.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from _common import (
    AIRFLOW,
    BENCH_DIR,
    FROM_NUMBER,
    Report,
    connection_env,
    fresh_cache_dir,
    isolate_airflow,
    median,
    parse_db_time,
    parser,
    quiet_logs,
    use_connection,
)

if TYPE_CHECKING:
    from pathlib import Path

POLL = 2.0
SAMPLES = 10
BASE = 2.0  # seconds after the POST before the first answer (so at least one poll saw it pending)
TARGET = POLL / 2 + 0.25


def number(mode: str, i: int) -> str:
    """The callee of sample ``i`` of ``mode``: must match ``number()`` in dags/bench_latency_dags.py."""
    return f"+1555{ {'blocking': 1, 'reschedule': 2, 'deferrable': 3}[mode] }03{i:04d}"


def answer_after(i: int, n: int) -> float:
    return BASE + (i + 0.5) * POLL / n


class FakeTI(SimpleNamespace):
    def __init__(self) -> None:
        super().__init__(stats_tags={}, xcoms={})

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def blocking(emulator: Any, n: int) -> list[float]:
    """n operator runs in parallel threads in this process; latency = execute() return - answer time."""
    from airflow_provider_ringout.operators.ringout import RingOutOperator

    ended: dict[int, float] = {}
    errors: list[str] = []

    def one(i: int) -> None:
        try:
            RingOutOperator(
                task_id=f"call_{i}",
                to_number=number("blocking", i),
                from_number=FROM_NUMBER,
                poll_interval=POLL,
                wait_timeout=120,
            ).execute({"ti": FakeTI()})  # type: ignore[arg-type]
            ended[i] = time.monotonic()
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"blocking samples failed: {errors[:3]}")
    by_number = {s.to_number: s for s in emulator.sessions.values()}
    return [ended[i] - (by_number[number("blocking", i)].created + answer_after(i, n)) for i in range(n)]


def through_dags_test(
    emulator: Any, mode: str, n: int, home: Path, env: dict[str, str], offset: float
) -> tuple[list[float], str]:
    """Run the mode's chain with ``airflow dags test``; latency = end_date - answer time (wall clock)."""
    dag_id = f"bench_latency_{mode}"
    proc = subprocess.run(
        [AIRFLOW, "dags", "test", dag_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    task = "wait" if mode == "reschedule" else "call"
    with sqlite3.connect(home / "airflow.db") as db:
        rows = dict(
            db.execute(
                "SELECT task_id, end_date FROM task_instance WHERE dag_id = ? AND state = 'success'", (dag_id,)
            ).fetchall()
        )
    by_number = {s.to_number: s for s in emulator.sessions.values()}
    latencies = []
    for i in range(n):
        end = rows.get(f"{task}_{i}")
        session = by_number.get(number(mode, i))
        if end is None or session is None:
            raise RuntimeError(
                f"{dag_id}: sample {i} did not succeed (rc {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}"
            )
        latencies.append(parse_db_time(end) - (session.created + offset + answer_after(i, n)))
    return latencies, proc.stdout + proc.stderr


def main() -> None:
    args = parser(__doc__).parse_args()
    args_samples = int(os.environ.get("BENCH_LATENCY_SAMPLES", SAMPLES))
    began = time.monotonic()
    home = isolate_airflow("latency")
    quiet_logs()
    from airflow_provider_ringout.testing import CallScript, RingCentralEmulator

    report = Report("4 detection latency")
    n = args_samples
    emulator = RingCentralEmulator(default_script=CallScript(after=1, talk=600, linger=60)).start()
    results: dict[str, list[float]] = {}
    try:
        for mode in ("blocking", "reschedule", "deferrable"):
            for i in range(n):
                emulator.script(number(mode, i), CallScript(after=answer_after(i, n), talk=600, linger=60))
        offset = time.time() - time.monotonic()
        cache = fresh_cache_dir("latency")
        use_connection(emulator.connection_json(), cache)

        t0 = time.monotonic()
        results["blocking"] = blocking(emulator, n)
        print(f"blocking:   {[round(x, 2) for x in results['blocking']]} ({time.monotonic() - t0:.0f} s)", flush=True)

        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(BENCH_DIR / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "BENCH_LATENCY_SAMPLES": str(n),
            "BENCH_LATENCY_POLL": str(POLL),
            **connection_env(emulator.connection_json(), fresh_cache_dir("latency-dags")),
        }
        subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, check=True, timeout=300)
        for mode in ("reschedule", "deferrable"):
            t0 = time.monotonic()
            results[mode], output = through_dags_test(emulator, mode, n, home, env, offset)
            (home / f"dags-test-{mode}.log").write_text(output)
            print(
                f"{mode + ':':<11} {[round(x, 2) for x in results[mode]]} ({time.monotonic() - t0:.0f} s)", flush=True
            )
    finally:
        emulator.stop()

    for mode, values in results.items():
        how = "in-process execute()" if mode == "blocking" else "airflow dags test, end_date"
        m = median(values)
        report.check(
            f"{mode}: median latency ({len(values)} samples, {how})",
            f"{m:.2f} s",
            f"<= p/2 + 0.25 = {TARGET:.2f} s",
            m <= TARGET,
        )
        report.add(f"{mode}: min / max latency", f"{min(values):.2f} / {max(values):.2f} s")
    report.notes.append(
        f"poll interval {POLL:g} s; answer times {BASE:g} s + stratified over one poll period; dags test logs in {home}"
    )
    report.raw["latencies"] = results
    report.seconds = time.monotonic() - began
    report.print()
    report.write(args.json)


if __name__ == "__main__":
    main()
