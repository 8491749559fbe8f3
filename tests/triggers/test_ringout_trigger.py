"""RingOutTrigger: serialisation round trip, event sequence against the emulator, deadline, on_kill."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from airflow_provider_ringout.triggers.ringout import TRIGGER_FAIL, RingOutTrigger, deadline_margin

TO, FROM = "+14155550199", "+14155550100"


@pytest.fixture
def emulator(ringcentral_conn_env: RingCentralEmulator) -> RingCentralEmulator:
    return ringcentral_conn_env


def place(
    emulator: RingCentralEmulator, outcome: Outcome, after: float = 0.3, vanish_after_reads: int | None = None
) -> str:
    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook

    script = CallScript(outcome=outcome, after=after, talk=5, linger=5, vanish_after_reads=vanish_after_reads)
    emulator.script(TO, script)
    return RingCentralHook().place_ringout(to_number=TO, from_number=FROM)["id"]


async def events(trigger: RingOutTrigger) -> list[Any]:
    return [event async for event in trigger.run()]


def test_serialize_round_trip() -> None:
    trigger = RingOutTrigger(
        ringout_id="42",
        end_time=1234.5,
        ringcentral_conn_id="rc",
        poll_interval=3,
        cancel_on_kill=False,
        seen_connected=True,
        last_status={"state": "pending", "callStatus": "InProgress", "callerStatus": "Success", "calleeStatus": None},
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_ringout.triggers.ringout.RingOutTrigger"
    rebuilt = RingOutTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["end_time"] == 1234.5  # an absolute deadline: a restarted triggerer keeps it
    import json

    json.dumps(kwargs)  # plain JSON, as the triggerer stores it


@pytest.mark.parametrize(
    ("outcome", "expected", "status_fragment"),
    [
        (Outcome.ANSWERED, "connected", "Success"),
        (Outcome.BUSY, "failed", "Busy"),
        (Outcome.SESSION_DISAPPEARS, "unknown", "InProgress"),
        (Outcome.NEVER_ANSWERS, "timeout", "InProgress"),
    ],
)
def test_event_sequence(emulator: RingCentralEmulator, outcome: Outcome, expected: str, status_fragment: str) -> None:
    # The session vanishes after the trigger's first read (InProgress), however late that read comes.
    vanish = 1 if outcome is Outcome.SESSION_DISAPPEARS else None
    ringout_id = place(emulator, outcome, vanish_after_reads=vanish)
    # Only the timeout case needs a short deadline; the others end on an event, so a slow host cannot rush them.
    deadline = 1.5 if expected == "timeout" else 30
    trigger = RingOutTrigger(ringout_id=ringout_id, end_time=time.time() + deadline, poll_interval=0.1)
    started = time.monotonic()
    fired = asyncio.run(events(trigger))
    assert len(fired) == 1  # exactly one event
    payload = fired[0].payload
    assert payload["status"] == expected
    assert payload["ringout_id"] == ringout_id
    assert status_fragment in str(payload["ringout_status"])
    if expected == "timeout":
        assert 1.4 <= time.monotonic() - started < 3
    assert emulator.count(kind="ring-out-delete") == 0  # not asked to cancel_on_timeout: left to the task


def test_error_event_on_revoked_credentials(emulator: RingCentralEmulator) -> None:
    ringout_id = place(emulator, Outcome.NEVER_ANSWERS)
    emulator.revoke_all_tokens()
    emulator.reject_jwt()
    (event,) = asyncio.run(events(RingOutTrigger(ringout_id=ringout_id, end_time=time.time() + 5, poll_interval=0.1)))
    assert event.payload["status"] == "error"
    assert "invalid_grant" in event.payload["message"]


def test_polling_never_blocks_the_event_loop(emulator: RingCentralEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Another coroutine runs while a status read is in flight (the server holds the GET 0.8 s): the read is awaited,
    not waited on. Scripted by events, not by a stall threshold: a read that blocked the loop would let nothing
    run between its start and its end, so the watchdog could never see it in flight, however fast the host.
    """
    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook

    ringout_id = place(emulator, Outcome.NEVER_ANSWERS)
    emulator.inject("slow", path="ring-out-get", delay=0.8)
    in_flight = asyncio.Event()
    seen_in_flight = asyncio.Event()
    read = RingCentralHook.aget_status

    async def watched_read(self: RingCentralHook, ringout_id: str) -> Any:
        in_flight.set()
        try:
            return await read(self, ringout_id)
        finally:
            in_flight.clear()

    monkeypatch.setattr(RingCentralHook, "aget_status", watched_read)

    async def main() -> None:
        async def watchdog() -> None:
            while not seen_in_flight.is_set():
                await in_flight.wait()
                await asyncio.sleep(0)  # this runs only if the read yielded the loop
                if in_flight.is_set():
                    seen_in_flight.set()

        dog = asyncio.create_task(watchdog())
        await events(RingOutTrigger(ringout_id=ringout_id, end_time=time.time() + 1.2, poll_interval=0.1))
        dog.cancel()

    asyncio.run(main())
    assert seen_in_flight.is_set(), "no other coroutine ran while a status read was in flight"


