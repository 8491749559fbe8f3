"""
Example 2: place a RingOut in one task, wait for it in a deferrable sensor, then use the result.

``place`` (RingOutOperator with ``wait_for_connection=False``) succeeds as soon as RingCentral accepted the call and
hands the RingOut id on as its XCom return value. ``wait_for_connection`` (RingOutSensor, deferrable) waits in
the triggerer, not in a worker slot, until the call connects; it fails at once if the call fails (busy, no answer,
rejected) and, when the sensor times out, cancels the call first so no phone keeps ringing for nobody. Only a
connected call reaches ``report_connected``, which logs the id and returns it.

Splitting placing from waiting is what lets the wait be deferred: a call that rings for minutes costs no worker.
It needs a running triggerer (``airflow triggerer``); ``airflow dags test`` runs the trigger in line instead.

Runs unchanged against the local emulator (``python -m airflow_provider_ringout.testing``) and against
RingCentral: only the ``ringcentral_default`` connection differs. Set the numbers in the DAG run's params
(``airflow dags test example_ringout_sensor -c '{"to_number": "+1..."}'``), the sensor's timeout with the
environment variable ``RINGOUT_EXAMPLE_SENSOR_TIMEOUT`` (seconds, default 60) and its poll interval with
``RINGOUT_EXAMPLE_POKE_INTERVAL`` (seconds, default 2).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime

from airflow.sdk import DAG, Param, task

from airflow_provider_ringout.operators.ringout import RingOutOperator
from airflow_provider_ringout.sensors.ringout import RingOutSensor

log = logging.getLogger(__name__)

with DAG(
    dag_id="example_ringout_sensor",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["example", "ringcentral"],
    params={
        "to_number": Param("+14155550199", type="string", description="Number to connect to (E.164)."),
        "from_number": Param("+14155550100", type="string", description="Your phone, rung first (E.164)."),
    },
):
    place = RingOutOperator(
        task_id="place",
        to_number="{{ params.to_number }}",
        from_number="{{ params.from_number }}",
        # Succeed once the call is placed: the sensor below does the waiting, in the triggerer.
        wait_for_connection=False,
    )

    wait_for_connection = RingOutSensor(
        task_id="wait_for_connection",
        ringout_id=place.output,
        deferrable=True,
        # Short enough for a demo of the cancel-on-timeout path; real calls may want a few minutes.
        timeout=float(os.environ.get("RINGOUT_EXAMPLE_SENSOR_TIMEOUT", "60")),
        poke_interval=float(os.environ.get("RINGOUT_EXAMPLE_POKE_INTERVAL", "2")),
        cancel_on_timeout=True,
    )

    @task
    def report_connected(ringout_id: str) -> str:
        """Runs only once the sensor saw the call connect: log the id and hand it on (XCom return value)."""
        log.info("RingOut %s connected: both legs are up.", ringout_id)
        return ringout_id

    # The sensor returns nothing, so the id comes from the placing task; the edge from the sensor makes the
    # report wait until the call has connected.
    wait_for_connection >> report_connected(place.output)
