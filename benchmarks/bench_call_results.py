"""
Call results at RingCentral's real limits: K = 1, 10, 30 calls placed at once, each task then waiting for its result.

Why: the call log is in the Heavy group (10 requests a minute per user and app), shared with the POST that places
calls. A result per call read on its own would cost K Heavy requests per look and push the POSTs back. The hook
serves every waiter of a host from one reader (``call-log-sync``, at most one every ``call_log_interval`` s) that
takes a Heavy slot only when one is free and no POST waits for one.

How: one emulator per round with RingCentral's real limits (Heavy 10 a minute, 60 s penalty), calls that connect
after 2 s and talk 20 s, records written 15 s after a call ends (RingCentral: 15-30 s). K threads, each a task
with its own hook on one host's state folder: place a call, then look for its result every POLL s. From the
emulator's record: Heavy requests spent on results (call-log and call-log-sync), the POSTs' span from the first to
the last against their floor (ceil(K/10)-1 full windows: what the POSTs alone need), 429s; from the results: the
seconds from each call's end (start_time + duration) to the look that found its result.
Targets: results for 30 calls cost at most 10 Heavy requests; the POSTs finish within 10% of their floor (+1 s).
"""

from __future__ import annotations

import math
import threading
import time
from datetime import datetime
from typing import Any

from _common import FROM_NUMBER, Report, fresh_cache_dir, isolate_airflow, median, parser, quiet_logs, use_connection

KS = (1, 10, 30)
WINDOW = 60.0  # RingCentral's real window
HEAVY = 10
POLL = 2.0  # each task looks for its result this often (a look reads the shared records; it costs no request)
AFTER, TALK, LOG_DELAY = 2.0, 20.0, 15.0
RESULTS_TARGET = 10  # Heavy requests for the results of 30 calls
GIVE_UP = 360.0  # a task that has no result by then is counted as missing


def task(index: int, out: dict[int, Any]) -> None:
    """One task: place a call, then look for its result until it is there."""
    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook

    hook = RingCentralHook()
    to = f"+1555030{index:04d}"
    ringout_id = hook.place_ringout(to_number=to, from_number=FROM_NUMBER)["id"]
    placed_at = datetime.now().astimezone().isoformat()  # once placed: the POST may have waited for the pacer
    give_up = time.monotonic() + GIVE_UP
    while time.monotonic() < give_up:
        result = hook.get_call_result(ringout_id, from_number=FROM_NUMBER, to_number=to, placed_at=placed_at)
        if result is not None:
            out[index] = (result, time.time())
            return
        time.sleep(POLL)


def warm_up() -> None:
    """
    The host's pacer knows the Heavy limit, as after any earlier Heavy answer: a cold file pacer would send its
    first burst unpaced (it learns limits from the answers' headers) and measure that instead of the results.
    """
    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook

    headers = {"X-Rate-Limit-Limit": str(HEAVY), "X-Rate-Limit-Window": str(int(WINDOW))}
    RingCentralHook()._pacer.observe(RingCentralHook.GROUP_HEAVY, headers)


def one_round(k: int, report: Report) -> None:
    from airflow_provider_ringout.state import reset_process_state
    from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator

    reset_process_state()
    script = CallScript(outcome=Outcome.ANSWERED, after=AFTER, talk=TALK, linger=5)
    emulator = RingCentralEmulator.with_real_limits(default_script=script, call_log_delay=LOG_DELAY).start()
    try:
        use_connection(emulator.connection_json(), fresh_cache_dir(f"results{k}"))
        warm_up()
        out: dict[int, Any] = {}
        began = time.monotonic()
        threads = [threading.Thread(target=task, args=(i, out)) for i in range(k)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - began
        requests = emulator.requests
    finally:
        emulator.stop()
    posts = sorted(r.time for r in requests if r.kind == "ring-out-create" and r.status == 200)
    reads = [r for r in requests if r.kind in ("call-log", "call-log-sync")]
    span = posts[-1] - posts[0]
    floor = (math.ceil(k / HEAVY) - 1) * WINDOW
    lags = []
    print(f"K={k}: {len(out)} results in {wall:.0f} s", flush=True)
    for result, found_at in out.values():
        start = datetime.fromisoformat(result["start_time"].replace("Z", "+00:00")).timestamp()
        lags.append(found_at - (start + (result["duration"] or 0)))
    spent = len(reads)
    report.check(
        f"K={k}: Heavy requests spent on results",
        f"{spent} ({sum(1 for r in reads if r.query.get('syncType') == 'FSync')} FSync)",
        f"<= {RESULTS_TARGET} for K=30" if k == 30 else "info",
        spent <= RESULTS_TARGET if k == 30 else True,
    )
    report.check(
        f"K={k}: POSTs first to last, with results on",
        f"{span:.1f} s",
        f"<= floor {floor:.0f} s x 1.1 + 1 s",
        span <= floor * 1.1 + 1.0,
    )
    report.add(f"K={k}: results found", f"{len(out)} of {k}")
    report.add(f"K={k}: seconds from a call's end to its result, median / max", f"{median(lags):.1f} / {max(lags):.1f}")
    report.add(f"K={k}: wall time (start to last result)", f"{wall:.1f} s")
    report.check(
        f"K={k}: 429s", str(sum(1 for r in requests if r.status == 429)), "0", all(r.status != 429 for r in requests)
    )
    report.raw[f"k{k}"] = {
        "posts": posts,
        "reads": [(r.time, r.query.get("syncType"), r.status) for r in reads],
        "lags": lags,
        "wall": wall,
        "floor": floor,
    }


def main() -> None:
    args = parser(__doc__).parse_args()
    began = time.monotonic()
    isolate_airflow("results")
    quiet_logs()
    report = Report("7 call results")
    for k in KS:
        one_round(k, report)
    report.notes.append(
        f"real limits (Heavy {HEAVY}/min, 60 s penalty); calls connect after {AFTER:.0f} s, talk {TALK:.0f} s; "
        f"records written {LOG_DELAY:.0f} s after the end; each task looks every {POLL:.0f} s; "
        "call_log_interval 20 s (default); one host (file state), K threads with their own hook; the host's pacer "
        "knows the Heavy limit at the start (a cold file pacer sends its first burst unpaced: not this feature)"
    )
    report.seconds = time.monotonic() - began
    report.print()
    report.write(args.json)


if __name__ == "__main__":
    main()
