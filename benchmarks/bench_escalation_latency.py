"""
Escalation latency: seconds from a task failure to the escalation's first ring, under real Airflow services.

Why: the escalation task replaces a failure callback, which starts ringing the moment the task fails; the task
first has to be scheduled, started on a worker and (deferrable) handed to the triggerer. This measures that cost
as deployed: Airflow's default settings (loop intervals included), LocalExecutor, SQLite.

How: the api-server, scheduler, DAG processor and triggerer run as separate processes
(``tests/e2e/standalone.py``, ``airflow_defaults=True``) with the emulator in this process. The DAG
(``dags_escalation/bench_escalation_dags.py``): ``guarded`` fails at once, then a deferrable
``RingOutEscalationOperator`` with ``trigger_rule="one_failed"`` rings three engineers 8 s each (voicemail, no
answer, acknowledges). Runs are triggered one after another through the REST API. Per run: failure = the time of
``guarded``'s "Task failed with exception" log line (its ``end_date``, when Airflow records the failure, comes
seconds later and is reported too); first ring = the emulator's arrival time of the run's first RingOut POST (its
monotonic clock converted to wall-clock time with an offset taken once); also ``escalate``'s ``start_date``.

It also writes the transcript of the first run (who rang, when, what was cancelled; from the emulator's record and
the task and trigger logs) to ``results/escalation_transcript.txt`` (``--transcript PATH``).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _common import BENCH_DIR, REPO, Report, median, parse_db_time, parser

if TYPE_CHECKING:
    from airflow_provider_ringout.testing import RingCentralEmulator
    from tests.e2e.standalone import AirflowServices

sys.path.insert(0, str(REPO))  # the services harness lives with the tests
sys.path.insert(0, str(BENCH_DIR / "dags_escalation"))

DAG_ID = "bench_escalation_latency"
RUNS = 5
TARGET = 30.0  # seconds: one default per_number_timeout, what the task costs over a callback stays under one ring
TERMINAL = {"success", "failed", "upstream_failed", "skipped"}
VOICEMAIL_AFTER, ACK_AFTER = 1.0, 2.0


def start_emulator() -> RingCentralEmulator:
    from bench_escalation_dags import ENGINEERS

    from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator

    rc = RingCentralEmulator(host="127.0.0.1", default_script=CallScript(outcome=Outcome.NEVER_ANSWERS)).start()
    first, second, third = ENGINEERS
    rc.script_caller(first, CallScript(outcome=Outcome.VOICEMAIL, after=VOICEMAIL_AFTER))
    rc.script_caller(second, CallScript(outcome=Outcome.NEVER_ANSWERS))
    rc.script_caller(third, CallScript(outcome=Outcome.ANSWERED, after=ACK_AFTER, talk=300, linger=30))
    return rc


def run_once(airflow: AirflowServices) -> str:
    """Trigger one run and wait until ``escalate`` ended; its run id."""
    run_id = f"bench__{uuid.uuid4().hex[:12]}"
    airflow.api("POST", f"/dags/{DAG_ID}/dagRuns", {"dag_run_id": run_id, "logical_date": None})
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/escalate"
    airflow.wait_for(
        f"run {run_id} to end",
        lambda: (airflow.api("GET", path, expect=(200, 404)) or {}).get("state") in TERMINAL,
        timeout=300,
    )
    return run_id


def task_times(airflow: AirflowServices, run_id: str) -> dict[str, dict[str, float | str | None]]:
    rows = airflow.query(
        "SELECT task_id, state, start_date, end_date FROM task_instance WHERE dag_id = ? AND run_id = ?",
        (DAG_ID, run_id),
    )
    return {
        task: {
            "state": state,
            "start": parse_db_time(start) if start else None,
            "end": parse_db_time(end) if end else None,
        }
        for task, state, start, end in rows
    }


def failed_at(airflow: AirflowServices, run_id: str) -> float | None:
    """When ``guarded`` failed: its "Task failed with exception" line (its ``end_date`` comes seconds later)."""
    for moment, task, message in log_lines(airflow, run_id):
        if task == "guarded" and message == "Task failed with exception":
            return moment
    return None


def log_lines(airflow: AirflowServices, run_id: str) -> list[tuple[float, str, str]]:
    """(time, task, message) of the provider's lines in the run's task and trigger logs, oldest first."""
    lines = []
    for path in sorted((airflow.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}").rglob("*.log")):
        task = path.parent.name.removeprefix("task_id=") + (" (triggerer)" if ".trigger." in path.name else "")
        for raw in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            event = str(entry.get("event", ""))
            if "RingOut" in event or "fails on purpose" in event or entry.get("event") == "Task failed with exception":
                lines.append((parse_db_time(entry["timestamp"]), task, event))
    return sorted(lines)


def transcript(emulator: RingCentralEmulator, airflow: AirflowServices, run_id: str, offset: float, first: int) -> str:
    """Who rang, when, what was cancelled: the emulator's record and the provider's log lines of one run."""
    from bench_escalation_dags import BRIDGE, ENGINEERS

    from airflow_provider_ringout.phone import mask_phone_number

    times = task_times(airflow, run_id)
    zero = failed_at(airflow, run_id)
    if zero is None:
        raise RuntimeError(f"no failure line in guarded's log of {run_id}")
    who = {number: f"engineer {i} ({mask_phone_number(number)})" for i, number in enumerate(ENGINEERS, start=1)}
    who[BRIDGE] = f"bridge ({mask_phone_number(BRIDGE)})"
    script = {
        ENGINEERS[0]: f"voicemail answers after {VOICEMAIL_AFTER:g} s, never presses 1",
        ENGINEERS[1]: "never answers",
        ENGINEERS[2]: f"answers after {ACK_AFTER:g} s and presses 1",
    }

    def at(wall: float) -> str:
        return f"{wall - zero:+7.2f} s"

    requests = emulator.requests[first:]
    sessions = {rid: info for rid, info in emulator.sessions.items() if info.created >= requests[0].time}
    out = [
        f"Escalation transcript: DAG {DAG_ID}, run {run_id}",
        "Real services (api-server, scheduler, DAG processor, triggerer; LocalExecutor, SQLite), Airflow's default",
        "settings. guarded fails -> escalate: deferrable RingOutEscalationOperator, trigger_rule=one_failed,",
        "per_number_timeout=8 s, poll_interval 2 s (default), rounds 1. Emulator scripts: "
        + "; ".join(f"engineer {i}: {script[n]}" for i, n in enumerate(ENGINEERS, start=1))
        + ".",
        'Times: seconds from guarded\'s failure (its "Task failed with exception" log line).',
        "",
        "Airflow (task instances):",
        f"  {at(zero)}  guarded failed (the exception, in its log)",
        f"  {at(times['guarded']['end'] or zero)}  guarded's end_date (Airflow recorded the failure)",  # type: ignore[arg-type]
        f"  {at(times['escalate']['start'] or zero)}  escalate started on a worker",  # type: ignore[arg-type]
        f"  {at(times['escalate']['end'] or zero)}  escalate ended: {times['escalate']['state']}",  # type: ignore[arg-type]
        "",
        "RingCentral emulator's record (RingOut requests; status reads left out):",
    ]
    ids = {info.id: info for info in sessions.values()}
    for r in requests:
        if r.kind == "ring-out-create" and r.json:
            caller = r.json["from"]["phoneNumber"]
            out.append(
                f"  {at(r.time + offset)}  POST ring-out: ring {who.get(caller, caller)} first "
                f"(playPrompt={r.json.get('playPrompt')}), then {who.get(r.json['to']['phoneNumber'], '?')} -> {r.status}"
            )
        elif r.method == "DELETE":
            rid = r.path.rsplit("/", 1)[-1]
            info = ids.get(rid)
            name = who.get(info.from_number or "", "?") if info else "?"
            out.append(f"  {at(r.time + offset)}  DELETE ring-out {rid} (the call to {name}) -> {r.status}")
    out += ["", "Calls at the end (emulator sessions):"]
    for info in sorted(sessions.values(), key=lambda s: s.created):
        status = info.status or {}
        out.append(
            f"  {who.get(info.from_number or '', '?')}: placed {at(info.created + offset)}; "
            f"{script.get(info.from_number or '', info.outcome.value)}; stopped by a cancel: "
            f"{'yes' if info.cancelled else 'no'}; at the end: {status.get('callStatus', 'gone (ended)')}"
        )
    out += ["", "The provider's lines in the task and trigger logs (numbers masked as logged):"]
    out += [f"  {at(t)}  [{task}] {message}" for t, task, message in log_lines(airflow, run_id)]
    xcom = airflow.api(
        "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/escalate/xcomEntries/return_value", expect=(200, 404)
    )
    if xcom and "value" in xcom:
        value = xcom["value"]
        if isinstance(value, dict):
            value = {
                **value,
                "acknowledged_by": who.get(str(value.get("acknowledged_by")), value.get("acknowledged_by")),
            }
            value["calls"] = [
                {**c, "number": who.get(c.get("number"), c.get("number"))} for c in value.get("calls", [])
            ]
        out += [
            "",
            "escalate's XCom (numbers replaced by who they are):",
            "  " + json.dumps(value, indent=2).replace("\n", "\n  "),
        ]
    return "\n".join(out) + "\n"


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_ESCALATION_RUNS", RUNS)))
    p.add_argument("--transcript", default=str(BENCH_DIR / "results" / "escalation_transcript.txt"))
    args = p.parse_args()
    began = time.monotonic()
    from tests.e2e.standalone import services_on_emulator

    report = Report("7 escalation latency")
    home = Path(tempfile.mkdtemp(prefix="ringout-bench-escalation-"))
    emulator = start_emulator()
    offset = time.time() - time.monotonic()
    samples: list[dict[str, Any]] = []
    try:
        with services_on_emulator(
            emulator, home, BENCH_DIR / "dags_escalation", [DAG_ID], airflow_defaults=True
        ) as airflow:
            for i in range(args.runs):
                first = len(emulator.requests)
                run_id = run_once(airflow)
                times = task_times(airflow, run_id)
                posts = [r for r in emulator.requests[first:] if r.kind == "ring-out-create"]
                failed, recorded, started = (
                    failed_at(airflow, run_id),
                    times["guarded"]["end"],
                    times["escalate"]["start"],
                )
                if not (failed and isinstance(recorded, float) and isinstance(started, float) and posts):
                    raise RuntimeError(f"run {run_id} did not fail and escalate: {times}\n{airflow.log_tails()}")
                ring = posts[0].time + offset
                sample = {
                    "run_id": run_id,
                    "escalate": times["escalate"]["state"],
                    "failure_to_first_ring": ring - failed,
                    "end_date_to_first_ring": ring - recorded,
                    "failure_to_escalate_start": started - failed,
                    "escalate_start_to_first_ring": ring - started,
                    "rings": len(posts),
                }
                samples.append(sample)
                print(
                    f"run {i + 1}: failure -> first ring {sample['failure_to_first_ring']:.2f} s (task start "
                    f"{sample['failure_to_escalate_start']:.2f} s, then {sample['escalate_start_to_first_ring']:.2f} s);"
                    f" {sample['rings']} rings, escalate {sample['escalate']}",
                    flush=True,
                )
                if i == 0:
                    text = transcript(emulator, airflow, run_id, offset, first)
                    Path(args.transcript).write_text(text)
                    print(text, flush=True)
    finally:
        emulator.stop()

    latency = [s["failure_to_first_ring"] for s in samples]
    report.check(
        f"task failure -> first ring, median of {len(latency)} runs",
        f"{median(latency):.2f} s",
        f"<= {TARGET:g} s",
        median(latency) <= TARGET,
    )
    report.add("task failure -> first ring, min / max", f"{min(latency):.2f} / {max(latency):.2f} s")
    recorded = [s["end_date_to_first_ring"] for s in samples]
    report.add("guarded's end_date (failure recorded) -> first ring, median", f"{median(recorded):.2f} s")
    starts = [s["failure_to_escalate_start"] for s in samples]
    report.add("... of which failure -> escalate task started, median", f"{median(starts):.2f} s")
    rings = [s["escalate_start_to_first_ring"] for s in samples]
    report.add("... of which escalate started -> first ring (defer + triggerer), median", f"{median(rings):.2f} s")
    report.add(
        "escalations that reached engineer 3 (success)",
        f"{sum(s['escalate'] == 'success' for s in samples)} of {len(samples)}",
    )
    report.notes.append(
        "Airflow defaults (scheduler/triggerer loops too), LocalExecutor, SQLite; runs one after another; "
        f"services' logs in {home}"
    )
    report.raw["samples"] = samples
    report.seconds = time.monotonic() - began
    report.print()
    report.write(args.json)


if __name__ == "__main__":
    main()
