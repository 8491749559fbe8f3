"""
A DAG-level alert escalation under real Airflow services: it must finish inside the DAG processor's time.

Airflow runs a DAG's ``on_failure_callback`` in a DAG file processor, which the DAG processor SIGKILLs
``[dag_processor] dag_file_processor_timeout`` seconds after it started. A default escalation (60 s per number)
would be killed while the first number still rings: the second engineer is never called and the ringing call is
never cancelled. Here the api-server, scheduler, dag-processor and triggerer run as separate processes
(``tests/e2e/standalone.py``) with the timeout at 60 s; a failing DAG alerts two engineers who do not answer,
with the default ``per_number_timeout``: both must be rung, both cancelled, before the processor's time is up.

Run: ``pytest tests/e2e/test_standalone_alert_callback.py -q -p no:cacheprovider -x`` (about three minutes).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest

from airflow_provider_ringout.testing import CallScript, Outcome, RingCentralEmulator
from tests.e2e.standalone import AirflowServices

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.e2e

DAG_ID = "alert_dag_level_escalation"
ENGINEERS = ("+15550170001", "+15550170002")
BRIDGE = "+15550170099"
PROCESSOR_TIMEOUT = 60

DAG_FILE = f'''
from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from airflow_provider_ringout.notifications.ringout import RingOutNotifier

with DAG(
    dag_id="{DAG_ID}",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    # Default per_number_timeout (60 s): two of them cannot fit the processor's time as they are.
    on_failure_callback=RingOutNotifier(to_numbers={list(ENGINEERS)!r}, connect_to="{BRIDGE}", poll_interval=5),
):

    @task(retries=0)
    def fail() -> None:
        raise RuntimeError("fails on purpose to run the DAG-level alert")

    fail()
'''


@pytest.fixture(scope="module")
def emulator() -> Iterator[RingCentralEmulator]:
    """Nobody answers: every engineer's phone rings until the call is cancelled."""
    rc = RingCentralEmulator(host="127.0.0.1", default_script=CallScript(outcome=Outcome.NEVER_ANSWERS)).start()
    try:
        yield rc
    finally:
        rc.stop()


@pytest.fixture(scope="module")
def services(emulator: RingCentralEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServices]:
    home = tmp_path_factory.mktemp("airflow-alert-services")
    dags = home / "dags"
    dags.mkdir()
    (dags / "alert_dag_level_escalation.py").write_text(DAG_FILE)
    env = {
        "AIRFLOW_CONN_RINGCENTRAL_DEFAULT": emulator.connection_json(),
        "AIRFLOW__RINGCENTRAL__TOKEN_CACHE_DIR": str(home / "ringcentral-cache"),
        "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": str(PROCESSOR_TIMEOUT),
    }
    airflow = AirflowServices(home, dags, env)
    try:
        airflow.migrate()
        airflow.start_all(timeout=180)
        airflow.wait_for(
            f"DAG {DAG_ID} to be parsed",
            lambda: airflow.api("GET", f"/dags/{DAG_ID}", expect=(200, 404)).get("dag_id"),
            timeout=120,
        )
        assert airflow.api("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})["is_paused"] is False
        yield airflow
    except BaseException:
        print(airflow.log_tails(80))
        raise
    finally:
        airflow.close()


def processor_logs(home: Path) -> str:
    """Everything the DAG processor and its file processors wrote (callbacks log there)."""
    files = [p for p in (home / "logs").rglob("*") if p.is_file()] + list((home / "service-logs").glob("*.log"))
    return "\n".join(p.read_text(errors="replace") for p in files)


def test_dag_level_escalation_calls_and_cancels_both_numbers_inside_the_processor_timeout(
    services: AirflowServices, emulator: RingCentralEmulator
) -> None:
    run_id = f"e2e__{uuid.uuid4().hex[:12]}"
    services.api("POST", f"/dags/{DAG_ID}/dagRuns", {"dag_run_id": run_id, "logical_date": None})
    services.wait_for(
        "the run to fail",
        lambda: services.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")["state"] == "failed",
        timeout=180,
    )

    def both_cancelled() -> bool:
        return len([r for r in emulator.requests if r.method == "DELETE"]) >= 2

    services.wait_for("both calls to be cancelled", both_cancelled, timeout=PROCESSOR_TIMEOUT + 30)

    posts = [r for r in emulator.requests if r.kind == "ring-out-create"]
    assert [r.json["from"]["phoneNumber"] for r in posts] == list(ENGINEERS), services.log_tails(60)
    assert all(r.json["to"]["phoneNumber"] == BRIDGE and r.json["playPrompt"] is True for r in posts)
    sessions = emulator.sessions
    assert len(sessions) == 2 and all(info.cancelled for info in sessions.values())
    deletes = [r for r in emulator.requests if r.method == "DELETE"]
    assert [d.path.rsplit("/", 1)[-1] for d in deletes] == [
        next(s.id for s in sessions.values() if s.from_number == number) for number in ENGINEERS
    ]
    # The whole escalation, POST to last cancel, fitted the processor's time (which also covered parsing).
    assert deletes[-1].time - posts[0].time < PROCESSOR_TIMEOUT - 3
    assert deletes[0].time < posts[1].time  # the first call was cancelled before the second engineer rang

    logs = processor_logs(services.home)
    assert "waits shortened to fit the callback's time" in logs
    assert "has been running for" not in logs  # the processor was not killed for exceeding its timeout
    assert "RingOut alert FAILED: nobody was reached" in logs
    assert not any(number in logs for number in (*ENGINEERS, BRIDGE))  # masked