def test_on_kill_cancels_a_pending_call(emulator: RingCentralEmulator) -> None:
    ringout_id = place(emulator, Outcome.NEVER_ANSWERS)
    trigger = RingOutTrigger(ringout_id=ringout_id, end_time=time.time() + 60, poll_interval=0.1)

    async def run_then_kill() -> None:
        task = asyncio.create_task(events(trigger))
        await asyncio.sleep(0.4)
        task.cancel()
        await trigger.on_kill()

    asyncio.run(run_then_kill())
    assert emulator.count(kind="ring-out-delete") == 1
    assert emulator.session_status(ringout_id) is None  # the call was stopped


@pytest.mark.parametrize("cancel_on_kill", [False, True])
def test_on_kill_leaves_connected_or_unwanted_calls(emulator: RingCentralEmulator, cancel_on_kill: bool) -> None:
    ringout_id = place(emulator, Outcome.ANSWERED, after=0.1)
    trigger = RingOutTrigger(
        ringout_id=ringout_id, end_time=time.time() + 5, poll_interval=0.1, cancel_on_kill=cancel_on_kill
    )
    asyncio.run(events(trigger))  # connected
    asyncio.run(trigger.on_kill())
    assert emulator.count(kind="ring-out-delete") == 0


# The kwargs RingOutTrigger.serialize() wrote before the trigger learnt to cancel at its deadline.
OLD_PAYLOAD_KEYS = {
    "ringout_id",
    "end_time",
    "ringcentral_conn_id",
    "poll_interval",
    "cancel_on_kill",
    "seen_connected",
    "last_status",
}


def test_a_payload_from_before_the_upgrade_still_runs_and_the_task_cancels(emulator: RingCentralEmulator) -> None:
    """
    A task deferred before the upgrade: its trigger row holds the old 7 kwargs. The new trigger is built from them,
    waits, does not cancel (the old task never asked it to), and the resuming task cancels the call once.
    """
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout

    from airflow_provider_ringout.sensors.ringout import RingOutSensor

    ringout_id = place(emulator, Outcome.NEVER_ANSWERS)
    old = {
        "ringout_id": ringout_id,
        "end_time": time.time() + 1.0,
        "ringcentral_conn_id": "ringcentral_default",
        "poll_interval": 0.2,
        "cancel_on_kill": True,
        "seen_connected": False,
        "last_status": None,
    }
    assert set(old) == OLD_PAYLOAD_KEYS
    trigger = RingOutTrigger(**old)
    assert trigger.serialize()[1] == {**old, "cancel_on_timeout": False}
    (event,) = asyncio.run(events(trigger))
    assert event.payload["status"] == "timeout"
    assert event.payload["cancel"] is None
    assert emulator.count(kind="ring-out-delete") == 0

    sensor = RingOutSensor(task_id="wait", ringout_id=ringout_id)
    with pytest.raises(AirflowSensorTimeout, match="it was cancelled and stopped"):
        sensor.execute_complete({}, {k: v for k, v in event.payload.items() if k != "cancel"})
    assert emulator.count(kind="ring-out-delete") == 1
    assert emulator.sessions[ringout_id].cancelled


