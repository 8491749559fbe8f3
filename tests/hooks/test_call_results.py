"""
``RingCentralHook.get_call_result`` / ``aget_call_result`` against the emulator's call log, over loopback.

Records are held back with a long ``call_log.delay`` and released by setting it to 0 (scripted by events). "An
interval passed" moves the shared call log's clock (``state.calllog._now``) forward, never waits for it. Hooks with
their own state folder stand for other hosts; other processes are real (spawned) processes.
"""

from __future__ import annotations

import asyncio
import importlib.util
import multiprocessing
import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ringout.exceptions import RingCentralPermissionError, RingOutCallResultAmbiguousError
from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
from airflow_provider_ringout.state import calllog, reset_process_state
from airflow_provider_ringout.state.tokens import TokenCache
from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from airflow_provider_ringout.testing.redis_server import RedisServer, redis_server_path

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

FROM, TO = "+14155550100", "+14155550123"
BUSY_TO, VOICEMAIL_FROM = "+14155550131", "+14155550160"
HELD = 3600.0  # a call-log delay that holds every record back until the test releases it
WAIT = 30.0  # upper bound of a condition wait, never a pause


def ended_at_once(outcome: Outcome = Outcome.ANSWERED) -> CallScript:
    """A call that has ended by the time the POST is answered (its end never depends on the clock)."""
    return CallScript(outcome=outcome, after=0, talk=0, linger=30)


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[RingCentralEmulator]:
    """Calls end at once; their records are held back until released; ``ringcentral_default`` points here."""
    with RingCentralEmulator(default_script=ended_at_once(), call_log_delay=HELD) as emulator:
        emulator.script(BUSY_TO, ended_at_once(Outcome.BUSY))
        emulator.script_caller(VOICEMAIL_FROM, ended_at_once(Outcome.VOICEMAIL))
        monkeypatch.setenv("AIRFLOW_CONN_RINGCENTRAL_DEFAULT", emulator.connection_json(extra={"from_number": FROM}))
        yield emulator


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The shared call log's clock, moved by ``clock[0] += seconds`` ("an interval passed")."""
    offset = [0.0]
    monkeypatch.setattr(calllog, "_now", lambda: time.time() + offset[0])
    return offset


def new_hook(state: Path | None = None, interval: float = 60.0) -> RingCentralHook:
    hook = RingCentralHook(token_cache_dir=state) if state else RingCentralHook()
    hook.call_log_interval = interval
    return hook


def place(hook: RingCentralHook, to: str = TO, frm: str = FROM) -> dict[str, Any]:
    """Place a call; the ``ringout`` dict a task would push (id, numbers, placed_at)."""
    ringout_id = hook.place_ringout(to_number=to, from_number=frm)["id"]
    placed_at = datetime.now(UTC).isoformat()  # once placed, as a task takes it
    return {"ringout_id": ringout_id, "from_number": frm, "to_number": to, "placed_at": placed_at}


def look(hook: RingCentralHook, call: dict[str, Any], mode: str = "sync") -> dict[str, Any] | None:
    if mode == "sync":
        return hook.get_call_result(**call)
    return asyncio.run(hook.aget_call_result(**call))


def syncs(emu: RingCentralEmulator, sync_type: str | None = None) -> int:
    return sum(1 for r in emu.requests if r.kind == "call-log-sync" and sync_type in (None, r.query.get("syncType")))


# --- what a look-up answers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_none_before_the_record_then_the_result(emu: RingCentralEmulator, clock: list[float], mode: str) -> None:
    hook = new_hook()
    call = place(hook)
    assert look(hook, call, mode) is None  # the call ended, its record is not written yet
    emu.call_log.delay = 0
    assert look(hook, call, mode) is None  # the shared records are fresh: no new sync within the interval
    clock[0] += hook.call_log_interval
    result = look(hook, call, mode)
    assert result is not None
    assert result["result"] == "Call connected" and result["answered_by"] == "person"
    assert [leg["leg_type"] for leg in result["legs"]] == ["RingOutWebToCaller", "RingOutWebToSubscriber"]
    assert result["telephony_session_id"] and result["start_time"] and result["duration"] == 0
    assert (syncs(emu, "FSync"), syncs(emu, "ISync")) == (1, 1)  # a full sync, then one incremental from its token
    assert all(r.query.get("view") == "Detailed" for r in emu.requests if r.kind == "call-log-sync")


@pytest.mark.parametrize(
    ("to", "frm", "result", "legs", "answered_by"),
    [
        (BUSY_TO, FROM, "Busy", 1, "unknown"),  # a busy callee leaves one leg
        (TO, VOICEMAIL_FROM, "Voicemail", 2, "voicemail"),  # the first leg's voicemail answered
    ],
    ids=["one-leg-busy", "voicemail"],
)
def test_failed_and_voicemail_calls(
    emu: RingCentralEmulator, to: str, frm: str, result: str, legs: int, answered_by: str
) -> None:
    emu.call_log.delay = 0
    hook = new_hook()
    found = look(hook, place(hook, to, frm))
    assert found is not None
    assert (found["result"], len(found["legs"]), found["answered_by"]) == (result, legs, answered_by)


