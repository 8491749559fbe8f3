"""
Logins when many task processes on one host start together with the same RingCentral connection.

Why: RingCentral allows about 5 logins a minute per user and app (Auth group) and keeps only a few OAuth
sessions per app; a provider that logs in per task both burns that budget and evicts its own sessions. This
provider shares one token per credential host-wide (a 0600 file under flock), so N processes starting together
should cause one token request per token lifetime, whatever N.

How: for N = 1, 8, 32, N processes (multiprocessing *spawn*: separate interpreters, like task processes) read
the connection, wait on a barrier, then each places a call with ``hook.place_ringout`` and polls
``hook.get_status`` until it connects. To keep the run short, 32 processes are spawned once and reused: each
round starts every process like a new task (new hook, the provider's in-process token memory emptied, the
round's own connection and cache folder), so no token survives from one round to the next. The emulator (in this process, on loopback) counts token requests.
The same run repeats each N with every process given its own private cache folder: what a provider that logs
in per task does (the baseline). The emulator's rate limits are off and its session cap raised to 64 so the
baseline's logins are counted, not refused or evicted; one fresh emulator and cache folder per round.
"""

from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING, Any

from _common import FROM_NUMBER, Report, fresh_cache_dir, isolate_airflow, median, parser, quiet_logs

if TYPE_CHECKING:
    from multiprocessing.synchronize import Barrier

COUNTS = (1, 8, 32)
ANSWER_AFTER = 1.0  # seconds until each call connects
POLL = 0.25  # seconds between status reads in each process
TOKEN_TTL = 3600.0


def task_process(index: int, rounds: list[tuple[int, Barrier]], commands: Any, results: Any) -> None:
    """
    One task process, reused for every round it takes part in (index < N).

    Each round starts like a new task: a new hook, the provider's in-process token memory emptied, the round's
    connection and cache folder; then everyone waits on the round's barrier, places a call and polls it.
    """
    quiet_logs()
    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
    from airflow_provider_ringout.state.tokens import TokenCache
    from airflow_provider_ringout.status import RingOutState

    for n, barrier in rounds:
        if index >= n:
            continue
        env = commands.get()
        os.environ.update(env)
        TokenCache._memory.clear()
        hook = RingCentralHook()
        hook.credentials  # noqa: B018 - read the connection before the start line, as a task does before its work
        barrier.wait()
        started = time.monotonic()
        try:
            ringout_id = hook.place_ringout(to_number=f"+1555010{index:04d}", from_number=FROM_NUMBER)["id"]
            while (state := hook.get_status(ringout_id).state) is RingOutState.PENDING:
                time.sleep(POLL)
            results.put((index, state.value, time.monotonic() - started, None))
        except Exception as exc:
            results.put((index, "error", time.monotonic() - started, f"{type(exc).__name__}: {exc}"))


def run_round(n: int, *, shared: bool, commands: list[Any], results: Any) -> dict[str, Any]:
    """One round: N processes with one shared cache folder (shared=True) or a private folder each (baseline)."""
    from airflow_provider_ringout.testing import CallScript, RingCentralEmulator

    emulator = RingCentralEmulator(
        default_script=CallScript(after=ANSWER_AFTER, talk=600, linger=60), token_ttl=TOKEN_TTL, max_sessions=64
    ).start()
    try:
        conn = emulator.connection_json()
        shared_dir = fresh_cache_dir(f"logins-{n}-shared")
        for i in range(n):
            cache = shared_dir if shared else fresh_cache_dir(f"logins-{n}-private-{i}")
            commands[i].put(
                {"AIRFLOW_CONN_RINGCENTRAL_DEFAULT": conn, "AIRFLOW__RINGCENTRAL__TOKEN_CACHE_DIR": str(cache)}
            )
        outcomes = [results.get(timeout=300) for _ in range(n)]
        records = emulator.requests
    finally:
        emulator.stop()
    tokens = [r for r in records if r.kind == "token"]
    first = min((r.time for r in records), default=0.0)
    last = max((r.time for r in records), default=first)
    return {
        "n": n,
        "shared": shared,
        "token_requests": len(tokens),
        "token_lifetimes": max(1, math.ceil((last - first) / TOKEN_TTL)),
        "unauthorised": sum(1 for r in records if r.status == 401),
        "connected": sum(1 for o in outcomes if o[1] == "connected"),
        "errors": [o[3] for o in outcomes if o[3]],
        "median_task_s": median([o[2] for o in outcomes]),
        "max_task_s": max(o[2] for o in outcomes),
        "requests": len(records),
    }


def main() -> None:
    args = parser(__doc__).parse_args()
    began = time.monotonic()
    isolate_airflow("logins")
    report = Report("1 logins")
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    plan = [(n, shared) for n in COUNTS for shared in (True, False)]
    barriers = [(n, ctx.Barrier(n)) for n, _ in plan]
    size = max(COUNTS)
    commands = [ctx.Queue() for _ in range(size)]
    results = ctx.Queue()
    procs = [ctx.Process(target=task_process, args=(i, barriers, commands[i], results)) for i in range(size)]
    for p in procs:
        p.start()
    rounds = []
    for n, shared in plan:
        result = run_round(n, shared=shared, commands=commands, results=results)
        rounds.append(result)
        mode = "shared" if shared else "baseline"
        print(
            f"N={n:>2} {mode:<8} token requests {result['token_requests']:>2}, connected "
            f"{result['connected']}/{n}, 401s {result['unauthorised']}, median task {result['median_task_s']:.2f} s, "
            f"errors {len(result['errors'])}",
            flush=True,
        )
    for p in procs:
        p.join(timeout=60)
    for result in rounds:
        n, lifetimes = result["n"], result["token_lifetimes"]
        label = f"token requests, N={n}"
        ok_calls = result["connected"] == n and not result["errors"]
        if result["shared"]:
            report.check(
                f"{label}, shared cache (this provider)",
                f"{result['token_requests']}" + ("" if ok_calls else f" ({n - result['connected']} tasks failed)"),
                f"1 per token lifetime ({lifetimes})",
                result["token_requests"] <= lifetimes and ok_calls,
            )
        else:
            report.add(
                f"{label}, private cache per task (baseline)", str(result["token_requests"]), f"expected N ({n})"
            )
    report.notes.append(
        f"calls answered after {ANSWER_AFTER:g} s, polled every {POLL:g} s; token lifetime {TOKEN_TTL:g} s, so each "
        "round spans one lifetime; emulator rate limits off, session cap 64"
    )
    report.raw["rounds"] = rounds
    report.seconds = time.monotonic() - began
    report.print()
    report.write(args.json)


if __name__ == "__main__":
    main()