def test_trigger_cancels_at_its_deadline_and_the_task_does_not_cancel_again(emulator: RingCentralEmulator) -> None:
    """
    With cancel_on_timeout the trigger stops the call itself before it fires ``timeout`` (so the call stops even
    if Airflow fails the task without resuming it); the resuming task words the outcome and sends no DELETE.
    """
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout

    from airflow_provider_ringout.sensors.ringout import RingOutSensor

    ringout_id = place(emulator, Outcome.NEVER_ANSWERS)
    trigger = RingOutTrigger(
        ringout_id=ringout_id, end_time=time.time() + 1.0, poll_interval=0.2, cancel_on_timeout=True
    )
    (event,) = asyncio.run(events(trigger))
    assert event.payload["status"] == "timeout"
    assert event.payload["cancel"] == "stopped"
    assert "The trigger's cancel: it was cancelled and stopped" in event.payload["message"]
    assert emulator.count(kind="ring-out-delete") == 1
    assert emulator.sessions[ringout_id].cancelled

    asyncio.run(trigger.on_kill())  # a late "mark failed": nothing left to cancel
    sensor = RingOutSensor(task_id="wait", ringout_id=ringout_id)
    with pytest.raises(AirflowSensorTimeout, match="it was cancelled and stopped"):
        sensor.execute_complete({}, event.payload)
    assert emulator.count(kind="ring-out-delete") == 1


def test_a_failed_trigger_cancel_is_left_to_the_task(emulator: RingCentralEmulator) -> None:
    """The trigger's DELETE fails for good: the event says so and carries no outcome, so the task tries."""
    ringout_id = place(emulator, Outcome.NEVER_ANSWERS)
    emulator.inject("reset", path="ring-out-delete", times=10)
    trigger = RingOutTrigger(
        ringout_id=ringout_id,
        end_time=time.time() + 0.5,
        poll_interval=0.2,
        cancel_on_timeout=True,
        hook_params={"backoff_factor": 0},  # every DELETE resent at once: the give-up, not the back-off, is tested
    )
    (event,) = asyncio.run(events(trigger))
    assert event.payload["status"] == "timeout"
    assert event.payload["cancel"] is None
    assert emulator.count(kind="ring-out-delete") == 5  # resent up to max_attempts, then left to the task
    assert "could not cancel" in event.payload["message"]
    assert not emulator.sessions[ringout_id].cancelled


@pytest.mark.parametrize(
    ("poll_interval", "wait", "margin"),
    [(5, 300, 10), (1, 5, 1.25), (1, 120, 6), (30, 3600, 35), (1, 0, 0)],
)
def test_deadline_margin(poll_interval: float, wait: float, margin: float) -> None:
    """A poll plus the slack, but never more than a quarter of the wait."""
    assert deadline_margin(poll_interval, wait) == pytest.approx(margin)


def test_airflow_timeout_path_stops_a_pending_call_once(emulator: RingCentralEmulator) -> None:
    """
    Airflow's own timeout beat the trigger (``__fail__``): resuming stops the still-pending call, then fails as
    Airflow's sensor timeout; a call already stopped (by the trigger) gets no second DELETE.
    """
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout

    from airflow_provider_ringout.sensors.ringout import RingOutSensor

    ringout_id = place(emulator, Outcome.NEVER_ANSWERS)
    fail = {"error": "Trigger timeout"}  # what the scheduler sets when a deferral timed out
    with pytest.raises(AirflowSensorTimeout):
        RingOutSensor(task_id="wait", ringout_id=ringout_id).resume_execution(TRIGGER_FAIL, fail, {})
    assert emulator.count(kind="ring-out-delete") == 1
    assert emulator.sessions[ringout_id].cancelled
    with pytest.raises(AirflowSensorTimeout):
        RingOutSensor(task_id="wait", ringout_id=ringout_id).resume_execution(TRIGGER_FAIL, fail, {})
    assert emulator.count(kind="ring-out-delete") == 1


def test_resumed_trigger_reads_a_vanished_call_as_unknown(emulator: RingCentralEmulator) -> None:
    """
    The triggerer restarts while the call rings; meanwhile it connects and its session ends. The trigger rebuilt
    from its serialized state reads 404 with only a pending reading behind it: unknown (it may have connected),
    never failed, so the operator does not let a retry dial again.
    """
    from airflow_provider_ringout.hooks.ringcentral import RingCentralHook

    emulator.script(TO, CallScript(outcome=Outcome.ANSWERED, after=0.6, talk=0.3, linger=0.2))
    ringout_id = RingCentralHook().place_ringout(to_number=TO, from_number=FROM)["id"]
    first = RingOutTrigger(ringout_id=ringout_id, end_time=time.time() + 30, poll_interval=5)

    async def run_until_restart() -> None:
        task = asyncio.create_task(events(first))
        while first.watch.last is None:  # the first reading is in the trigger's state (not just sent)
            await asyncio.sleep(0.02)
        task.cancel()  # the triggerer stops; no event was fired

    asyncio.run(run_until_restart())
    _, kwargs = first.serialize()
    assert kwargs["last_status"]["state"] == "pending"
    while emulator.session_status(ringout_id) is not None:  # connected and ended while no triggerer ran
        time.sleep(0.05)
    (event,) = asyncio.run(events(RingOutTrigger(**kwargs)))
    assert event.payload["status"] == "unknown"
    assert event.payload["seen_connected"] is False
    assert "may have connected; it is not dialled again" in event.payload["message"]
    assert [r.status for r in emulator.requests if r.kind == "ring-out-get"] == [200, 404]