def test_two_calls_between_the_same_numbers_are_ambiguous(emu: RingCentralEmulator) -> None:
    emu.call_log.delay = 0
    hook = new_hook()
    first, _ = place(hook), place(hook)
    with pytest.raises(RingOutCallResultAmbiguousError) as caught:
        look(hook, first)
    assert caught.value.candidates == 2 and caught.value.ringout_id == first["ringout_id"]
    assert "not guessed" in str(caught.value) and FROM not in str(caught.value)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_record_found_while_this_call_goes_on_is_another_calls(emu: RingCentralEmulator, mode: str) -> None:
    """
    Two calls between the same numbers moments apart: the first ends at once, the second talks on. The first's
    record fits the second's window too, but a call still going on has no record yet: the second's look says
    ambiguous (its own record will make two), never takes the first's; the first's look finds its own.
    """
    emu.call_log.delay = 0
    hook = new_hook()
    first = place(hook)
    emu.script(TO, CallScript(outcome=Outcome.ANSWERED, after=0, talk=3600, linger=30))
    second = place(hook)
    wait_for(lambda: len(emu.call_log.records()) == 1, "the first call's record")

    with pytest.raises(RingOutCallResultAmbiguousError, match="still going on") as caught:
        look(hook, second, mode)
    found = look(hook, first, mode)

    assert caught.value.candidates == 2 and caught.value.ringout_id == second["ringout_id"]
    assert found is not None and found["result"] == "Call connected"
    assert emu.count(kind="ring-out-get") == 2  # one status read per record found, none while nothing is


def test_a_record_synced_before_this_call_was_placed_is_not_taken(emu: RingCentralEmulator) -> None:
    """
    Another call between the same numbers, synced before this one was placed: the lone record that fits is not
    this call's (records come after a call ends). The look answers "not yet"; a sync after the placing sees both
    records: ambiguous. Never the other call's result.
    """
    emu.call_log.delay = 0
    hook = new_hook(interval=3600)
    earlier = place(hook)
    wait_for(lambda: len(emu.call_log.records()) == 1, "the earlier call's record")
    assert look(hook, earlier) is not None  # synced now, with one record
    this = place(hook)
    wait_for(lambda: len(emu.call_log.records()) == 2, "this call's record")

    assert look(hook, this) is None  # the shared records were synced before it was placed

    hook.call_log_interval = 0.001  # the next look syncs
    with pytest.raises(RingOutCallResultAmbiguousError):
        wait_for(lambda: look(hook, this), "a sync after the placing")


def test_arguments_are_checked_before_anything_is_read(emu: RingCentralEmulator) -> None:
    from airflow_provider_ringout.exceptions import RingCentralConfigError

    hook = new_hook()
    call = {"ringout_id": "123", "from_number": FROM, "to_number": TO, "placed_at": datetime.now(UTC)}
    for bad in ({"to_number": "555"}, {"placed_at": "yesterday"}, {"placed_at": "2020-01-01T00:00:00Z"}):
        with pytest.raises(RingCentralConfigError):
            hook.get_call_result(**{**call, **bad})
    assert syncs(emu) == 0


# --- one reader for every waiter -------------------------------------------------------------------------------


def test_ten_waiters_share_one_reader(emu: RingCentralEmulator, clock: list[float]) -> None:
    """K=10 waiters (each its own hook, as tasks are) looking together: one sync per interval, not ten."""
    hooks = [new_hook() for _ in range(10)]
    calls = [place(hooks[0], to=f"+1415555{1000 + i}") for i in range(10)]
    results: list[Any] = [None] * 10

    def round_of_looks() -> None:
        barrier = threading.Barrier(10)

        def one(i: int) -> None:
            barrier.wait()
            results[i] = look(hooks[i], calls[i]) or results[i]

        threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)

    round_of_looks()
    assert syncs(emu) == 1 and results == [None] * 10
    emu.call_log.delay = 0  # the records are written
    clock[0] += 60  # one interval later
    round_of_looks()
    round_of_looks()  # looks within the same interval: answered from the shared records
    assert syncs(emu) == 2
    assert [r["result"] for r in results] == ["Call connected"] * 10


