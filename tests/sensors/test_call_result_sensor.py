"""
RingOutCallResultSensor in process against the emulator (fast; ``test_call_result_dags.py`` runs it in Airflow):
poke, reschedule and deferrable return the record's result dict; a record that never comes, and two records that
could be the call, end with a clear error.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, TaskDeferred

from airflow_provider_ringout.call_result import PlacedRingOut
from airflow_provider_ringout.exceptions import RingCentralConfigError, RingOutCallResultAmbiguousError
from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
from airflow_provider_ringout.sensors.call_result import RingOutCallResultSensor
from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from tests.task_context import finish_deferral, task_context

try:
    from airflow.sdk.exceptions import AirflowRescheduleException
except ImportError:  # older Airflow 3 cores
    from airflow.exceptions import AirflowRescheduleException  # type: ignore[no-redef,attr-defined]

pytestmark = pytest.mark.timeout(60)

TO, FROM = "+14155550199", "+14155550100"


@pytest.fixture
def emulator(ringcentral_conn_env: RingCentralEmulator, monkeypatch: pytest.MonkeyPatch) -> RingCentralEmulator:
    monkeypatch.setenv("AIRFLOW__RINGCENTRAL__CALL_LOG_INTERVAL", "1")  # one shared call-log sync a second
    ringcentral_conn_env.script(TO, CallScript(outcome=Outcome.ANSWERED, after=0, talk=0.2))
    return ringcentral_conn_env


def place(emulator: RingCentralEmulator) -> dict[str, str]:
    """Place a call as RingOutOperator does, and its ``ringout`` dict."""
    placed_at = datetime.now(UTC)
    ringout_id = RingCentralHook().place_ringout(to_number=TO, from_number=FROM)["id"]
    return PlacedRingOut(ringout_id, FROM, TO, placed_at).as_dict()


def wait_for_records(emulator: RingCentralEmulator, count: int) -> None:
    """Until the emulator has written ``count`` records (a loop on the condition, bounded by the test's timeout)."""
    while len(emulator.call_log.records()) < count:
        time.sleep(0.05)


def sensor(ringout: Any, **kwargs: Any) -> RingOutCallResultSensor:
    return RingOutCallResultSensor(task_id="result", ringout=ringout, **{"poke_interval": 0.1, "timeout": 20, **kwargs})


def run(task: RingOutCallResultSensor, context: dict[str, Any]) -> Any:
    try:
        return task.execute(context)
    except TaskDeferred as deferred:
        return finish_deferral(task, deferred, context)


@pytest.mark.parametrize("as_json", [False, True], ids=["dict", "json"])
@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_returns_the_result(emulator: RingCentralEmulator, mode: str, as_json: bool) -> None:
    emulator.call_log.delay = 3600  # held back: the sensor must wait for it
    ringout = place(emulator)
    task = sensor(json.dumps(ringout) if as_json else ringout, deferrable=mode == "deferrable")
    assert not task.poke(task_context())  # not there yet
    emulator.call_log.delay = 0

    result = run(task, task_context())

    assert result["result"] == "Call connected" and result["answered_by"] == "person"
    assert [leg["leg_type"] for leg in result["legs"]] == ["RingOutWebToCaller", "RingOutWebToSubscriber"]


def test_reschedule_pokes_until_the_record_appears(emulator: RingCentralEmulator) -> None:
    emulator.call_log.delay = 3600
    ringout = place(emulator)
    context = task_context()
    with pytest.raises(AirflowRescheduleException):
        sensor(ringout, mode="reschedule").execute(context)
    context["ti"].first_reschedule_date = datetime.now(UTC)
    emulator.call_log.delay = 0
    wait_for_records(emulator, 1)

    # Each try is one poke; the host's shared records are synced once a call_log_interval (1 s here), so the
    # record is found by a later poke, never by a sync per poke.
    pokes, deadline = 1, time.monotonic() + 20
    while True:
        pokes += 1
        try:
            result = sensor(ringout, mode="reschedule").execute(context)
            break
        except AirflowRescheduleException:
            assert time.monotonic() < deadline, "the record was never found"
            time.sleep(0.2)

    assert result["result"] == "Call connected"
    assert emulator.count(kind="call-log-sync") <= pokes


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_a_record_that_never_comes_times_out_saying_why(emulator: RingCentralEmulator, mode: str) -> None:
    emulator.call_log.delay = 3600
    ringout = place(emulator)
    context = task_context()
    if mode == "reschedule":  # the last poke before the timeout
        context["ti"].first_reschedule_date = datetime.now(UTC) - timedelta(seconds=30)
        context["task_reschedule_count"] = 3
    task = sensor(ringout, timeout=1, mode="reschedule" if mode == "reschedule" else "poke")
    task.deferrable = mode == "deferrable"

    with pytest.raises(AirflowSensorTimeout) as err:
        run(task, context)

    message = " ".join(str(err.value).split())
    assert f"record of RingOut {ringout['id']} did not appear" in message
    assert "15-30 s after the call ends" in message and "ReadCallLog" in message


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_two_calls_between_the_same_numbers_fail_as_ambiguous(emulator: RingCentralEmulator, mode: str) -> None:
    emulator.call_log.delay = 3600
    first = place(emulator)
    place(emulator)
    emulator.call_log.delay = 0
    wait_for_records(emulator, 2)  # both written before the sensor looks: it must not take the first for its own
    task = sensor(first, deferrable=mode == "deferrable")

    with pytest.raises(RingOutCallResultAmbiguousError, match="ambiguous"):
        run(task, task_context())


def test_a_bad_ringout_names_what_it_lacks(emulator: RingCentralEmulator) -> None:
    with pytest.raises(RingCentralConfigError, match="lacks placed_at"):
        sensor({"id": "1", "from_number": FROM, "to_number": TO}).execute(task_context())
    with pytest.raises(RingCentralConfigError, match="ringout dict"):
        sensor("not json").execute(task_context())
    assert emulator.count(kind="call-log") == 0  # refused before any request
