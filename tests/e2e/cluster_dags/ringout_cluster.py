"""The DAG of ``tests/e2e/test_cluster_redis.py``: 12 mapped RingOut calls at once, spread over Celery workers."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_ringout.operators.ringout import RingOutOperator

FROM_NUMBER = "+15550100000"
NUMBERS = [f"+1555020{i:04d}" for i in range(12)]

with DAG("ringout_cluster", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["e2e"]):
    RingOutOperator.partial(
        task_id="call",
        from_number=FROM_NUMBER,
        wait_timeout=600,
        poll_interval=5,
        deferrable=False,
        retries=0,
    ).expand(to_number=NUMBERS)
