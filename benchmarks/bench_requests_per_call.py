"""
Requests one RingOutOperator task sends for one call, against the least any poller could send.

Why: every request spends RingCentral's per-user rate budget (Heavy 10/min for the POST, Light 50/min for status
reads) that all tasks of a credential share, so a wait loop must not read the status more often than asked.

How: the real ``RingOutOperator(...).execute(context)`` runs in this process (the operator's own blocking wait
loop, not a copy), with a minimal fake context: a ``ti`` with ``xcom_push`` and no ``task_state_store`` (so the
resumable-job mixin submits fresh and nothing reconnects). The call is answered T seconds after the POST and
polled every p seconds. The emulator (in this process, loopback) counts what arrived. Lower bound for a call
answered after T polled every p: 1 POST + ceil(T/p) GETs, plus 1 login per token lifetime (each pair starts from
an empty token cache, so 1). Target: total requests at most bound + 1.
"""

from __future__ import annotations

import math
import time
from types import SimpleNamespace
from typing import Any

from _common import FROM_NUMBER, Report, fresh_cache_dir, isolate_airflow, parser, quiet_logs, use_connection

PAIRS: tuple[tuple[float, float], ...] = ((3, 1), (5, 2), (4, 0.5), (7, 3))


class FakeTI(SimpleNamespace):
    """Just what the operator touches: ``xcom_push`` and the ``stats_tags`` the resumable mixin reads."""

    def __init__(self) -> None:
        super().__init__(stats_tags={}, xcoms={})

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def run_pair(answer_after: float, poll: float) -> dict[str, Any]:
    from airflow_provider_ringout.operators.ringout import RingOutOperator
    from airflow_provider_ringout.state.tokens import TokenCache
    from airflow_provider_ringout.testing import CallScript, RingCentralEmulator

    emulator = RingCentralEmulator(default_script=CallScript(after=answer_after, talk=600, linger=60)).start()
    try:
        use_connection(emulator.connection_json(), fresh_cache_dir("requests"))
        TokenCache._memory.clear()
        operator = RingOutOperator(
            task_id="call",
            to_number="+14155550199",
            from_number=FROM_NUMBER,
            poll_interval=poll,
            wait_timeout=answer_after + 10 * poll + 30,
        )
        ti = FakeTI()
        started = time.monotonic()
        result = operator.execute({"ti": ti})  # type: ignore[arg-type]
        elapsed = time.monotonic() - started
        records = emulator.requests
    finally:
        emulator.stop()
    counts = {kind: sum(1 for r in records if r.kind == kind) for kind in ("token", "ring-out-create", "ring-out-get")}
    bound = 1 + 1 + math.ceil(answer_after / poll)
    return {
        "T": answer_after,
        "p": poll,
        "result": result,
        "elapsed_s": round(elapsed, 3),
        "counts": counts,
        "other": len(records) - sum(counts.values()),
        "total": len(records),
        "bound": bound,
    }


def main() -> None:
    args = parser(__doc__).parse_args()
    began = time.monotonic()
    isolate_airflow("requests")
    quiet_logs()
    report = Report("2 requests per call")
    results = []
    for answer_after, poll in PAIRS:
        r = run_pair(answer_after, poll)
        results.append(r)
        c = r["counts"]
        print(
            f"T={answer_after:g} s, p={poll:g} s: {c['token']} login + {c['ring-out-create']} POST + "
            f"{c['ring-out-get']} GET + {r['other']} other = {r['total']} (bound {r['bound']}), task {r['elapsed_s']:.2f} s",
            flush=True,
        )
        report.check(
            f"requests for T={answer_after:g} s, p={poll:g} s (login+POST+GET)",
            f"{r['total']} ({c['token']}+{c['ring-out-create']}+{c['ring-out-get']})",
            f"<= bound+1 = {r['bound'] + 1}",
            r["total"] <= r["bound"] + 1 and r["result"],
        )
    report.notes.append(
        "bound = 1 login + 1 POST + ceil(T/p) GETs; the operator reads the status right after the POST, then "
        "every p s, so ceil(T/p)+1 GETs is the expected count (bound + 1)"
    )
    report.notes.append("operator run in-process via RingOutOperator.execute() with a fake ti and no task_state_store")
    report.raw["pairs"] = results
    report.seconds = time.monotonic() - began
    report.print()
    report.write(args.json)


if __name__ == "__main__":
    main()