def _look_in_another_process(
    conn: str, state: str, call: dict[str, Any], interval: float, lease: float, out: Any
) -> None:
    """A task process on the same host: looks until it has the result (it syncs), which it puts on ``out``."""
    os.environ.update(AIRFLOW_CONN_RINGCENTRAL_DEFAULT=conn, AIRFLOW__RINGCENTRAL__TOKEN_CACHE_DIR=state)
    hook = RingCentralHook()
    hook.call_log_interval, hook.call_log_lease = interval, lease
    deadline = time.monotonic() + WAIT
    while (found := hook.get_call_result(**call)) is None and time.monotonic() < deadline:
        time.sleep(0.05)  # a waiting task looks again (its sync may have been skipped this time)
    out.put(found)


def test_two_processes_on_one_host_share_the_records(emu: RingCentralEmulator, isolated_token_cache: Path) -> None:
    emu.call_log.delay = 0
    hook = new_hook()
    call = place(hook)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    conn = emu.connection_json(extra={"from_number": FROM})
    proc = ctx.Process(target=_look_in_another_process, args=(conn, str(isolated_token_cache), call, 60.0, 90.0, out))
    proc.start()
    theirs = out.get(timeout=120)
    proc.join(30)
    assert theirs is not None and syncs(emu) == 1
    assert hook.get_call_result(**call) == theirs  # from the records the other process stored: no second sync
    assert syncs(emu) == 1


def test_a_killed_reader_is_replaced_after_its_lease(emu: RingCentralEmulator, isolated_token_cache: Path) -> None:
    """The reader dies mid-sync (SIGKILL while RingCentral is slow to answer): the next look-up takes over."""
    emu.call_log.delay = 0
    hook = new_hook(interval=0.0)
    call = place(hook)
    hook.get_call_result(**call)  # a first sync (the other process will sync incrementally)
    emu.inject("slow", path="call-log-sync", delay=20)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    conn = emu.connection_json(extra={"from_number": FROM})
    proc = ctx.Process(target=_look_in_another_process, args=(conn, str(isolated_token_cache), call, 0.0, 2.0, out))
    proc.start()
    store = calllog.FileCallLog(hook._state, hook.credentials.cache_key)
    wait_for(lambda: (store._load().get("reader") or {}).get("owner"), "the other process to take the lease")
    # Its sync reached RingCentral (the emulator took the slow fault on arrival) and waits for the answer.
    wait_for(lambda: not emu._faults._pending, "the other process's sync to arrive")
    os.kill(proc.pid, signal.SIGKILL)  # type: ignore[arg-type]
    proc.join(30)
    assert hook.get_call_result(**call) is not None  # the lease is still the dead reader's: the stored records answer
    before = syncs(emu)
    killed_at = time.monotonic()
    # Waiters keep looking; once the dead reader's lease expires, one of them syncs.
    wait_for(lambda: hook.get_call_result(**call) and syncs(emu) > before, "a sync by the next reader")
    assert time.monotonic() - killed_at < 20  # it did not wait for the dead reader's slow answer


# --- across hosts with Redis --------------------------------------------------------------------------------------


@pytest.mark.skipif(
    redis_server_path() is None or importlib.util.find_spec("redis") is None,
    reason="needs redis-server (apt-get install redis-server) and airflow-provider-ringout[redis]",
)
@pytest.mark.parametrize(("backend", "expected"), [("redis", 1), ("file", 2)])
def test_two_hosts_share_one_reader_through_redis(
    emu: RingCentralEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, backend: str, expected: int
) -> None:
    """Two hosts (own state folders): with Redis one sync serves both; with files each host syncs."""
    emu.call_log.delay = 0
    with RedisServer() as server:
        monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", server.url)
        monkeypatch.setenv("AIRFLOW__RINGCENTRAL__SHARED_STATE", backend)
        reset_process_state()
        host_a = new_hook(tmp_path / "host-a")
        call = place(host_a)
        found_a = host_a.get_call_result(**call)
        TokenCache._memory.clear()  # the other host has nothing in memory
        host_b = new_hook(tmp_path / "host-b")
        assert found_a is not None and host_b.get_call_result(**call) == found_a
        assert syncs(emu) == expected
        if backend == "redis":
            keys = server.client().keys("*call-log*")
            assert keys and all(server.client().pttl(k) > 0 for k in keys)  # bounded: every key expires
        reset_process_state()


# --- the permission ----------------------------------------------------------------------------------------------


def test_missing_read_call_log_is_one_clear_error_asked_once(emu: RingCentralEmulator, clock: list[float]) -> None:
    emu.scope = "ReadAccounts RingOut"
    hooks = [new_hook(interval=0.0) for _ in range(5)]
    call = place(hooks[0])
    for hook in hooks * 2:  # ten look-ups by five waiters, each interval over
        clock[0] += 1
        with pytest.raises(RingCentralPermissionError) as caught:
            hook.get_call_result(**call)
        assert caught.value.permission == "ReadCallLog" and "'ReadCallLog' permission" in str(caught.value)
    assert syncs(emu) == 1  # RingCentral was asked once; the others repeat the stored answer