@pytest.mark.parametrize(
    ("wait", "poll", "hard_end", "expected"),
    [
        pytest.param(300, 5, None, (300, 310), id="operator: wait_timeout, then Airflow a margin later"),
        pytest.param(300, 5, 100, (90, 100), id="operator: execution_timeout ends first"),
        pytest.param(300, 5, 300, (290, 300), id="sensor: timeout is Airflow's, the trigger a margin before"),
        pytest.param(5, 1, 5, (3.75, 5), id="sensor: a short timeout keeps three quarters"),
        pytest.param(300, 5, -10, (0.75, 1), id="execution_timeout already over: Airflow gets a second"),
    ],
)
def test_deadlines_serve_the_operator_and_the_sensor(
    wait: float, poll: float, hard_end: float | None, expected: tuple[float, float]
) -> None:
    """One rule for both tasks: (trigger's end, Airflow's timeout), counted from ``now``."""
    from airflow_provider_ringout._wait import deadlines

    now = 1000.0
    end_time, airflow_timeout = deadlines(
        now, wait=wait, poll_interval=poll, hard_end=None if hard_end is None else now + hard_end
    )
    assert (end_time - now, airflow_timeout) == pytest.approx(expected)


# --- the hold after the deferral (_wait.fire_after) -----------------------------------------------------------


def test_an_event_that_comes_early_is_held_until_fire_after(emulator: RingCentralEmulator) -> None:
    """The call connects at once; the event still waits for ``fire_after`` (Airflow's deferral race, _wait)."""
    ringout_id = place(emulator, Outcome.ANSWERED, after=0)
    hold_until = time.time() + 1.5
    trigger = RingOutTrigger(ringout_id=ringout_id, end_time=time.time() + 30, poll_interval=0.1, fire_after=hold_until)
    assert RingOutTrigger(**trigger.serialize()[1]).fire_after == hold_until  # kept across a triggerer restart

    (event,) = asyncio.run(events(trigger))

    assert time.time() >= hold_until and event.payload["status"] == "connected"


def test_the_deferral_holds_events_for_trigger_fire_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_ringout._wait import TRIGGER_FIRE_DELAY, fire_after

    now = time.time()
    monkeypatch.delenv("AIRFLOW__RINGCENTRAL__TRIGGER_FIRE_DELAY")  # the default (tests/conftest.py sets 0)
    assert fire_after(now, now + 60) == now + TRIGGER_FIRE_DELAY == now + 10
    assert fire_after(now, now + 6) == now + 6  # never past the trigger's own deadline (its timeout comes first)
    monkeypatch.setenv("AIRFLOW__RINGCENTRAL__TRIGGER_FIRE_DELAY", "0")
    assert fire_after(now, now + 60) is None


def test_tasks_defer_with_the_hold(emulator: RingCentralEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """RingOutOperator's deferral, and its result wait's, hand the triggers ``fire_after`` (10 s after deferring)."""
    monkeypatch.delenv("AIRFLOW__RINGCENTRAL__TRIGGER_FIRE_DELAY")  # the default
    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_ringout.call_result import PlacedRingOut
    from airflow_provider_ringout.operators.ringout import RingOutOperator
    from airflow_provider_ringout.triggers.call_result import defer_result_wait
    from tests.task_context import task_context

    emulator.script(TO, CallScript(outcome=Outcome.NEVER_ANSWERS))
    task = RingOutOperator(task_id="call", to_number=TO, from_number=FROM, deferrable=True)
    before = time.time()
    with pytest.raises(TaskDeferred) as call_wait:
        task.execute(task_context())
    placed = PlacedRingOut("1", FROM, TO, datetime.now(UTC))
    with pytest.raises(TaskDeferred) as result_wait:
        defer_result_wait(task, placed, wait=60, poll_interval=1, hard_end=None, method_name="execute_result_complete")

    for deferred in (call_wait.value, result_wait.value):
        assert before + 10 <= deferred.trigger.fire_after <= time.time() + 10
