"""The example escalation DAG under ``airflow dags test`` (real Airflow, blocking and deferrable) on the emulator."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from tests.airflow_runner import AirflowHome

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]
EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "example_ringout_escalation.py"
FIRST, SECOND, THIRD = "+14155550101", "+14155550102", "+14155550103"


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> AirflowHome:
    dags = tmp_path_factory.mktemp("dags")
    shutil.copy(EXAMPLE, dags)
    return AirflowHome(tmp_path_factory.mktemp("airflow-home"), dags)


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_a_failed_task_is_followed_by_an_escalation_that_reaches_the_third_engineer(
    airflow_home: AirflowHome, deferrable: bool
) -> None:
    with RingCentralEmulator() as emulator:
        emulator.script_caller(FIRST, CallScript(outcome=Outcome.VOICEMAIL, after=0.3))
        emulator.script_caller(SECOND, CallScript(outcome=Outcome.NEVER_ANSWERS))
        emulator.script_caller(THIRD, CallScript(outcome=Outcome.ANSWERED, after=0.5, talk=10))
        result = airflow_home.dags_test(
            "example_ringout_escalation",
            env={
                "AIRFLOW_CONN_RINGCENTRAL_DEFAULT": emulator.connection_json(),
                "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": str(deferrable),
                "RINGOUT_EXAMPLE_ESCALATION_TIMEOUT": "3",
            },
        )
        rung = [r.json["from"]["phoneNumber"] for r in emulator.requests if r.kind == "ring-out-create" and r.json]

    assert result.states == {"load": "failed", "escalate": "success"}, result.output[-3000:]
    assert rung == [FIRST, SECOND, THIRD]
    value = result.xcom("escalate")
    assert value["acknowledged_by"] == THIRD and value["round"] == 1
    assert [c["result"] for c in value["calls"]] == ["not_pressed", "no_answer", "acknowledged"]
    assert ("RingOutEscalationTrigger" in result.output) is deferrable  # the deferrable run went to a trigger
    # Masked in our log lines (Airflow 3.0's own debug lines of its supervisor messages show the task's rendered
    # fields and the trigger's kwargs, numbers included, as the UI and the triggers table do).
    ours = "\n".join(line for line in result.output.splitlines() if "RingOut" in line and "type='" not in line)
    assert "RingOut escalation: calling" in ours
    for number in (FIRST, SECOND, THIRD):
        assert number not in ours
