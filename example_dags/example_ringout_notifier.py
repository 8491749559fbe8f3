"""
Example 2: phone the on-call team when a task fails, escalating down a list until someone answers.

The task ``fail`` fails on purpose. Its ``on_failure_callback`` is a RingOutNotifier: RingCentral rings
``from_number`` first, then connects it to the first number of ``to_numbers``; if that call fails or is not
connected within ``per_number_timeout`` seconds, it is cancelled and the next number is called. The notifier
never raises and calls at most once per failure, so a broken alert never hides the task's own failure.

Runs unchanged against the local emulator (``python -m airflow_provider_ringout.testing``) and against
RingCentral: only the ``ringcentral_default`` connection differs. Try it with
``airflow dags test example_ringout_notifier``; set the per-number wait with the environment variable
``RINGOUT_EXAMPLE_NOTIFIER_TIMEOUT`` (seconds, default 30). The task-level callback runs in the task's process
(under ``airflow dags test`` too), so the alert shows in the task log.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, task

from airflow_provider_ringout.notifications.ringout import RingOutNotifier

with DAG(
    dag_id="example_ringout_notifier",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["example", "ringcentral"],
):

    @task(
        retries=0,
        on_failure_callback=RingOutNotifier(
            to_numbers=["+14155550101", "+14155550102"],  # primary on-call, then the backup
            from_number="+14155550100",
            wait_for_connection=True,
            # Short for a demo; real escalations may want 30-60 s per person.
            per_number_timeout=float(os.environ.get("RINGOUT_EXAMPLE_NOTIFIER_TIMEOUT", "30")),
            poll_interval=1,
        ),
    )
    def fail() -> None:
        """Fail on purpose, to trigger the alert."""
        raise RuntimeError("This task fails on purpose to demonstrate RingOutNotifier.")

    fail()
