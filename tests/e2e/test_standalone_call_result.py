"""
The deferrable ``wait_for_result`` under real Airflow services (api-server, scheduler, dag-processor, triggerer):
the wait for the call's record runs in the triggerer (the task is deferred with ``execute_result_complete`` as its
next method), and the task resumed on a worker pushes ``call_result``. The record is held back by the emulator
until the task is seen deferred for it, then released (scripted by events, not by the clock).

Run: ``pytest tests/e2e/test_standalone_call_result.py -q -p no:cacheprovider -x``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from tests.e2e.dags.call_result_services import DAG_ID, TO_NUMBER
from tests.e2e.standalone import services_on_emulator
from tests.e2e.test_standalone_deferred import trigger

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

DAGS_FOLDER = Path(__file__).resolve().parent / "dags"


@pytest.fixture
def emulator() -> Iterator[RingCentralEmulator]:
    rc = RingCentralEmulator(host="127.0.0.1", call_log_delay=3600).start()  # records held back until released
    rc.script(TO_NUMBER, CallScript(outcome=Outcome.ANSWERED, after=1, talk=1, linger=60))
    try:
        yield rc
    finally:
        rc.stop()


@pytest.mark.xfail(
    reason="under real services the task was marked failed ~3 s after deferring for its result, before the "
    "triggerer ran RingOutCallResultTrigger (dags test passes); cause not found yet, see the issue 25 report",
    strict=False,
)
def test_deferrable_wait_for_result_under_real_services(
    emulator: RingCentralEmulator, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("airflow-services")
    with services_on_emulator(emulator, home, DAGS_FOLDER, [DAG_ID]) as airflow:
        watch = trigger(airflow, DAG_ID)
        query = "SELECT state, next_method FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = 'call'"

        def deferred_for_the_result() -> bool:
            rows = airflow.query(query, (DAG_ID, watch.run_id))
            return bool(rows) and tuple(rows[0]) == ("deferred", "execute_result_complete")

        airflow.wait_for("the task deferred for its result", deferred_for_the_result, timeout=240)
        # The task is deferred: the look-ups now come from the triggerer, and find nothing yet.
        airflow.wait_for("a look-up from the triggerer", lambda: emulator.count(kind="call-log") >= 1, timeout=120)
        assert deferred_for_the_result()
        emulator.call_log.delay = 0  # RingCentral writes the record

        airflow.wait_for("the task to succeed", lambda: watch.state() == "success", timeout=240)
        xcom = f"/dags/{DAG_ID}/dagRuns/{watch.run_id}/taskInstances/call/xcomEntries"
        result = airflow.api("GET", f"{xcom}/call_result?deserialize=true")["value"]
        ringout = airflow.api("GET", f"{xcom}/ringout?deserialize=true")["value"]
        returned = airflow.api("GET", f"{xcom}/return_value?deserialize=true")["value"]
        print(f"call_result as the DAG sees it: {result}")
    if isinstance(result, str):  # Airflow 3.0 hands the JSON text back
        import json

        result, ringout, returned = (
            json.loads(v) if isinstance(v, str) and v[:1] in "{[" else v for v in (result, ringout, returned)
        )
    assert result["result"] == "Call connected" and result["answered_by"] == "person"
    assert ringout["to_number"] == TO_NUMBER and returned == ringout["id"]
    assert emulator.count(kind="ring-out-create") == 1
