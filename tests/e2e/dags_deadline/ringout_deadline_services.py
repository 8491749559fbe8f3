"""
DAGs for ``tests/e2e/test_standalone_deadline.py``: a ``RingOutNotifier`` as the ``AsyncCallback`` of a
``DeadlineAlert`` (Airflow 3.1+), one run late and one in time.

- ``deadline_late``: due 2 s after it was queued; its task holds until the test drops a file named after the run id
  in the gate folder (``RINGOUT_E2E_DEADLINE_GATE``), so the run is late whatever the machine's speed. Then the task
  fails, and its ``on_failure_callback`` (the same notifier, same numbers) belongs to the incident the late page
  already delivered.
- ``deadline_in_time``: due 10 minutes after it was queued; its one task ends at once.

On a core without Deadline Alerts the file defines no DAG (the test is skipped there) but still imports.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow_provider_ringout.version_compat import AIRFLOW_V_3_1_PLUS

BRIDGE = "+15550210099"
LATE = ("deadline_late", "+15550210001")
IN_TIME = ("deadline_in_time", "+15550210002")
GATE_ENV = "RINGOUT_E2E_DEADLINE_GATE"


def page(number: str) -> dict[str, Any]:
    """The notifier's arguments (JSON: Airflow stores them with the deadline)."""
    return {"to_numbers": [number], "connect_to": BRIDGE, "per_number_timeout": 8, "poll_interval": 0.5}


if AIRFLOW_V_3_1_PLUS:
    from airflow.sdk import DAG, task
    from airflow.sdk.definitions.deadline import AsyncCallback, DeadlineAlert, DeadlineReference

    from airflow_provider_ringout.notifications.ringout import RingOutNotifier

    def late_page(number: str, after: timedelta) -> DeadlineAlert:
        return DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=after,
            callback=AsyncCallback(RingOutNotifier, kwargs=page(number)),
        )

    with DAG(
        LATE[0],
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["e2e"],
        deadline=late_page(LATE[1], timedelta(seconds=2)),
    ):

        @task(retries=0, execution_timeout=timedelta(minutes=5), on_failure_callback=RingOutNotifier(**page(LATE[1])))
        def hold(run_id: str | None = None) -> None:
            gate = Path(os.environ[GATE_ENV]) / str(run_id)
            while not gate.exists():  # released by the test once the late page was delivered
                time.sleep(0.5)
            raise RuntimeError("fails on purpose after the late page: its failure alert is the same incident")

        hold()

    with DAG(
        IN_TIME[0],
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["e2e"],
        deadline=late_page(IN_TIME[1], timedelta(minutes=10)),
    ):

        @task(retries=0)
        def done() -> None:
            """Ends at once, long before the deadline."""

        done()
