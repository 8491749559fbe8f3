"""
Triggerer scale: 1,000 concurrent RingOutTriggers in one asyncio event loop, against bare async GETs.

Why: a triggerer runs thousands of triggers in one event loop. Each trigger must cost little more than the HTTP
request it exists to make, must never block the loop (every other trigger of the triggerer would wait), and
must be small in memory.

How: the emulator runs as a separate process through its CLI (``python -m airflow_provider_ringout.testing``,
calls scripted ``never_answers``, rate limits off) so its CPU is not counted. 1,000 calls are placed first.
Then two phases, each in a fresh child process (so neither inherits the other's memory or CPU):

- ``triggers``: 1,000 ``RingOutTrigger(poll_interval=10)`` run concurrently (``async for event in
  trigger.run()``), each with its own hook as in a triggerer, sharing the hook's per-loop httpx.AsyncClient;
- ``baseline``: 1,000 coroutines doing the same GETs (same URL, same ``Authorization`` header) on the same
  schedule (GET, then sleep 10 s) through one shared ``httpx.AsyncClient`` with the hook's limits and headers,
  without parsing the body.

Starts are spread evenly over one poll interval (as a triggerer picks triggers up over time), then WARMUP s pass
before a MEASURE s window. Figures: CPU time per poll = process CPU time in the window / GETs the emulator
recorded in the window; memory per trigger = (RSS at the end - RSS before the triggers were created) / 1,000;
longest event-loop stall = the most a watchdog coroutine sleeping 10 ms woke up late (whole run, starts
included). A full (generation 2) garbage collection of a process with Airflow imported takes about 100 ms and
blocks any event loop, bare GETs included, so GC pauses are timed (``gc.callbacks``) and the stall target is
judged on the lateness left after subtracting GC time; raw stalls are shown too.
Targets: CPU per poll at most 1.5x the bare GET's, no stall over 50 ms, under 50 KiB per trigger.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from _common import (
    FROM_NUMBER,
    PYTHON,
    Report,
    connection_env,
    fresh_cache_dir,
    isolate_airflow,
    parser,
    quiet_logs,
    rss_bytes,
)

TRIGGERS = 1000
POLL = 10.0
WARMUP = 12.0
MEASURE = 48.0
RINGOUT_PATH = "/restapi/v1.0/account/~/extension/~/ring-out"


class Watchdog:
    """Sleeps 10 ms over and over; how late it wakes is how long the loop was blocked. Also times GC pauses."""

    def __init__(self) -> None:
        self.max_all = 0.0
        self.max_window = 0.0
        self.in_window = False
        self.lateness: list[float] = []
        self.max_no_gc_all = 0.0
        self.max_no_gc_window = 0.0
        self.gc_max = [0.0, 0.0, 0.0]
        self.gc_count = [0, 0, 0]
        self.gc_total = 0.0
        self._gc_started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        pause = time.perf_counter() - self._gc_started
        generation = info["generation"]
        self.gc_max[generation] = max(self.gc_max[generation], pause)
        self.gc_count[generation] += 1
        self.gc_total += pause

    async def run(self) -> None:
        while True:
            before, gc_before = time.perf_counter(), self.gc_total
            await asyncio.sleep(0.01)
            late = time.perf_counter() - before - 0.01
            no_gc = late - (self.gc_total - gc_before)  # the part of the stall not spent collecting garbage
            self.max_all = max(self.max_all, late)
            self.max_no_gc_all = max(self.max_no_gc_all, no_gc)
            if self.in_window:
                self.max_window = max(self.max_window, late)
                self.max_no_gc_window = max(self.max_no_gc_window, no_gc)
                self.lateness.append(late)


async def phase(kind: str, ids: list[str], base_url: str) -> dict[str, Any]:
    """Run one phase in this process's event loop; return its figures."""
    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook

    polls = 0
    events: list[Any] = []
    if kind.startswith("triggers"):
        from airflow_provider_ringout.triggers.ringout import RingOutTrigger

        if kind == "triggers-stubbed-pacer":  # diagnostic only: what a trigger costs without the pacer's file I/O
            from airflow_provider_ringout.state.pacer import RatePacer

            RatePacer.reserve = lambda self, group: 0.0  # type: ignore[method-assign]
            RatePacer.observe = lambda self, group, headers, penalty=None: None  # type: ignore[method-assign]

        await RingCentralHook().aget_status(ids[0])  # warm: modules, shared client, token in memory
        gc.collect()
        rss0 = rss_bytes()
        end_time = time.time() + 3600
        triggers = [RingOutTrigger(ringout_id=rid, end_time=end_time, poll_interval=POLL) for rid in ids]

        async def one(i: int) -> None:
            await asyncio.sleep(i * POLL / len(ids))
            async for event in triggers[i].run():
                events.append(event.payload)

    else:
        import httpx

        hook = RingCentralHook()
        token = await asyncio.to_thread(lambda: hook._token().access_token)
        auth = {"Authorization": f"Bearer {token}"}
        client = httpx.AsyncClient(
            headers={"User-Agent": hook.user_agent, "Accept": "application/json"},
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=50),
        )
        urls = [f"{base_url}{RINGOUT_PATH}/{rid}" for rid in ids]
        await client.get(urls[0], headers=auth, timeout=30)  # warm, like the trigger phase
        gc.collect()
        rss0 = rss_bytes()

        async def one(i: int) -> None:
            nonlocal polls
            await asyncio.sleep(i * POLL / len(ids))
            while True:
                await client.get(urls[i], headers=auth, timeout=30)
                polls += 1
                await asyncio.sleep(POLL)

    watchdog = Watchdog()
    dog = asyncio.create_task(watchdog.run())
    tasks = [asyncio.create_task(one(i)) for i in range(len(ids))]
    await asyncio.sleep(WARMUP)
    watchdog.in_window = True
    mono0, cpu0 = time.monotonic(), time.process_time()
    await asyncio.sleep(MEASURE)
    mono1, cpu1 = time.monotonic(), time.process_time()
    watchdog.in_window = False
    rss1 = rss_bytes()
    for task in [*tasks, dog]:
        task.cancel()
    await asyncio.gather(*tasks, dog, return_exceptions=True)
    lateness = sorted(watchdog.lateness)
    return {
        "kind": kind,
        "window": [mono0, mono1],
        "cpu_s": cpu1 - cpu0,
        "rss0": rss0,
        "rss1": rss1,
        "max_stall_all_s": watchdog.max_all,
        "max_stall_window_s": watchdog.max_window,
        "p99_stall_window_s": lateness[int(0.99 * (len(lateness) - 1))] if lateness else 0.0,
        "max_stall_no_gc_all_s": watchdog.max_no_gc_all,
        "max_stall_no_gc_window_s": watchdog.max_no_gc_window,
        "gc_max_s": watchdog.gc_max,
        "gc_count": watchdog.gc_count,
        "events": events[:5],
        "event_count": len(events),
        "client_polls": polls,
    }


