"""
DAGs for bench_detection_latency.py: one chain of SAMPLES calls per wait mode, so only one call waits at a time.

Reschedule: ``RingOutOperator(wait_for_connection=False) >> RingOutSensor(mode="reschedule")`` per sample (the
operator has no reschedule mode; the sensor does). Deferrable: ``RingOutOperator(deferrable=True)`` per sample.
Sample i calls ``number(i)``; the benchmark scripts when each number answers. Read by ``airflow dags test``.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_ringout.operators.ringout import RingOutOperator
from airflow_provider_ringout.sensors.ringout import RingOutSensor

SAMPLES = int(os.environ.get("BENCH_LATENCY_SAMPLES", "10"))
POLL = float(os.environ.get("BENCH_LATENCY_POLL", "2"))
FROM = "+14155550100"
START = datetime(2026, 1, 1)


MODE_DIGIT = {"blocking": 1, "reschedule": 2, "deferrable": 3}


def number(mode: str, i: int) -> str:
    """The callee of sample ``i`` of ``mode`` (distinct per mode and sample)."""
    return f"+1555{MODE_DIGIT[mode]}03{i:04d}"


with DAG("bench_latency_reschedule", schedule=None, start_date=START, catchup=False, max_active_tasks=1):
    previous = None
    for i in range(SAMPLES):
        place = RingOutOperator(
            task_id=f"place_{i}", to_number=number("reschedule", i), from_number=FROM, wait_for_connection=False
        )
        wait = RingOutSensor(
            task_id=f"wait_{i}", ringout_id=place.output, mode="reschedule", poke_interval=POLL, timeout=120
        )
        if previous is not None:
            previous >> place
        place >> wait
        previous = wait

with DAG("bench_latency_deferrable", schedule=None, start_date=START, catchup=False, max_active_tasks=1):
    previous = None
    for i in range(SAMPLES):
        call = RingOutOperator(
            task_id=f"call_{i}",
            to_number=number("deferrable", i),
            from_number=FROM,
            deferrable=True,
            poll_interval=POLL,
            wait_timeout=120,
        )
        if previous is not None:
            previous >> call
        previous = call
