"""
Example 3: call a list of numbers, one mapped task per number, throttled by a pool, then report who connected.

``numbers_to_call`` reads the list from the DAG run's params; ``call`` is one RingOutOperator task instance per
number (dynamic task mapping, ``RingOutOperator.partial(...).expand(to_number=...)``), each placing the call and
waiting until it connects, failing if it does not. ``summarize`` runs once every call has finished, whatever its
outcome (``trigger_rule="all_done"``), and returns which numbers connected.

Rate limits: RingCentral lets one user place about 10 RingOuts a minute (its "Heavy" group). The calls run in the
pool ``ringcentral_ringout``, which caps how many are in flight at once; the hook also paces requests host-wide
from RingCentral's rate-limit headers and waits out a 429 instead of hammering. Create the pool before the first
run, with as many slots as calls you want ringing at the same time::

    airflow pools set ringcentral_ringout 2 "RingCentral RingOut calls (about 10 a minute per user)"

Without it the scheduler never queues the calls: they stay scheduled, and the UI shows a "non-existent pool" DAG
warning. (``airflow dags test`` runs tasks one by one in its own process and does not consult pools at all.)

How ``summarize`` knows: it reads each mapped instance's state, and a call task returns its RingOut id only when
the call connected, so a return value is proof of a connection. A call that was placed but failed or timed out
has no return value, but pushed its id under the XCom key ``ringout_id`` before waiting; a call that failed
before anything was sent (a bad number) has neither. The run's state follows the summary, its only leaf: the run
succeeds once the summary has run, so look at the summary's return value, or at the failed ``call`` instances,
for the calls that did not connect.

Runs unchanged against the local emulator (``python -m airflow_provider_ringout.testing``) and against
RingCentral: only the ``ringcentral_default`` connection differs. Set the numbers in the DAG run's params
(``airflow dags test example_ringout_mapped -c '{"to_numbers": ["+1...", "+1..."]}'``) and each call's wait with
the environment variable ``RINGOUT_EXAMPLE_WAIT_TIMEOUT`` (seconds, default 60).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, get_current_context, task

from airflow_provider_ringout.operators.ringout import RingOutOperator
from airflow_provider_ringout.phone import mask_phone_number

log = logging.getLogger(__name__)

POOL = "ringcentral_ringout"

with DAG(
    dag_id="example_ringout_mapped",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["example", "ringcentral"],
    params={
        "to_numbers": Param(
            ["+14155550101", "+14155550102", "+14155550103"],
            type="array",
            items={"type": "string"},
            minItems=1,
            description="Numbers to connect to (E.164), one call each.",
        ),
        "from_number": Param("+14155550100", type="string", description="Your phone, rung first (E.164)."),
    },
):
    # Phone numbers are personal data: the provider masks them in its logs, so these tasks do not let Airflow log
    # their return values (the lists of numbers) in full either.
    @task(show_return_value_in_logs=False)
    def numbers_to_call() -> list[str]:
        """The list to expand over: mapping needs a real list (an XCom), and a template string is not one."""
        params = get_current_context()["params"]
        return [str(number) for number in params["to_numbers"]]

    numbers = numbers_to_call()

    calls = RingOutOperator.partial(
        task_id="call",
        from_number="{{ params.from_number }}",
        pool=POOL,
        # Short enough for a demo; real calls may want a few minutes.
        wait_timeout=float(os.environ.get("RINGOUT_EXAMPLE_WAIT_TIMEOUT", "60")),
        # Each call reads its status every poll_interval seconds (RingCentral's Light group, 50 reads a minute per
        # user, shared with every other task of that user): 2 calls in flight x 6 reads a minute stays well inside.
        poll_interval=10,
    ).expand(to_number=numbers)

    @task(trigger_rule="all_done", show_return_value_in_logs=False)
    def summarize(numbers: list[str]) -> dict[str, Any]:
        """Pair each number with its call's state and XComs; return which connected and which did not."""
        ti = get_current_context()["ti"]
        # Mapped instances are keyed "call_<map_index>"; a number's index is its place in the list.
        states = ti.get_task_states(dag_id=ti.dag_id, task_ids=["call"], run_ids=[ti.run_id]).get(ti.run_id, {})
        report: list[dict[str, Any]] = []
        for index, number in enumerate(numbers):
            state = states.get(f"call_{index}")
            ringout_id: str | None = None
            connected = False
            if state == "success":
                # The return value exists only for a call that connected: it is the proof, not the state alone.
                ringout_id = ti.xcom_pull(task_ids="call", map_indexes=index)
                connected = ringout_id is not None
            elif state == "failed":
                # Placed but did not connect (busy, no answer, timed out): its id was pushed before the wait.
                # None means it failed before anything was sent (a bad number, a bad connection).
                ringout_id = ti.xcom_pull(task_ids="call", key="ringout_id", map_indexes=index)
            report.append(
                {
                    "to_number": number,
                    "map_index": index,
                    "state": state,
                    "ringout_id": ringout_id,
                    "connected": connected,
                }
            )
            log.info(
                "Call %d to %s: %s (RingOut %s, task %s).",
                index,
                mask_phone_number(number),
                "connected" if connected else "did NOT connect",
                ringout_id or "never placed",
                state,
            )
        return {
            "connected": [c["to_number"] for c in report if c["connected"]],
            "not_connected": [c["to_number"] for c in report if not c["connected"]],
            "calls": report,
        }

    calls >> summarize(numbers)