def child(kind: str, ids_file: str, base_url: str, out: str) -> None:
    """Entry point of a phase's child process."""
    quiet_logs()
    ids = json.loads(Path(ids_file).read_text())
    result = asyncio.run(phase(kind, ids, base_url))
    Path(out).write_text(json.dumps(result))


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    """The emulator CLI in its own process; returns it and its URL."""
    proc = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "airflow_provider_ringout.testing",
            "--port",
            "0",
            "--outcome",
            "never_answers",
            "--linger",
            "3600",
            "--token-ttl",
            "3600",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.terminate()
        raise RuntimeError(f"emulator did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[-1].strip()


def emulator_gets(url: str, window: list[float]) -> int:
    """GETs of RingOut status the emulator recorded inside the window (its monotonic clock is the system's)."""
    with urllib.request.urlopen(f"{url}/_emulator/requests", timeout=120) as response:  # noqa: S310 - loopback
        records = json.loads(response.read())
    return sum(1 for r in records if r["kind"] == "ring-out-get" and window[0] <= r["time"] <= window[1])


def place_calls(n: int) -> list[str]:
    """Place the calls the triggers will watch (setup, not measured)."""
    from concurrent.futures import ThreadPoolExecutor

    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook

    hook = RingCentralHook()
    hook._token()
    with ThreadPoolExecutor(8) as pool:
        return list(
            pool.map(
                lambda i: hook.place_ringout(to_number=f"+1555040{i:04d}", from_number=FROM_NUMBER)["id"], range(n)
            )
        )


def main() -> None:
    p = parser(__doc__)
    p.add_argument(
        "--diagnose",
        action="store_true",
        help="also run the triggers with RatePacer.reserve/observe stubbed out (shows the pacer's share; +60 s)",
    )
    p.add_argument("--phase", choices=["triggers", "baseline", "triggers-stubbed-pacer"], help=argparse_hidden())
    p.add_argument("--ids", help=argparse_hidden())
    p.add_argument("--url", help=argparse_hidden())
    p.add_argument("--out", help=argparse_hidden())
    args = p.parse_args()
    if args.phase:
        child(args.phase, args.ids, args.url, args.out)
        return

    began = time.monotonic()
    home = isolate_airflow("triggerer")
    quiet_logs()
    from airflow_provider_ringout.testing import TEST_CLIENT_ID, TEST_CLIENT_SECRET, TEST_JWT

    report = Report("5 triggerer scale")
    emulator, url = start_emulator()
    try:
        conn = json.dumps(
            {
                "conn_type": "ringcentral",
                "host": url,
                "login": TEST_CLIENT_ID,
                "password": TEST_CLIENT_SECRET,
                "extra": {"jwt_token": TEST_JWT},
            }
        )
        env = connection_env(conn, fresh_cache_dir("triggerer"))
        os.environ.update(env)
        ids = place_calls(TRIGGERS)
        ids_file = home / "ids.json"
        ids_file.write_text(json.dumps(ids))
        results: dict[str, dict[str, Any]] = {}
        kinds = ["triggers", "baseline"] + (["triggers-stubbed-pacer"] if args.diagnose else [])
        for kind in kinds:
            out = home / f"{kind}.json"
            t0 = time.monotonic()
            subprocess.run(
                [PYTHON, __file__, "--phase", kind, "--ids", str(ids_file), "--url", url, "--out", str(out)],
                env=os.environ.copy(),
                check=True,
                timeout=300,
            )
            result = json.loads(out.read_text())
            result["emulator_gets"] = emulator_gets(url, result["window"])
            result["cpu_per_get_us"] = 1e6 * result["cpu_s"] / max(1, result["emulator_gets"])
            result["rss_per_unit_kib"] = (result["rss1"] - result["rss0"]) / TRIGGERS / 1024
            results[kind] = result
            print(
                f"{kind}: {result['emulator_gets']} GETs in {MEASURE:g} s, CPU {result['cpu_s']:.2f} s "
                f"= {result['cpu_per_get_us']:.0f} us/GET, RSS +{result['rss_per_unit_kib']:.1f} KiB each, "
                f"max stall {1000 * result['max_stall_all_s']:.0f} ms, without GC "
                f"{1000 * result['max_stall_no_gc_all_s']:.0f} ms (window {1000 * result['max_stall_window_s']:.0f} "
                f"ms, p99 {1000 * result['p99_stall_window_s']:.1f} ms), longest GC pause by generation "
                f"{[round(1000 * x) for x in result['gc_max_s']]} ms, events {result['event_count']} "
                f"({time.monotonic() - t0:.0f} s)",
                flush=True,
            )
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)

    trig, base = results["triggers"], results["baseline"]
    ratio = trig["cpu_per_get_us"] / base["cpu_per_get_us"]
    expected = TRIGGERS * MEASURE / POLL
    report.add(
        "GETs in the window: triggers / baseline",
        f"{trig['emulator_gets']} / {base['emulator_gets']}",
        f"~{expected:.0f} each",
    )
    report.add("CPU per poll, bare httpx GET (baseline)", f"{base['cpu_per_get_us']:.0f} us")
    report.add("CPU per poll, RingOutTrigger", f"{trig['cpu_per_get_us']:.0f} us")
    report.check("CPU per poll, trigger / bare GET", f"{ratio:.2f}x", "<= 1.5x", ratio <= 1.5)
    report.add(
        "longest event-loop stall, triggers / baseline (raw)",
        f"{1000 * trig['max_stall_all_s']:.0f} / {1000 * base['max_stall_all_s']:.0f} ms",
    )
    report.add(
        "longest GC pause (gen 2), triggers / baseline",
        f"{1000 * trig['gc_max_s'][2]:.0f} / {1000 * base['gc_max_s'][2]:.0f} ms",
    )
    report.check(
        "longest event-loop stall outside GC, triggers",
        f"{1000 * trig['max_stall_no_gc_all_s']:.0f} ms",
        "<= 50 ms",
        trig["max_stall_no_gc_all_s"] <= 0.05,
    )
    report.add("longest stall outside GC, baseline", f"{1000 * base['max_stall_no_gc_all_s']:.0f} ms")
    report.check(
        "memory per trigger (RSS delta / 1000)",
        f"{trig['rss_per_unit_kib']:.1f} KiB",
        "< 50 KiB",
        trig["rss_per_unit_kib"] < 50,
    )
    report.add("memory per bare-GET coroutine (baseline)", f"{base['rss_per_unit_kib']:.1f} KiB")
    if "triggers-stubbed-pacer" in results:
        stub = results["triggers-stubbed-pacer"]
        report.add(
            "diagnostic: trigger with RatePacer stubbed, CPU per poll",
            f"{stub['cpu_per_get_us']:.0f} us ({stub['cpu_per_get_us'] / base['cpu_per_get_us']:.2f}x)",
        )
        report.add(
            "diagnostic: trigger with RatePacer stubbed, longest stall raw / outside GC",
            f"{1000 * stub['max_stall_all_s']:.0f} / {1000 * stub['max_stall_no_gc_all_s']:.0f} ms",
        )
    if trig["event_count"]:
        report.notes.append(f"triggers ended early with events: {trig['events']}")
        report.check("triggers still waiting at the end", f"{TRIGGERS - trig['event_count']}", f"{TRIGGERS}", False)
    report.notes.append(
        f"{TRIGGERS} triggers, poll every {POLL:g} s, starts spread over {POLL:g} s, {WARMUP:g} s warm-up then a "
        f"{MEASURE:g} s window; emulator in its own process (its CPU not counted, but it shares the 2 cores)"
    )
    report.raw["phases"] = results
    report.seconds = time.monotonic() - began
    report.print()
    report.write(args.json)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
