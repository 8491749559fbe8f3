"""
Example 4: a TaskFlow DAG that rings a phone briefly and hangs up: a "missed call" alert.

``place`` (RingOutOperator with ``wait_for_connection=False``) places the call and returns its RingOut id.
``place.output`` is an XComArg: handed to the ``@task`` ``ring_briefly`` it arrives as the plain id string, and
handed to ``RingOutCancelOperator(ringout_id=place.output)`` it is rendered the same way; either use also makes
the task wait for ``place``. ``ring_briefly`` lets the call ring for a few seconds, watching its status, then
``cancel`` cancels it, returning True if that stopped it. ``report`` gets both results (the cancel operator's
``.output`` too) and says what happened.

RingCentral can stop a RingOut only while your phone (the first leg, rung first) has not answered: once you pick
up, the cancel is refused and ``cancel`` returns False (with ``fail_if_connected=True`` it would fail instead).
So an unanswered call is the normal case here; answering it turns the alert into a normal call.

Runs unchanged against the local emulator (``python -m airflow_provider_ringout.testing``) and against
RingCentral: only the ``ringcentral_default`` connection differs. Set the numbers in the DAG run's params
(``airflow dags test example_ringout_taskflow -c '{"to_number": "+1..."}'``) and how long the phone rings with
the environment variable ``RINGOUT_EXAMPLE_RING_SECONDS`` (seconds, default 10).
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime
from typing import Any

from airflow.sdk import Param, dag, task

from airflow_provider_ringout.hooks.ringcentral import RingCentralHook
from airflow_provider_ringout.operators.ringout import RingOutCancelOperator, RingOutOperator
from airflow_provider_ringout.status import RingOutState, RingOutWatch

log = logging.getLogger(__name__)

RING_SECONDS = float(os.environ.get("RINGOUT_EXAMPLE_RING_SECONDS", "10"))


@dag(
    dag_id="example_ringout_taskflow",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["example", "ringcentral"],
    params={
        "to_number": Param("+14155550199", type="string", description="Number to connect to (E.164)."),
        "from_number": Param("+14155550100", type="string", description="Your phone, rung first (E.164)."),
    },
)
def example_ringout_taskflow() -> None:
    """Place a call, let it ring briefly, cancel it, report (see the module docstring)."""
    place = RingOutOperator(
        task_id="place",
        to_number="{{ params.to_number }}",
        from_number="{{ params.from_number }}",
        wait_for_connection=False,
    )

    @task
    def ring_briefly(ringout_id: str) -> dict[str, Any]:
        """Watch the call for ``RING_SECONDS`` (less if it connects or fails first); return its last status."""
        hook = RingCentralHook()
        watch = RingOutWatch(ringout_id)
        deadline = time.monotonic() + RING_SECONDS
        while True:
            state = watch.observe(hook.get_status(ringout_id))
            if state is not RingOutState.PENDING or time.monotonic() >= deadline:
                break
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        log.info("RingOut %s after ringing: %s (%s).", ringout_id, state.value, watch.describe())
        return {
            "ringout_id": ringout_id,
            "state": state.value,
            "last_status": watch.last.as_dict() if watch.last else None,
        }

    cancel = RingOutCancelOperator(task_id="cancel", ringout_id=place.output)

    @task
    def report(rang: dict[str, Any], stopped: bool) -> dict[str, Any]:
        """Say how the alert ended: cancelled while ringing, or not stopped (answered, connected, or already over)."""
        if stopped:
            log.info("RingOut %s rang and was cancelled before anyone answered.", rang["ringout_id"])
        else:
            log.warning(
                "RingOut %s was not stopped by the cancel (last seen %s): it was answered or had already ended.",
                rang["ringout_id"],
                rang["state"],
            )
        return {"ringout_id": rang["ringout_id"], "state_before_cancel": rang["state"], "stopped": stopped}

    rang = ring_briefly(place.output)
    rang >> cancel  # cancel only after the phone has rung for a while
    report(rang, cancel.output)


example_ringout_taskflow()
