"""
Rate-limit budget: 100 calls over one connection from several processes on one host, against RingCentral's limits.

Why: RingCentral allows 10 RingOut POSTs per minute per user (Heavy group) and answers a 429 with a penalty that
restarts on every request sent during it. A provider must use the budget fully (no idle windows) without
tripping the penalty; processes of one host must share the budget (the provider's host-wide ``RatePacer``).

How: the emulator (in this process, loopback) enforces the default limits (Light 50, Medium 40, Heavy 10, Auth 5
per window) on a compressed clock: window and penalty WINDOW s instead of 60 s. PROCESSES spawned processes,
released together by a barrier, each call ``hook.place_ringout`` CALLS_PER_PROCESS times in a loop (not waiting
for connections). From the emulator's record: total run time, calls placed per window (fixed windows of WINDOW s
from the first POST; the last, partial window excluded from min/median), 429s per window, failed calls.
Targets: no call fails; calls per window at least 90% of the Heavy limit; at most one 429 per window.
"""

from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING, Any

from _common import FROM_NUMBER, Report, fresh_cache_dir, isolate_airflow, median, parser, quiet_logs

if TYPE_CHECKING:
    from multiprocessing.synchronize import Barrier

PROCESSES = 4
CALLS_PER_PROCESS = 25
WINDOW = 6.0  # seconds: RingCentral's 60 s window, compressed 10x
HEAVY = 10


def caller(env: dict[str, str], barrier: Barrier, index: int, results: Any) -> None:
    """One process: CALLS_PER_PROCESS place_ringout calls in a row; report each outcome."""
    os.environ.update(env)
    quiet_logs()
    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook

    hook = RingCentralHook()
    hook.credentials  # noqa: B018 - read the connection before the start line
    barrier.wait()
    outcomes = []
    for k in range(CALLS_PER_PROCESS):
        started = time.monotonic()
        try:
            hook.place_ringout(to_number=f"+1555020{index:02d}{k:02d}", from_number=FROM_NUMBER)
            outcomes.append((started, time.monotonic(), None))
        except Exception as exc:
            outcomes.append((started, time.monotonic(), f"{type(exc).__name__}: {exc}"))
    results.put((index, outcomes))


def main() -> None:
    import multiprocessing as mp

    args = parser(__doc__).parse_args()
    began = time.monotonic()
    isolate_airflow("rate")
    quiet_logs()
    from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator

    report = Report("3 rate-limit budget")
    emulator = RingCentralEmulator(
        default_script=CallScript(outcome=Outcome.NEVER_ANSWERS),
        rate_limits=dict(RingCentralEmulator.DEFAULT_RATE_LIMITS),
        rate_window=WINDOW,
        rate_penalty=WINDOW,
    ).start()
    try:
        env = {
            "AIRFLOW_CONN_RINGCENTRAL_DEFAULT": emulator.connection_json(),
            "AIRFLOW__RINGCENTRAL__TOKEN_CACHE_DIR": str(fresh_cache_dir("rate")),
        }
        ctx = mp.get_context("spawn")
        barrier = ctx.Barrier(PROCESSES + 1)
        results = ctx.Queue()
        procs = [ctx.Process(target=caller, args=(env, barrier, i, results)) for i in range(PROCESSES)]
        for p in procs:
            p.start()
        barrier.wait()
        released = time.monotonic()
        per_process = [results.get(timeout=600) for _ in procs]
        finished = time.monotonic()
        for p in procs:
            p.join(timeout=60)
        records = emulator.requests
    finally:
        emulator.stop()

    failures = [err for _, outcomes in per_process for (_, _, err) in outcomes if err]
    posts = [r for r in records if r.kind == "ring-out-create"]
    placed = sorted(r.time for r in posts if r.status == 200)
    limited = sorted(r.time for r in records if r.status == 429)
    first = min((r.time for r in posts), default=released)
    last_placed = placed[-1] if placed else first
    windows = max(1, math.floor((last_placed - first) / WINDOW) + 1)
    per_window = [0] * windows
    per_window_429 = [0] * windows
    for t in placed:
        per_window[min(windows - 1, int((t - first) // WINDOW))] += 1
    for t in limited:
        index = int((t - first) // WINDOW)
        if 0 <= index < windows:
            per_window_429[index] += 1
    full = per_window[:-1] if windows > 1 else per_window
    # Sustained rate after the first burst: calls beyond the first window's, per window of time they took.
    sustained = (len(placed) - per_window[0]) / ((last_placed - first) / WINDOW) if len(placed) > HEAVY else 0.0
    total_calls = PROCESSES * CALLS_PER_PROCESS
    ideal = (math.ceil(total_calls / HEAVY) - 1) * WINDOW

    print(f"calls placed per window:  {per_window}", flush=True)
    print(f"429s per window:          {per_window_429}", flush=True)
    print(f"429s by kind: {[(r.kind, round(r.time - first, 2)) for r in records if r.status == 429]}", flush=True)
    report.add("total run time (barrier to last call placed)", f"{finished - released:.1f} s", f"ideal ~{ideal:.0f} s")
    report.check("calls failed", f"{len(failures)} of {total_calls}", "0", not failures)
    report.check(
        "calls placed per window, min (full windows)",
        f"{min(full)}",
        f">= 90% of Heavy = {math.ceil(0.9 * HEAVY)}",
        min(full) >= 0.9 * HEAVY,
    )
    report.check(
        "calls placed per window, median (full windows)",
        f"{median([float(x) for x in full]):g}",
        f">= 90% of Heavy = {math.ceil(0.9 * HEAVY)}",
        median([float(x) for x in full]) >= 0.9 * HEAVY,
    )
    report.add("sustained calls per window after the first", f"{sustained:.2f}", f"limit {HEAVY}")
    report.check("429s per window, max", f"{max(per_window_429)}", "<= 1", max(per_window_429) <= 1)
    report.add("429s in total (any request kind)", str(len(limited)))
    report.add("token requests", str(sum(1 for r in records if r.kind == "token")))
    report.notes.append(
        f"{PROCESSES} processes x {CALLS_PER_PROCESS} calls, window and penalty {WINDOW:g} s (RingCentral: 60 s), "
        f"Heavy {HEAVY}/window; windows are fixed {WINDOW:g} s bins from the first POST"
    )
    if failures:
        report.notes.append(f"first failure: {failures[0]}")
    report.raw.update(
        per_window=per_window,
        per_window_429=per_window_429,
        failures=failures[:10],
        run_s=finished - released,
        placed_offsets=[round(t - first, 3) for t in placed],
    )
    report.seconds = time.monotonic() - began
    report.print()
    report.write(args.json)


if __name__ == "__main__":
    main()
