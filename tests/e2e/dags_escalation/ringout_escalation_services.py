"""
DAGs for ``tests/e2e/test_standalone_escalation.py``: a failing task, then a deferrable escalation downstream of it.

Each DAG rings its own numbers, so the test scripts how each engineer answers and splits the emulator's record.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from airflow_provider_ringout.operators.escalation import RingOutEscalationOperator

BRIDGE = "+15550200099"
# dag_id: (numbers, per_number_timeout, rounds)
SCENARIOS: dict[str, tuple[list[str], float, int]] = {
    "escalation_restart": (["+15550200001", "+15550200002", "+15550200003"], 8, 1),
    "escalation_two_rounds": (["+15550200011", "+15550200012"], 3, 2),
}

for dag_id, (numbers, per_number_timeout, rounds) in SCENARIOS.items():
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["e2e"]):

        @task(retries=0)
        def guarded() -> None:
            raise RuntimeError("fails on purpose")

        guarded() >> RingOutEscalationOperator(
            task_id="escalate",
            trigger_rule="one_failed",
            to_numbers=numbers,
            connect_to=BRIDGE,
            per_number_timeout=per_number_timeout,
            rounds=rounds,
            poll_interval=0.5,
            deferrable=True,
            retries=0,
        )
