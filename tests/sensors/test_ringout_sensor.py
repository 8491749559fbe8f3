"""
RingOutSensor's poke() and execute() in process against the emulator (fast; the e2e tests run them in Airflow).

In poke, reschedule and deferrable mode alike: a connected call ends the wait, a failed call raises
RingOutFailedError, and a timeout cancels the call before Airflow's sensor timeout (or skip, with soft_fail).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowSkipException, TaskDeferred, timezone

from airflow_provider_ringout.exceptions import RingOutFailedError
from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
from airflow_provider_ringout.sensors.ringout import RingOutSensor
from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from airflow_provider_ringout.triggers.ringout import RingOutTrigger
from tests.task_context import TaskInstanceDouble, finish_deferral, task_context

try:
    from airflow.sdk.exceptions import AirflowRescheduleException
except ImportError:  # Airflow < 3.1
    from airflow.exceptions import AirflowRescheduleException  # type: ignore[no-redef,attr-defined]

pytestmark = pytest.mark.timeout(60)  # every wait here is a few seconds: a hang must fail fast

TO, FROM = "+14155550199", "+14155550100"
# Late enough that the deferrable sensor's first poke still finds the call ringing, so it defers.
AFTER = 0.6


@pytest.fixture
def emulator(ringcentral_conn_env: RingCentralEmulator) -> RingCentralEmulator:
    return ringcentral_conn_env


def place(emulator: RingCentralEmulator, outcome: Outcome) -> str:
    emulator.script(TO, CallScript(outcome=outcome, after=AFTER, talk=10, linger=10))
    return RingCentralHook().place_ringout(to_number=TO, from_number=FROM)["id"]


def sensor(ringout_id: str, **kwargs: Any) -> RingOutSensor:
    kwargs = {"task_id": "wait", "ringout_id": ringout_id, "poke_interval": 0.1, "timeout": 10, **kwargs}
    return RingOutSensor(**kwargs)


def run(task: RingOutSensor, context: dict[str, Any]) -> Any:
    """Execute as Airflow would: a deferral is run through its trigger and resumed."""
    try:
        return task.execute(context)
    except TaskDeferred as deferred:
        assert task.deferrable, "a sensor in poke or reschedule mode never defers"
        return finish_deferral(task, deferred, context)


def stopped(emulator: RingCentralEmulator, ringout_id: str) -> bool:
    """The call was cancelled and its session is gone: nobody's phone rings on."""
    return emulator.sessions[ringout_id].cancelled and emulator.session_status(ringout_id) is None


CONNECTED = ("Success", "Success", "Success")
BUSY = ("CannotReach", "Success", "Busy")
MODES = [pytest.param({}, id="poke"), pytest.param({"deferrable": True}, id="deferrable")]


def test_poke_reads_the_call_once_each_time(emulator: RingCentralEmulator) -> None:
    ringout_id = place(emulator, Outcome.NEVER_ANSWERS)
    task = sensor(ringout_id)
    context = task_context()

    assert task.poke(context) is False  # still ringing
    emulator.set_status(ringout_id, *CONNECTED)
    assert task.poke(context) is True
    assert emulator.count(kind="ring-out-get") == 2
    assert emulator.count(kind="ring-out-delete") == 0


def test_poke_raises_on_a_failed_call(emulator: RingCentralEmulator) -> None:
    ringout_id = place(emulator, Outcome.NEVER_ANSWERS)
    emulator.set_status(ringout_id, *BUSY)

    with pytest.raises(RingOutFailedError) as err:
        sensor(ringout_id).poke(task_context())

    assert err.value.ringout_id == ringout_id
    assert "Busy" in str(err.value)


@pytest.mark.parametrize("mode", MODES)
def test_connected_call_ends_the_wait(emulator: RingCentralEmulator, mode: dict[str, Any]) -> None:
    ringout_id = place(emulator, Outcome.ANSWERED)

    run(sensor(ringout_id, **mode), task_context())  # returns: the task succeeds

    assert emulator.session_status(ringout_id) == {
        "callStatus": "Success",
        "callerStatus": "Success",
        "calleeStatus": "Success",
    }
    assert emulator.count(kind="ring-out-delete") == 0


