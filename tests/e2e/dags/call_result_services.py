"""DAG for ``tests/e2e/test_standalone_call_result.py``: a deferrable RingOutOperator that waits for its result."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_ringout.operators.ringout import RingOutOperator

DAG_ID = "deferred_call_result"
TO_NUMBER, FROM_NUMBER = "+15550100201", "+15550100200"

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
