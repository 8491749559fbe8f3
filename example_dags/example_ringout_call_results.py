"""
Example 7: call a list of numbers, one mapped task per number, and report what happened on each call.

``call`` is one RingOutOperator task instance per number (``.partial(...).expand(to_number=...)``) with
``wait_for_result=True``: after its call connected (or failed) it waits until the call is over and RingCentral's
call log has its record, then pushes the result dict as the XCom ``call_result`` (its return value stays the
RingOut id). ``report`` runs once every call has finished, whatever its outcome (``trigger_rule="all_done"``), and
returns each number's result: ``result`` ("Call connected", "Busy", "Voicemail", ...), ``duration`` (seconds)
and ``answered_by`` ("person", "voicemail" or "unknown": see docs/operators.md, "What happened on the call").

What it costs: RingCentral writes a record 15-30 s after the call ends, so each call task waits the call's length
plus that; the call log is in RingCentral's Heavy group (10 requests a minute per user and app), shared with the
POST that places the calls, so the tasks' look-ups do not each read it: one ``call-log-sync`` every
``[ringcentral] call_log_interval`` (20 s) serves them all, and only when no POST waits. It needs the
``ReadCallLog`` permission. A busy call fails its task (as without
results) but still pushes its ``call_result`` first.

Create the pool before the first run (``airflow dags test`` ignores pools)::

    airflow pools set ringcentral_ringout 2 "RingCentral RingOut calls (about 10 a minute per user)"

Runs unchanged against the local emulator (``python -m airflow_provider_ringout.testing``) and against
RingCentral: only the ``ringcentral_default`` connection differs. Set the numbers in the DAG run's params
(``airflow dags test example_ringout_call_results -c '{"to_numbers": ["+1...", "+1..."]}'``); the environment
variables ``RINGOUT_EXAMPLE_RESULT_TIMEOUT`` (seconds, default 300) and ``RINGOUT_EXAMPLE_RESULT_POLL_INTERVAL``
(seconds between two looks at the shared call-log records, default 15) tune the wait for the results.
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
    dag_id="example_ringout_call_results",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["example", "ringcentral"],
    params={
        "to_numbers": Param(
            ["+14155550101", "+14155550102"],
            type="array",
            items={"type": "string"},
            minItems=1,
            description="Numbers to connect to (E.164), one call each.",
        ),
        "from_number": Param("+14155550100", type="string", description="Your phone, rung first (E.164)."),
    },
):

    @task(show_return_value_in_logs=False)
    def numbers_to_call() -> list[str]:
        """The list to expand over (phone numbers are personal data: not logged in full)."""
        return [str(number) for number in get_current_context()["params"]["to_numbers"]]

    numbers = numbers_to_call()

    calls = RingOutOperator.partial(
        task_id="call",
        from_number="{{ params.from_number }}",
        pool=POOL,
        wait_timeout=60,
        wait_for_result=True,
        result_timeout=float(os.environ.get("RINGOUT_EXAMPLE_RESULT_TIMEOUT", "300")),
        # Each look-up is a Heavy request, shared with the POSTs: 2 calls waiting x 4 a minute leaves room for them.
        result_poll_interval=float(os.environ.get("RINGOUT_EXAMPLE_RESULT_POLL_INTERVAL", "15")),
    ).expand(to_number=numbers)

    @task(trigger_rule="all_done", show_return_value_in_logs=False)
    def report(numbers: list[str]) -> list[dict[str, Any]]:
        """Each number with its call's result (None: the call was not placed, or its record never came)."""
        ti = get_current_context()["ti"]
        results: list[dict[str, Any]] = []
        for index, number in enumerate(numbers):
            result = ti.xcom_pull(task_ids="call", key="call_result", map_indexes=index)
            results.append({"to_number": number, "map_index": index, "call_result": result})
            if result is None:
                log.info("Call %d to %s: no result.", index, mask_phone_number(number))
            else:
                log.info(
                    "Call %d to %s: %s, %s s, answered by %s.",
                    index,
                    mask_phone_number(number),
                    result["result"],
                    result["duration"],
                    result["answered_by"],
                )
        return results

    calls >> report(numbers)
