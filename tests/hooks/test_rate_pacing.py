"""
Proactive pacing: once the limit of a group is learned from ``X-Rate-Limit-Limit`` and ``-Window``, the host
never sends more than that many requests in a window, whoever sends them (threads, processes), even before an
answer says ``X-Rate-Limit-Remaining: 0``.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
from airflow_provider_ringout.testing import RingCentralEmulator

TO, FROM = "+14155550199", "+14155550100"
LIMIT, WINDOW = 3, 2  # RingCentral's Heavy group allows 10 a minute; the same shape, faster
# Every POST is answered after this long, so the whole burst is on its way before any answer could say
# "Remaining: 0": only the count of the host's own sends can hold the last one back.
ANSWER_DELAY = 0.5
THREADS, PROCESSES = 2, 2  # the burst: LIMIT + 1 sends at once


def _send_in_child(conn_json: str, cache_dir: str, barrier: Any) -> None:
    os.environ["AIRFLOW_CONN_RINGCENTRAL_DEFAULT"] = conn_json
    os.environ["AIRFLOW__RINGCENTRAL__TOKEN_CACHE_DIR"] = cache_dir
    hook = RingCentralHook()
    hook.credentials  # noqa: B018 (read the connection before the start line, so all send together)
    barrier.wait()
    hook.place_ringout(to_number=TO)


def test_burst_over_the_learned_limit_is_held_back_host_wide(
    monkeypatch: pytest.MonkeyPatch, ringcentral_emulator_factory: Any, isolated_token_cache: Path
) -> None:
    emulator: RingCentralEmulator = ringcentral_emulator_factory(rate_limits={"Heavy": LIMIT}, rate_window=WINDOW)
    conn = emulator.connection_json(extra={"from_number": FROM})
    monkeypatch.setenv("AIRFLOW_CONN_RINGCENTRAL_DEFAULT", conn)
    emulator.inject("slow", path="ring-out-create", delay=ANSWER_DELAY, times=LIMIT + 2)

    # One call teaches the host the limit: Limit 3, Window 2, Remaining 2.
    RingCentralHook().place_ringout(to_number=TO)

    # Then LIMIT + 1 more, at once, from threads of this process and from other processes. Forked, not
    # spawned: a spawned child imports Airflow again, which takes seconds on a busy machine.
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(THREADS + PROCESSES)
    procs = [ctx.Process(target=_send_in_child, args=(conn, str(isolated_token_cache), barrier)) for _ in range(2)]
    for proc in procs:
        proc.start()
    errors: list[BaseException] = []

    def send() -> None:
        try:
            hook = RingCentralHook()
            barrier.wait()
            hook.place_ringout(to_number=TO)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    assert errors == []

    posts = [r for r in emulator.requests if r.kind == "ring-out-create"]
    assert [r.status for r in posts] == [200] * (LIMIT + 2)  # every call placed, and never a 429
    arrived = sorted(r.time for r in posts)
    # Any LIMIT + 1 consecutive sends span a whole window: the last of the burst waited for a free slot.
    spans = [later - earlier for earlier, later in zip(arrived, arrived[LIMIT:], strict=False)]
    assert min(spans) >= WINDOW * 0.95, spans
