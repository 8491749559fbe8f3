"""
A cluster of K hosts placing one call each at once, against RingCentral's real limits: file vs redis shared state.

Why: RingCentral's limits are per user and app across all hosts (Auth 5 token requests a minute with a 60 s
penalty restarted by every try, about 5 live sessions, Heavy 10 a minute for POST, Light 50 a minute for status
reads). With ``shared_state = file`` each host logs in and paces on its own; with ``redis`` the cluster shares one
token and one budget. This is when it matters: many DAGs failing together fire many alerts at once.

How: for K = 4, 8, 16 and each backend, K task processes (multiprocessing *spawn*, reused across rounds; each
round is a new task: new hook, empty token memory, the round's own home folder per process, so K "hosts") wait
on a barrier, then each places a call with ``hook.place_ringout`` and polls ``hook.get_status`` every
:data:`POLL` s until it connects. The emulator runs in this process with RingCentral's real throttling
(``RingCentralEmulator.with_real_limits``) and answers each call :data:`ANSWER_AFTER` s after its POST; a fresh
emulator and an empty redis-server (own port) per round. A last round kills Redis a few seconds into a redis run.

Figures per round: logins (token requests), 429 answers (all, and on the token endpoint), sessions evicted, calls
placed and connected, wall time, POSTs in the first minute against the Heavy limit (what K calls could use of
it), and the median detection latency (scripted connect to the poll that saw it) under the shared Light budget.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from _common import FROM_NUMBER, Report, fresh_cache_dir, isolate_airflow, median, parser, quiet_logs

if TYPE_CHECKING:
    from multiprocessing.synchronize import Barrier

COUNTS = (4, 8, 16)
BACKENDS = ("file", "redis")
ANSWER_AFTER = 5.0  # seconds from POST until the call connects
POLL = 5.0  # the operator's default poll interval
HEAVY_LIMIT = 10
KILL_REDIS_AFTER = 3.0  # seconds into the last round (calls placed, waiting); --kill K:S for another moment


def task_process(index: int, rounds: list[tuple[int, Barrier]], commands: Any, results: Any) -> None:
    """One task process, reused for every round it takes part in (index < K); each round is a new task."""
    quiet_logs()
    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
    from airflow_provider_ringout.state import reset_process_state
    from airflow_provider_ringout.status import RingOutState

    for k, barrier in rounds:
        if index >= k:
            continue
        os.environ.update(commands.get())
        reset_process_state()  # a new task process: no token, Redis client or fallback in memory
        hook = RingCentralHook()
        hook.credentials  # noqa: B018 - read the connection before the start line, as a task does
        barrier.wait()
        started = time.time()
        posted = seen = None
        try:
            ringout_id = hook.place_ringout(to_number=f"+1555010{index:04d}", from_number=FROM_NUMBER)["id"]
            posted = time.time()
            while (state := hook.get_status(ringout_id).state) is RingOutState.PENDING:
                time.sleep(POLL)
            seen = time.time()
            results.put((index, state.value, started, posted, seen, None))
        except Exception as exc:
            results.put((index, "error", started, posted, seen, f"{type(exc).__name__}: {str(exc)[:200]}"))


def run_round(
    k: int, backend: str, *, commands: list[Any], results: Any, kill_redis: float | None = None
) -> dict[str, Any]:
    """One round of K hosts on ``backend``; ``kill_redis``: kill redis-server that many seconds after the first request."""
    from airflow_provider_ringout.testing import CallScript, RingCentralEmulator
    from airflow_provider_ringout.testing.redis_server import RedisServer

    emulator = RingCentralEmulator.with_real_limits(default_script=CallScript(after=ANSWER_AFTER, talk=600, linger=600))
    emulator.start()
    redis = RedisServer().start()
    try:
        conn = emulator.connection_json()
        for i in range(k):
            commands[i].put(
                {
                    "AIRFLOW_CONN_RINGCENTRAL_DEFAULT": conn,
                    "AIRFLOW_CONN_REDIS_DEFAULT": redis.url,
                    "AIRFLOW__RINGCENTRAL__SHARED_STATE": backend,
                    "AIRFLOW__RINGCENTRAL__TOKEN_CACHE_DIR": str(fresh_cache_dir(f"cluster-{backend}-{k}-host{i}")),
                }
            )
        if kill_redis is not None:
            while not emulator.count():  # the clock starts with the round's first request
                time.sleep(0.05)
            time.sleep(kill_redis)
            redis.stop()
        outcomes = [results.get(timeout=900) for _ in range(k)]
        records = emulator.requests
        evictions = emulator.evictions
    finally:
        emulator.stop()
        redis.stop()
    ended = max(o[4] or o[3] or time.time() for o in outcomes)
    wall = ended - min(o[2] for o in outcomes)  # from the start line (the barrier) to the last task's end
    posts = sorted(r.time for r in records if r.kind == "ring-out-create" and r.status == 200)
    first_minute = sum(1 for t in posts if t < (posts[0] if posts else 0) + 60)
    detection = [o[4] - (o[3] + ANSWER_AFTER) for o in outcomes if o[3] and o[4]]
    return {
        "k": k,
        "backend": backend + ("" if kill_redis is None else f" (Redis killed {kill_redis:g} s in)"),
        "logins": sum(1 for r in records if r.kind == "token" and r.status == 200),
        "token_requests": sum(1 for r in records if r.kind == "token"),
        "answers_429": sum(1 for r in records if r.status == 429),
        "auth_429": sum(1 for r in records if r.kind == "token" and r.status == 429),
        "evictions": evictions,
        "placed": len(posts),
        "connected": sum(1 for o in outcomes if o[1] == "connected"),
        "errors": [o[5] for o in outcomes if o[5]],
        "wall_s": round(wall, 1),
        "posts_first_minute": first_minute,
        "heavy_used": round(first_minute / min(k, HEAVY_LIMIT), 2),
        "median_detection_s": round(median(detection), 1),
        "requests": len(records),
    }


def add_rows(report: Report, rounds: list[dict[str, Any]]) -> None:
    """One row per round; the redis rounds are checked against the targets, the others are the baseline."""
    for r in rounds:
        k = r["k"]
        label = f"K={k} {r['backend']}"
        summary = (
            f"{r['logins']} logins ({r['token_requests']} token requests), {r['answers_429']} 429s, "
            f"{r['evictions']} evicted, {r['placed']}/{k} placed, {r['connected']}/{k} connected, {r['wall_s']} s, "
            f"Heavy {r['heavy_used']:.0%}, detection {r['median_detection_s']} s"
        )
        if r["backend"] == "redis":  # the rounds Redis lived through
            ok = (
                r["logins"] == 1
                and r["auth_429"] == 0
                and r["answers_429"] <= 1
                and r["connected"] == k
                and r["heavy_used"] >= 0.9
            )
            report.check(label, summary, "1 login, 0 Auth 429, <= 1 429, K of K, Heavy >= 90%", ok)
        else:
            report.add(label, summary)
    report.notes.append(
        f"real limits (Auth 5, Heavy 10, Light 50 a minute, 60 s penalty, 5 sessions); calls answer {ANSWER_AFTER:g} s "
        f"after the POST, polled every {POLL:g} s; Heavy % = POSTs in the first minute / min(K, 10); the last round "
        f"kills redis-server {KILL_REDIS_AFTER:g} s in"
    )


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("--kill", metavar="K:S", help="only one round: K hosts on redis, redis-server killed S s in")
    cli.add_argument("--round", metavar="K:BACKEND", help="only one round: K hosts on BACKEND (file or redis)")
    args = cli.parse_args()
    began = time.monotonic()
    isolate_airflow("cluster")
    report = Report("7 cluster")
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    plan: list[tuple[int, str, float | None]] = [(k, backend, None) for k in COUNTS for backend in BACKENDS]
    plan.append((8, "redis", KILL_REDIS_AFTER))
    if args.kill:
        hosts, after = args.kill.split(":")
        plan = [(int(hosts), "redis", float(after))]
    elif args.round:
        hosts, backend = args.round.split(":")
        if backend not in BACKENDS:
            cli.error(f"--round: BACKEND must be one of {', '.join(BACKENDS)}; got {backend!r}")
        plan = [(int(hosts), backend, None)]
    barriers = [(k, ctx.Barrier(k)) for k, _, _ in plan]
    size = max(k for k, _, _ in plan)
    commands = [ctx.Queue() for _ in range(size)]
    results = ctx.Queue()
    procs = [ctx.Process(target=task_process, args=(i, barriers, commands[i], results)) for i in range(size)]
    for p in procs:
        p.start()
    rounds = []
    for k, backend, kill in plan:
        r = run_round(k, backend, commands=commands, results=results, kill_redis=kill)
        rounds.append(r)
        print(
            f"K={k:>2} {r['backend']:<20} logins {r['logins']:>2}, 429s {r['answers_429']:>3} (Auth {r['auth_429']}), "
            f"evicted {r['evictions']}, placed {r['placed']}/{k}, connected {r['connected']}/{k}, wall {r['wall_s']} s, "
            f"POSTs 1st min {r['posts_first_minute']} ({r['heavy_used']:.0%} of reachable Heavy), median detection "
            f"{r['median_detection_s']} s, errors {len(r['errors'])}",
            flush=True,
        )
    for p in procs:
        p.join(timeout=60)
    add_rows(report, rounds)
    report.raw["rounds"] = rounds
    report.seconds = time.monotonic() - began
    report.print()
    report.write(args.json)


if __name__ == "__main__":
    main()
