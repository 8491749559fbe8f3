"""
DAG for ``tests/e2e/test_standalone_call_result.py``: a deferrable RingOutOperator that waits for its result, and
beside it a call placed without waiting whose result a deferrable RingOutCallResultSensor waits for.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_ringout.operators.ringout import RingOutOperator
from airflow_provider_ringout.sensors.call_result import RingOutCallResultSensor

DAG_ID = "deferred_call_result"
TO_NUMBER, FROM_NUMBER = "+15550100201", "+15550100200"
SENSED_TO_NUMBER = "+15550100202"

with DAG(DAG_ID, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["e2e"]):
    RingOutOperator(
        task_id="call",
        to_number=TO_NUMBER,
        from_number=FROM_NUMBER,
        deferrable=True,
        wait_for_result=True,
        wait_timeout=120,
        poll_interval=0.5,
        result_timeout=240,
        result_poll_interval=0.5,
        retries=0,
    )
    placed = RingOutOperator(
        task_id="place", to_number=SENSED_TO_NUMBER, from_number=FROM_NUMBER, wait_for_connection=False, retries=0
    )
    placed >> RingOutCallResultSensor(
        task_id="result",
        ringout="{{ ti.xcom_pull(task_ids='place', key='ringout') }}",
        deferrable=True,
        poke_interval=0.5,
        timeout=240,
    )
