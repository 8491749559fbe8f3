"""The same DAG shape from the lightest pieces: EmptyOperator and a BaseSensorOperator subclass (strict baseline)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, BaseSensorOperator


class _Wait(BaseSensorOperator):
    def poke(self, context: Any) -> bool:
        return True


with DAG("parse_minimal", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    place = EmptyOperator(task_id="place")
    wait = _Wait(task_id="wait", mode="reschedule", timeout=300)
    cancel = EmptyOperator(task_id="cancel", trigger_rule="all_failed")
    call = EmptyOperator(task_id="call", execution_timeout=timedelta(minutes=2))
    place >> wait >> cancel >> call