def test_the_test_button_says_whether_results_can_be_read(emu: RingCentralEmulator) -> None:
    ok, message = new_hook().test_connection()
    assert ok and "It has ReadCallLog too" in message
    emu.scope = "ReadAccounts RingOut"
    reset_process_state()
    ok, message = new_hook().test_connection()
    assert ok, message  # RingOut works without it
    assert "lacks ReadCallLog" in message and "cannot be read" in message


# --- a look-up never takes a Heavy slot from a waiting POST ------------------------------------------------------


def _backends() -> list[Any]:
    redis_ok = redis_server_path() is not None and importlib.util.find_spec("redis") is not None
    return ["file", pytest.param("redis", marks=pytest.mark.skipif(not redis_ok, reason="needs redis-server"))]


@pytest.mark.parametrize("backend", _backends())
def test_waiting_posts_keep_their_heavy_slots(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, backend: str) -> None:
    """
    RingCentral's real limits (Heavy 10 a window; a 5 s window keeps the test short, and wide enough that a loaded
    machine does not slide it between the sends): the window is full, a waiter
    looks for its result all along (from before the POSTs came), and a backlog of 10 POSTs waits for the next
    window. Every call-log sync comes after the last POST: the look-ups took no slot a POST waited for.
    """
    server = RedisServer().start() if backend == "redis" else None
    if server is not None:
        monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", server.url)
        monkeypatch.setenv("AIRFLOW__RINGCENTRAL__SHARED_STATE", "redis")
        reset_process_state()
    emu = RingCentralEmulator.with_real_limits(
        rate_window=5, rate_penalty=5, default_script=ended_at_once(), call_log_delay=0
    ).start()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_RINGCENTRAL_DEFAULT", emu.connection_json(extra={"from_number": FROM}))
        waiter = new_hook(interval=0.0)  # it wants a sync at every look
        call = place(waiter)
        for i in range(9):  # the window's other 9 Heavy slots
            place(waiter, f"+1415555{3000 + i}")
        looks, found = 0, None

        def keep_looking() -> None:
            nonlocal looks, found
            while found is None:
                found = waiter.get_call_result(**call)
                looks += 1
                time.sleep(0.02)

        looking = threading.Thread(target=keep_looking)
        looking.start()
        wait_for(lambda: looks >= 1, "the waiter's first look (it asked for a slot before the POSTs)")
        backlog = [threading.Thread(target=place, args=(new_hook(), f"+1415555{2000 + i}")) for i in range(10)]
        for thread in backlog:
            thread.start()
        looks_before = looks
        for thread in backlog:
            thread.join(WAIT)
        looks_while_posts_wait = looks - looks_before
        looking.join(WAIT)
        assert found is not None and looks_while_posts_wait > 0
        heavy = [r for r in emu.requests if r.rate_group == "Heavy"]
        last_post = max(r.time for r in heavy if r.kind == "ring-out-create")
        assert emu.count("POST", "ring-out-create", 200) == 20 and emu.count(status=429) == 0
        assert all(r.time > last_post for r in heavy if r.kind == "call-log-sync")
    finally:
        emu.stop()
        if server is not None:
            server.stop()
            reset_process_state()


# --- the shared store ----------------------------------------------------------------------------------------------


def _record(ident: str, start: float) -> dict[str, Any]:
    return {"id": ident, "startTime": datetime.fromtimestamp(start, UTC).isoformat().replace("+00:00", "Z")}


def test_the_store_is_bounded_and_a_late_reader_cannot_write(tmp_path: Path, clock: list[float]) -> None:
    from airflow_provider_ringout.state.files import StateDir

    store = calllog.FileCallLog(StateDir(tmp_path / "state"), "k" * 32)
    now = time.time()
    turn = store.take_turn("a", interval=20, lease=5)
    assert turn is not None and store.take_turn("b", interval=20, lease=5) is None  # one reader at a time
    fresh = [_record(f"r{i}", now - i) for i in range(calllog.MAX_RECORDS + 50)]
    assert store.store("a", [*fresh, _record("old", now - calllog.KEEP - 60)], "t1", synced=True)
    kept = {r["id"] for r in store.snapshot().records}
    assert kept == {f"r{i}" for i in range(calllog.MAX_RECORDS)}  # the newest, nothing older than KEEP
    clock[0] += 20  # an interval later
    assert store.take_turn("a", interval=20, lease=5) is not None
    clock[0] += 6  # "a" stalls past its lease; "b" takes over
    assert store.take_turn("b", interval=20, lease=5) is not None
    assert not store.store("a", [_record("late", now)], "t-late", synced=True)  # dropped: "a" no longer reads
    assert store.snapshot().token == "t1"
