"""
A wait that ends without a final status never leaves the phone ringing, unless a retry takes the call over.

Every status GET after the POST answers 503 (the emulator's fault injection). With no retry to follow, the task
cancels the call (one DELETE) and its error says what the cancel did; with a retry following that reconnects to
the call, nothing is cancelled (0 DELETEs) and the error says the call is left to the retry. Blocking and
deferrable operator, and the sensor in poke, reschedule and deferrable mode; the deferrable runs inject the fault
once the task has deferred, so the trigger's ``error`` event is what ends the wait.
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_ringout._task_mixin import retry_follows
from airflow_provider_ringout.exceptions import RingOutFailedError
from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
from airflow_provider_ringout.operators.ringout import RingOutOperator
from airflow_provider_ringout.sensors.ringout import RingOutSensor
from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from tests.task_context import StateStoreDouble, TaskInstanceDouble, finish_deferral, task_context

pytestmark = pytest.mark.timeout(60)

TO, FROM = "+14155550199", "+14155550100"
FAST = {"max_attempts": 2, "backoff_factor": 0}
CANCELLED = "it was cancelled and stopped"
LEFT = "left to the task's retry"


@pytest.fixture
def emulator(ringcentral_conn_env: RingCentralEmulator) -> RingCentralEmulator:
    emulator = ringcentral_conn_env
    emulator.script(TO, CallScript(outcome=Outcome.NEVER_ANSWERS))
    return emulator


def context_for(*, retry: bool, store: bool = True) -> dict[str, Any]:
    """A first try; with ``retry`` one more try follows (retries=1), else none."""
    ti = TaskInstanceDouble()
    ti.try_number, ti.max_tries = 1, 1 if retry else 0  # type: ignore[attr-defined]
    context = task_context(ti)
    if store:
        context["task_state_store"] = StateStoreDouble()
    return context


def run_until_failed(task: Any, context: dict[str, Any], emulator: RingCentralEmulator, times: int) -> str:
    """Run the task; status reads fail ``times`` times from when it waits (after its deferral, if deferrable)."""

    def execute() -> None:
        try:
            task.execute(context)
        except TaskDeferred as deferred:
            emulator.inject("503", path="ring-out-get", times=times)
            finish_deferral(task, deferred, context)

    if not task.deferrable:
        emulator.inject("503", path="ring-out-get", times=times)
    with pytest.raises(RingOutFailedError) as err:
        execute()
    return str(err.value)


def deletes(emulator: RingCentralEmulator) -> int:
    return emulator.count(kind="ring-out-delete")


def operator(deferrable: bool, retry: bool) -> RingOutOperator:
    return RingOutOperator(
        task_id="call",
        to_number=TO,
        from_number=FROM,
        poll_interval=0.1,
        wait_timeout=30,
        deferrable=deferrable,
        retries=1 if retry else 0,
        hook_params=FAST,
    )


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_operator_cancels_a_call_whose_wait_failed_when_no_retry_follows(
    emulator: RingCentralEmulator, deferrable: bool
) -> None:
    # Two failing reads end the wait (max_attempts=2); the cancel's own read then answers.
    message = run_until_failed(operator(deferrable, retry=False), context_for(retry=False), emulator, times=2)

    (ringout_id,) = emulator.sessions
    assert deletes(emulator) == 1
    assert emulator.sessions[ringout_id].cancelled
    assert CANCELLED in message


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_operator_leaves_the_call_to_a_retry_that_reconnects(emulator: RingCentralEmulator, deferrable: bool) -> None:
    message = run_until_failed(operator(deferrable, retry=True), context_for(retry=True), emulator, times=2)

    (ringout_id,) = emulator.sessions
    assert deletes(emulator) == 0
    assert not emulator.sessions[ringout_id].cancelled
    assert LEFT in message


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_reads_failing_for_good_still_send_one_cancel_and_say_it_is_unconfirmed(
    emulator: RingCentralEmulator, deferrable: bool
) -> None:
    message = run_until_failed(operator(deferrable, retry=False), context_for(retry=False), emulator, times=1000)

    (ringout_id,) = emulator.sessions
    assert deletes(emulator) == 1
    assert emulator.sessions[ringout_id].cancelled
    assert "whether it stopped the call is unknown" in message


def test_a_retry_without_task_state_store_would_lose_the_call_so_it_is_cancelled(
    emulator: RingCentralEmulator,
) -> None:
    """Before Airflow 3.3 a retry dials a new call instead of reconnecting: this one must not ring on."""
    run_until_failed(operator(False, retry=True), context_for(retry=True, store=False), emulator, times=2)

    assert deletes(emulator) == 1


def place(emulator: RingCentralEmulator) -> str:
    return str(RingCentralHook().place_ringout(to_number=TO, from_number=FROM)["id"])


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
@pytest.mark.parametrize("retry", [False, True], ids=["no-retry", "retry-follows"])
def test_sensor_cancels_unless_a_retry_follows(emulator: RingCentralEmulator, mode: str, retry: bool) -> None:
    ringout_id = place(emulator)
    task = RingOutSensor(
        task_id="wait",
        ringout_id=ringout_id,
        poke_interval=0.1,
        timeout=30,
        mode="reschedule" if mode == "reschedule" else "poke",
        deferrable=mode == "deferrable",
        retries=1 if retry else 0,
        hook_params=FAST,
    )

    message = run_until_failed(task, context_for(retry=retry, store=False), emulator, times=2)

    assert deletes(emulator) == (0 if retry else 1)
    assert emulator.sessions[ringout_id].cancelled is not retry
    assert (LEFT if retry else CANCELLED) in message


def test_retry_follows_is_decided_from_try_number_max_tries_and_reconnecting() -> None:
    task = RingOutOperator(task_id="t", to_number=TO, retries=2)
    ti = TaskInstanceDouble()
    cases = [((1, 2, True), True), ((3, 2, True), False), ((1, 2, False), False)]
    for (try_number, max_tries, reconnects), expected in cases:
        ti.try_number, ti.max_tries = try_number, max_tries  # type: ignore[attr-defined]
        assert retry_follows(task, task_context(ti), reconnects=reconnects) is expected
    assert retry_follows(task, task_context(TaskInstanceDouble()), reconnects=True) is False  # core does not say
