"""The same DAG shape built from airflow.sdk and standard operators only: the parse-cost baseline."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.python import PythonOperator
from airflow.providers.standard.sensors.python import PythonSensor
from airflow.sdk import DAG


def _noop() -> bool:
    return True


with DAG("parse_standard", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    place = PythonOperator(task_id="place", python_callable=_noop)
    wait = PythonSensor(task_id="wait", python_callable=_noop, mode="reschedule", timeout=300)
    cancel = PythonOperator(task_id="cancel", python_callable=_noop, trigger_rule="all_failed")
    call = PythonOperator(task_id="call", python_callable=_noop, execution_timeout=timedelta(minutes=2))
    place >> wait >> cancel >> call
