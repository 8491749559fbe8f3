"""
Example 6: an escalation as a task of its own, free of any callback's clock.

The task ``load`` fails on purpose. ``escalate`` runs downstream of it with ``trigger_rule="one_failed"``: it rings
the on-call engineers in order, each first with RingCentral's press-1 prompt; the first who presses 1 is connected
on to ``connect_to`` (an auto-answering incident bridge, IVR or NOC line), so a voicemail cannot acknowledge. An
engineer who does not acknowledge within ``per_number_timeout`` seconds is cancelled and the next is rung; the
list is gone through ``rounds`` times. It returns ``{"acknowledged_by": ..., "round": ..., "calls": [...]}`` for
XCom, and fails, listing each number's outcome, when nobody acknowledged.

With ``deferrable=True`` (or ``[operators] default_deferrable = True``) the whole escalation runs in the triggerer
and holds no worker slot. Unlike a failure callback (``[core] task_success_overtime``, 20 s by default), a task
has no short clock, so every engineer gets the full ``per_number_timeout``.

"The run is late" is the other Airflow-native shape: on Airflow 3.1+ the DAG carries a Deadline Alert whose
``AsyncCallback`` is ``RingOutNotifier``, run by the triggerer (free of any callback's clock too) when a run is
still going ``RINGOUT_EXAMPLE_DEADLINE_MINUTES`` (default 30) minutes after it was queued. A run that ends in
time pages nobody (Airflow drops the deadline). The page and the escalation task ring the same people for the same
run, so they are one incident: whichever reaches someone first, the other does not ring again. On Airflow 3.0 the
DAG has no deadline.

Runs unchanged against the local emulator (``python -m airflow_provider_ringout.testing``) and against
RingCentral. Try it with ``airflow dags test example_ringout_escalation``; set the per-number wait with
``RINGOUT_EXAMPLE_ESCALATION_TIMEOUT`` (seconds, default 30).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_ringout.operators.escalation import RingOutEscalationOperator
from airflow_provider_ringout.version_compat import AIRFLOW_V_3_1_PLUS

ON_CALL = ["+14155550101", "+14155550102", "+14155550103"]  # primary, backup, manager
BRIDGE = "+14155550199"  # the incident bridge an engineer who presses 1 joins

late_page: dict[str, Any] = {}
if AIRFLOW_V_3_1_PLUS:  # Deadline Alerts came with Airflow 3.1
    from airflow.sdk.definitions.deadline import AsyncCallback, DeadlineAlert, DeadlineReference

    from airflow_provider_ringout.notifications.ringout import RingOutNotifier

    late_page["deadline"] = DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=float(os.environ.get("RINGOUT_EXAMPLE_DEADLINE_MINUTES", "30"))),
        # Airflow stores the path and these keyword arguments (JSON) and builds the notifier in the triggerer.
        callback=AsyncCallback(
            RingOutNotifier, kwargs={"to_numbers": ON_CALL, "connect_to": BRIDGE, "per_number_timeout": 30}
        ),
    )

with DAG(
    dag_id="example_ringout_escalation",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["example", "ringcentral"],
    **late_page,
):

    @task(retries=0)
    def load() -> None:
        """Fail on purpose, to trigger the escalation."""
        raise RuntimeError("This task fails on purpose to demonstrate RingOutEscalationOperator.")

    load() >> RingOutEscalationOperator(
        task_id="escalate",
        trigger_rule="one_failed",  # runs only when a guarded task failed
        to_numbers=ON_CALL,
        connect_to=BRIDGE,
        per_number_timeout=float(os.environ.get("RINGOUT_EXAMPLE_ESCALATION_TIMEOUT", "30")),
        rounds=2,
    )
