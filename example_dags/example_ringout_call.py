"""
Example 1: place a RingOut and wait until it connects, in one task.

RingCentral rings ``from_number`` (your phone) first, then connects it to ``to_number``. The task succeeds when
both legs are up, fails at once if the call fails (busy, no answer, rejected), and cancels the call if it has
not connected within ``wait_timeout``. Its XCom return value is the RingOut id.

Runs unchanged against the local emulator (``python -m airflow_provider_ringout.testing``) and against
RingCentral: only the ``ringcentral_default`` connection differs. Set the numbers in the DAG run's params
(``airflow dags test example_ringout_call -c '{"to_number": "+1..."}'``) and the wait with the environment
variable ``RINGOUT_EXAMPLE_WAIT_TIMEOUT`` (seconds, default 60).
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_ringout.operators.ringout import RingOutOperator

with DAG(
    dag_id="example_ringout_call",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["example", "ringcentral"],
    params={
        "to_number": Param("+14155550199", type="string", description="Number to connect to (E.164)."),
        "from_number": Param("+14155550100", type="string", description="Your phone, rung first (E.164)."),
    },
):
    RingOutOperator(
        task_id="call",
        to_number="{{ params.to_number }}",
        from_number="{{ params.from_number }}",
        # Short enough for a demo of the cancel-on-timeout path; real calls may want a few minutes.
        wait_timeout=float(os.environ.get("RINGOUT_EXAMPLE_WAIT_TIMEOUT", "60")),
        poll_interval=2,
    )