@pytest.mark.parametrize("mode", MODES)
def test_failed_call_raises(emulator: RingCentralEmulator, mode: dict[str, Any]) -> None:
    ringout_id = place(emulator, Outcome.NO_ANSWER)

    with pytest.raises(RingOutFailedError) as err:
        run(sensor(ringout_id, **mode), task_context())

    assert err.value.ringout_id == ringout_id
    assert "NoAnswer" in str(err.value)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        pytest.param({}, AirflowSensorTimeout, id="poke"),
        pytest.param({"soft_fail": True}, AirflowSkipException, id="poke-soft_fail"),
        pytest.param({"deferrable": True}, AirflowSensorTimeout, id="deferrable"),
    ],
)
def test_timeout_cancels_the_call(emulator: RingCentralEmulator, mode: dict[str, Any], expected: type) -> None:
    ringout_id = place(emulator, Outcome.NEVER_ANSWERS)

    with pytest.raises(expected):
        run(sensor(ringout_id, timeout=1, **mode), task_context())

    assert emulator.count(kind="ring-out-delete") >= 1
    assert stopped(emulator, ringout_id)


def test_rescheduled_sensor_cancels_on_its_last_poke_before_the_timeout(emulator: RingCentralEmulator) -> None:
    ringout_id = place(emulator, Outcome.NEVER_ANSWERS)
    ti = TaskInstanceDouble()
    task = sensor(ringout_id, mode="reschedule", poke_interval=5, timeout=60)

    with pytest.raises(AirflowRescheduleException):  # first poke: ringing, the timeout far away
        task.execute(task_context(ti))
    assert emulator.count(kind="ring-out-delete") == 0

    # A later try of the same sensor, 56 s after its first poke: the next one would land after the timeout.
    ti.first_reschedule_date = timezone.utcnow() - timedelta(seconds=56)
    with pytest.raises(AirflowSensorTimeout):
        sensor(ringout_id, mode="reschedule", poke_interval=5, timeout=60).execute(task_context(ti))

    assert emulator.count(kind="ring-out-delete") >= 1
    assert stopped(emulator, ringout_id)


def test_rescheduled_sensor_succeeds_once_connected(emulator: RingCentralEmulator) -> None:
    ringout_id = place(emulator, Outcome.NEVER_ANSWERS)
    emulator.set_status(ringout_id, *CONNECTED)

    sensor(ringout_id, mode="reschedule", poke_interval=5, timeout=60).execute(task_context())

    assert emulator.count(kind="ring-out-delete") == 0


def test_deferral_hands_the_call_to_a_trigger(emulator: RingCentralEmulator) -> None:
    ringout_id = place(emulator, Outcome.NEVER_ANSWERS)
    task = sensor(ringout_id, deferrable=True, poke_interval=3, timeout=300)

    with pytest.raises(TaskDeferred) as deferred:
        task.execute(task_context())
    now = time.time()

    trigger = deferred.value.trigger
    assert isinstance(trigger, RingOutTrigger)
    assert trigger.ringout_id == ringout_id
    assert trigger.ringcentral_conn_id == "ringcentral_default"
    assert trigger.poll_interval == 3
    assert now < trigger.end_time <= now + 300  # an absolute deadline, within the sensor's timeout
    assert deferred.value.method_name == "execute_complete"
    assert emulator.count(kind="ring-out-get") == 1  # checked once before deferring
    assert emulator.count(kind="ring-out-delete") == 0


@pytest.mark.parametrize(
    ("cancel_on_timeout", "words"),
    [(True, "it was cancelled and stopped"), (False, "it was not cancelled (cancel_on_timeout=False)")],
)
def test_the_timeout_says_what_became_of_the_call(
    emulator: RingCentralEmulator, cancel_on_timeout: bool, words: str
) -> None:
    """The sensor words its timeout as the operator does (one ``timeout_message``), cancel outcome included."""
    ringout_id = place(emulator, Outcome.NEVER_ANSWERS)
    ti = TaskInstanceDouble()
    ti.first_reschedule_date = timezone.utcnow() - timedelta(seconds=56)  # the next poke would land after 60 s
    task = sensor(ringout_id, mode="reschedule", poke_interval=5, timeout=60, cancel_on_timeout=cancel_on_timeout)

    with pytest.raises(AirflowSensorTimeout) as err:
        task.execute(task_context(ti))

    assert f"RingOut {ringout_id} did not connect within the sensor's timeout; {words}" in str(err.value)
    assert emulator.count(kind="ring-out-delete") == (1 if cancel_on_timeout else 0)
