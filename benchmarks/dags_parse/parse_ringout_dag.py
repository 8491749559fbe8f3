"""A DAG that uses the provider's operators and sensor; bench_parse_cost.py times importing it (DAG parsing)."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_ringout.operators.ringout import RingOutCancelOperator, RingOutOperator
from airflow_provider_ringout.sensors.ringout import RingOutSensor

with DAG("parse_ringout", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    place = RingOutOperator(task_id="place", to_number="+14155550199", wait_for_connection=False)
    wait = RingOutSensor(task_id="wait", ringout_id=place.output, mode="reschedule", timeout=300)
    cancel = RingOutCancelOperator(task_id="cancel", ringout_id=place.output, trigger_rule="all_failed")
    call = RingOutOperator(task_id="call", to_number="+14155550198", deferrable=True, wait_timeout=timedelta(minutes=2))
    place >> wait >> cancel >> call
