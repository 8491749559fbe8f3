"""
Example 5: phone the on-call engineers when a task fails; the first who presses 1 acknowledges the alert.

The task ``fail`` fails on purpose. Its ``on_failure_callback`` is a RingOutNotifier with ``connect_to``: each
engineer of ``to_numbers`` is rung first, in order, and hears RingCentral's prompt to press 1; only a person who
presses 1 is connected on to ``connect_to`` (an auto-answering line: an incident bridge, an IVR or a NOC desk),
so a voicemail cannot acknowledge. An engineer who does not acknowledge within ``per_number_timeout`` seconds is
cancelled and the next one is rung. The notifier never raises, and places one escalation per DAG run however many
tasks fail, so a broken alert never hides the task's own failure.

Time: on a worker, Airflow stops a task's callbacks ``[core] task_success_overtime`` seconds (default 20) after
the task ended, and the notifier fits its escalation into that time (a WARNING when the DAG is parsed says when
the list cannot fit). For an escalation of two people, set it to at least 60. ``airflow dags test`` sets no such
limit.

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
            connect_to="+14155550199",  # the incident bridge an engineer who presses 1 joins
            # Short for a demo; real escalations may want 30-60 s per person.
            per_number_timeout=float(os.environ.get("RINGOUT_EXAMPLE_NOTIFIER_TIMEOUT", "30")),
            poll_interval=2,  # 30 status reads a minute, within RingCentral's Light budget (50 a minute)
        ),
    )
    def fail() -> None:
        """Fail on purpose, to trigger the alert."""
        raise RuntimeError("This task fails on purpose to demonstrate RingOutNotifier.")

    fail()
