"""
The deferrable ``wait_for_result`` and the deferrable ``RingOutCallResultSensor`` under real Airflow services
(api-server, scheduler, dag-processor, triggerer): the waits for the calls' records run in the triggerer (the
operator deferred with ``execute_result_complete`` as its next method, the sensor with ``execute_complete``), and
the tasks resumed on a worker push ``call_result`` and return the sensed result. The records are held back by the
emulator until both tasks are seen deferred, then released (scripted by events, not by the clock).

Run: ``pytest tests/e2e/test_standalone_call_result.py -q -p no:cacheprovider -x``.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from tests.e2e.dags.call_result_services import DAG_ID, SENSED_TO_NUMBER, TO_NUMBER
from tests.e2e.standalone import services_on_emulator
from tests.e2e.test_standalone_deferred import RunWatch, trigger

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

DAGS_FOLDER = Path(__file__).resolve().parent / "dags"


def as_value(shown: Any) -> Any:
    """An XCom value as the REST API shows it (a dict or list as its text: JSON, or Python's repr)."""
    if isinstance(shown, str) and shown[:1] in "{[":
        try:
            return json.loads(shown)
        except ValueError:
            return ast.literal_eval(shown)
    return shown


@pytest.fixture
def emulator() -> Iterator[RingCentralEmulator]:
    rc = RingCentralEmulator(host="127.0.0.1", call_log_delay=3600).start()  # records held back until released
    rc.script(TO_NUMBER, CallScript(outcome=Outcome.ANSWERED, after=1, talk=1, linger=60))
    rc.script(SENSED_TO_NUMBER, CallScript(outcome=Outcome.BUSY, after=1, linger=60))
    try:
        yield rc
    finally:
        rc.stop()


def test_deferrable_wait_for_result_under_real_services(
    emulator: RingCentralEmulator, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("airflow-services")
    fast_reads = {"AIRFLOW__RINGCENTRAL__CALL_LOG_INTERVAL": "1"}
    with services_on_emulator(emulator, home, DAGS_FOLDER, [DAG_ID], fast_reads) as airflow:
        watch = trigger(airflow, DAG_ID)
        query = "SELECT state, next_method FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = ?"

        def deferred_for_the_results() -> bool:
            call = airflow.query(query, (DAG_ID, watch.run_id, "call"))
            sensor = airflow.query(query, (DAG_ID, watch.run_id, "result"))
            return (
                bool(call and sensor)
                and tuple(call[0]) == ("deferred", "execute_result_complete")
                and tuple(sensor[0]) == ("deferred", "execute_complete")
            )

        airflow.wait_for("both tasks deferred for their results", deferred_for_the_results, timeout=240)
        # Both are deferred: the look-ups now come from the triggerer, and find nothing yet.
        airflow.wait_for("a look-up from the triggerer", lambda: emulator.count(kind="call-log-sync") >= 1, timeout=120)
        assert deferred_for_the_results()
        emulator.call_log.delay = 0  # RingCentral writes the records

        def run_state() -> str:
            return str(airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/{watch.run_id}")["state"])

        airflow.wait_for("the run to end", lambda: run_state() in ("success", "failed"), timeout=240)
        assert run_state() == "success", airflow.log_tails()
        result, ringout, returned = (as_value(watch.xcom(key)) for key in ("call_result", "ringout", "return_value"))
        sensed = as_value(RunWatch(airflow, DAG_ID, watch.run_id, task_id="result").xcom())
        print(f"call_result as the DAG sees it: {result}")
    assert sensed["result"] == "Busy" and [leg["leg_type"] for leg in sensed["legs"]] == ["RingOutWebToCaller"]
    assert result["result"] == "Call connected" and result["answered_by"] == "person"
    assert (
        ringout["to_number"] == TO_NUMBER and str(returned) == ringout["id"]
    )  # the API may hand a digit string back as a number
    assert emulator.count(kind="ring-out-create") == 2
