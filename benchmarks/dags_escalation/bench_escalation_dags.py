"""
The DAG ``bench_escalation_latency.py`` runs under real services: a task that fails at once, then a deferrable
``RingOutEscalationOperator`` with ``trigger_rule="one_failed"`` (three engineers, 8 s each, everything else at its
default). The numbers must match ``ENGINEERS`` and ``BRIDGE`` in the benchmark.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from airflow_provider_ringout.operators.escalation import RingOutEscalationOperator

ENGINEERS = ["+15550220001", "+15550220002", "+15550220003"]
BRIDGE = "+15550220099"

with DAG("bench_escalation_latency", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):

    @task(retries=0)
    def guarded() -> None:
        raise RuntimeError("fails on purpose: the escalation's latency is measured from this failure")

    guarded() >> RingOutEscalationOperator(
        task_id="escalate",
        trigger_rule="one_failed",
        to_numbers=ENGINEERS,
        connect_to=BRIDGE,
        per_number_timeout=8,
        deferrable=True,
        retries=0,
    )
