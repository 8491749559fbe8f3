"""
DAGs for ``tests/e2e/test_standalone_deferred.py``: one deferrable RingOutOperator per scenario.

Each DAG calls its own number, so the test scripts that number's outcome in the emulator and can pick the
requests of one scenario out of the emulator's shared record. Only the waiting settings differ: they are what
each scenario is about (a quick answer, a short timeout, a long wait to interrupt, a wait across a restart).
No retries, so a failure is final and the test sees exactly one try.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_ringout.operators.ringout import RingOutOperator
from airflow_provider_ringout.sensors.ringout import RingOutSensor

FROM_NUMBER = "+15550100000"
START = datetime(2026, 1, 1)

# dag_id: (callee number, wait_timeout in seconds, poll_interval in seconds)
SCENARIOS: dict[str, tuple[str, float, float]] = {
    "deferred_answered": ("+15550100001", 90, 0.5),
    "deferred_timeout": ("+15550100002", 6, 0.5),
    "deferred_mark_failed": ("+15550100003", 240, 1.0),
    "deferred_triggerer_restart": ("+15550100004", 45, 1.0),
}

for dag_id, (number, wait_timeout, poll_interval) in SCENARIOS.items():
    with DAG(dag_id, schedule=None, start_date=START, catchup=False, tags=["e2e"]):
        RingOutOperator(
            task_id="call",
            to_number=number,
            from_number=FROM_NUMBER,
            wait_timeout=wait_timeout,
            poll_interval=poll_interval,
            deferrable=True,
            retries=0,
        )


class KilledAfterPlacing(RingOutOperator):
    """Test double: on its first try the worker process is SIGKILLed right after the call was placed and saved."""

    def poll_until_complete(self, external_id: object, context: object) -> str:
        import os
        import signal

        if context["ti"].try_number == 1:  # type: ignore[index]
            os.kill(os.getpid(), signal.SIGKILL)
        return super().poll_until_complete(external_id, context)  # type: ignore[arg-type]


class KilledAfterConnecting(RingOutOperator):
    """Test double: on its first try the worker is SIGKILLed after it saw the call connect, before it returned."""

    def _finish(self, state: object, watch: object, context: object) -> None:
        import os
        import signal

        super()._finish(state, watch, context)  # type: ignore[arg-type]
        if context["ti"].try_number == 1:  # type: ignore[index]
            os.kill(os.getpid(), signal.SIGKILL)


# dag_id: (operator class, callee number)
CRASHES = {
    "worker_killed_while_pending": (KilledAfterPlacing, "+15550100005"),
    "worker_killed_after_connect": (KilledAfterConnecting, "+15550100006"),
}

for dag_id, (operator, number) in CRASHES.items():
    with DAG(dag_id, schedule=None, start_date=START, catchup=False, tags=["e2e"]):
        operator(
            task_id="call",
            to_number=number,
            from_number=FROM_NUMBER,
            wait_timeout=60,
            poll_interval=0.5,
            retries=1,
            retry_delay=timedelta(seconds=1),
        )


# Deadlines that race Airflow's own timeouts (issue 16). dag_id: callee number.
SENSOR_TIMEOUT = ("sensor_deferred_timeout", "+15550100011")
OPERATOR_EXECUTION_TIMEOUT = ("deferred_execution_timeout", "+15550100012")
RESCHEDULE_TIMEOUT = ("sensor_reschedule_timeout", "+15550100013")

with DAG(SENSOR_TIMEOUT[0], schedule=None, start_date=START, catchup=False, tags=["e2e"], max_active_runs=16):
    placed = RingOutOperator(
        task_id="place", to_number=SENSOR_TIMEOUT[1], from_number=FROM_NUMBER, wait_for_connection=False, retries=0
    )
    RingOutSensor(task_id="call", ringout_id=placed.output, poke_interval=1, timeout=5, deferrable=True, retries=0)

with DAG(OPERATOR_EXECUTION_TIMEOUT[0], schedule=None, start_date=START, catchup=False, tags=["e2e"]):
    RingOutOperator(
        task_id="call",
        to_number=OPERATOR_EXECUTION_TIMEOUT[1],
        from_number=FROM_NUMBER,
        wait_timeout=120,
        poll_interval=1,
        execution_timeout=timedelta(seconds=12),
        deferrable=True,
        retries=0,
    )

with DAG(RESCHEDULE_TIMEOUT[0], schedule=None, start_date=START, catchup=False, tags=["e2e"]):
    placed = RingOutOperator(
        task_id="place", to_number=RESCHEDULE_TIMEOUT[1], from_number=FROM_NUMBER, wait_for_connection=False, retries=0
    )
    # Pokes at about 0 s and 10 s; the 15 s timeout falls before the third, which Airflow may never run.
    RingOutSensor(task_id="call", ringout_id=placed.output, mode="reschedule", poke_interval=10, timeout=15, retries=0)

# Run while the triggerer is down: only Airflow's own timeout for the deferral can end the wait.
TRIGGERER_DOWN = ("deferred_triggerer_down", "+15550100014")

with DAG(TRIGGERER_DOWN[0], schedule=None, start_date=START, catchup=False, tags=["e2e"]):
    RingOutOperator(
        task_id="call",
        to_number=TRIGGERER_DOWN[1],
        from_number=FROM_NUMBER,
        wait_timeout=6,
        poll_interval=1,
        deferrable=True,
        retries=0,
    )

# A call that connects and vanishes between two reads (3 s apart): the task fails once, Airflow does not retry
# it; clearing the task places a new call deliberately.
VANISHED_THEN_CLEARED = ("vanished_then_cleared", "+15550100007")
with DAG(VANISHED_THEN_CLEARED[0], schedule=None, start_date=START, catchup=False, tags=["e2e"]):
    RingOutOperator(
        task_id="call",
        to_number=VANISHED_THEN_CLEARED[1],
        from_number=FROM_NUMBER,
        wait_timeout=30,
        poll_interval=3,
        retries=1,
        retry_delay=timedelta(seconds=0),
    )

# A rescheduled sensor on a call nobody answers, run to its timeout by the real scheduler. Pokes 10 s apart: when a
# poke's worker takes longer to exit than the reschedule delay (seconds, on a busy host), the scheduler sees its
# exit after the next poke was scheduled and fails the task as "killed externally" before any of its code runs
# (Airflow's race, documented in docs/operators.md).
RESCHEDULE_RUN_TO_TIMEOUT = ("reschedule_sensor_timeout", "+15550100008", 15.0)
with DAG(RESCHEDULE_RUN_TO_TIMEOUT[0], schedule=None, start_date=START, catchup=False, tags=["e2e"]):
    placed = RingOutOperator(
        task_id="place", to_number=RESCHEDULE_RUN_TO_TIMEOUT[1], from_number=FROM_NUMBER, wait_for_connection=False
    )
    placed >> RingOutSensor(
        task_id="call",
        ringout_id=placed.output,
        mode="reschedule",
        poke_interval=10,
        timeout=RESCHEDULE_RUN_TO_TIMEOUT[2],
    )
